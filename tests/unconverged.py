"""Fits that stop before EM converges, on purpose, with their warning asserted."""

import warnings

import pytest
from sklearn.exceptions import ConvergenceWarning


def unconverged_fit(model, X, **fit_params):
    """``model.fit(X)`` for a fit meant to stop before converging (``tol=0``, or
    fewer iterations than convergence needs): asserts the ConvergenceWarning it
    gives (pyproject.toml makes an unasserted one an error) and returns the model.
    Online EM runs a budget of passes and gives no such warning (issue 29, item 7)."""
    if model.get_params().get("algorithm") == "online":
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConvergenceWarning)
            return model.fit(X, **fit_params)
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        return model.fit(X, **fit_params)


def fit_warning_if_unconverged(model, X, **fit_params):
    """``model.fit(X)`` for a fit that may or may not converge in its
    ``max_iter``: asserts that it warns (ConvergenceWarning) exactly when it did
    not converge, and nothing else; returns the model."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(X, **fit_params)
    kinds = [warning.category for warning in caught]
    online = model.get_params().get("algorithm") == "online"
    expected = [] if model.converged_ or online else [ConvergenceWarning]
    assert kinds == expected, [str(warning.message) for warning in caught]
    return model
