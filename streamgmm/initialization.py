"""Starting parameters for EM, computed out of core.

Every method but ``"hierarchical"`` ends with one pass over the data that turns
an assignment of rows to components into statistics, and the M-step turns those
into the first parameters, so the starting covariances describe the whole data
set, not a sample.

Passes over the data, by ``init_params`` (a pass reads every chunk once; the
tests in ``tests/test_initialization.py`` count the chunk reads):

* ``"kmeans"``: 1 pass to draw a uniform sample of rows (it reads only the chunks
  that hold sampled rows), Lloyd's k-means (from k-means++ seeds) on the sample in
  memory, then 1 pass assigning every row to its nearest centre: 2 passes.
* ``"k-means++"``: the same with k-means++ seeds and no Lloyd steps: 2 passes.
* ``"k-means||"``: 1 chunk read for a random first centre, ``n_rounds`` sampling
  passes, then 1 pass that gives the statistics of the rows nearest to every
  candidate; the candidates are reclustered in memory and their statistics
  merged: ``n_rounds + 1`` passes (:data:`KMEANS_PARALLEL_ROUNDS` by default).
* ``"hierarchical"``: 1 pass to draw a uniform sample of at most
  :data:`HIERARCHICAL_SAMPLE_SIZE` rows (reading only the chunks that hold them),
  model-based hierarchical agglomeration of the sample in memory
  (:mod:`streamgmm.agglomeration`, mclust's start), and the M-step on the
  sample's groups: 1 pass. As in mclust, EM's first E-step then covers every row.
* ``"random_from_data"``: K distinct random rows as centres (reading only the
  chunks that hold them), then the assignment pass: at most 2 passes.
* ``"random"``: random responsibilities for every row (scikit-learn's meaning),
  a hash of a seed and the row's index (any chunking gives the same): 1 pass.

:func:`initial_statistics_grid` computes many starts (numbers of components,
covariance types, seeds) in the passes of one; :func:`initialize_parameters` is
the one-start case. Each start draws only from its own seed, so a start computed
in a grid equals the same start computed alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import NamedTuple

import numpy as np

from .agglomeration import agglomerate
from .choices import INIT_METHODS
from .covariance import derived_scatter, richest_scatter_type
from .estep import (
    BLOCK_ROWS,
    GaussianParameters,
    check_finite,
    kernel_weights,
    statistics_from_responsibilities,
)
from .inputs import RowData
from .mstep import parameters_from_statistics
from .reduction import tree_reduce, tree_reduce_each
from .statistics import SufficientStatistics, empty_statistics, merge, merge_all

HIERARCHICAL_SAMPLE_SIZE = 2000
"""Most rows agglomerated by ``"hierarchical"`` (mclust's ``subset`` default):
its time grows as the square of the rows or faster (measured on 2 cores under a
load of 7: 0.8 s for 500 rows, 2.5 s for 1,000, 10-11 s for 2,000)."""

KMEANS_PARALLEL_ROUNDS = 2
"""Default sampling rounds of ``"k-means||"`` (one pass each). Measured with
``benchmarks/init_recovery.py`` (docs/initialization.md): one round misses
clusters, two recovered every mean in every seed tried, as did three and five,
which cost more passes than the EM iterations they save."""

RECLUSTER_RESTARTS = 10
"""k-means++/Lloyd restarts on the k-means|| candidates (in memory, no pass)."""

OVERSAMPLING_PER_COMPONENT = 2.0
"""Default oversampling factor of ``"k-means||"`` per component: ``l = 2 K``
rows are expected to be drawn in every round."""


# ----------------------------------------------------------------- in memory
def sample_rows(data: RowData, n_rows: int, rng: np.random.Generator) -> np.ndarray:
    """A uniform random sample of ``min(n_rows, n_samples)`` distinct rows, read in
    one pass over the chunks that hold them; returned in float64, in row order."""
    n_rows = min(n_rows, data.n_samples)
    indices = np.sort(rng.choice(data.n_samples, size=n_rows, replace=False))
    sample = np.asarray(data.array[indices].compute(), dtype=np.float64)
    check_finite(sample, row_numbers=indices)
    return sample


def read_rows(data: RowData, indices: np.ndarray) -> np.ndarray:
    """Rows at sorted ``indices`` (float64), reading only the chunks that hold them.

    A NaN or infinite value raises the ``ValueError`` of ``check_finite`` naming
    its row in the data."""
    indices = np.asarray(indices)
    rows = np.asarray(data.array[indices].compute(), dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(rows).all(axis=1))
    if bad.size:
        check_finite(rows[bad[:1]], row_offset=int(indices[bad[0]]))
    return rows


def squared_distances(X: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (n, K), computed about the centres' mean."""
    shift = centres.mean(axis=0)
    Xs, Cs = X - shift, centres - shift
    distances = (Xs**2).sum(axis=1)[:, None] - 2.0 * Xs @ Cs.T + (Cs**2).sum(axis=1)[None, :]
    return np.maximum(distances, 0.0)


_GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)


def _mix64(z: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser on an array of uint64 (wrapping arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def row_uniforms(
    seed: int, stream: int, first_row: int, n_rows: int, n_columns: int = 1
) -> np.ndarray:
    """Uniforms in (0, 1], shape (n_rows, n_columns), for rows ``first_row``
    onwards: a counter-based hash (splitmix64) of ``(seed, stream, row, column)``.

    Each row's draw depends on its index only, so any chunking of the data and
    any scheduler give the same draws."""
    key = _mix64(_mix64(np.array([seed], dtype=np.uint64)) ^ np.array([stream], np.uint64))
    start = first_row * n_columns
    counters = np.arange(start, start + n_rows * n_columns, dtype=np.uint64) + np.uint64(1)
    bits = _mix64(key + counters * _GOLDEN_GAMMA) >> np.uint64(11)
    return ((bits + np.uint64(1)) * 2.0**-53).reshape(n_rows, n_columns)


def nearest_centres(X: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest centre (n,) and the squared distance to it (n,),
    ``BLOCK_ROWS`` rows at a time so that the (rows, K) distances stay small."""
    labels = np.empty(X.shape[0], dtype=np.intp)
    closest = np.empty(X.shape[0])
    for start in range(0, X.shape[0], BLOCK_ROWS):
        stop = min(start + BLOCK_ROWS, X.shape[0])
        distances = squared_distances(X[start:stop], centres)
        labels[start:stop] = distances.argmin(axis=1)
        closest[start:stop] = distances[np.arange(stop - start), labels[start:stop]]
    return labels, closest


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


# ------------------------------------------------- statistics of hard groups
def convert_scatter(stats: SufficientStatistics, covariance_type: str) -> SufficientStatistics:
    """Statistics whose scatter keeps only what ``covariance_type`` needs
    (:func:`streamgmm.covariance.derived_scatter`)."""
    return stats._replace(scatter=derived_scatter(stats.scatter, covariance_type))


def grouped_statistics(
    X: np.ndarray,
    labels: np.ndarray,
    centres: np.ndarray,
    scatter_type: str,
    sample_weight: np.ndarray | None = None,
) -> SufficientStatistics:
    """Statistics (G groups) of rows X (n, d) given wholly to group ``labels``,
    each row counted ``sample_weight`` (n,) times if given.

    Each group's sums are taken about its centre (``centres``, shape (G, d)); a
    group with no rows keeps its centre as mean and has zero weight. Costs
    ``O(n d^2)`` for full scatter whatever G, unlike one-hot responsibilities.
    """
    n_groups = centres.shape[0]
    stats = empty_statistics(n_groups, X.shape[1], scatter_type)
    weight, mean, scatter = stats.weight, centres.astype(np.float64), stats.scatter
    order = np.argsort(labels, kind="stable")
    counts = np.bincount(labels, minlength=n_groups)
    ends = np.cumsum(counts)
    for group in np.flatnonzero(counts):
        members = order[ends[group] - counts[group] : ends[group]]
        part = statistics_from_responsibilities(
            X[members], np.ones((members.size, 1)), mean[group : group + 1], scatter_type,
            sample_weight=None if sample_weight is None else sample_weight[members],
        )
        weight[group], mean[group], scatter[group] = part.weight[0], part.mean[0], part.scatter[0]
    n_samples = X.shape[0] if sample_weight is None else kernel_weights(sample_weight).sum()
    return SufficientStatistics(weight, mean, scatter, 0.0, float(n_samples))


def components_of(stats: SufficientStatistics, indices: np.ndarray) -> SufficientStatistics:
    """The statistics of some components only (no rows counted)."""
    return SufficientStatistics(
        stats.weight[indices], stats.mean[indices], stats.scatter[indices], 0.0, 0.0
    )


def merge_groups(
    stats: SufficientStatistics, assignment: np.ndarray, centres: np.ndarray, scatter_type: str
) -> SufficientStatistics:
    """Statistics of K components, each the union of the groups assigned to it.

    ``stats`` holds G groups (full, diag or spherical scatter), ``assignment``
    (G,) the component of every group and ``centres`` (K, d) the mean a component
    with no group keeps. Uses the exact pairwise :func:`~streamgmm.statistics.merge`.
    """
    n_components = centres.shape[0]
    result = empty_statistics(n_components, centres.shape[1], scatter_type)
    mean = centres.astype(np.float64)
    for component in range(n_components):
        members = np.flatnonzero(assignment == component)
        if members.size == 0:
            continue
        total = components_of(stats, members[:1])
        for member in members[1:]:
            total = merge(total, components_of(stats, np.array([member])), scatter_type)
        result.weight[component] = total.weight[0]
        mean[component] = total.mean[0]
        result.scatter[component] = total.scatter[0]
    return result._replace(mean=mean, n_samples=stats.n_samples)


def _hard_assignment_chunk(block, argument, row_offset, sample_weight=None):
    """Statistics of a chunk's rows (weighted by ``sample_weight``), each given to
    its nearest centre; ``argument`` is ``(centres, scatter_type)``."""
    centres, scatter_type = argument
    check_finite(block, row_offset)
    X = np.asarray(block, dtype=np.float64)
    labels = nearest_centres(X, centres)[0]
    return grouped_statistics(X, labels, centres, scatter_type, sample_weight)


def _combine_lists(parts, scatter_types):
    """Merge lists of statistics position by position."""
    return [
        merge_all(column, scatter_type)
        for column, scatter_type in zip(zip(*parts, strict=True), scatter_types, strict=True)
    ]


def hard_assignment_statistics(
    data: RowData, centre_sets: Sequence[np.ndarray], scatter_types: Sequence[str]
) -> list[SufficientStatistics]:
    """One pass: for every centre set (G_j, d), the statistics (scatter type
    ``scatter_types[j]``) of the rows nearest to each of its centres (see
    :func:`grouped_statistics`)."""
    reductions = [
        (
            _hard_assignment_chunk,
            partial(merge_all, covariance_type=scatter_type),
            (np.asarray(centres, dtype=np.float64), scatter_type),
        )
        for centres, scatter_type in zip(centre_sets, scatter_types, strict=True)
    ]
    return tree_reduce_each(data.array, reductions, sample_weight=data.weights)


# ------------------------------------------------------------------ random
def _random_chunk(block, seeds, n_components, scatter_types, row_offset, sample_weight=None):
    """Statistics of a chunk under random responsibilities, one set per seed,
    each row counted ``sample_weight`` times if given.

    Draws are :func:`row_uniforms` of the global row index, so they do not depend
    on the chunking or the worker; sums are taken about the chunk's own mean
    (exact, as merges are)."""
    check_finite(block, row_offset)
    X = np.asarray(block, dtype=np.float64)
    centre = X.mean(axis=0)
    parts = []
    for seed, K, scatter_type in zip(seeds, n_components, scatter_types, strict=True):
        resp = row_uniforms(seed, 0, row_offset, X.shape[0], K)
        resp /= resp.sum(axis=1, keepdims=True)
        shift = np.repeat(centre[None, :], K, axis=0)
        parts.append(statistics_from_responsibilities(
            X, resp, shift, scatter_type, sample_weight=sample_weight
        ))
    return parts


# ---------------------------------------------------------------- k-means||
class RoundSample(NamedTuple):
    """Rows drawn in one k-means|| round, before the final threshold.

    ``keys`` are ``d^2(x, C) / u`` with ``u`` uniform in (0, 1]: a row is drawn
    iff ``key > cost / l``. ``cost`` is the summed ``d^2(x, C)`` of the rows seen."""

    rows: np.ndarray
    keys: np.ndarray
    cost: float


def threshold_sample(sample: RoundSample, oversampling: float) -> RoundSample:
    """Keep the rows whose key beats ``cost / l`` for the cost seen so far.

    The total cost is at least any partial cost, so applying this to partial
    results drops only rows the final threshold would drop too."""
    if sample.cost <= 0:
        keep = np.zeros(sample.keys.shape, dtype=bool)
    else:
        keep = sample.keys > sample.cost / oversampling
    return RoundSample(sample.rows[keep], sample.keys[keep], sample.cost)


def _sampling_round_chunk(
    block, candidates, oversampling, seed, round_index, row_offset, sample_weight=None
):
    """One chunk of a k-means|| round: every row is drawn independently with
    probability ``min(1, l w d^2(x, C) / phi)`` (``w`` its weight, 1 without
    ``sample_weight``; a row of weight 0 is never drawn); ``phi`` is not known
    yet, so the chunk keeps the rows that pass with its own cost (a lower bound
    of ``phi``)."""
    check_finite(block, row_offset)
    X = np.asarray(block, dtype=np.float64)
    _, closest = nearest_centres(X, candidates)
    if sample_weight is not None:
        closest = closest * kernel_weights(sample_weight)
    uniform = row_uniforms(seed, round_index, row_offset, X.shape[0])[:, 0]
    sample = RoundSample(X, closest / uniform, float(closest.sum()))
    return threshold_sample(sample, oversampling)


def _combine_rounds(parts, oversampling):
    """Concatenate partial round samples, add their costs and re-threshold."""
    merged = RoundSample(
        np.concatenate([part.rows for part in parts]),
        np.concatenate([part.keys for part in parts]),
        float(sum(part.cost for part in parts)),
    )
    return threshold_sample(merged, oversampling)


class Pool(NamedTuple):
    """What fixes one k-means|| candidate set: the index of its first row, the
    seed of its rows' uniforms and ``l``, the rows expected per round."""

    first_row: int
    seed: int
    oversampling: float


def _sampling_round_of(block, argument, row_offset, sample_weight=None):
    """:func:`_sampling_round_chunk` with ``argument = (candidates, l, seed,
    round)``, for :func:`~streamgmm.reduction.tree_reduce_each`."""
    return _sampling_round_chunk(block, *argument, row_offset, sample_weight)


def kmeans_parallel_pools(data: RowData, pools: Sequence[Pool], n_rounds: int) -> list[np.ndarray]:
    """The k-means|| candidate centres (M_j, d) of every pool (Bahmani et al. 2012),
    all in the same passes.

    A pool's first candidate is its first row (one read of the chunks holding the
    first rows of all pools); each of ``n_rounds`` rounds is one pass in which,
    for every pool, every row joins its candidates independently with probability
    ``min(1, l d^2(x, C) / phi(C))``, where ``C`` are the pool's candidates so far
    and ``phi(C)`` the summed ``d^2``. The same pass computes ``phi(C)``: every
    row's uniform is a hash of ``(seed, round, row index)`` (:func:`row_uniforms`),
    the chunk keeps the rows that pass with its partial cost, and the threshold
    is tightened as partial costs are added up the tree. The result depends
    neither on the chunking, nor on the scheduler, nor on the other pools. A
    pool stops early when every row coincides with one of its candidates.
    """
    firsts = np.array([pool.first_row for pool in pools])
    unique, inverse = np.unique(firsts, return_inverse=True)
    first_rows = read_rows(data, unique)
    candidates = [first_rows[index : index + 1] for index in inverse.ravel()]
    going = list(range(len(pools)))
    for round_index in range(n_rounds):
        if not going:
            break
        reductions = [
            (
                _sampling_round_of,
                partial(_combine_rounds, oversampling=pools[j].oversampling),
                (candidates[j], pools[j].oversampling, pools[j].seed, round_index),
            )
            for j in going
        ]
        drawn_all = tree_reduce_each(data.array, reductions, sample_weight=data.weights)
        still = []
        for j, drawn in zip(going, drawn_all, strict=True):
            drawn = threshold_sample(drawn, pools[j].oversampling)
            candidates[j] = np.concatenate([candidates[j], drawn.rows])
            if drawn.cost > 0:
                still.append(j)
        going = still
    return candidates


def recluster_groups(
    groups: SufficientStatistics,
    n_components: int,
    rng: np.random.Generator,
    n_restarts: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted k-means++ and Lloyd on the group means (weights = rows per group),
    best of ``n_restarts`` in memory: returns the component of every group (G,)
    and the K centres (K, d).

    Clustering the weighted group means minimises the k-means cost over all
    assignments that keep each group whole, since a group's own scatter does not
    depend on where it goes; restarts cost no pass over the data."""
    n_restarts = RECLUSTER_RESTARTS if n_restarts is None else n_restarts
    occupied = np.flatnonzero(groups.weight > 0)
    points, weights = groups.mean[occupied], groups.weight[occupied]
    best_cost, best_centres = np.inf, None
    for _ in range(n_restarts):
        centres = lloyd(points, kmeans_plusplus(points, n_components, rng, weights), weights)
        cost = float(weights @ nearest_centres(points, centres)[1])
        if cost < best_cost * (1.0 - 1e-9):  # ties keep the earlier restart
            best_cost, best_centres = cost, centres
    assignment = np.full(groups.weight.shape[0], -1)
    assignment[occupied] = nearest_centres(points, best_centres)[0]
    return assignment, best_centres


# ------------------------------------------------------------ grid drivers
class Start(NamedTuple):
    """One start of EM: the model it is for and the seed of its own random draws."""

    n_components: int
    covariance_type: str
    seed: int


def start_seeds(rng: np.random.Generator, n_starts: int) -> list[int]:
    """The seeds of ``n_starts`` successive starts drawn from ``rng``: a start
    draws everything from its own seed, so starts computed together in shared
    passes equal starts computed one after another."""
    return [int(rng.integers(2**63)) for _ in range(n_starts)]


def _read_samples(data: RowData, index_sets: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The rows of every sorted index set, reading their union once."""
    union = np.unique(np.concatenate(index_sets))
    rows = read_rows(data, union)
    return [rows[np.searchsorted(union, indices)] for indices in index_sets]


def _sample_indices(
    n_samples: int, n_rows: int, rng: np.random.Generator, weights: np.ndarray | None = None
) -> np.ndarray:
    """``min(n_rows, n_samples)`` distinct sorted row indices, uniformly at random;
    with ``weights`` (n,), among the rows of positive weight only."""
    if weights is None:
        return np.sort(rng.choice(n_samples, size=min(n_rows, n_samples), replace=False))
    positive = np.flatnonzero(weights > 0)
    return np.sort(rng.choice(positive, size=min(n_rows, positive.size), replace=False))


def _weighted_indices(weights: np.ndarray, n_rows: int, rng: np.random.Generator) -> np.ndarray:
    """``min(n_rows, rows of positive weight)`` distinct row indices drawn one
    after another with probabilities proportional to ``weights`` (n,)."""
    size = min(n_rows, int(np.count_nonzero(weights)))
    return rng.choice(weights.size, size=size, replace=False, p=weights / weights.sum())


def weights_in_memory(data: RowData) -> np.ndarray | None:
    """The rows' weights (n,) float64 read into memory (8 bytes a row), for the
    draws of the sampling initialisations; None without weights."""
    if data.weights is None:
        return None
    return np.asarray(data.weights.compute(), dtype=np.float64)


def _kmeans_parallel_grid(data, starts, rngs, n_rounds, oversampling, weights=None):
    """k-means|| statistics of every start: one candidate pool per distinct
    ``(first row, seed, l)``, all pools in the same passes, and one set of
    candidate statistics per pool and scatter type (so that a start's statistics
    are exactly those it gets alone). With ``weights`` (n,) the first row is
    drawn with probability proportional to its weight."""
    pools, groups_of = {}, []
    for start, rng in zip(starts, rngs, strict=True):
        pool = Pool(
            int(rng.integers(data.n_samples) if weights is None
                else _weighted_indices(weights, 1, rng)[0]),
            int(rng.integers(2**63)),
            oversampling * start.n_components,
        )
        pools.setdefault(pool, len(pools))
        groups_of.append((pools[pool], richest_scatter_type([start.covariance_type])))
    candidates = kmeans_parallel_pools(data, list(pools), n_rounds)
    group_keys = list(dict.fromkeys(groups_of))
    statistics = hard_assignment_statistics(
        data,
        [candidates[pool] for pool, _ in group_keys],
        [scatter_type for _, scatter_type in group_keys],
    )
    groups = dict(zip(group_keys, statistics, strict=True))
    results = []
    for start, rng, key in zip(starts, rngs, groups_of, strict=True):
        assignment, centres = recluster_groups(groups[key], start.n_components, rng)
        merged = merge_groups(groups[key], assignment, centres, key[1])
        results.append(convert_scatter(merged, start.covariance_type))
    return results


def _hierarchical_grid(data, starts, rngs, sample_size, weights=None):
    """Statistics, on each start's sample, of the groups that model-based
    agglomeration of that sample gives (:mod:`streamgmm.agglomeration`); one
    agglomeration per distinct sample serves every number of components. With
    ``weights`` (n,) the sample is drawn with probabilities proportional to
    them (agglomeration itself counts every sampled row once)."""
    size = min(sample_size, HIERARCHICAL_SAMPLE_SIZE)
    index_sets = [
        _sample_indices(data.n_samples, size, rng) if weights is None
        else np.sort(_weighted_indices(weights, size, rng))
        for rng in rngs
    ]
    samples = _read_samples(data, index_sets)
    sizes: dict[bytes, set] = {}
    for indices, start in zip(index_sets, starts, strict=True):
        sizes.setdefault(indices.tobytes(), set()).add(start.n_components)
    trees = {}
    results = []
    for indices, sample, start in zip(index_sets, samples, starts, strict=True):
        key = indices.tobytes()
        if key not in trees:
            trees[key] = agglomerate(sample, sizes[key])
        labels = trees[key][start.n_components]
        results.append(sample_group_statistics(sample, labels, start))
    return results


def sample_group_statistics(
    sample: np.ndarray, labels: np.ndarray, start: Start
) -> SufficientStatistics:
    """Statistics of K components from a partition of sample rows (m, d) into
    ``labels`` (m,) with at most K groups; a component without rows gets zero
    weight at the sample mean."""
    K = start.n_components
    counts = np.bincount(labels, minlength=K)
    sums = np.zeros((K, sample.shape[1]))
    np.add.at(sums, labels, sample)
    centres = np.where(
        counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], sample.mean(axis=0)
    )
    scatter_type = richest_scatter_type([start.covariance_type])
    stats = grouped_statistics(sample, labels, centres, scatter_type)
    return convert_scatter(stats, start.covariance_type)


def initial_statistics_grid(
    data: RowData,
    starts: Sequence[Start],
    method: str,
    sample_size: int,
    *,
    n_rounds: int | None = None,
    oversampling: float | None = None,
) -> list[SufficientStatistics]:
    """Starting statistics of many starts (models and seeds) in shared passes.

    Each start draws only from ``np.random.default_rng(start.seed)``, so its
    statistics are those it gets alone, and the passes are those of one start
    (module docs) whatever the number of starts: every k-means|| pool's rounds
    run in the same passes, every start's sample or random rows are read
    together, and one statistics pass computes every start's statistics.
    """
    if method not in INIT_METHODS:
        raise ValueError(f"init_params must be one of {INIT_METHODS}, got {method!r}")
    starts = [Start(int(K), t, int(seed)) for K, t, seed in starts]
    rngs = [np.random.default_rng(start.seed) for start in starts]
    types = [start.covariance_type for start in starts]
    weights = None if method == "random" else weights_in_memory(data)
    if method == "random":
        seeds = [int(rng.integers(2**63)) for rng in rngs]
        Ks = [start.n_components for start in starts]
        scatter_types = [richest_scatter_type([t]) for t in types]
        combine = partial(_combine_lists, scatter_types=scatter_types)
        stats = tree_reduce(data.array, _random_chunk, combine, seeds, Ks, scatter_types,
                            sample_weight=data.weights)
        return [convert_scatter(s, t) for s, t in zip(stats, types, strict=True)]
    if method == "k-means||":
        return _kmeans_parallel_grid(
            data,
            starts,
            rngs,
            KMEANS_PARALLEL_ROUNDS if n_rounds is None else n_rounds,
            OVERSAMPLING_PER_COMPONENT if oversampling is None else oversampling,
            weights,
        )
    if method == "hierarchical":
        return _hierarchical_grid(data, starts, rngs, sample_size, weights)
    if method == "random_from_data":
        index_sets = [
            rng.choice(data.n_samples, size=start.n_components, replace=False)
            if weights is None else _weighted_indices(weights, start.n_components, rng)
            for start, rng in zip(starts, rngs, strict=True)
        ]
        centre_sets = _read_samples(data, index_sets)
    else:
        index_sets = [
            _sample_indices(data.n_samples, max(sample_size, start.n_components), rng, weights)
            for start, rng in zip(starts, rngs, strict=True)
        ]
        centre_sets = []
        samples = _read_samples(data, index_sets)
        for indices, sample, start, rng in zip(index_sets, samples, starts, rngs, strict=True):
            sample_weight = None if weights is None else weights[indices]
            centres = kmeans_plusplus(sample, start.n_components, rng, sample_weight)
            centre_sets.append(
                lloyd(sample, centres, sample_weight) if method == "kmeans" else centres
            )
    scatter_types = [richest_scatter_type([t]) for t in types]
    stats = hard_assignment_statistics(data, centre_sets, scatter_types)
    return [convert_scatter(s, t) for s, t in zip(stats, types, strict=True)]


def initialize_parameters(
    data: RowData,
    n_components: int,
    covariance_type: str,
    reg_covar: float,
    method: str,
    rng: np.random.Generator,
    sample_size: int,
    *,
    n_rounds: int | None = None,
    oversampling: float | None = None,
) -> tuple[GaussianParameters, np.ndarray]:
    """Starting parameters and covariances by ``method`` for one start whose seed
    is drawn from ``rng`` (:func:`start_seeds`); passes as in the module docs.
    ``n_rounds`` (default :data:`KMEANS_PARALLEL_ROUNDS`) and ``oversampling``
    (``l / K``, default :data:`OVERSAMPLING_PER_COMPONENT`) tune ``"k-means||"``."""
    (seed,) = start_seeds(rng, 1)
    (stats,) = initial_statistics_grid(
        data,
        [Start(n_components, covariance_type, seed)],
        method,
        sample_size,
        n_rounds=n_rounds,
        oversampling=oversampling,
    )
    return parameters_from_statistics(stats, reg_covar, covariance_type)


__all__: list[str] = []
"""Nothing here is public API (docs/api.md lists what is)."""
