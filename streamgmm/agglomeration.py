"""Model-based hierarchical agglomeration (Fraley 1998), the start mclust uses.

Every row starts as its own cluster (identical rows together), and the two
clusters whose merge lowers the classification likelihood of the unconstrained
Gaussian model least are merged, until one cluster is left. For a cluster with
``n`` rows and scatter ``W`` (about its mean) the cost term is

    term(n, W) = n log( det(W / n) + beta (tr W + alpha) / n )

with ``det(W / n)`` taken as 0 while ``n <= d`` (W is then singular). The ``beta
(tr W + alpha) / n`` part keeps the term finite for clusters too small to have a
covariance: Fraley's regularisation of ``n log det(W / n)``, with ``alpha`` the
mean per-feature variance of the data and ``beta = 1`` (mclust's defaults). Merging
clusters ``a`` and ``b`` costs ``term(a u b) - term(a) - term(b)``, where the merged
scatter is ``W_a + W_b + (n_a n_b / n) (m_a - m_b)(m_a - m_b)^T``.

As in mclust (Scrucca & Raftery 2015), the rows are first put in scaled SVD
coordinates (:func:`svd_coordinates`), where elongated clusters of very different
scales no longer dominate the merge order. The cost is ``O(m^2 d^3)`` time and
``O(m^2)`` memory for ``m`` rows, so the start agglomerates a sample
(:mod:`streamgmm.initialization`).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

BETA = 1.0
"""Weight of the trace regulariser of :func:`cluster_terms` (mclust's default)."""


def svd_coordinates(X: np.ndarray) -> np.ndarray:
    """Rows (m, d) standardised and rotated to ``U diag(sqrt(s))``, where
    ``U diag(s) V^T`` is the SVD of the standardised rows (mclust's ``"SVD"``).

    Constant features carry no information for the merge order and are dropped.
    """
    X = np.asarray(X, dtype=np.float64)
    centred = X - X.mean(axis=0)
    scale = centred.std(axis=0, ddof=1) if X.shape[0] > 1 else np.zeros(X.shape[1])
    keep = scale > 0
    if not np.any(keep):
        return np.zeros((X.shape[0], 1))
    standardised = centred[:, keep] / scale[keep]
    _, singular, rotation = np.linalg.svd(standardised, full_matrices=False)
    positive = singular > singular[0] * np.finfo(float).eps * max(standardised.shape)
    return standardised @ rotation[positive].T / np.sqrt(singular[positive])


def cluster_terms(
    n_rows: np.ndarray, scatter: np.ndarray, alpha: float, beta: float = BETA
) -> np.ndarray:
    """``term(n, W)`` of the module docs for clusters of ``n_rows`` (G,) rows with
    scatters (G, d, d)."""
    d = scatter.shape[-1]
    trace = np.trace(scatter, axis1=-2, axis2=-1)
    inside = beta * (trace + alpha) / n_rows
    large = np.flatnonzero(n_rows > d)
    if large.size:
        sign, log_det = np.linalg.slogdet(scatter[large] / n_rows[large, None, None])
        inside[large] += np.where(sign > 0, np.exp(log_det), 0.0)
    return n_rows * np.log(inside)


def point_merge_costs(
    points: np.ndarray, n_rows: np.ndarray, others: np.ndarray, n_others: np.ndarray,
    alpha: float, beta: float = BETA,
) -> np.ndarray:
    """Merge costs (a, b) between clusters without scatter (identical rows at
    ``points`` (a, d) and ``others`` (b, d)): the merged scatter is ``c delta
    delta^T`` with ``c = n_a n_b / n``, of rank one."""
    d = points.shape[1]
    n = n_rows[:, None] + n_others[None, :]
    c = n_rows[:, None] * n_others[None, :] / n
    trace = c * squared_norms(points, others)
    inside = beta * (trace + alpha) / n
    if d == 1:
        inside += np.where(n > 1, trace / n, 0.0)
    merged = n * np.log(inside)
    alone = n_rows * np.log(beta * alpha / n_rows)
    return merged - alone[:, None] - (n_others * np.log(beta * alpha / n_others))[None, :]


def squared_norms(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared distances (m_a, m_b) between rows, about their common mean."""
    shift = a.mean(axis=0)
    a, b = a - shift, b - shift
    return np.maximum((a**2).sum(1)[:, None] - 2 * a @ b.T + (b**2).sum(1)[None, :], 0.0)


def merged_scatter(
    n_a: np.ndarray, mean_a: np.ndarray, scatter_a: np.ndarray,
    n_b: np.ndarray, mean_b: np.ndarray, scatter_b: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows, mean and scatter of the union of clusters ``a`` and ``b``
    (broadcast over leading axes)."""
    n = n_a + n_b
    delta = mean_b - mean_a
    mean = mean_a + (n_b / n)[..., None] * delta
    cross = (n_a * n_b / n)[..., None, None] * delta[..., :, None] * delta[..., None, :]
    return n, mean, scatter_a + scatter_b + cross


class _Clusters:
    """The clusters of an agglomeration and the merge costs between them."""

    def __init__(self, Z: np.ndarray, alpha: float):
        unique, inverse, counts = np.unique(
            Z, axis=0, return_inverse=True, return_counts=True
        )
        self.labels = inverse.ravel()
        self.alpha = alpha
        n_groups, d = unique.shape
        self.n_rows = counts.astype(np.float64)
        self.mean = unique
        self.scatter = np.zeros((n_groups, d, d))
        self.term = cluster_terms(self.n_rows, self.scatter, alpha)
        self.active = np.ones(n_groups, dtype=bool)
        self.cost = point_merge_costs(unique, self.n_rows, unique, self.n_rows, alpha)
        np.fill_diagonal(self.cost, np.inf)

    def merge_costs(self, group: int, others: np.ndarray) -> np.ndarray:
        """Cost of merging ``group`` with each of ``others``."""
        n, _, scatter = merged_scatter(
            self.n_rows[group], self.mean[group], self.scatter[group],
            self.n_rows[others], self.mean[others], self.scatter[others],
        )
        return cluster_terms(n, scatter, self.alpha) - self.term[group] - self.term[others]

    def merge(self, keep: int, gone: int) -> None:
        """Merge cluster ``gone`` into ``keep`` and update the costs of ``keep``."""
        self.n_rows[keep], self.mean[keep], self.scatter[keep] = merged_scatter(
            self.n_rows[keep], self.mean[keep], self.scatter[keep],
            self.n_rows[gone], self.mean[gone], self.scatter[gone],
        )
        kept = slice(keep, keep + 1)
        self.term[keep] = cluster_terms(self.n_rows[kept], self.scatter[kept], self.alpha)[0]
        self.active[gone] = False
        self.cost[gone, :] = self.cost[:, gone] = np.inf
        others = np.flatnonzero(self.active)
        others = others[others != keep]
        self.cost[keep, others] = self.cost[others, keep] = self.merge_costs(keep, others)


def agglomerate(X: np.ndarray, n_clusters: Iterable[int]) -> dict[int, np.ndarray]:
    """Partitions of the rows X (m, d) by model-based agglomeration (module docs):
    for every requested number of clusters K, the labels (m,) in ``0..K' - 1``
    with ``K' = min(K, distinct rows)``.

    Merges the cheapest pair each step; a pair's cost changes only when one of
    its clusters does, so each step updates one row of the cost matrix and the
    per-row minima of the rows that pointed at the merged clusters.
    """
    wanted = sorted({int(K) for K in n_clusters}, reverse=True)
    Z = svd_coordinates(X)
    centred = Z - Z.mean(axis=0)
    alpha = max(float(np.square(centred).sum()) / centred.size, np.finfo(float).eps)
    clusters = _Clusters(Z, alpha)
    n_groups = clusters.n_rows.size
    row_best = clusters.cost.argmin(axis=1)
    row_min = clusters.cost[np.arange(n_groups), row_best]
    owner = np.arange(n_groups)
    partitions: dict[int, np.ndarray] = {}
    remaining = n_groups
    for K in wanted:
        while remaining > K:
            first = int(np.argmin(row_min))
            second = int(row_best[first])
            keep, gone = min(first, second), max(first, second)
            clusters.merge(keep, gone)
            owner[owner == gone] = keep
            remaining -= 1
            row_min[gone] = np.inf
            pointed = (row_best == keep) | (row_best == gone)
            pointed[keep] = True
            stale = np.flatnonzero(clusters.active & pointed)
            row_best[stale] = clusters.cost[stale].argmin(axis=1)
            row_min[stale] = clusters.cost[stale, row_best[stale]]
            costs = clusters.cost[keep]  # the costs of merging with keep (symmetric)
            better = costs < row_min
            row_best[better], row_min[better] = keep, costs[better]
        _, labels = np.unique(owner[clusters.labels], return_inverse=True)
        partitions[K] = labels.ravel()
    return partitions


__all__: list[str] = []
"""Nothing here is public API (docs/api.md lists what is)."""
