"""Starting parameters for EM, computed out of core.

Every method ends with one pass over the data that turns an assignment of rows
to components into statistics, and the M-step turns those into the first
parameters, so the starting covariances describe the whole data set, not a sample.

Passes over the data, by ``init_params``:

* ``"kmeans"``: 1 pass to draw a uniform sample of rows, Lloyd's k-means (from
  k-means++ seeds) on the sample in memory, then 1 pass assigning every row to its
  nearest centre: 2 passes.
* ``"k-means++"``: the same with k-means++ seeds and no Lloyd steps: 2 passes.
* ``"random_from_data"``: K distinct random rows as centres, then the assignment
  pass: 2 passes.
* ``"random"``: random responsibilities for every row (scikit-learn's meaning),
  drawn per chunk from a seed and the chunk's position: 1 pass.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from .estep import GaussianParameters, check_finite, statistics_from_responsibilities
from .inputs import RowData
from .mstep import parameters_from_statistics
from .reduction import tree_reduce
from .statistics import merge_all

INIT_METHODS = ("kmeans", "k-means++", "random", "random_from_data")


def sample_rows(data: RowData, n_rows: int, rng: np.random.Generator) -> np.ndarray:
    """A uniform random sample of ``min(n_rows, n_samples)`` distinct rows, read in
    one pass over the chunks that hold them; returned in float64, in row order."""
    n_rows = min(n_rows, data.n_samples)
    indices = np.sort(rng.choice(data.n_samples, size=n_rows, replace=False))
    sample = np.asarray(data.array[indices].compute(), dtype=np.float64)
    check_finite(sample, row_numbers=indices)
    return sample


def squared_distances(X: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (n, K), computed about the centres' mean."""
    shift = centres.mean(axis=0)
    Xs, Cs = X - shift, centres - shift
    distances = (Xs**2).sum(axis=1)[:, None] - 2.0 * Xs @ Cs.T + (Cs**2).sum(axis=1)[None, :]
    return np.maximum(distances, 0.0)


def kmeans_plusplus(
    X: np.ndarray, n_clusters: int, rng: np.random.Generator, sample_weight=None
) -> np.ndarray:
    """k-means++ seeding (Arthur & Vassilvitskii 2007), optionally weighted:
    each next centre is drawn with probability proportional to ``w d^2``, with
    ``2 + log K`` trials per centre keeping the one that lowers the cost most."""
    n_samples = X.shape[0]
    weights = np.ones(n_samples) if sample_weight is None else np.asarray(sample_weight, float)
    n_trials = 2 + int(np.log(n_clusters))
    centres = np.empty((n_clusters, X.shape[1]))
    centres[0] = X[rng.choice(n_samples, p=weights / weights.sum())]
    closest = squared_distances(X, centres[:1])[:, 0]
    for c in range(1, n_clusters):
        potential = weights * closest
        total = potential.sum()
        if total <= 0:
            candidates = rng.choice(n_samples, size=n_trials)
        else:
            cumulative = np.cumsum(potential)
            candidates = np.searchsorted(cumulative, rng.random(n_trials) * total)
            candidates = np.minimum(candidates, n_samples - 1)
        candidate_distances = np.minimum(closest[:, None], squared_distances(X, X[candidates]))
        best = int(np.argmin((weights[:, None] * candidate_distances).sum(axis=0)))
        centres[c] = X[candidates[best]]
        closest = candidate_distances[:, best]
    return centres


def lloyd(
    X: np.ndarray, centres: np.ndarray, sample_weight=None, max_iter: int = 100, tol=1e-6
) -> np.ndarray:
    """Weighted Lloyd iterations in memory. An emptied centre moves to the point
    that is worst explained by the others (as scikit-learn's KMeans does)."""
    weights = np.ones(X.shape[0]) if sample_weight is None else np.asarray(sample_weight, float)
    centres = centres.copy()
    scale = max(float(np.var(X, axis=0).mean()), np.finfo(float).tiny)
    for _ in range(max_iter):
        distances = squared_distances(X, centres)
        labels = distances.argmin(axis=1)
        closest = distances[np.arange(X.shape[0]), labels]
        totals = np.bincount(labels, weights=weights, minlength=len(centres))
        new = np.zeros_like(centres)
        np.add.at(new, labels, X * weights[:, None])
        for k in np.flatnonzero(totals == 0):
            worst = int(np.argmax(closest * weights))
            new[k], totals[k] = X[worst], 1.0
            closest[worst] = 0.0
        new /= totals[:, None]
        shift = ((new - centres) ** 2).sum()
        centres = new
        if shift <= tol * scale:
            break
    return centres


def _assignment_statistics(block, centres, covariance_type, row_offset):
    """Statistics of a chunk with every row given wholly to its nearest centre."""
    check_finite(block, row_offset)
    X = np.asarray(block, dtype=np.float64)
    labels = squared_distances(X, centres).argmin(axis=1)
    resp = np.zeros((X.shape[0], centres.shape[0]))
    resp[np.arange(X.shape[0]), labels] = 1.0
    return statistics_from_responsibilities(X, resp, centres, covariance_type)


def _random_statistics(block, shift, seed, covariance_type, row_offset):
    """Statistics of a chunk under random responsibilities drawn from
    ``(seed, row_offset)``, so every chunk's draw is reproducible on any worker."""
    check_finite(block, row_offset)
    rng = np.random.default_rng([seed, row_offset])
    resp = rng.random((block.shape[0], shift.shape[0]))
    resp /= resp.sum(axis=1, keepdims=True)
    return statistics_from_responsibilities(block, resp, shift, covariance_type)


def initial_centres(
    data: RowData, n_components: int, method: str, rng: np.random.Generator, sample_size: int
) -> np.ndarray:
    """Centres (K, d) for the hard-assignment methods, from a sample of rows."""
    if method == "random_from_data":
        indices = np.sort(rng.choice(data.n_samples, size=n_components, replace=False))
        return np.asarray(data.array[indices].compute(), dtype=np.float64)
    sample = sample_rows(data, max(sample_size, n_components), rng)
    centres = kmeans_plusplus(sample, n_components, rng)
    if method == "kmeans":
        centres = lloyd(sample, centres)
    return centres


def initialize_parameters(
    data: RowData,
    n_components: int,
    covariance_type: str,
    reg_covar: float,
    method: str,
    rng: np.random.Generator,
    sample_size: int,
) -> tuple[GaussianParameters, np.ndarray]:
    """Starting parameters and covariances by ``method`` (module docs)."""
    combine = partial(merge_all, covariance_type=covariance_type)
    if method == "random":
        seed = int(rng.integers(2**63))
        shift = sample_rows(data, min(sample_size, 1000), rng).mean(axis=0)
        shift = np.repeat(shift[None, :], n_components, axis=0)
        stats = tree_reduce(data.array, _random_statistics, combine, shift, seed, covariance_type)
    else:
        centres = initial_centres(data, n_components, method, rng, sample_size)
        stats = tree_reduce(data.array, _assignment_statistics, combine, centres, covariance_type)
    return parameters_from_statistics(stats, reg_covar, covariance_type)
