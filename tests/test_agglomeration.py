"""Model-based hierarchical agglomeration (mclust's start) against a brute force."""

import numpy as np
import pytest

from streamgmm.agglomeration import agglomerate, cluster_terms, svd_coordinates


def _term(rows: np.ndarray, alpha: float) -> float:
    """``term(n, W)`` straight from the rows of one cluster."""
    n, d = rows.shape
    centred = rows - rows.mean(axis=0)
    scatter = centred.T @ centred
    determinant = np.linalg.det(scatter / n) if n > d else 0.0
    return n * np.log(determinant + (np.trace(scatter) + alpha) / n)


def _brute_force(Z: np.ndarray, alpha: float, sizes) -> dict:
    """Every step: every pair's merge cost from its rows, the cheapest merged."""
    clusters = [[i] for i in range(Z.shape[0])]
    partitions = {}
    while True:
        if len(clusters) in sizes:
            labels = np.empty(Z.shape[0], dtype=int)
            for label, members in enumerate(sorted(clusters, key=min)):
                labels[members] = label
            partitions[len(clusters)] = labels
        if len(clusters) == 1:
            return partitions
        best = None
        for a in range(len(clusters)):
            for b in range(a):
                cost = (
                    _term(Z[clusters[a] + clusters[b]], alpha)
                    - _term(Z[clusters[a]], alpha)
                    - _term(Z[clusters[b]], alpha)
                )
                if best is None or cost < best[0]:
                    best = (cost, a, b)
        _, a, b = best
        clusters[b] = clusters[b] + clusters.pop(a)


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    return np.array_equal(a[:, None] == a[None, :], b[:, None] == b[None, :])


@pytest.mark.parametrize("n_features", [1, 2, 3])
def test_agglomeration_merges_as_the_brute_force_does(n_features):
    rng = np.random.default_rng(n_features)
    X = np.vstack(
        [rng.normal(size=(12, n_features)) * rng.uniform(0.3, 3.0, n_features) + shift
         for shift in (0.0, 4.0, -5.0)]
    )
    Z = svd_coordinates(X)
    alpha = np.square(Z - Z.mean(axis=0)).sum() / Z.size
    sizes = [1, 2, 3, 5, 9, 20]
    expected = _brute_force(Z, alpha, sizes)
    ours = agglomerate(X, sizes)
    for K in sizes:
        assert len(np.unique(ours[K])) == K
        assert _same_partition(ours[K], expected[K]), K


def test_cluster_terms_follow_the_formula():
    rng = np.random.default_rng(0)
    groups = [rng.normal(size=(n, 3)) for n in (1, 2, 3, 4, 9)]
    scatters = np.array([(g - g.mean(0)).T @ (g - g.mean(0)) for g in groups])
    n_rows = np.array([len(g) for g in groups], dtype=float)
    expected = [_term(g, 0.7) for g in groups]
    np.testing.assert_allclose(cluster_terms(n_rows, scatters, 0.7), expected, rtol=1e-12)


def test_svd_coordinates_are_scaled_principal_components():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 3)) @ rng.normal(size=(3, 3)) + [100.0, -3.0, 7.0]
    Z = svd_coordinates(X)
    standardised = (X - X.mean(0)) / X.std(0, ddof=1)
    singular = np.linalg.svd(standardised, compute_uv=False)
    np.testing.assert_allclose(Z.T @ Z, np.diag(singular), atol=1e-9)
    # the merge order ignores the units of every feature
    rescaled = X * [1e3, 1e-2, 5.0] + [1.0, 2.0, 3.0]
    for K, labels in agglomerate(X, [2, 4, 7]).items():
        assert _same_partition(labels, agglomerate(rescaled, [K])[K])


def test_identical_rows_start_together_and_constant_features_are_ignored():
    X = np.array([[0.0, 1.0], [0.0, 1.0], [0.0, 1.0], [5.0, 1.0], [5.1, 1.0], [9.0, 1.0]])
    partitions = agglomerate(X, [3, 4, 10])
    assert len(set(partitions[4][:3])) == 1
    assert len(np.unique(partitions[10])) == 4  # only 4 distinct rows
    assert _same_partition(partitions[3], np.array([0, 0, 0, 1, 1, 2]))
