"""Statistics and the M-step, compiled: centring a range's sums, merging two
sets of centred statistics (Chan et al.), the M-step and the precision
factors. All four covariance types go through one compiled version each: the
type is ``kind`` and arrays are in blocks form
(:mod:`streamgmm.kernels.records`)."""

from __future__ import annotations

import math

import numpy as np

from .codes import NONE, NORM, OVERFLOWED, PAIRWISE, SQUARES, WEIGHT_FLOOR
from .jit import kernel, part, shared
from .mathfn import added, scaled
from .records import Mixture, MStep, Statistics


@shared
def outer_add(weights, vectors, kind, scatter):  # pragma: no cover
    """``scatter += sum_k w_k v_k v_k^T`` reduced as ``kind`` keeps it (blocks form):
    weights (K,), vectors (K, d)."""
    n_components, d = vectors.shape
    for k in range(n_components):
        weight = weights[k]
        if kind == PAIRWISE or kind == NONE:
            block = k if kind == PAIRWISE else 0
            for i in range(d):
                scaled_value = weight * vectors[k, i]
                for j in range(d):
                    scatter[block, i, j] += scaled_value * vectors[k, j]
        elif kind == SQUARES:
            for j in range(d):
                scatter[k, 0, j] += weight * (vectors[k, j] * vectors[k, j])
        else:
            norm = 0.0
            for j in range(d):
                norm += vectors[k, j] * vectors[k, j]
            scatter[k, 0, 0] += weight * norm


@kernel
def centred_statistics(sums, common, own_centres, own_shift, kind):  # pragma: no cover
    """Centred :class:`~streamgmm.kernels.records.Statistics` from a range's
    :class:`~streamgmm.kernels.records.Sums`: sums about ``common`` (d,), and
    about ``own_centres[k]`` for the components in ``own_shift`` (K,) bool, moved
    to each component's weighted mean: ``mean = centre + first / n``,
    ``scatter = second - n (first / n)(first / n)^T``."""
    columns = sums.columns
    d = columns.shape[0] - 1
    n_components = columns.shape[1]
    weight = np.empty(n_components)
    first = np.empty((n_components, d))
    if kind == PAIRWISE:
        second = np.zeros((n_components, d, d))
    elif kind == NONE:
        second = np.zeros((1, d, d))
        for i in range(d):
            for j in range(d):
                second[0, i, j] = sums.pooled[i, j]
    elif kind == SQUARES:
        second = np.zeros((n_components, 1, d))
    else:
        second = np.zeros((n_components, 1, 1))
    for k in range(n_components):
        own = own_shift[k]
        if kind == PAIRWISE and own:
            full = sums.own_full
            weight[k] = full[k, d, d]
            for i in range(d):
                first[k, i] = full[k, d, i]
                for j in range(d):
                    second[k, i, j] = full[k, i, j]
            continue
        firsts = sums.own_columns if own else columns
        weight[k] = firsts[d, k]
        for i in range(d):
            first[k, i] = firsts[i, k]
        if kind == PAIRWISE:
            row = 0
            for i in range(d):
                for j in range(i, d):
                    second[k, i, j] = sums.products[row, k]
                    second[k, j, i] = sums.products[row, k]
                    row += 1
        elif kind == SQUARES or kind == NORM:
            squares = sums.own_products if own else sums.products
            for j in range(second.shape[2]):
                second[k, 0, j] = squares[j, k]
    mean = np.empty((n_components, d))
    negative = np.empty(n_components)
    for k in range(n_components):
        safe = weight[k] if weight[k] > 0 else 1.0
        negative[k] = -weight[k]
        for j in range(d):
            first[k, j] = first[k, j] / safe
            mean[k, j] = (own_centres[k, j] if own_shift[k] else common[j]) + first[k, j]
    outer_add(negative, first, kind, second)
    return Statistics(weight, mean, second)


@kernel
def merge_blocks(a, b, kind):  # pragma: no cover
    """Statistics of the union of two disjoint sets of rows (Chan et al.):
    ``W = W_a + W_b``, ``m = m_a + (W_b / W)(m_b - m_a)``,
    ``M = M_a + M_b + (W_a W_b / W)(m_b - m_a)(m_b - m_a)^T``; a component with
    no weight on either side keeps the mean halfway."""
    return merged(a.weight, a.mean, b.weight, b.mean, added(a.scatter, b.scatter), kind)


@shared
def merged(weight_a, mean_a, weight_b, mean_b, scatter, kind):  # pragma: no cover
    """:func:`merge_blocks` of the sets of weights ``weight_a``, ``weight_b`` and
    means ``mean_a``, ``mean_b`` whose scatters sum to ``scatter`` (a new
    array, completed in place)."""
    n_components, d = mean_a.shape
    weight = added(weight_a, weight_b)
    mean = np.empty_like(mean_a)
    delta = np.empty_like(mean_a)
    cross = np.empty_like(weight)
    for k in range(n_components):
        total = weight[k]
        positive = total > 0
        safe = total if positive else 1.0
        share_b = weight_b[k] / safe if positive else 0.5
        cross[k] = weight_a[k] * weight_b[k] / safe if positive else 0.0
        for j in range(d):
            delta[k, j] = mean_b[k, j] - mean_a[k, j]
            mean[k, j] = mean_a[k, j] + share_b * delta[k, j]
    outer_add(cross, delta, kind, scatter)
    return Statistics(weight, mean, scatter)


@part
def stepwise_blocks(a, b, step, kind):  # pragma: no cover
    """``(1 - step) a + step b``: the merge of the two sets rescaled (the
    scatters rescaled and added in one pass)."""
    keep = 1.0 - step
    return merged(scaled(a.weight, keep), a.mean, scaled(b.weight, step), b.mean,
                  sum_of_scaled(a.scatter, keep, b.scatter, step), kind)


@part
def sum_of_scaled(first, first_factor, second, second_factor):  # pragma: no cover
    """``first * first_factor + second * second_factor`` (C-contiguous arrays of
    one shape), each product rounded before the sum, as a new array: what
    :func:`~streamgmm.kernels.mathfn.scaled` twice and
    :func:`~streamgmm.kernels.mathfn.added` give, in one pass."""
    out = np.empty_like(first)
    for i in range(out.size):
        out.flat[i] = first.flat[i] * first_factor + second.flat[i] * second_factor
    return out


@kernel
def m_step_blocks(stats, reg_covar, kind):  # pragma: no cover
    """Weights (K,), means (K, d) and covariances (blocks form) from centred
    statistics, as a :class:`~streamgmm.kernels.records.Mixture` without factors
    (empty): ``pi_k = n_k / N``, ``Sigma_k = M_k / n_k`` plus ``reg_covar`` on
    the diagonal; tied shares ``sum_k M_k / N``, spherical takes the mean
    variance over features. ``n_k`` gets ``WEIGHT_FLOOR`` first."""
    n_components, d = stats.mean.shape
    scatter = stats.scatter
    floored = np.empty(n_components)
    total = 0.0
    for k in range(n_components):
        floored[k] = stats.weight[k] + WEIGHT_FLOOR
        total += floored[k]
    weights = np.empty(n_components)
    for k in range(n_components):
        weights[k] = floored[k] / total
    covariances = np.empty_like(scatter)
    for block in range(scatter.shape[0]):
        divisor = total if kind == NONE else floored[block]
        if kind == NORM:
            divisor = d * floored[block]
        for i in range(scatter.shape[1]):
            for j in range(scatter.shape[2]):
                covariances[block, i, j] = scatter[block, i, j] / divisor
                if kind == SQUARES or kind == NORM or i == j:
                    covariances[block, i, j] += reg_covar
    return Mixture(weights, stats.mean.copy(), covariances, np.empty((0, 0, 0)))


@part
def cholesky_blocks(covariances, lower):  # pragma: no cover
    """``Sigma_b = L_b L_b^T`` of every block of ``covariances`` (B, d, d) into
    the lower triangles of ``lower`` (d, d, B), the blocks along the last axis;
    returns the first block whose covariance is not positive definite (its
    factor and those of later blocks are then meaningless), or -1. Formed column
    by column, each column updating the rows below it, all blocks at once (the
    inner loops run along blocks, which vectorise): per block, the operations
    of the textbook form, in its order."""
    n_blocks, d = covariances.shape[0], covariances.shape[1]
    for block in range(n_blocks):
        for i in range(d):
            for j in range(i + 1):
                lower[i, j, block] = covariances[block, i, j]
    failed = n_blocks
    for j in range(d):
        for block in range(n_blocks):
            pivot = lower[j, j, block]
            if not (pivot > 0 and pivot < np.inf):
                failed = min(failed, block)
                lower[j, j, block] = 1.0  # a harmless pivot: the block has failed
        for block in range(n_blocks):
            lower[j, j, block] = math.sqrt(lower[j, j, block])
        for i in range(j + 1, d):
            for block in range(n_blocks):
                lower[i, j, block] = lower[i, j, block] / lower[j, j, block]
        for i in range(j + 1, d):
            for column in range(j + 1, i + 1):
                for block in range(n_blocks):
                    lower[i, column, block] -= lower[i, j, block] * lower[column, j, block]
    return failed if failed < n_blocks else -1


@part
def inverse_transposes_into(lower, factors):  # pragma: no cover
    """``factors[b] = (L_b^-1)^T`` (upper triangular) of the lower Cholesky
    factors in ``lower`` (d, d, B), all blocks at once as in
    :func:`cholesky_blocks`."""
    d, n_blocks = lower.shape[0], lower.shape[2]
    inverse = np.zeros((d, d, n_blocks))
    for i in range(d):
        for block in range(n_blocks):
            inverse[i, i, block] = 1.0
    for j in range(d):
        for column in range(j + 1):
            for block in range(n_blocks):
                inverse[j, column, block] = inverse[j, column, block] / lower[j, j, block]
        for i in range(j + 1, d):
            for column in range(j + 1):
                for block in range(n_blocks):
                    inverse[i, column, block] -= lower[i, j, block] * inverse[j, column, block]
    for block in range(n_blocks):
        for i in range(d):
            for j in range(d):
                factors[block, i, j] = inverse[j, i, block]


@part
def precision_cholesky_blocks(covariances, kind):  # pragma: no cover
    """Cholesky factors ``P`` of the precisions (``Sigma^-1 = P P^T``; blocks form):
    upper-triangular ``P = (L^-1)^T`` from ``Sigma = L L^T`` (full, tied), inverse
    square roots (diag, spherical). Returns ``(P, failed)`` with ``failed`` the
    first component whose covariance is not positive definite, or -1; the
    factors of that block and later ones are then 0."""
    factors = np.zeros_like(covariances)
    if kind == PAIRWISE or kind == NONE:
        d = covariances.shape[1]
        lower = np.empty((d, d, covariances.shape[0]))
        failed = cholesky_blocks(covariances, lower)
        inverse_transposes_into(lower, factors)
        for block in range(covariances.shape[0] if failed == -1 else failed,
                           covariances.shape[0]):
            for i in range(d):
                for j in range(d):
                    factors[block, i, j] = 0.0
        return factors, failed
    for block in range(covariances.shape[0]):
        for j in range(covariances.shape[2]):
            value = covariances[block, 0, j]
            if not value > 0:
                return factors, block
            factors[block, 0, j] = 1.0 / math.sqrt(value)
    return factors, -1


@part
def all_finite(stats):  # pragma: no cover
    """Whether every value of a set of statistics is finite."""
    for array in (stats.weight.ravel(), stats.mean.ravel(), stats.scatter.ravel()):
        for value in array:
            if not np.isfinite(value):
                return False
    return True


@kernel
def parameters_blocks(stats, reg_covar, kind):  # pragma: no cover
    """The M-step and the precision factors of centred statistics (blocks form),
    as an :class:`~streamgmm.kernels.records.MStep`; on ``OVERFLOWED`` the
    mixture holds the statistics themselves."""
    if not all_finite(stats):
        return MStep(Mixture(stats.weight, stats.mean, stats.scatter, stats.scatter), OVERFLOWED)
    moments = m_step_blocks(stats, reg_covar, kind)
    factors, failed = precision_cholesky_blocks(moments.covariances, kind)
    return MStep(Mixture(moments.weights, moments.means, moments.covariances, factors), failed)
