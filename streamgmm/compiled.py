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
  the columns with themselves).

Compiled functions are cached on disk (``cache=True``), so only the first
process on a machine pays the few seconds of compilation.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

PAIRWISE, SQUARES, NORM, NONE = 0, 1, 2, 3
"""Kinds of product rows (``products_kind``); NONE (tied) has no product rows and
pools the scatter over components instead."""

LINEAR, WHITENED, TIED = 0, 1, 2
"""How log-densities come from a block (``density_mode``): one linear map of
``[products; columns]``; per-component whitened rows, squared and summed; or one
shared whitening followed by a linear map of ``[|w|^2; w; 1]``."""


@njit(nogil=True, cache=True)
def fill_columns(X, start, stop, shift, columns):  # pragma: no cover
    """``columns[:, :b] = [(X[start:stop] - shift)^T; 1]``, subtracting in float64."""
    d = X.shape[1]
    for i in range(stop - start):
        for j in range(d):
            columns[j, i] = X[start + i, j] - shift[j]
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
def normalise(log_weighted, resp_t):  # pragma: no cover
    """Responsibilities ``resp_t`` (b, K) from log-densities (K, b) by
    log-sum-exp, in the dtype of ``log_weighted`` (float32 for float32 products);
    returns the summed log-likelihood of the block's rows, added in float64."""
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
        for k in range(n_components):
            resp_t[i, k] = exponentials[k, i] * inverse
        total_log_likelihood += math.log(float(total[i])) + float(largest[i])
    return total_log_likelihood


@njit(nogil=True, cache=True)
def accumulate(
    products, columns, resp_t, products_kind, moments_products, moments_columns,
    own_index, own_offsets, own_products, own_columns, own_full, pooled,
):  # pragma: no cover
    """Add a block's sums.

    About the common shift: ``products @ resp_t`` (m, K; skipped when there are
    no product rows) and ``columns @ resp_t`` (d + 1, K); for NONE (tied) the
    pooled ``sum_i (sum_k gamma_ik) columns_i columns_i^T`` into ``pooled``.
    About its own shift (``own_offsets[k]`` from the common one), for each
    component k in ``own_index``: for PAIRWISE, ``sum_i gamma_ik s_i s_i^T`` of
    the shifted columns ``s = [x - mu_k; 1]`` into ``own_full[k]`` (d + 1, d + 1),
    one product holding scatter, first sums and weight; otherwise the product
    rows and columns of ``s`` into column k of ``own_products`` and ``own_columns``.
    """
    d = columns.shape[0] - 1
    b = columns.shape[1]
    if products_kind == NONE:
        weighted = np.empty_like(columns)
        for i in range(b):
            row_weight = 0.0
            for k in range(resp_t.shape[1]):
                row_weight += resp_t[i, k]
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
        if products_kind == PAIRWISE:
            for j in range(d + 1):
                for i in range(b):
                    weighted[j, i] = shifted[j, i] * weights[i]
            own_full[k] += np.dot(weighted, shifted.T)
        else:
            fill_products(shifted, products_kind, shifted_products)
            own_products[:, k] += np.dot(shifted_products, weights)
            own_columns[:, k] += np.dot(shifted, weights)


@njit(nogil=True, cache=True)
def chunk_sums(
    X, shift, step, products_kind, n_products, density_mode, linear_products, linear_columns,
    whitening, reduce, constant, own_index, own_offsets,
):  # pragma: no cover
    """E-step and shifted sums of a whole chunk X (n, d), block by block.

    Returns ``(moments_products (m, K), moments_columns (d + 1, K), own_products,
    own_columns, own_full, pooled (d + 1, d + 1), log_likelihood)`` (see
    :func:`accumulate`); the product dtype is that of
    ``linear_columns``; sums add up in float64.
    """
    n, d = X.shape
    n_components = constant.shape[0]
    dtype = linear_columns.dtype
    moments_products = np.zeros((n_products, n_components))
    moments_columns = np.zeros((d + 1, n_components))
    own_products = np.zeros((0 if products_kind == PAIRWISE else n_products, n_components))
    own_columns = np.zeros((d + 1, n_components))
    own_full = np.zeros((n_components if products_kind == PAIRWISE else 0, d + 1, d + 1))
    pooled = np.zeros((d + 1, d + 1))
    log_likelihood = 0.0
    for start in range(0, n, step):
        stop = min(start + step, n)
        b = stop - start
        columns = np.empty((d + 1, b), dtype=dtype)
        products = np.empty((n_products, b), dtype=dtype)
        fill_columns(X, start, stop, shift, columns)
        fill_products(columns, products_kind, products)
        log_weighted = block_log_density(
            products, columns, density_mode, linear_products, linear_columns, whitening,
            reduce, constant,
        )
        resp_t = np.empty((b, n_components), dtype=dtype)
        log_likelihood += normalise(log_weighted, resp_t)
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
    moments_products = np.zeros((n_products, n_components))
    moments_columns = np.zeros((d + 1, n_components))
    own_products = np.zeros((0 if products_kind == PAIRWISE else n_products, n_components))
    own_columns = np.zeros((d + 1, n_components))
    own_full = np.zeros((n_components if products_kind == PAIRWISE else 0, d + 1, d + 1))
    pooled = np.zeros((d + 1, d + 1))
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
