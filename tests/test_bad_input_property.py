"""Property: on any shape, dtype and values, fit, predict and partial_fit either
succeed with finite outputs or raise ValueError/TypeError; a failed call keeps
the model."""

import warnings

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from unconverged import fit_warning_if_unconverged

from streamgmm import GaussianMixture

SPECIAL_VALUES = [np.nan, np.inf, -np.inf, 1e300, -1e300, 1e-300, -0.0, 5e99, 2e100]
DTYPES = ["float64", "float32", "int64", "int8", "bool", "object", "str"]


@st.composite
def inputs(draw, n_features=None):
    dtype = draw(st.sampled_from(DTYPES))
    ndim = draw(st.sampled_from([2, 2, 2, 2, 1, 3]))
    shape = [draw(st.integers(0, 40))]
    if ndim >= 2:
        shape.append(n_features if n_features is not None else draw(st.integers(1, 4)))
    if ndim == 3:
        shape.append(2)
    values = draw(
        hnp.arrays(
            np.float64,
            tuple(shape),
            elements=st.one_of(
                st.floats(-1e3, 1e3),
                st.sampled_from(SPECIAL_VALUES),
                st.integers(-3, 3).map(float),
            ),
        )
    )
    if dtype in ("object", "str"):
        return values.astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return (
            np.nan_to_num(values, posinf=100, neginf=-100).astype(dtype)
            if dtype in ("int64", "int8", "bool")
            else values.astype(dtype)
        )


def _fitted_state(model):
    return {name: np.copy(getattr(model, name)) for name in ("weights_", "means_", "covariances_")}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    X=inputs(),
    X_new=inputs(n_features=3),
    n_components=st.integers(1, 3),
    covariance_type=st.sampled_from(["full", "tied", "diag", "spherical"]),
)
def test_fit_and_predict_succeed_with_finite_outputs_or_raise_clear_errors(
    X, X_new, n_components, covariance_type
):
    model = GaussianMixture(
        n_components, covariance_type=covariance_type, max_iter=3, random_state=0
    )
    try:
        fit_warning_if_unconverged(model, X)
    except (ValueError, TypeError) as error:
        assert str(error)
        assert not hasattr(model, "means_")
    else:
        for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
            assert np.all(np.isfinite(getattr(model, name))), name
        assert np.isclose(model.weights_.sum(), 1.0)

    if not hasattr(model, "means_") or model.n_features_in_ != 3:
        model = fit_warning_if_unconverged(GaussianMixture(
            2, covariance_type=covariance_type, max_iter=3, random_state=0
        ), np.random.default_rng(0).normal(size=(30, 3)))
    before = _fitted_state(model)
    for method in ("predict", "predict_proba"):
        try:
            result = getattr(model, method)(X_new)
        except (ValueError, TypeError) as error:
            assert str(error)
            continue
        assert np.all(np.isfinite(result))
        if method == "predict":
            assert np.all((0 <= result) & (result < model.n_components))
        else:
            np.testing.assert_allclose(result.sum(axis=1), 1.0)
    for name, value in before.items():
        np.testing.assert_array_equal(getattr(model, name), value)

    online = GaussianMixture(
        2, covariance_type=covariance_type, batch_size=7, random_state=0
    ).partial_fit(np.random.default_rng(1).normal(size=(30, 3)))
    before = _fitted_state(online)
    steps = online.n_steps_
    try:
        online.partial_fit(X_new)
    except (ValueError, TypeError) as error:
        assert str(error)
        assert online.n_steps_ == steps
        for name, value in before.items():
            np.testing.assert_array_equal(getattr(online, name), value)
    else:
        for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
            assert np.all(np.isfinite(getattr(online, name))), name
