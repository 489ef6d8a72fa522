"""Batch EM recovers known mixtures and never lowers the log-likelihood."""

import numpy as np
import pytest
from float32_rounding import assert_float32_rounding_of
from unconverged import unconverged_fit

from streamgmm import GaussianMixture
from streamgmm.datasets import make_mixture, match_components, random_mixture, sample_mixture
from streamgmm.engine import run_em
from streamgmm.fitting import em_settings, start_run
from streamgmm.hyperparameters import fit_config, make_rng
from streamgmm.inputs import as_rows
from streamgmm.mstep import CholeskyError

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


def test_recovers_known_parameters():
    X, _, truth = make_mixture(
        40_000, n_components=4, n_features=3, separation=6.0, random_state=7
    )
    model = GaussianMixture(4, random_state=0, tol=1e-6).fit(X)
    order = match_components(truth.means, model.means_)
    assert model.converged_
    np.testing.assert_allclose(model.means_[order], truth.means, atol=0.05)
    np.testing.assert_allclose(model.weights_[order], truth.weights, atol=0.01)
    np.testing.assert_allclose(model.covariances_[order], truth.covariances, atol=0.08)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_log_likelihood_never_decreases(covariance_type):
    X, _, _ = make_mixture(5000, n_components=5, n_features=4, separation=2.0, random_state=2)
    model = unconverged_fit(GaussianMixture(
        5,
        covariance_type=covariance_type,
        init_params="random",
        tol=0.0,
        max_iter=40,
        random_state=0,
    ), X)
    bounds = np.asarray(model.lower_bounds_)
    assert len(bounds) == 40
    assert np.all(np.diff(bounds) >= -1e-12 * np.abs(bounds[1:])), np.diff(bounds).min()
    assert bounds[-1] > bounds[0]


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_with_large_offset_fits_like_centred_float64(covariance_type):
    truth = random_mixture(3, 4, separation=4.0, random_state=5)
    X, _ = sample_mixture(truth, 20_000, random_state=5)
    offset = 1e4
    shifted32 = (X + offset).astype(np.float32)
    centred64 = shifted32.astype(np.float64) - offset
    start = GaussianMixture(3, covariance_type=covariance_type, max_iter=2, random_state=0).fit(
        centred64
    )
    shared = dict(
        covariance_type=covariance_type,
        weights_init=start.weights_,
        precisions_init=start.precisions_,
        tol=0.0,
        max_iter=15,
    )
    centred = unconverged_fit(GaussianMixture(3, means_init=start.means_, **shared), centred64)
    far = unconverged_fit(
        GaussianMixture(3, means_init=start.means_ + offset, **shared), shifted32
    )
    # float32 attributes for float32 input, as scikit-learn: exact up to their rounding
    assert_float32_rounding_of(far.covariances_, centred.covariances_, 1e-9, "covariances_")
    assert_float32_rounding_of(far.means_, centred.means_ + offset, 1e-9, "means_")
    assert_float32_rounding_of(far.weights_, centred.weights_, 1e-9, "weights_")


@pytest.mark.parametrize("algorithm", ["batch", "online"])
def test_float32_products_are_opt_in_and_stay_near_float64(algorithm):
    X, _, _ = make_mixture(20_000, n_components=3, n_features=5, separation=3.0, random_state=3)
    X32 = X.astype(np.float32)
    start = unconverged_fit(GaussianMixture(3, max_iter=2, random_state=0), X32)
    shared = dict(
        weights_init=start.weights_, means_init=start.means_,
        precisions_init=start.precisions_, tol=0.0, max_iter=5, algorithm=algorithm,
        batch_size=2000, random_state=0,
    )
    exact = unconverged_fit(GaussianMixture(3, **shared), X32)
    fast = unconverged_fit(GaussianMixture(3, float32_products=True, **shared), X32)
    gap = np.abs(fast.means_ - exact.means_).max()
    assert 0.0 < gap < 1e-5
    np.testing.assert_allclose(fast.covariances_, exact.covariances_, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fast.weights_, exact.weights_, rtol=1e-5)
    same_for_float64 = unconverged_fit(GaussianMixture(3, float32_products=True, **shared), X)
    np.testing.assert_array_equal(
        same_for_float64.means_, unconverged_fit(GaussianMixture(3, **shared), X).means_
    )


def test_float32_products_must_be_a_bool():
    with pytest.raises(ValueError, match="float32_products"):
        GaussianMixture(2, float32_products="yes").fit(np.zeros((10, 2)) + np.arange(10)[:, None])


def test_cholesky_failure_says_what_to_do():
    X = np.repeat(np.array([[1.0, 2.0], [3.0, 4.0]]), 50, axis=0)
    with pytest.raises(CholeskyError, match="reg_covar"):
        GaussianMixture(2, reg_covar=0.0, random_state=0).fit(X)
    model = GaussianMixture(2, random_state=0).fit(X)
    assert np.all(np.isfinite(model.covariances_))


def test_fit_predict_matches_fit_then_predict(mixture_data):
    X, _, _ = mixture_data
    labels = GaussianMixture(3, random_state=0).fit_predict(X)
    model = GaussianMixture(3, random_state=0).fit(X)
    np.testing.assert_array_equal(labels, model.predict(X))


def test_n_init_keeps_the_best_run():
    """The n_init fit ends with exactly the run whose final lower bound is the
    best, each run taken alone from the start n_init draws in its turn; the data
    and seed put that run neither first nor last, so keeping the first, the
    last or the worst run would fail here."""
    X, _, _ = make_mixture(3000, n_components=6, n_features=2, separation=3.0, random_state=4)
    settings = dict(init_params="random_from_data", n_init=5, random_state=2, max_iter=20)
    best = GaussianMixture(6, **settings).fit(X)
    model = GaussianMixture(6, **settings)
    data, rng = as_rows(X), make_rng(2)
    config = fit_config(model.get_params())
    runs = [start_run(config, data, rng, None, index) for index in range(5)]
    for run in runs:
        run_em(data.array, [run], em_settings(config))
    bounds = [run.lower_bound for run in runs]
    kept = int(np.argmax(bounds))
    assert 0 < kept < len(runs) - 1 and len(set(bounds)) == len(runs), bounds
    assert best.lower_bound_ == max(bounds)
    assert best.n_iter_ == runs[kept].n_iter and best.converged_ == runs[kept].converged
    np.testing.assert_array_equal(best.means_, runs[kept].params.means)
    np.testing.assert_array_equal(best.covariances_, runs[kept].covariances)
    assert best.lower_bounds_ == runs[kept].lower_bounds


@pytest.mark.parametrize(
    "init_params", ["k-means||", "kmeans", "k-means++", "random", "random_from_data"]
)
def test_every_init_method_fits(init_params, mixture_data):
    X, _, truth = mixture_data
    # "random" starts every mean near the data mean (as in scikit-learn) and needs a
    # tight tol to break the symmetry
    model = GaussianMixture(
        3, init_params=init_params, random_state=0, max_iter=500, tol=1e-6
    ).fit(X)
    order = match_components(truth.means, model.means_)
    np.testing.assert_allclose(model.means_[order], truth.means, atol=0.2)


def test_sample_draws_from_the_fitted_mixture(mixture_data):
    X, _, _ = mixture_data
    model = GaussianMixture(3, random_state=0).fit(X)
    drawn, labels = model.sample(30_000)
    assert drawn.shape == (30_000, 3) and labels.shape == (30_000,)
    np.testing.assert_allclose(np.bincount(labels) / 30_000, model.weights_, atol=0.02)
    refit = GaussianMixture(3, random_state=0).fit(drawn)
    assert refit.score(X) == pytest.approx(model.score(X), abs=0.02)


def test_params_round_trip_and_reject_unknown_names():
    model = GaussianMixture(4, covariance_type="diag")
    params = model.get_params()
    assert params["n_components"] == 4 and params["covariance_type"] == "diag"
    clone = GaussianMixture(**params)
    assert clone.get_params() == params
    model.set_params(tol=1e-5)
    assert model.tol == 1e-5
    with pytest.raises(ValueError, match="Invalid parameter 'tolerance'"):
        model.set_params(tolerance=1)


def test_sklearn_clone_works():
    from sklearn.base import clone

    model = GaussianMixture(3, covariance_type="tied", random_state=1)
    assert clone(model).get_params() == model.get_params()
