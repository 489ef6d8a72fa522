"""The blocked E-step kernel against the plain formulas, and its float32 numerics."""

import warnings

import numpy as np
import pytest
from float32_rounding import assert_float32_rounding_of
from scipy.special import logsumexp
from sklearn.mixture import GaussianMixture as SklearnMixture

from streamgmm import GaussianMixture, estep
from streamgmm.datasets import make_mixture
from streamgmm.estep import GaussianParameters
from streamgmm.kernels import codes, mathfn
from streamgmm.kernels import estep as estep_kernels
from streamgmm.kernels import online as online_kernels
from streamgmm.mstep import parameters_from_statistics
from streamgmm.statistics import merge

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


def _parameters(covariance_type, n_features=5, n_components=4, seed=0):
    """Parameters from random responsibilities over a small data set."""
    X, _, _ = make_mixture(3000, n_components, n_features, separation=3.0, random_state=seed)
    resp = np.random.default_rng(seed).dirichlet(np.ones(n_components), size=len(X))
    shift = np.zeros((n_components, n_features))
    stats = estep.statistics_from_responsibilities(X, resp, shift, covariance_type)
    params, _ = parameters_from_statistics(stats, 1e-6, covariance_type)
    return X, params


def _plain_log_density(X, params):
    """``log N(x | mu_k, Sigma_k)`` straight from the definition, (n, K)."""
    n_components, d = params.means.shape
    out = np.empty((X.shape[0], n_components))
    for k in range(n_components):
        factor = {
            "full": lambda k=k: params.precisions_cholesky[k],
            "tied": lambda: params.precisions_cholesky,
            "diag": lambda k=k: np.diag(params.precisions_cholesky[k]),
            "spherical": lambda k=k: np.eye(d) * params.precisions_cholesky[k],
        }[params.covariance_type]()
        y = (X - params.means[k]) @ factor
        out[:, k] = -0.5 * (d * np.log(2 * np.pi) + (y * y).sum(1)) + np.log(np.diag(factor)).sum()
    return out


def _plain_statistics(X, resp, covariance_type):
    """Weight, weighted mean and scatter about it, per component, by the definition."""
    weight = resp.sum(0)
    mean = resp.T @ X / weight[:, None]
    full = np.stack([(resp[:, k, None] * (X - m)).T @ (X - m) for k, m in enumerate(mean)])
    scatter = {
        "full": full,
        "tied": full.sum(0),
        "diag": np.diagonal(full, axis1=1, axis2=2),
        "spherical": np.trace(full, axis1=1, axis2=2),
    }[covariance_type]
    return weight, mean, scatter


def _component_log_densities(X, params):
    """``log N(x_i | mu_k, Sigma_k)`` (n, K) from the E-step's two outputs."""
    log_norm, log_resp = estep.e_step(X, params)
    return log_norm[:, None] + log_resp - np.log(params.weights)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_log_density_and_e_step_match_the_definition(covariance_type):
    X, params = _parameters(covariance_type)
    expected = _plain_log_density(X, params)
    np.testing.assert_allclose(_component_log_densities(X, params), expected, rtol=1e-12)
    weighted = expected + np.log(params.weights)
    log_norm, log_resp = estep.e_step(X, params)
    np.testing.assert_allclose(log_norm, logsumexp(weighted, axis=1), rtol=1e-12)
    np.testing.assert_allclose(log_resp, weighted - logsumexp(weighted, axis=1)[:, None],
                               atol=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("n_rows", [1, 999, 2500])
def test_chunk_statistics_match_the_definition_across_blocks(covariance_type, n_rows, monkeypatch):
    monkeypatch.setattr(estep, "BLOCK_BYTES", 1)  # blocks of MIN_BLOCK_ROWS rows
    X, params = _parameters(covariance_type)
    scale = n_rows * X.var(axis=0).max()
    X = X[:n_rows]
    stats = estep.chunk_statistics(X, params)
    log_norm, log_resp = estep.e_step(X, params)
    weight, mean, scatter = _plain_statistics(X, np.exp(log_resp), covariance_type)
    np.testing.assert_allclose(stats.weight, weight, rtol=1e-12)
    np.testing.assert_allclose(stats.mean, mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(stats.scatter, scatter, rtol=1e-9, atol=1e-12 * scale)
    assert stats.log_likelihood == pytest.approx(log_norm.sum(), rel=1e-12)
    assert stats.n_samples == n_rows


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_chunk_statistics_of_halves_merge_to_the_whole(covariance_type):
    X, params = _parameters(covariance_type)
    whole = estep.chunk_statistics(X, params)
    merged = merge(estep.chunk_statistics(X[:1234], params),
                   estep.chunk_statistics(X[1234:], params), covariance_type)
    for ours, theirs in zip(merged, whole, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_statistics_from_responsibilities_match_the_definition(covariance_type):
    X, params = _parameters(covariance_type)
    resp = np.random.default_rng(5).dirichlet(np.ones(4), size=len(X))
    resp[:, 3] = 0.0  # an empty component keeps its shift as its mean
    stats = estep.statistics_from_responsibilities(X, resp, params.means, covariance_type, 2.5)
    weight, mean, scatter = _plain_statistics(X, resp[:, :3], covariance_type)
    np.testing.assert_allclose(stats.weight, [*weight, 0.0], rtol=1e-12)
    np.testing.assert_allclose(stats.mean[:3], mean, rtol=1e-10)
    np.testing.assert_allclose(stats.mean[3], params.means[3])
    if covariance_type != "tied":
        assert not np.any(stats.scatter[3])
        stats = stats._replace(scatter=stats.scatter[:3])
    np.testing.assert_allclose(stats.scatter, scatter, rtol=1e-9, atol=1e-9)
    assert stats.log_likelihood == 2.5


# Float32 input is computed in float64 by default, so it keeps the 1e-8 parity
# up to the rounding of the fitted attributes to float32 (scikit-learn's dtype).
# With ``float32_products`` the full type's products run in float32: rows are
# shifted in float64 and then rounded (relative error 2**-24 ~ 6e-8), and each
# block's products sum a few thousand float32 terms (typical relative error
# ~sqrt(rows) * 6e-8 ~ 4e-6; sums across blocks are float64). We measured about
# 1e-6 relative on the statistics of one pass and hold them to 2e-5.


def _ten_iterations(X32, covariance_type, offset=0.0):
    """Our fit of float32 rows, and scikit-learn's of the same values in float64
    moved back by ``offset`` (exact), so that the reference is computed centred;
    both from the same start and reported in the coordinates of ``X32``."""
    X64 = X32.astype(np.float64) - offset
    start = SklearnMixture(4, covariance_type=covariance_type, max_iter=2, random_state=0).fit(X64)
    shared = dict(
        n_components=4, covariance_type=covariance_type, weights_init=start.weights_,
        precisions_init=start.precisions_, max_iter=10, tol=0.0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = GaussianMixture(means_init=start.means_ + offset, **shared).fit(X32)
        theirs = SklearnMixture(means_init=start.means_, **shared).fit(X64)
    theirs.means_ = theirs.means_ + offset
    return ours, theirs


def _relative_error(ours, theirs):
    return np.abs(np.asarray(ours) - theirs).max() / np.abs(theirs).max()


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_input_agrees_with_sklearn_in_float64(covariance_type):
    X, _, _ = make_mixture(6000, 4, 6, separation=3.0, random_state=7)
    ours, theirs = _ten_iterations(X.astype(np.float32), covariance_type)
    for name in ("weights_", "means_", "covariances_"):
        assert_float32_rounding_of(getattr(ours, name), getattr(theirs, name), 1e-8, name)
    assert_float32_rounding_of(ours.lower_bound_, theirs.lower_bound_, 1e-10, "lower_bound_")


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_far_from_the_origin_fits_as_accurately_as_centred(covariance_type):
    X, _, _ = make_mixture(6000, 4, 6, separation=3.0, random_state=11)
    for offset in (0.0, 1e4):
        X32 = (X + offset).astype(np.float32)
        ours, theirs = _ten_iterations(X32, covariance_type, offset)
        assert_float32_rounding_of(ours.covariances_, theirs.covariances_, 1e-8, "covariances_")
        assert_float32_rounding_of(ours.means_, theirs.means_, 1e-8, "means_")


@pytest.mark.parametrize("offset", [0.0, 1e4])
def test_float32_products_keep_float32_accuracy_far_from_the_origin(offset):
    X, params = _parameters("full", n_features=16, n_components=8)
    X32 = (X + offset).astype(np.float32)
    params = params._replace(means=params.means + offset)
    exact = estep.chunk_statistics(X32, params)
    fast = estep.chunk_statistics(X32, params, float32_products=True)
    factors = estep.density_factors(params, estep.compute_dtype(X32, "full", True))
    assert factors.density_mode == codes.LINEAR
    single = factors.single
    assert single.linear_products.dtype == single.linear_columns.dtype == np.float32
    assert fast.scatter.dtype == fast.mean.dtype == fast.weight.dtype == np.float64
    assert _relative_error(fast.weight, exact.weight) < 2e-5
    assert _relative_error(fast.mean - offset, exact.mean - offset) < 2e-5
    assert _relative_error(fast.scatter, exact.scatter) < 2e-5
    assert fast.log_likelihood == pytest.approx(exact.log_likelihood, rel=2e-6)
    assert estep.compute_dtype(X32, "full") == estep.compute_dtype(X32, "diag", True) == np.float64


def test_parameters_type_is_unchanged():
    assert GaussianParameters._fields == (
        "weights", "means", "precisions_cholesky", "covariance_type"
    )


def _tight_cluster_far_away(covariance_type):
    """Three broad clusters and a fourth, 1e4 times tighter, far from them (as
    constant pixels make in the digits data), with parameters fitted to the labels."""
    rng = np.random.default_rng(3)
    broad, _, _ = make_mixture(3000, 3, 5, separation=3.0, random_state=3)
    tight = 40.0 + 0.01 * rng.standard_normal((600, 5))
    X = np.vstack([broad, tight])
    labels = np.r_[np.argmax(np.random.default_rng(4).dirichlet(np.ones(3), 3000), 1),
                   np.full(600, 3)]
    resp = np.eye(4)[labels]
    stats = estep.statistics_from_responsibilities(X, resp, np.zeros((4, 5)), covariance_type)
    params, _ = parameters_from_statistics(stats, 1e-6, covariance_type)
    return X, params


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_a_tight_far_component_is_summed_about_its_own_mean(covariance_type, monkeypatch):
    X, params = _tight_cluster_far_away(covariance_type)
    factors = estep.density_factors(params)
    assert factors.own_shift.tolist() == [False, False, False, True]
    if covariance_type == "full":
        assert factors.density_mode == codes.WHITENED
        assert estep.density_factors(params, np.float32).density_mode == codes.WHITENED
    log_norm, log_resp = estep.e_step(X, params)
    weight, mean, scatter = _plain_statistics(X, np.exp(log_resp), covariance_type)

    def scatter_error(stats):
        return np.abs(stats.scatter[3] - scatter[3]).max() / np.abs(scatter[3]).max()

    stats = estep.chunk_statistics(X, params)
    np.testing.assert_allclose(stats.weight, weight, rtol=1e-12)
    np.testing.assert_allclose(stats.mean, mean, rtol=1e-10)
    assert scatter_error(stats) < 1e-9
    # The same sums about the common shift lose the digits the criterion predicts.
    monkeypatch.setattr(estep, "SHARED_SHIFT_LIMIT", np.inf)
    assert scatter_error(estep.chunk_statistics(X, params)) > 1e-9


def test_broad_components_share_the_shift_and_the_expanded_form():
    X, params = _parameters("full", n_features=16, n_components=8)
    factors = estep.density_factors(params)
    assert not factors.own_shift.any()
    assert factors.density_mode == codes.LINEAR
    np.testing.assert_allclose(
        _component_log_densities(X, params), _plain_log_density(X, params), rtol=1e-12
    )


def test_the_chunk_kernel_releases_the_gil():
    assert all(function.targetoptions.get("nogil") for function in (
        estep_kernels.typed_range_sums, estep_kernels.responsibility_sums,
        estep_kernels.typed_log_densities, online_kernels.online_steps,
    ))


def test_the_compiled_exponential_is_within_one_ulp_of_numpy():
    values = -np.r_[np.linspace(0.0, 800.0, 400_001), np.geomspace(1e-300, 1.0, 10_001)]
    ours = np.empty_like(values)
    mathfn.exp_nonpositive(values, ours)
    expected = np.exp(values)
    normal = values >= mathfn.EXP_SMALLEST
    ulps = np.abs(ours[normal] - expected[normal]) / np.spacing(expected[normal])
    assert ulps.max() <= 1.0
    assert np.all(ours[~normal] == 0.0) and expected[~normal].max() < 1e-307


def test_the_float32_exponential_is_within_two_ulp_of_the_rounded_exponential():
    values = -np.r_[np.linspace(0.0, 100.0, 400_001), np.geomspace(1e-30, 1.0, 10_001)]
    values = values.astype(np.float32)
    ours = np.empty_like(values)
    mathfn.exp_nonpositive_float32(values, ours)
    expected = np.exp(values.astype(np.float64)).astype(np.float32)
    normal = values >= mathfn.EXP_SMALLEST_FLOAT32
    ulps = np.abs(ours[normal] - expected[normal]) / np.spacing(expected[normal])
    assert ulps.max() <= 2.0
    assert np.all(ours[~normal] == 0.0)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_many_features_match_the_definition(covariance_type):
    X, params = _parameters(covariance_type, n_features=estep.SHARED_PRODUCTS_MAX_FEATURES + 6,
                            n_components=3)
    if covariance_type == "full":
        factors = estep.density_factors(params)
        assert factors.n_products == 0 and factors.own_shift.all()
    stats = estep.chunk_statistics(X, params)
    log_norm, log_resp = estep.e_step(X, params)
    np.testing.assert_allclose(log_norm, logsumexp(
        _plain_log_density(X, params) + np.log(params.weights), axis=1), rtol=1e-12)
    weight, mean, scatter = _plain_statistics(X, np.exp(log_resp), covariance_type)
    np.testing.assert_allclose(stats.weight, weight, rtol=1e-12)
    np.testing.assert_allclose(stats.mean, mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(stats.scatter, scatter, rtol=1e-9,
                               atol=1e-12 * len(X) * X.var(axis=0).max())


def test_the_whitened_form_is_chosen_early_only_when_the_full_test_chooses_it():
    """``surely_whitened`` (the diagonal terms of the expansion error) answers
    True only where ``expansion_error`` exceeds the limit, so the full type's
    form, and every result, is the one the full test picks (issue 26)."""
    from streamgmm.kernels import operands

    rng = np.random.default_rng(26)
    early = 0
    for case in range(300):
        n_components, d = int(rng.integers(1, 6)), int(rng.integers(1, 20))
        factors = np.triu(rng.normal(size=(n_components, d, d))) * 10.0 ** rng.uniform(-3, 3)
        centred = rng.normal(size=(n_components, d)) * 10.0 ** rng.uniform(-3, 3)
        variances = rng.random((n_components, d)) * 10.0 ** rng.uniform(-3, 3)
        error = operands.expansion_error(centred, variances, operands.full_precisions(factors))
        for limit in (error * rng.uniform(0.01, 1.2), error, np.nextafter(error, 0), 1e4):
            if operands.surely_whitened(centred, variances, factors, limit):
                early += 1
                assert error > limit, (case, limit, error)
    assert early > 100


@pytest.mark.parametrize("shape", ["upper", "lower", "full", "upper with a non-finite value"])
def test_precisions_from_factors_are_the_sums_in_order_to_the_last_bit(shape):
    """``full_precisions`` skips the zero terms of an upper-triangular factor;
    every entry is still the sum over ``p`` from 0 in order, bit for bit, for
    any factor (issue 26)."""
    from streamgmm.kernels import operands

    rng = np.random.default_rng(7)
    factors = rng.normal(size=(3, 7, 7)) * 10.0 ** rng.uniform(-3, 3, size=(3, 1, 1))
    factors[:, :, 2] *= -0.0
    if shape.startswith("upper"):
        factors = np.triu(factors)
    elif shape == "lower":
        factors = np.tril(factors)
    if shape.endswith("value"):
        factors[1, 0, 1] = np.inf
    expected = np.zeros_like(factors)
    for k, i, j in np.ndindex(*factors.shape):
        total = 0.0
        for p in range(factors.shape[2]):
            total += float(factors[k, i, p]) * float(factors[k, j, p])
        expected[k, i, j] = total
    for tier in (operands.full_precisions, operands.full_precisions.py_func):
        with np.errstate(invalid="ignore"):
            assert tier(factors).tobytes() == expected.tobytes()
