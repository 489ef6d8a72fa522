"""Small compiled helpers: an exponential that vectorises, log-sum-exp into
responsibilities, and element-wise copies and sums without NumPy's array
expressions (each of which numba compiles anew, with its error messages, at
every place it is written).

Compiled functions are cached on disk (``cache=True``).
"""

from __future__ import annotations

import math

import numpy as np

from .jit import part, shared

LOG2_E = 1.4426950408889634
LN2_HIGH = 6.93147180369123816490e-01
LN2_LOW = 1.90821492927058770002e-10
EXP_SMALLEST = -708.0
"""Below this, :func:`exp_nonpositive` returns 0 (``exp(-708)`` is 3e-308, the
smallest normal float64 is 2.2e-308)."""

EXP_SMALLEST_FLOAT32 = np.float32(-87.0)
"""Below this, :func:`exp_nonpositive_float32` returns 0 (``exp(-87)`` is
1.6e-38, the smallest normal float32 is 1.2e-38)."""
_F32_LOG2_E = np.float32(LOG2_E)
_F32_LN2_HIGH = np.float32(0.693359375)
_F32_LN2_LOW = np.float32(-2.12194440e-4)
_F32_HALF = np.float32(0.5)
_F32_C = tuple(np.float32(1.0 / math.factorial(n)) for n in range(8))


@part
def exp_nonpositive(values, out):  # pragma: no cover
    """``out = exp(values)`` for values <= 0 (flat float64 arrays), within a few
    ulp of ``np.exp``, 0 below ``EXP_SMALLEST``.

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


@part
def exp_nonpositive_float32(values, out):  # pragma: no cover
    """:func:`exp_nonpositive` in float32 arithmetic (float32 ``values`` and
    ``out``): ln 2 in two parts whose high part has 9 significant bits, so
    ``k ln2_high`` is exact, and a Taylor polynomial of degree 7 (remainder below
    1e-8); 0 below ``EXP_SMALLEST_FLOAT32``."""
    n = values.size
    bits = np.empty(n, dtype=np.int32)
    c0, c1, c2, c3, c4, c5, c6, c7 = _F32_C
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


@shared
def normalise(log_weighted, resp_t, row_weights):  # pragma: no cover
    """Responsibilities ``resp_t`` (b, K) from log-densities (K, b) by
    log-sum-exp, in the dtype of ``log_weighted`` (float32 for float32 products);
    returns the summed log-likelihood of the block's rows, added in float64.

    With non-empty ``row_weights`` (b,), row i's responsibilities and
    log-likelihood are multiplied by its weight (a row of weight w counts as w
    rows)."""
    n_components, b = log_weighted.shape
    dtype = log_weighted.dtype
    weighted = row_weights.shape[0] > 0
    largest = np.empty(b, dtype=dtype)
    for i in range(b):
        largest[i] = log_weighted[0, i]
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
        if weighted:
            inverse *= row_weights[i]
            row_log_likelihood *= row_weights[i]
        for k in range(n_components):
            resp_t[i, k] = exponentials[k, i] * inverse
        total_log_likelihood += row_log_likelihood
    return total_log_likelihood


@part
def copy_into(out, values):  # pragma: no cover
    """``out[...] = values`` for arrays of one size (any shapes), element by
    element in C order. (``.flat`` rather than a reshaped view: numba's
    reshape brings its shape checks and error paths into every caller.)"""
    for i in range(out.size):
        out.flat[i] = values.flat[i]


@shared
def add_into(out, values):  # pragma: no cover
    """``out += values`` for arrays of one size (any shapes), in C order."""
    for i in range(out.size):
        out.flat[i] += values.flat[i]


@shared
def added(first, second):  # pragma: no cover
    """``first + second`` for C-contiguous arrays of one shape, as a new array."""
    out = first.copy()
    add_into(out, second)
    return out


@part
def scaled(values, factor):  # pragma: no cover
    """``values * factor`` as a new array."""
    out = values.copy()
    for i in range(out.size):
        out.flat[i] *= factor
    return out
