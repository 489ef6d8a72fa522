"""The chunk kernel of the E-step, compiled by numba.

A chunk is processed block by block inside one compiled call that never holds
the GIL, so that Dask's threads run chunks truly in parallel (with NumPy calls
per block, two threads ran no faster than one: every small call takes the GIL).
The products are BLAS calls (``np.dot``); the loops between them run over
contiguous rows and vectorise. The formulas are those of :mod:`streamgmm.estep`,
which prepares every operand; this module only executes them.

Layout of a block of ``b`` rows, all arrays C-contiguous:

* ``columns`` (d + 1, b): ``[(x - c)^T; 1]``;
* ``products`` (m, b): the second-order terms the covariance type needs,
  ``PAIRWISE`` (upper triangle of ``(x - c)(x - c)^T``, row-major),
  ``SQUARES`` (``(x - c)^2``), ``NORM`` (``|x - c|^2``) or ``NONE`` (tied,
  which needs only ``sum_i (sum_k gamma_ik) (x - c)(x - c)^T``: one product of
  the columns with themselves, plus one per component summed about its own
  shift).

Compiled functions are cached on disk (``cache=True``), so only the first
process on a machine pays the few seconds of compilation.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .atomics import (
    compare_exchange,
    cycle_count,
    load_acquire,
    store_release,
    wait_at_least,
    wait_cycles,
)

LOG_2PI = math.log(2.0 * math.pi)

PAIRWISE, SQUARES, NORM, NONE = 0, 1, 2, 3
"""Kinds of product rows (``products_kind``); NONE (tied) has no product rows and
pools the scatter over components instead."""

LINEAR, WHITENED, TIED = 0, 1, 2
"""How log-densities come from a block (``density_mode``): one linear map of
``[products; columns]``; per-component whitened rows, squared and summed; or one
shared whitening followed by a linear map of ``[|w|^2; w; 1]``."""


@njit(nogil=True, cache=True)
def fill_columns(X, start, stop, shift, columns, rows=None):  # pragma: no cover
    """``columns[:, :b] = [(X[start:stop] - shift)^T; 1]``, subtracting in float64;
    with non-empty ``rows`` (int64), the rows ``X[rows[start:stop]]`` instead."""
    d = X.shape[1]
    if rows is None or rows.shape[0] == 0:
        for i in range(stop - start):
            for j in range(d):
                columns[j, i] = X[start + i, j] - shift[j]
            columns[d, i] = 1.0
    else:
        for i in range(stop - start):
            row = rows[start + i]
            for j in range(d):
                columns[j, i] = X[row, j] - shift[j]
            columns[d, i] = 1.0


@njit(nogil=True, cache=True)
def fill_products(columns, products_kind, products):  # pragma: no cover
    """The product rows (module docs) of ``columns`` (d + 1, b) into ``products``."""
    d = columns.shape[0] - 1
    b = columns.shape[1]
    if products.shape[0] == 0:
        return
    if products_kind == PAIRWISE:
        row = 0
        for first in range(d):
            for second in range(first, d):
                for i in range(b):
                    products[row, i] = columns[first, i] * columns[second, i]
                row += 1
    elif products_kind == SQUARES:
        for first in range(d):
            for i in range(b):
                products[first, i] = columns[first, i] * columns[first, i]
    elif products_kind == NORM:
        for i in range(b):
            products[0, i] = 0.0
        for first in range(d):
            for i in range(b):
                products[0, i] += columns[first, i] * columns[first, i]


@njit(nogil=True, cache=True)
def block_log_density(
    products, columns, density_mode, linear_products, linear_columns, whitening, reduce,
    constant,
):  # pragma: no cover
    """``log pi_k + log N(x_i | k)`` of a block, (K, b) in the dtype of ``columns``.

    LINEAR: ``linear_products @ products + linear_columns @ columns``.
    WHITENED: ``constant_k - 1/2 |w_k|^2`` with ``w = whitening @ columns``
    (K d, b). TIED: ``reduce @ [|w|^2; w; 1]`` with ``w = whitening @ columns``
    (d, b).
    """
    b = columns.shape[1]
    n_components = constant.shape[0]
    out = np.empty((n_components, b), dtype=columns.dtype)
    if density_mode == LINEAR:
        linear = np.dot(linear_products, products) + np.dot(linear_columns, columns)
        for k in range(n_components):
            for i in range(b):
                out[k, i] = linear[k, i]
    elif density_mode == WHITENED:
        whitened = np.dot(whitening, columns)
        d = whitened.shape[0] // n_components
        for k in range(n_components):
            for i in range(b):
                out[k, i] = 0.0
            for j in range(d):
                row = k * d + j
                for i in range(b):
                    out[k, i] += whitened[row, i] * whitened[row, i]
            for i in range(b):
                out[k, i] = constant[k] - 0.5 * out[k, i]
    else:
        whitened = np.dot(whitening, columns)
        d = whitened.shape[0]
        expanded = np.empty((d + 2, b), dtype=whitened.dtype)
        for i in range(b):
            expanded[0, i] = 0.0
            expanded[d + 1, i] = 1.0
        for j in range(d):
            for i in range(b):
                expanded[j + 1, i] = whitened[j, i]
                expanded[0, i] += whitened[j, i] * whitened[j, i]
        linear = np.dot(reduce, expanded)
        for k in range(n_components):
            for i in range(b):
                out[k, i] = linear[k, i]
    return out


LOG2_E = 1.4426950408889634
LN2_HIGH = 6.93147180369123816490e-01
LN2_LOW = 1.90821492927058770002e-10
EXP_SMALLEST = -708.0
"""Below this, ``exp_nonpositive`` returns 0 (``exp(-708)`` is 3e-308, the
smallest normal float64 is 2.2e-308)."""


@njit(nogil=True, cache=True)
def exp_nonpositive(values, out):  # pragma: no cover
    """``out = exp(values)`` for values <= 0 (flat arrays), within a few ulp of
    ``np.exp``, 0 below ``EXP_SMALLEST``.

    A loop that vectorises, unlike calls of ``math.exp``: ``x = k ln 2 + r`` with
    ``|r| <= ln 2 / 2`` (ln 2 in two parts, so ``r`` is exact to about 1e-20),
    ``exp(r)`` by its Taylor polynomial of degree 13 (remainder below 1e-17) and
    ``2^k`` written straight into the exponent bits.
    """
    n = values.size
    bits = np.empty(n, dtype=np.int64)
    for i in range(n):
        x = max(values[i], EXP_SMALLEST)
        k = np.floor(x * LOG2_E + 0.5)
        r = (x - k * LN2_HIGH) - k * LN2_LOW
        p = 1.0 / 6227020800.0
        p = p * r + 1.0 / 479001600.0
        p = p * r + 1.0 / 39916800.0
        p = p * r + 1.0 / 3628800.0
        p = p * r + 1.0 / 362880.0
        p = p * r + 1.0 / 40320.0
        p = p * r + 1.0 / 5040.0
        p = p * r + 1.0 / 720.0
        p = p * r + 1.0 / 120.0
        p = p * r + 1.0 / 24.0
        p = p * r + 1.0 / 6.0
        p = p * r + 0.5
        p = p * r + 1.0
        p = p * r + 1.0
        out[i] = p
        bits[i] = (np.int64(k) + 1023) << 52
    scale = bits.view(np.float64)
    for i in range(n):
        out[i] = out[i] * scale[i] if values[i] >= EXP_SMALLEST else 0.0


EXP_SMALLEST_FLOAT32 = np.float32(-87.0)
"""Below this, ``exp_nonpositive_float32`` returns 0 (``exp(-87)`` is 1.6e-38,
the smallest normal float32 is 1.2e-38)."""
_F32_LOG2_E = np.float32(LOG2_E)
_F32_LN2_HIGH = np.float32(0.693359375)
_F32_LN2_LOW = np.float32(-2.12194440e-4)
_F32_HALF = np.float32(0.5)
_F32_TAYLOR = np.array([1.0 / math.factorial(n) for n in range(8)], dtype=np.float32)


@njit(nogil=True, cache=True)
def exp_nonpositive_float32(values, out):  # pragma: no cover
    """:func:`exp_nonpositive` in float32 arithmetic (float32 ``values`` and
    ``out``): ln 2 in two parts whose high part has 9 significant bits, so
    ``k ln2_high`` is exact, and a Taylor polynomial of degree 7 (remainder below
    1e-8); 0 below ``EXP_SMALLEST_FLOAT32``."""
    n = values.size
    bits = np.empty(n, dtype=np.int32)
    c0, c1, c2, c3 = _F32_TAYLOR[0], _F32_TAYLOR[1], _F32_TAYLOR[2], _F32_TAYLOR[3]
    c4, c5, c6, c7 = _F32_TAYLOR[4], _F32_TAYLOR[5], _F32_TAYLOR[6], _F32_TAYLOR[7]
    for i in range(n):
        x = max(values[i], EXP_SMALLEST_FLOAT32)
        k = np.floor(x * _F32_LOG2_E + _F32_HALF)
        r = (x - k * _F32_LN2_HIGH) - k * _F32_LN2_LOW
        p = ((((((c7 * r + c6) * r + c5) * r + c4) * r + c3) * r + c2) * r + c1) * r + c0
        out[i] = p
        bits[i] = (np.int32(k) + np.int32(127)) << np.int32(23)
    scale = bits.view(np.float32)
    for i in range(n):
        out[i] = out[i] * scale[i] if values[i] >= EXP_SMALLEST_FLOAT32 else np.float32(0.0)


@njit(nogil=True, cache=True)
def normalise(log_weighted, resp_t, row_weights=None):  # pragma: no cover
    """Responsibilities ``resp_t`` (b, K) from log-densities (K, b) by
    log-sum-exp, in the dtype of ``log_weighted`` (float32 for float32 products);
    returns the summed log-likelihood of the block's rows, added in float64.

    With ``row_weights`` (b,) float64, row i's responsibilities and
    log-likelihood are multiplied by its weight (a row of weight w counts as w
    rows); without (None), numba compiles the unweighted loop alone."""
    n_components, b = log_weighted.shape
    dtype = log_weighted.dtype
    largest = log_weighted[0].copy()
    for k in range(1, n_components):
        for i in range(b):
            largest[i] = max(largest[i], log_weighted[k, i])
    shifted = np.empty((n_components, b), dtype=dtype)
    for k in range(n_components):
        for i in range(b):
            shifted[k, i] = log_weighted[k, i] - largest[i]
    exponentials = np.empty((n_components, b), dtype=dtype)
    if log_weighted.itemsize == 4:
        exp_nonpositive_float32(shifted.ravel(), exponentials.ravel())
    else:
        exp_nonpositive(shifted.ravel(), exponentials.ravel())
    total = np.zeros(b, dtype=dtype)
    for k in range(n_components):
        for i in range(b):
            total[i] += exponentials[k, i]
    total_log_likelihood = 0.0
    for i in range(b):
        inverse = 1 / total[i]
        row_log_likelihood = math.log(float(total[i])) + float(largest[i])
        if row_weights is not None:
            inverse *= row_weights[i]
            row_log_likelihood *= row_weights[i]
        for k in range(n_components):
            resp_t[i, k] = exponentials[k, i] * inverse
        total_log_likelihood += row_log_likelihood
    return total_log_likelihood


@njit(nogil=True, cache=True)
def accumulate(
    products, columns, resp_t, products_kind, moments_products, moments_columns,
    own_index, own_offsets, own_products, own_columns, own_full, pooled,
):  # pragma: no cover
    """Add a block's sums.

    About the common shift: ``products @ resp_t`` (m, K; skipped when there are
    no product rows) and ``columns @ resp_t`` (d + 1, K); for NONE (tied) the
    pooled ``sum_i (sum_k gamma_ik) columns_i columns_i^T`` into ``pooled``, the
    inner sum over the components not in ``own_index``.
    About its own shift (``own_offsets[k]`` from the common one), for each
    component k in ``own_index``: for PAIRWISE and NONE, ``sum_i gamma_ik s_i
    s_i^T`` of the shifted columns ``s = [x - mu_k; 1]``, one product holding
    scatter, first sums and weight, into ``own_full[k]`` (d + 1, d + 1) for
    PAIRWISE; for NONE its scatter is added to ``pooled`` and its first sums and
    weight go to column k of ``own_columns``; otherwise the product rows and
    columns of ``s`` into column k of ``own_products`` and ``own_columns``.
    """
    d = columns.shape[0] - 1
    b = columns.shape[1]
    if products_kind == NONE and own_index.size < resp_t.shape[1]:
        shared = np.ones(resp_t.shape[1], dtype=columns.dtype)
        shared[own_index] = 0.0
        weighted = np.empty_like(columns)
        for i in range(b):
            row_weight = 0.0
            for k in range(resp_t.shape[1]):
                row_weight += resp_t[i, k] * shared[k]
            for j in range(d + 1):
                weighted[j, i] = columns[j, i] * row_weight
        pooled += np.dot(weighted, columns.T)
    elif products.shape[0] > 0:
        moments_products += np.dot(products, resp_t)
    moments_columns += np.dot(columns, resp_t)
    if own_index.size == 0:
        return
    shifted = np.empty_like(columns)
    weighted = np.empty_like(columns)
    shifted_products = np.empty((own_products.shape[0], b), dtype=columns.dtype)
    weights = np.empty(b, dtype=columns.dtype)
    for position in range(own_index.size):
        k = own_index[position]
        for j in range(d):
            offset = own_offsets[k, j]
            for i in range(b):
                shifted[j, i] = columns[j, i] - offset
        for i in range(b):
            shifted[d, i] = 1.0
            weights[i] = resp_t[i, k]
        if products_kind == PAIRWISE or products_kind == NONE:
            for j in range(d + 1):
                for i in range(b):
                    weighted[j, i] = shifted[j, i] * weights[i]
            own = np.dot(weighted, shifted.T)
            if products_kind == PAIRWISE:
                own_full[k] += own
            else:
                pooled[:d, :d] += own[:d, :d]
                own_columns[:, k] += own[d]
        else:
            fill_products(shifted, products_kind, shifted_products)
            own_products[:, k] += np.dot(shifted_products, weights)
            own_columns[:, k] += np.dot(shifted, weights)


ALL_ROWS = np.empty(0, dtype=np.int64)
"""``rows`` of :func:`row_sums` and :func:`online_steps` for the rows of X in
their order: an empty array, so that one compiled version serves both cases."""


@njit(nogil=True, cache=True)
def block_weights(row_weights, rows, start, stop):  # pragma: no cover
    """The weights of the rows ``start:stop`` (of ``rows[start:stop]`` unless
    ``rows`` is empty), as :func:`fill_columns` reads the rows."""
    if rows.shape[0] == 0:
        return row_weights[start:stop]
    return row_weights[rows[start:stop]]


@njit(nogil=True, cache=True)
def chunk_sums(
    X, shift, step, products_kind, n_products, density_mode, linear_products, linear_columns,
    whitening, reduce, constant, own_index, own_offsets, row_weights=None,
):  # pragma: no cover
    """E-step and shifted sums of a whole chunk X (n, d), block by block, its rows
    weighted by ``row_weights`` (n,) if given: see :func:`row_sums`."""
    return row_sums(
        X, np.empty(0, dtype=np.int64), 0, X.shape[0], shift, step, products_kind, n_products,
        density_mode, linear_products, linear_columns, whitening, reduce, constant, own_index,
        own_offsets, row_weights,
    )


@njit(nogil=True, cache=True)
def zero_sums(n_products, products_kind, n_components, d):  # pragma: no cover
    """The sums of :func:`accumulate` before any row: ``(moments_products (m, K),
    moments_columns (d + 1, K), own_products, own_columns, own_full, pooled)``."""
    return (
        np.zeros((n_products, n_components)),
        np.zeros((d + 1, n_components)),
        np.zeros((0 if products_kind == PAIRWISE else n_products, n_components)),
        np.zeros((d + 1, n_components)),
        np.zeros((n_components if products_kind == PAIRWISE else 0, d + 1, d + 1)),
        np.zeros((d + 1, d + 1)),
    )


@njit(nogil=True, cache=True)
def row_sums(
    X, rows, begin, end, shift, step, products_kind, n_products, density_mode, linear_products,
    linear_columns, whitening, reduce, constant, own_index, own_offsets, row_weights=None,
):  # pragma: no cover
    """E-step and shifted sums of the rows ``begin:end`` of X (n, d) (of
    ``X[rows]`` unless ``rows`` is empty, ``ALL_ROWS``), ``step`` rows at a time;
    with ``row_weights`` (n,) float64, aligned with X, each row's
    responsibilities and log-likelihood count its weight times
    (:func:`normalise`), so every sum is weighted.

    Returns ``(moments_products (m, K), moments_columns (d + 1, K), own_products,
    own_columns, own_full, pooled (d + 1, d + 1), log_likelihood)`` (see
    :func:`accumulate`); the product dtype is that of
    ``linear_columns``; sums add up in float64.
    """
    d = X.shape[1]
    n_components = constant.shape[0]
    dtype = linear_columns.dtype
    moments_products, moments_columns, own_products, own_columns, own_full, pooled = zero_sums(
        n_products, products_kind, n_components, d
    )
    log_likelihood = 0.0
    for start in range(begin, end, step):
        stop = min(start + step, end)
        b = stop - start
        columns = np.empty((d + 1, b), dtype=dtype)
        products = np.empty((n_products, b), dtype=dtype)
        fill_columns(X, start, stop, shift, columns, rows)
        fill_products(columns, products_kind, products)
        log_weighted = block_log_density(
            products, columns, density_mode, linear_products, linear_columns, whitening,
            reduce, constant,
        )
        resp_t = np.empty((b, n_components), dtype=dtype)
        if row_weights is None:
            log_likelihood += normalise(log_weighted, resp_t)
        else:
            log_likelihood += normalise(
                log_weighted, resp_t, block_weights(row_weights, rows, start, stop)
            )
        accumulate(
            products, columns, resp_t, products_kind, moments_products,
            moments_columns, own_index, own_offsets, own_products, own_columns, own_full, pooled,
        )
    return (moments_products, moments_columns, own_products, own_columns, own_full, pooled,
            log_likelihood)


@njit(nogil=True, cache=True)
def responsibility_sums(
    X, shift, step, products_kind, n_products, resp, own_index, own_offsets,
):  # pragma: no cover
    """Shifted sums of rows X (n, d) under given responsibilities ``resp`` (n, K),
    in float64; returns what :func:`chunk_sums` returns, without the
    log-likelihood."""
    n, d = X.shape
    n_components = resp.shape[1]
    moments_products, moments_columns, own_products, own_columns, own_full, pooled = zero_sums(
        n_products, products_kind, n_components, d
    )
    for start in range(0, n, step):
        stop = min(start + step, n)
        b = stop - start
        columns = np.empty((d + 1, b))
        products = np.empty((n_products, b))
        fill_columns(X, start, stop, shift, columns)
        fill_products(columns, products_kind, products)
        resp_t = np.ascontiguousarray(resp[start:stop])
        accumulate(
            products, columns, resp_t, products_kind, moments_products, moments_columns,
            own_index, own_offsets, own_products, own_columns, own_full, pooled,
        )
    return moments_products, moments_columns, own_products, own_columns, own_full, pooled


@njit(nogil=True, cache=True)
def log_densities(
    X, shift, step, products_kind, n_products, density_mode, linear_products, linear_columns,
    whitening, reduce, constant,
):  # pragma: no cover
    """``log pi_k + log N(x_i | k)`` of rows X (n, d), (K, n) float64."""
    n, d = X.shape
    out = np.empty((constant.shape[0], n))
    dtype = linear_columns.dtype
    for start in range(0, n, step):
        stop = min(start + step, n)
        b = stop - start
        columns = np.empty((d + 1, b), dtype=dtype)
        products = np.empty((n_products, b), dtype=dtype)
        fill_columns(X, start, stop, shift, columns)
        fill_products(columns, products_kind, products)
        out[:, start:stop] = block_log_density(
            products, columns, density_mode, linear_products, linear_columns, whitening,
            reduce, constant,
        )
    return out


# ----------------------------------------------------------- statistics, M-step
# Statistics, covariances and precision factors travel in "blocks" form: a 3-D
# view whatever the covariance type, so that one compiled function serves all
# four (the type is ``kind``, the products kind of the type): full (K, d, d),
# tied (1, d, d), diag (K, 1, d), spherical (K, 1, 1).

WEIGHT_FLOOR = 10 * np.finfo(np.float64).eps
"""Added to every component's weight in the M-step so that an empty component
divides by a positive number (the same guard scikit-learn uses)."""


@njit(nogil=True, cache=True)
def outer_add(weights, vectors, kind, scatter):  # pragma: no cover
    """``scatter += sum_k w_k v_k v_k^T`` reduced as ``kind`` keeps it (blocks form):
    weights (K,), vectors (K, d)."""
    n_components, d = vectors.shape
    for k in range(n_components):
        weight = weights[k]
        if kind == PAIRWISE or kind == NONE:
            block = k if kind == PAIRWISE else 0
            for i in range(d):
                scaled = weight * vectors[k, i]
                for j in range(d):
                    scatter[block, i, j] += scaled * vectors[k, j]
        elif kind == SQUARES:
            for j in range(d):
                scatter[k, 0, j] += weight * (vectors[k, j] * vectors[k, j])
        else:
            norm = 0.0
            for j in range(d):
                norm += vectors[k, j] * vectors[k, j]
            scatter[k, 0, 0] += weight * norm


@njit(nogil=True, cache=True)
def merge_blocks(
    weight_a, mean_a, scatter_a, weight_b, mean_b, scatter_b, kind
):  # pragma: no cover
    """Statistics of the union of two disjoint sets of rows (Chan et al.):
    ``W = W_a + W_b``, ``m = m_a + (W_b / W)(m_b - m_a)``,
    ``M = M_a + M_b + (W_a W_b / W)(m_b - m_a)(m_b - m_a)^T``; a component with
    no weight on either side keeps the mean halfway. Returns (weight, mean, scatter)."""
    n_components, d = mean_a.shape
    weight = weight_a + weight_b
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
    scatter = scatter_a + scatter_b
    outer_add(cross, delta, kind, scatter)
    return weight, mean, scatter


@njit(nogil=True, cache=True)
def stepwise_blocks(
    weight_a, mean_a, scatter_a, weight_b, mean_b, scatter_b, step, kind
):  # pragma: no cover
    """``(1 - step) a + step b``: the merge of the two sets rescaled."""
    keep = 1.0 - step
    return merge_blocks(weight_a * keep, mean_a, scatter_a * keep, weight_b * step, mean_b,
                        scatter_b * step, kind)


@njit(nogil=True, cache=True)
def m_step_blocks(weight, mean, scatter, reg_covar, kind):  # pragma: no cover
    """Weights (K,), means (K, d) and covariances (blocks form) from centred
    statistics: ``pi_k = n_k / N``, ``Sigma_k = M_k / n_k`` plus ``reg_covar``
    on the diagonal; tied shares ``sum_k M_k / N``, spherical takes the mean
    variance over features. ``n_k`` gets ``WEIGHT_FLOOR`` first."""
    n_components, d = mean.shape
    floored = weight + WEIGHT_FLOOR
    total = 0.0
    for k in range(n_components):
        total += floored[k]
    weights = floored / total
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
    return weights, mean.copy(), covariances


@njit(nogil=True, cache=True)
def precision_cholesky_blocks(covariances, kind):  # pragma: no cover
    """Cholesky factors ``P`` of the precisions (``Sigma^-1 = P P^T``; blocks form):
    upper-triangular ``P = (L^-1)^T`` from ``Sigma = L L^T`` (full, tied), inverse
    square roots (diag, spherical). Returns ``(P, failed)`` with ``failed`` the
    first component whose covariance is not positive definite, or -1.

    ``L`` and ``L^-1`` are formed column by column, each column updating the rows
    below it (inner loops along rows, which vectorise): the same operations in
    the same order as the textbook inner-product form, twice as fast at d = 16.
    """
    factors = np.zeros_like(covariances)
    if kind == PAIRWISE or kind == NONE:
        d = covariances.shape[1]
        lower = np.empty((d, d))
        inverse = np.empty((d, d))
        for block in range(covariances.shape[0]):
            lower[:] = covariances[block]
            for j in range(d):
                pivot = lower[j, j]
                if not (pivot > 0 and pivot < np.inf):
                    return factors, block
                root = math.sqrt(pivot)
                lower[j, j] = root
                for i in range(j + 1, d):
                    lower[i, j] = lower[i, j] / root
                for i in range(j + 1, d):
                    scale = lower[i, j]
                    for column in range(j + 1, i + 1):
                        lower[i, column] -= scale * lower[column, j]
            inverse[:] = 0.0
            for i in range(d):
                inverse[i, i] = 1.0
            for j in range(d):
                diagonal = lower[j, j]
                for column in range(j + 1):
                    inverse[j, column] = inverse[j, column] / diagonal
                for i in range(j + 1, d):
                    scale = lower[i, j]
                    for column in range(j + 1):
                        inverse[i, column] -= scale * inverse[j, column]
            factors[block] = inverse.T
        return factors, -1
    for block in range(covariances.shape[0]):
        for j in range(covariances.shape[2]):
            value = covariances[block, 0, j]
            if not value > 0:
                return factors, block
            factors[block, 0, j] = 1.0 / math.sqrt(value)
    return factors, -1


@njit(nogil=True, cache=True)
def all_finite(weight, mean, scatter):  # pragma: no cover
    """Whether every value of a set of statistics is finite."""
    for array in (weight.ravel(), mean.ravel(), scatter.ravel()):
        for value in array:
            if not np.isfinite(value):
                return False
    return True


OVERFLOWED = -2
"""``failed`` of :func:`parameters_blocks` when the statistics were not finite."""


@njit(nogil=True, cache=True)
def parameters_blocks(weight, mean, scatter, reg_covar, kind):  # pragma: no cover
    """The M-step and the precision factors of centred statistics (blocks form).

    Returns ``(weights, means, covariances, factors, failed)``: ``failed`` is -1,
    the first component whose covariance is not positive definite, or
    ``OVERFLOWED`` when the statistics hold infinity or NaN.
    """
    if not all_finite(weight, mean, scatter):
        return weight, mean, scatter, scatter, OVERFLOWED
    weights, means, covariances = m_step_blocks(weight, mean, scatter, reg_covar, kind)
    factors, failed = precision_cholesky_blocks(covariances, kind)
    return weights, means, covariances, factors, failed


# ------------------------------------------------- E-step operands, centring
@njit(nogil=True, cache=True)
def expanded_distance(centres, scale, constant, out):  # pragma: no cover
    """``out`` (K, d + 2) turns ``[|z|^2; z; 1]`` into
    ``constant_k - scale_k / 2 |z - centre_k|^2``."""
    n_components, d = centres.shape
    for k in range(n_components):
        out[k, 0] = -0.5 * scale[k]
        norm = 0.0
        for j in range(d):
            out[k, 1 + j] = centres[k, j] * scale[k]
            norm += centres[k, j] * centres[k, j]
        out[k, d + 1] = constant[k] - 0.5 * scale[k] * norm


@njit(nogil=True, cache=True)
def n_product_rows(kind, d, shared_products_max_features):  # pragma: no cover
    """``m``, the product rows of a block: ``d (d + 1) / 2`` (full, none beyond
    ``shared_products_max_features`` features), ``d`` (diag), 1 (spherical) or
    0 (tied)."""
    if kind == PAIRWISE:
        return d * (d + 1) // 2 if d <= shared_products_max_features else 0
    return d if kind == SQUARES else (1 if kind == NORM else 0)


@njit(nogil=True, cache=True)
def density_operands(
    weights, means, factors, variances, kind, expansion_limit, shared_shift_limit,
    shared_products_max_features,
):  # pragma: no cover
    """The chunk kernel's operands for one set of parameters (float64).

    ``factors`` are the precision factors in blocks form, ``variances`` (K, d)
    the diagonals of the covariances. Returns ``(shift, density_mode, linear
    (K, m + d + 1), whitening, reduce, constant, own_shift, n_products)``; see
    :class:`streamgmm.estep.DensityFactors` for their meaning and the module docs
    of :mod:`streamgmm.estep` for the choices.
    """
    n_components, d = means.shape
    shift = np.zeros(d)
    for k in range(n_components):
        for j in range(d):
            shift[j] += means[k, j]
    shift /= n_components
    centred = means - shift
    constant = np.empty(n_components)
    for k in range(n_components):
        block = 0 if kind == NONE else k
        log_det = 0.0
        if kind == PAIRWISE or kind == NONE:
            for j in range(d):
                log_det += math.log(factors[block, j, j])
        elif kind == SQUARES:
            for j in range(d):
                log_det += math.log(factors[k, 0, j])
        else:
            log_det = d * math.log(factors[k, 0, 0])
        constant[k] = math.log(weights[k]) + log_det - 0.5 * d * LOG_2PI
    own_shift = np.zeros(n_components, dtype=np.bool_)
    for k in range(n_components):
        for j in range(d):
            if not centred[k, j] * centred[k, j] / variances[k, j] <= shared_shift_limit:
                own_shift[k] = True
    m = n_product_rows(kind, d, shared_products_max_features)
    mode = LINEAR
    linear = np.zeros((n_components, m + d + 1))
    whitening = np.zeros((0, d + 1))
    reduce = np.zeros((0, d + 2))
    if kind == PAIRWISE:
        precisions = np.empty((n_components, d, d))
        for k in range(n_components):
            for i in range(d):
                for j in range(i, d):
                    total = 0.0
                    for p in range(d):
                        total += factors[k, i, p] * factors[k, j, p]
                    precisions[k, i, j] = total
                    precisions[k, j, i] = total
        if m == 0:
            own_shift[:] = True
        error_factor = 0.0
        spread = np.empty(d)
        for k in range(n_components):
            for j in range(d):
                spread[j] = abs(centred[k, j]) + math.sqrt(variances[k, j])
            size = 0.0
            for i in range(d):
                for j in range(d):
                    size += spread[i] * abs(precisions[k, i, j]) * spread[j]
            error_factor = max(error_factor, size)
        if m == 0 or error_factor > expansion_limit:
            mode = WHITENED
            whitening = np.empty((n_components * d, d + 1))
            for k in range(n_components):
                for i in range(d):
                    row = k * d + i
                    offset = 0.0
                    for j in range(d):
                        whitening[row, j] = factors[k, j, i]
                        offset += centred[k, j] * factors[k, j, i]
                    whitening[row, d] = -offset
        else:
            row = 0
            for first in range(d):
                for second in range(first, d):
                    weight = -0.5 if first == second else -1.0
                    for k in range(n_components):
                        linear[k, row] = precisions[k, first, second] * weight
                    row += 1
            for k in range(n_components):
                quadratic = 0.0
                for i in range(d):
                    weighted_centre = 0.0
                    for j in range(d):
                        weighted_centre += precisions[k, i, j] * centred[k, j]
                    linear[k, m + i] = weighted_centre
                    quadratic += weighted_centre * centred[k, i]
                linear[k, m + d] = constant[k] - 0.5 * quadratic
    elif kind == NONE:
        mode = TIED
        whitening = np.zeros((d, d + 1))
        for i in range(d):
            for j in range(d):
                whitening[i, j] = factors[0, j, i]
        reduce = np.empty((n_components, d + 2))
        expanded_distance(np.dot(centred, factors[0]), np.ones(n_components), constant, reduce)
    elif kind == SQUARES:
        for k in range(n_components):
            quadratic = 0.0
            for j in range(d):
                squared = factors[k, 0, j] * factors[k, 0, j]
                linear[k, j] = -0.5 * squared
                linear[k, d + j] = centred[k, j] * squared
                quadratic += centred[k, j] * centred[k, j] * squared
            linear[k, 2 * d] = constant[k] - 0.5 * quadratic
    else:
        squared = np.empty(n_components)
        for k in range(n_components):
            squared[k] = factors[k, 0, 0] * factors[k, 0, 0]
        expanded_distance(centred, squared, constant, linear)
    return shift, mode, linear, whitening, reduce, constant, own_shift, m


@njit(nogil=True, cache=True)
def centred_statistics(
    products, columns, own_products, own_columns, own_full, pooled, kind, common, own_centres,
    own_shift,
):  # pragma: no cover
    """Centred statistics (weight (K,), mean (K, d), scatter in blocks form) from
    the sums of :func:`accumulate`: sums about ``common`` (d,), and about
    ``own_centres[k]`` for the components in ``own_shift`` (K,) bool, moved to each
    component's weighted mean: ``mean = centre + first / n``,
    ``scatter = second - n (first / n)(first / n)^T``."""
    d = columns.shape[0] - 1
    n_components = columns.shape[1]
    weight = np.empty(n_components)
    first = np.empty((n_components, d))
    if kind == PAIRWISE:
        second = np.zeros((n_components, d, d))
    elif kind == NONE:
        second = np.zeros((1, d, d))
        second[0] = pooled[:d, :d]
    elif kind == SQUARES:
        second = np.zeros((n_components, 1, d))
    else:
        second = np.zeros((n_components, 1, 1))
    for k in range(n_components):
        own = own_shift[k]
        if kind == PAIRWISE and own:
            weight[k] = own_full[k, d, d]
            for i in range(d):
                first[k, i] = own_full[k, d, i]
                for j in range(d):
                    second[k, i, j] = own_full[k, i, j]
            continue
        sums = own_columns if own else columns
        weight[k] = sums[d, k]
        for i in range(d):
            first[k, i] = sums[i, k]
        if kind == PAIRWISE:
            row = 0
            for i in range(d):
                for j in range(i, d):
                    second[k, i, j] = products[row, k]
                    second[k, j, i] = products[row, k]
                    row += 1
        elif kind == SQUARES or kind == NORM:
            squares = own_products if own else products
            for j in range(second.shape[2]):
                second[k, 0, j] = squares[j, k]
    mean = np.empty((n_components, d))
    for k in range(n_components):
        safe = weight[k] if weight[k] > 0 else 1.0
        for j in range(d):
            first[k, j] = first[k, j] / safe
            mean[k, j] = (own_centres[k, j] if own_shift[k] else common[j]) + first[k, j]
    outer_add(-weight, first, kind, second)
    return weight, mean, second


# ------------------------------------------------------------------ stepwise EM
STEPS_DONE, STEPS_OVERFLOWED, STEPS_NOT_POSITIVE_DEFINITE, STEPS_UNUSABLE_ROWS = 0, 1, 2, 3
"""``status`` of :func:`online_steps`."""


@njit(nogil=True, cache=True)
def variances_of(covariances, kind, n_components, d):  # pragma: no cover
    """The diagonals (K, d) of covariances in blocks form."""
    variances = np.empty((n_components, d))
    for k in range(n_components):
        for j in range(d):
            if kind == PAIRWISE:
                variances[k, j] = covariances[k, j, j]
            elif kind == NONE:
                variances[k, j] = covariances[0, j, j]
            elif kind == SQUARES:
                variances[k, j] = covariances[k, 0, j]
            else:
                variances[k, j] = covariances[k, 0, 0]
    return variances


@njit(nogil=True, cache=True)
def step_size(step, learning_decay, learning_offset, step_floor):  # pragma: no cover
    """``rho_t``: 1 for ``t <= 1``, else ``max((t + t0) ** -alpha, floor)``."""
    if step <= 1:
        return 1.0
    return max((step + learning_offset) ** -learning_decay, step_floor)


@njit(nogil=True, cache=True)
def as_products_dtype(array, probe):  # pragma: no cover
    """A C-contiguous copy of ``array`` in the dtype of ``probe``."""
    out = np.empty(array.shape, dtype=probe.dtype)
    out[:] = array
    return out


@njit(nogil=True, cache=True)
def burn_in_mass(kind, d):  # pragma: no cover
    """Rows of responsibility mass every component needs before the burn-in ends:
    ``d + 1`` (full, tied: a scatter of full rank), else 2."""
    return d + 1 if kind == PAIRWISE or kind == NONE else 2


@njit(nogil=True, cache=True)
def burn_in_complete(weight, n_rows, needed, cap):  # pragma: no cover
    """Whether burn-in statistics (per-row weights (K,)) over ``n_rows`` rows give
    every component a mass of ``needed`` rows, or ``n_rows`` reached ``cap``."""
    if n_rows >= cap:
        return True
    for k in range(weight.shape[0]):
        if not weight[k] * n_rows >= needed:
            return False
    return True


# --------------------------------------------- a mini-batch on two threads
# A mini-batch's E-step sums are those of its two halves added, first + second.
# The halves are fixed by the batch's rows alone, so a result does not depend
# on which thread computed which half, nor on whether a second thread ran.
# The thread running online_steps posts the second half (the parameters and the
# rows, in one of two buffers, alternately) and computes the first; whichever
# thread claims the posted half first (an atomic compare-exchange on
# SYNC_CLAIMED) computes it. If the helper claimed it but has not finished by the
# time half as long again has passed (it may have lost its core to another
# process), the posting thread computes the half itself and moves on; a buffer
# is posted again only once the helper is done with it. A helper that has not
# started, or is slow, therefore never holds the fit up for long. Both threads
# wait by spinning with the processor's pause hint (atomics.spin_pause), the
# helper yielding its core after a few microseconds.

SPLIT_MIN_ROWS = 128
"""Mini-batches with fewer rows are not split."""

SYNC_POSTED, SYNC_CLAIMED, SYNC_DONE, SYNC_STOP, SYNC_HELPED, SYNC_RANGES = range(6)
SYNC_SLOTS = SYNC_RANGES + 4
"""Slots of the int64 ``sync`` array: the generation (count) of the last posted
half, of the last claimed one and of the last one the helper finished; the stop
flag; how many halves the helper computed (for benchmarks); and the rows
``begin, end`` of the half posted in buffer 0, then in buffer 1."""


@njit(nogil=True, cache=True)
def split_row(begin, end):  # pragma: no cover
    """Where the batch ``begin:end`` is split (``end``: not split)."""
    size = end - begin
    return begin + size // 2 if size >= SPLIT_MIN_ROWS else end


@njit(nogil=True, cache=True)
def batch_operands(
    weights, means, factors, covariances, kind, probe, expansion_limit, shared_shift_limit,
    shared_products_max_features,
):  # pragma: no cover
    """The E-step operands of one set of parameters (blocks form), products in the
    dtype of ``probe``: ``(shift, mode, m, linear_products, linear_columns,
    whitening, reduce, constant, own_shift, own_index, own_offsets)``."""
    n_components, d = means.shape
    shift, mode, linear, whitening, reduce, constant, own_shift, m = density_operands(
        weights, means, factors, variances_of(covariances, kind, n_components, d), kind,
        expansion_limit, shared_shift_limit, shared_products_max_features,
    )
    return (shift, mode, m, as_products_dtype(linear[:, :m], probe),
            as_products_dtype(linear[:, m:], probe), as_products_dtype(whitening, probe),
            as_products_dtype(reduce, probe), constant, own_shift, np.flatnonzero(own_shift),
            means - shift)


@njit(nogil=True, cache=True)
def operand_sums(X, rows, begin, end, block, kind, operands, row_weights=None):  # pragma: no cover
    """:func:`row_sums` of the rows ``begin:end`` under :func:`batch_operands`
    (weighted by ``row_weights`` if given)."""
    return row_sums(
        X, rows, begin, end, operands[0], block, kind, operands[2], operands[1], operands[3],
        operands[4], operands[5], operands[6], operands[7], operands[9], operands[10],
        row_weights,
    )


@njit(nogil=True, cache=True)
def rows_usable(X, rows, begin, end, limit):  # pragma: no cover
    """Whether every value of the rows ``begin:end`` of X (of ``X[rows]`` unless
    ``rows`` is empty) is at most ``limit`` in magnitude (NaN is not)."""
    d = X.shape[1]
    for i in range(begin, end):
        row = i if rows.shape[0] == 0 else rows[i]
        usable = True
        for j in range(d):
            usable &= abs(X[row, j]) <= limit
        if not usable:
            return False
    return True


@njit(nogil=True, cache=True)
def half_sums(
    X, rows, begin, end, block, kind, operands, limit, row_weights=None
):  # pragma: no cover
    """``(sums, True)``: :func:`operand_sums` of the rows ``begin:end`` if all are
    usable (:func:`rows_usable`), else ``(zero sums, False)``."""
    if rows_usable(X, rows, begin, end, limit):
        return operand_sums(X, rows, begin, end, block, kind, operands, row_weights), True
    return operand_sums(X, rows, begin, begin, block, kind, operands, row_weights), False


@njit(nogil=True, cache=True)
def batch_weight(row_weights, rows, begin, end):  # pragma: no cover
    """What the rows ``begin:end`` count for: their number (an int) without
    ``row_weights``, else the sum of their weights (:func:`block_weights`)."""
    if row_weights is None:
        return end - begin
    return block_weights(row_weights, rows, begin, end).sum()


@njit(nogil=True, cache=True)
def add_sums(first, second):  # pragma: no cover
    """The sums (and log-likelihood) of :func:`row_sums` over two sets of rows."""
    return (first[0] + second[0], first[1] + second[1], first[2] + second[2],
            first[3] + second[3], first[4] + second[4], first[5] + second[5],
            first[6] + second[6])


@njit(nogil=True, cache=True)
def helper_buffer(
    weights, means, factors, covariances, kind, shared_products_max_features
):  # pragma: no cover
    """What a posted half travels in: the parameters (shapes of the arguments)
    and the sums of :func:`row_sums`, with their log-likelihood and whether the
    rows were usable (1.0) in ``[10]``."""
    n_components, d = means.shape
    sums = zero_sums(n_product_rows(kind, d, shared_products_max_features), kind,
                     n_components, d)
    return (weights.copy(), means.copy(), factors.copy(), covariances.copy(), sums[0],
            sums[1], sums[2], sums[3], sums[4], sums[5], np.zeros(2))


@njit(nogil=True, cache=True)
def helper_workspace(
    weights, means, factors, covariances, kind, shared_products_max_features
):  # pragma: no cover
    """The two buffers (:func:`helper_buffer`) halves are posted in, alternately."""
    return (
        helper_buffer(weights, means, factors, covariances, kind, shared_products_max_features),
        helper_buffer(weights, means, factors, covariances, kind, shared_products_max_features),
    )


@njit(nogil=True, cache=True)
def post_half(
    sync, buffer, generation, begin, end, weights, means, factors, covariances
):  # pragma: no cover
    """Offer the rows ``begin:end`` under these parameters as half ``generation``,
    in the buffer of its parity."""
    buffer[0][:] = weights
    buffer[1][:] = means
    buffer[2][:] = factors
    buffer[3][:] = covariances
    sync[SYNC_RANGES + 2 * (generation % 2)] = begin
    sync[SYNC_RANGES + 2 * (generation % 2) + 1] = end
    store_release(sync, SYNC_POSTED, generation)


@njit(nogil=True, cache=True)
def posted_sums(buffer):  # pragma: no cover
    """What the helper left in ``buffer``: as :func:`half_sums` returns it."""
    return (buffer[4], buffer[5], buffer[6], buffer[7], buffer[8], buffer[9],
            buffer[10][0]), buffer[10][1] != 0.0


@njit(nogil=True, cache=True)
def help_online_steps(
    X, rows, block, kind, probe, limit, expansion_limit, shared_shift_limit,
    shared_products_max_features, sync, workspace, row_weights=None,
):  # pragma: no cover
    """The helper thread of :func:`online_steps` (same ``X``, ``rows``,
    ``row_weights`` and settings): claim each posted half, compute its sums
    into ``workspace``, until the stop flag is set."""
    seen = 0
    while wait_at_least(sync, SYNC_POSTED, seen + 1, SYNC_STOP):
        seen = load_acquire(sync, SYNC_POSTED)
        if not compare_exchange(sync, SYNC_CLAIMED, seen - 1, seen):
            continue
        buffer = workspace[seen % 2]
        operands = batch_operands(
            buffer[0], buffer[1], buffer[2], buffer[3], kind, probe, expansion_limit,
            shared_shift_limit, shared_products_max_features,
        )
        ranges = SYNC_RANGES + 2 * (seen % 2)
        sums, usable = half_sums(
            X, rows, sync[ranges], sync[ranges + 1], block, kind, operands, limit, row_weights
        )
        buffer[4][:] = sums[0]
        buffer[5][:] = sums[1]
        buffer[6][:] = sums[2]
        buffer[7][:] = sums[3]
        buffer[8][:] = sums[4]
        buffer[9][:] = sums[5]
        buffer[10][0] = sums[6]
        buffer[10][1] = 1.0 if usable else 0.0
        sync[SYNC_HELPED] += 1
        store_release(sync, SYNC_DONE, seen)


@njit(nogil=True, cache=True)
def online_steps(
    X, rows, batch_size, kind, block, probe, limit, reg_covar, learning_decay, learning_offset,
    step_floor, averaging, burn_in_cap, expansion_limit, shared_shift_limit,
    shared_products_max_features,
    weights, means, factors, covariances,
    running_weight, running_mean, running_scatter, running_totals, n_steps, n_seen,
    averaged_weight, averaged_mean, averaged_scatter, averaged_totals, n_averaged,
    paired, sync, workspace, row_weights=None,
):  # pragma: no cover
    """Stepwise EM over the rows of X (n, d) (or ``X[rows]`` unless ``rows`` is
    empty), ``batch_size`` rows per step (the last batch may be shorter); see
    :mod:`streamgmm.online` for the update, the burn-in and the averaging.
    With ``row_weights`` (n,) float64, aligned with X, a batch counts the sum
    of its rows' weights wherever it would count its rows (its statistics are
    weighted and divided by that sum; ``n_seen`` and the burn-in add weights),
    and a batch of weight 0 takes no step.

    The E-step sums of a batch are those of its two halves (:func:`split_row`)
    added; with ``paired``, the second half is offered to a thread running
    :func:`help_online_steps` on the same ``sync`` and ``workspace``
    (:func:`helper_workspace`), and computed here if that thread has not
    claimed it by the time the first half is done, or has not finished it half
    as long again later.

    The parameters (``weights``, ``means``, precision ``factors`` and
    ``covariances``, blocks form) are those of the next E-step; the running and
    averaged statistics are (weight, mean, scatter, [log_likelihood, n_samples]);
    ``probe`` is an empty array of the product dtype. A batch with a value above
    ``limit`` in magnitude, or NaN, stops the steps (``STEPS_UNUSABLE_ROWS``).
    Nothing passed in is modified. Returns ``(status, failed_batch,
    failed_component, batch_log_likelihoods, parameters (4), running statistics
    (4), n_steps, n_seen, averaged statistics (4), n_averaged)``; on a
    ``status`` other than ``STEPS_DONE`` only the first three mean anything.
    """
    n_rows = X.shape[0] if rows.shape[0] == 0 else rows.shape[0]
    n_components, d = means.shape
    needed = burn_in_mass(kind, d)
    n_batches = (n_rows + batch_size - 1) // batch_size
    batch_log_likelihoods = np.zeros(n_batches)
    running_totals = running_totals.copy()
    averaged_totals = averaged_totals.copy()
    status = STEPS_DONE
    generation = 0
    helper_holds = np.zeros(2, dtype=np.int64)
    for batch in range(n_batches):
        begin = batch * batch_size
        end = min(begin + batch_size, n_rows)
        split = split_row(begin, end)
        parity = (generation + 1) % 2
        posted = (paired and split < end and (helper_holds[parity] == 0 or load_acquire(
            sync, SYNC_DONE) >= helper_holds[parity]))
        if posted:
            generation += 1
            helper_holds[parity] = 0
            post_half(sync, workspace[parity], generation, split, end, weights, means, factors,
                      covariances)
        started = cycle_count()
        operands = batch_operands(
            weights, means, factors, covariances, kind, probe, expansion_limit,
            shared_shift_limit, shared_products_max_features,
        )
        sums, usable = half_sums(X, rows, begin, split, block, kind, operands, limit,
                                 row_weights)
        if split < end:
            helped = False
            if posted and not compare_exchange(sync, SYNC_CLAIMED, generation - 1, generation):
                helper_holds[parity] = generation
                helped = wait_cycles(sync, SYNC_DONE, generation, (cycle_count() - started) // 2)
            if helped:
                second, second_usable = posted_sums(workspace[parity])
            else:
                second, second_usable = half_sums(X, rows, split, end, block, kind, operands,
                                                  limit, row_weights)
            sums = add_sums(sums, second)
            usable = usable and second_usable
        if not usable:
            return (STEPS_UNUSABLE_ROWS, batch, -1, batch_log_likelihoods, weights, means,
                    covariances, factors, running_weight, running_mean, running_scatter,
                    running_totals, n_steps, n_seen, averaged_weight, averaged_mean,
                    averaged_scatter, averaged_totals, n_averaged)
        shift, own_shift = operands[0], operands[8]
        weight, mean, scatter = centred_statistics(
            sums[0], sums[1], sums[2], sums[3], sums[4], sums[5], kind, shift, means, own_shift,
        )
        batch_log_likelihoods[batch] = sums[6]
        size = batch_weight(row_weights, rows, begin, end)
        if size == 0:
            continue
        factor = 1.0 / size
        weight = weight * factor
        scatter = scatter * factor
        batch_totals = np.array([sums[6] * factor, size * factor])
        seen = n_seen + size
        if n_steps == 0:
            rho = size / seen
        else:
            rho = step_size(n_steps + 1, learning_decay, learning_offset, step_floor)
        running_weight, running_mean, running_scatter = stepwise_blocks(
            running_weight, running_mean, running_scatter, weight, mean, scatter, rho, kind
        )
        running_totals = running_totals * (1.0 - rho) + batch_totals * rho
        n_seen = seen
        if n_steps == 0 and not burn_in_complete(running_weight, seen, needed, burn_in_cap):
            continue
        n_steps += 1
        weights, means, covariances, factors, failed = parameters_blocks(
            running_weight, running_mean, running_scatter, reg_covar, kind
        )
        if failed != -1:
            status = STEPS_OVERFLOWED if failed == OVERFLOWED else STEPS_NOT_POSITIVE_DEFINITE
            return (status, batch, failed, batch_log_likelihoods, weights, means, covariances,
                    factors, running_weight, running_mean, running_scatter, running_totals,
                    n_steps, n_seen, averaged_weight, averaged_mean, averaged_scatter,
                    averaged_totals, n_averaged)
        if averaging:
            n_averaged += 1
            if n_averaged == 1:
                averaged_weight = running_weight.copy()
                averaged_mean = running_mean.copy()
                averaged_scatter = running_scatter.copy()
                averaged_totals = running_totals.copy()
            else:
                share = 1.0 / n_averaged
                averaged_weight, averaged_mean, averaged_scatter = stepwise_blocks(
                    averaged_weight, averaged_mean, averaged_scatter, running_weight,
                    running_mean, running_scatter, share, kind,
                )
                averaged_totals = averaged_totals * (1.0 - share) + running_totals * share
    return (status, -1, -1, batch_log_likelihoods, weights, means, covariances, factors,
            running_weight, running_mean, running_scatter, running_totals, n_steps, n_seen,
            averaged_weight, averaged_mean, averaged_scatter, averaged_totals, n_averaged)

