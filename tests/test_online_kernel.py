"""The compiled stepwise-EM kernel against a plain NumPy reference written here.

The reference keeps raw per-sample moments (mean responsibility, mean
responsibility-weighted row and outer product) and scores rows through
``numpy.linalg``; it shares no code with :mod:`streamgmm`. With data near the
origin the raw form loses only a digit or two, so both must agree to 1e-10.
"""

import numpy as np
import pytest
from unconverged import unconverged_fit

from streamgmm import GaussianMixture
from streamgmm.datasets import make_mixture

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]
WEIGHT_FLOOR = 10 * np.finfo(np.float64).eps


def _covariances_per_component(covariances, covariance_type, n_components, d):
    if covariance_type == "full":
        return covariances
    if covariance_type == "tied":
        return np.repeat(covariances[None], n_components, axis=0)
    if covariance_type == "diag":
        return np.stack([np.diag(c) for c in covariances])
    return np.stack([np.eye(d) * c for c in covariances])


def _score(X, weights, means, covariances):
    """Per-row log-likelihood (n,) and responsibilities (n, K)."""
    log_weighted = np.empty((X.shape[0], len(weights)))
    for k, (mean, cov) in enumerate(zip(means, covariances, strict=True)):
        lower = np.linalg.cholesky(cov)
        z = np.linalg.solve(lower, (X - mean).T)
        log_det = 2 * np.log(np.diag(lower)).sum()
        log_weighted[:, k] = np.log(weights[k]) - 0.5 * (
            X.shape[1] * np.log(2 * np.pi) + log_det + (z**2).sum(axis=0)
        )
    largest = log_weighted.max(axis=1, keepdims=True)
    log_norm = largest[:, 0] + np.log(np.exp(log_weighted - largest).sum(axis=1))
    return log_norm, np.exp(log_weighted - log_norm[:, None])


def _m_step(moments, covariance_type, reg_covar):
    """Weights, means and (per-type) covariances from raw per-sample moments."""
    s0, s1, s2 = moments
    d = s1.shape[1]
    means = s1 / s0[:, None]
    floored = s0 + WEIGHT_FLOOR
    scatter = s2 - np.einsum("k,ki,kj->kij", s0, means, means)
    if covariance_type == "full":
        covariances = scatter / floored[:, None, None] + reg_covar * np.eye(d)
    elif covariance_type == "tied":
        covariances = scatter.sum(axis=0) / floored.sum() + reg_covar * np.eye(d)
    elif covariance_type == "diag":
        covariances = np.diagonal(scatter, axis1=1, axis2=2) / floored[:, None] + reg_covar
    else:
        covariances = np.trace(scatter, axis1=1, axis2=2) / (d * floored) + reg_covar
    return floored / floored.sum(), means, covariances


def reference_stepwise_em(X, start, batch_size, covariance_type, *, reg_covar=1e-6,
                          decay=0.6, offset=0.0, floor=0.0, averaging=False):
    """Stepwise EM as docs/online.md states it: returns the reported weights,
    means, covariances and the summed log-likelihood of the batches."""
    n_components, d = start["means"].shape
    params = (start["weights"], start["means"], start["covariances"])
    running = averaged = None
    step, seen, n_averaged, total = 0, 0, 0, 0.0
    needed = d + 1 if covariance_type in ("full", "tied") else 2
    for begin in range(0, X.shape[0], batch_size):
        batch = X[begin : begin + batch_size]
        per_component = _covariances_per_component(params[2], covariance_type, n_components, d)
        log_norm, resp = _score(batch, params[0], params[1], per_component)
        total += log_norm.sum()
        batch_moments = (resp.mean(axis=0), resp.T @ batch / len(batch),
                         np.einsum("nk,ni,nj->kij", resp, batch, batch) / len(batch))
        seen += len(batch)
        if step == 0:
            rho = len(batch) / seen
        else:
            rho = max((step + 1 + offset) ** -decay, floor)
        running = batch_moments if running is None else tuple(
            (1 - rho) * old + rho * new for old, new in zip(running, batch_moments, strict=True)
        )
        if step == 0 and not (np.all(running[0] * seen >= needed)
                              or seen >= 10 * n_components * (d + 1)):
            continue
        step += 1
        params = _m_step(running, covariance_type, reg_covar)
        if averaging:
            n_averaged += 1
            averaged = running if averaged is None else tuple(
                (1 - 1 / n_averaged) * old + new / n_averaged
                for old, new in zip(averaged, running, strict=True)
            )
    shown = _m_step(averaged, covariance_type, reg_covar) if averaging else params
    return (*shown, total)


def _start(X, n_components, covariance_type):
    model = unconverged_fit(GaussianMixture(n_components, covariance_type=covariance_type,
                                            max_iter=2, random_state=0), X[:2000])
    return {"weights": model.weights_, "means": model.means_,
            "covariances": model.covariances_, "precisions": model.precisions_}


@pytest.mark.parametrize("averaging", [False, True])
@pytest.mark.parametrize("floor", [0.0, 0.05])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_the_kernel_agrees_with_the_numpy_reference(covariance_type, floor, averaging):
    X, _, _ = make_mixture(300 * 64, 3, 3, separation=2.0, random_state=5)
    start = _start(X, 3, covariance_type)
    model = GaussianMixture(
        3, covariance_type=covariance_type, batch_size=64, step_floor=floor,
        averaging=averaging, weights_init=start["weights"], means_init=start["means"],
        precisions_init=start["precisions"],
    )
    model.partial_fit(X)
    weights, means, covariances, total = reference_stepwise_em(
        X, start, 64, covariance_type, floor=floor, averaging=averaging
    )
    assert model.n_steps_ > 250
    np.testing.assert_allclose(model.weights_, weights, rtol=1e-10, atol=0)
    np.testing.assert_allclose(model.means_, means, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(model.covariances_, covariances, rtol=1e-10, atol=0)
    assert model.lower_bound_ == pytest.approx(total / len(X), rel=1e-12)
    if floor:
        # the floor binds from step 148 on: the result differs
        unfloored = reference_stepwise_em(X, start, 64, covariance_type, averaging=averaging)
        assert np.abs(unfloored[1] - means).max() > 1e-6


def test_a_step_without_valid_parameters_raises_and_keeps_the_model():
    """Must show 6 for the compiled steps: a step whose covariances are not
    positive definite (identical rows, no ``reg_covar``) raises inside the
    kernel's call and leaves every attribute as it was."""
    X, _, _ = make_mixture(2000, 2, 2, random_state=1)
    model = GaussianMixture(2, reg_covar=0.0, random_state=0).fit(X)
    before = {name: np.copy(value) for name, value in vars(model).items()
              if name.endswith("_") and isinstance(value, np.ndarray)}
    with pytest.raises(ValueError, match="not positive definite"):
        model.partial_fit(np.ones((500, 2)))
    for name, value in before.items():
        np.testing.assert_array_equal(getattr(model, name), value, err_msg=name)
    assert not hasattr(model, "running_statistics_")
    model.partial_fit(X[:500])  # good rows are still learnt from
    assert model.n_samples_seen_ == 500
