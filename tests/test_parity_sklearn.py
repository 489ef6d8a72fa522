"""Batch EM agrees with scikit-learn iteration by iteration from the same start."""

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.mixture import GaussianMixture as SklearnMixture

from streamgmm import GaussianMixture
from streamgmm.datasets import make_mixture

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]
RTOL = 1e-8


def _synthetic():
    X, _, _ = make_mixture(4000, n_components=4, n_features=5, separation=3.0, random_state=3)
    return X, 4


def _digits():
    return load_digits().data.astype(np.float64), 10


def _assert_close(ours, theirs, what, iteration):
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    scale = np.abs(theirs).max()
    np.testing.assert_allclose(
        ours,
        theirs,
        rtol=RTOL,
        atol=RTOL * 1e-4 * scale,
        err_msg=f"{what} differs from scikit-learn after iteration {iteration}",
    )


@pytest.mark.parametrize("dataset", [_synthetic, _digits], ids=["synthetic", "digits"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_each_of_first_ten_iterations_matches_sklearn(dataset, covariance_type):
    X, n_components = dataset()
    start = SklearnMixture(
        n_components, covariance_type=covariance_type, max_iter=2, random_state=0
    ).fit(X)
    shared = dict(
        n_components=n_components,
        covariance_type=covariance_type,
        weights_init=start.weights_,
        means_init=start.means_,
        precisions_init=start.precisions_,
        max_iter=1,
        tol=0.0,
        warm_start=True,
    )
    theirs = SklearnMixture(**shared)
    ours = GaussianMixture(**shared)
    for iteration in range(1, 11):
        theirs.fit(X)
        ours.fit(X)
        _assert_close(ours.weights_, theirs.weights_, "weights_", iteration)
        _assert_close(ours.means_, theirs.means_, "means_", iteration)
        _assert_close(ours.covariances_, theirs.covariances_, "covariances_", iteration)
        _assert_close(
            ours.precisions_cholesky_,
            theirs.precisions_cholesky_,
            "precisions_cholesky_",
            iteration,
        )
        assert abs(ours.lower_bound_ - theirs.lower_bound_) < 1e-8, iteration


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_scores_match_sklearn(covariance_type, mixture_data):
    X, _, _ = mixture_data
    theirs = SklearnMixture(3, covariance_type=covariance_type, random_state=0).fit(X)
    ours = GaussianMixture(
        3,
        covariance_type=covariance_type,
        weights_init=theirs.weights_,
        means_init=theirs.means_,
        precisions_init=theirs.precisions_,
        max_iter=1,
    ).fit(X)
    # one more iteration on both sides from the same start
    theirs = SklearnMixture(
        3,
        covariance_type=covariance_type,
        weights_init=theirs.weights_,
        means_init=theirs.means_,
        precisions_init=theirs.precisions_,
        max_iter=1,
    ).fit(X)
    np.testing.assert_allclose(ours.score_samples(X), theirs.score_samples(X), rtol=1e-10)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-10)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    assert ours.score(X) == pytest.approx(theirs.score(X), rel=1e-12)
    assert ours.bic(X) == pytest.approx(theirs.bic(X), rel=1e-12)
    assert ours.aic(X) == pytest.approx(theirs.aic(X), rel=1e-12)
