"""The tied covariance stays exact however far apart the components are.

Two clusters 1e6 standard deviations apart get certain (0/1) responsibilities, so
the tied covariance of one EM step is the pooled within-cluster covariance, which
a two-pass computation (means first, then the scatter about them) gives to
rounding. The chunk kernel, batch EM on a chunked Dask array (chunk kernel and
tree merges) and stepwise online EM must all give it within 1e-12.

The chunk kernel alone is exact to about 1e-15. Merging centred statistics
(chunks, online steps) adds, for every covariance type alike, the rounding of
each part's mean (``eps |mu| / sigma``, 1e-10 here) to first order, about
``eps |mu| / (sigma sqrt(N))`` in all: 1.5e-12 for 6,000 rows, 3e-13 for the
100,000 rows used here.
"""

import dask.array as da
import numpy as np
import pytest
from unconverged import unconverged_fit

from streamgmm import GaussianMixture, estep
from streamgmm.estep import GaussianParameters
from streamgmm.mstep import parameters_from_statistics
from streamgmm.online import OnlineConfig, initial_state, online_steps
from streamgmm.reduction import tree_reduce
from streamgmm.statistics import merge_all

N_PER_CLUSTER = 50_000
CORRELATION = np.array([[1.0, 0.6, -0.3], [0.6, 1.0, 0.2], [-0.3, 0.2, 1.0]])
CASES = {
    # dtype: (offset of the midpoint, within-cluster standard deviation)
    "float64": (0.0, 1.0),
    "float32": (1e4, 1e-2),
}


def _far_clusters(dtype):
    """Rows (interleaved) of two clusters 1e6 standard deviations apart along every
    feature, their labels and the cluster centres."""
    offset, scale = CASES[dtype]
    rng = np.random.default_rng(7)
    d = CORRELATION.shape[0]
    centres = offset + np.array([[-5e5], [5e5]]) * scale * np.ones(d)
    noise = rng.standard_normal((2 * N_PER_CLUSTER, d)) @ np.linalg.cholesky(CORRELATION).T
    labels = np.arange(2 * N_PER_CLUSTER) % 2
    X = (centres[labels] + scale * noise).astype(dtype)
    return X, labels, centres


def _two_pass_tied_covariance(X, labels):
    """Pooled within-cluster covariance: each cluster's mean, then the scatter about it."""
    X = X.astype(np.float64)
    scatter = np.zeros((X.shape[1], X.shape[1]))
    for label in np.unique(labels):
        deviations = X[labels == label] - X[labels == label].mean(axis=0)
        scatter += deviations.T @ deviations
    return scatter / X.shape[0]


def _starting_parameters(centres, dtype):
    scale = CASES[dtype][1]
    precision_cholesky = np.eye(centres.shape[1]) / scale
    return GaussianParameters(np.full(2, 0.5), centres, precision_cholesky, "tied")


def _relative_error(covariance, reference):
    return np.abs(covariance - reference).max() / np.abs(reference).max()


@pytest.mark.parametrize("dtype", CASES)
def test_tied_covariance_of_far_clusters_matches_two_passes_in_the_dask_reduction(
    dtype, monkeypatch
):
    X, labels, centres = _far_clusters(dtype)
    reference = _two_pass_tied_covariance(X, labels)
    params = _starting_parameters(centres, dtype)
    assert estep.density_factors(params).own_shift.all()
    stats = tree_reduce(da.from_array(X, chunks=(10_000, 3)), estep.chunk_statistics,
                        lambda parts: merge_all(parts, "tied"), params)
    _, covariance = parameters_from_statistics(stats, 0.0, "tied")
    assert _relative_error(covariance, reference) < 1e-12
    _, covariance = parameters_from_statistics(estep.chunk_statistics(X, params), 0.0, "tied")
    assert _relative_error(covariance, reference) < 1e-13
    # The same sums about the common shift cancel most digits: what the test guards.
    monkeypatch.setattr(estep, "SHARED_SHIFT_LIMIT", np.inf)
    _, covariance = parameters_from_statistics(estep.chunk_statistics(X, params), 0.0, "tied")
    assert _relative_error(covariance, reference) > 1e-9


def test_tied_fit_of_far_clusters_matches_two_passes():
    X, labels, centres = _far_clusters("float64")
    reference = _two_pass_tied_covariance(X, labels)
    model = unconverged_fit(GaussianMixture(
        2, covariance_type="tied", means_init=centres, weights_init=[0.5, 0.5],
        precisions_init=np.eye(3), reg_covar=0.0, max_iter=3, tol=0.0,
    ), da.from_array(X, chunks=(10_000, 3)))
    assert _relative_error(model.covariances_, reference) < 1e-12
    np.testing.assert_array_equal(model.predict(X), labels)


@pytest.mark.parametrize("dtype", CASES)
def test_online_tied_covariance_of_far_clusters_matches_two_passes(dtype):
    X, labels, centres = _far_clusters(dtype)
    reference = _two_pass_tied_covariance(X, labels)
    params = _starting_parameters(centres, dtype)
    config = OnlineConfig("tied", 0.0, learning_decay=1.0, learning_offset=0.0, averaging=False)
    # Four equal batches with steps 1, 1/2, 1/3, 1/4: the plain average of the batches.
    state, _, covariance, _ = online_steps(
        initial_state(2, 3, "tied"), params, np.eye(3) / params.precisions_cholesky[0, 0] ** 2,
        X, config, batch_size=len(X) // 4,
    )
    assert state.n_steps == 4
    assert _relative_error(covariance, reference) < 1e-12


def test_statistics_from_responsibilities_of_far_clusters_match_two_passes():
    X, labels, centres = _far_clusters("float64")
    stats = estep.statistics_from_responsibilities(X, np.eye(2)[labels], centres, "tied")
    covariance = stats.scatter / stats.n_samples
    assert _relative_error(covariance, _two_pass_tied_covariance(X, labels)) < 1e-12
