"""NumPy versions of the kernels' row loops, equal to them bit for bit.

The interpreted tier (:mod:`streamgmm.kernels.tiers`) runs the kernels' own
Python source without compiling it; only the loops over rows would be slow
there, so these functions stand in for them. Each does the same floating-point
operations in the same order as the loop it replaces: element-wise operations
with the same dtypes (NumPy's weak Python scalars are avoided where numba would
widen to float64), sums over components or features one term at a time, sums
over rows by ``np.cumsum`` (sequential, where ``np.sum`` is pairwise), logarithms
by ``math.log`` (``np.log`` may differ in the last bit), and the same BLAS
products on operands of the same layouts (NumPy and numba call the same
OpenBLAS kernels, but for one matrix-vector product, called here as numba
calls it: ``tests/test_kernel_tiers.py`` holds every function here
equal to its compiled loop).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import math

import numpy as np
from scipy.linalg import blas

from .codes import LINEAR, NONE, NORM, PAIRWISE, SQUARES, WHITENED
from .mathfn import (
    _F32_C,
    _F32_HALF,
    _F32_LN2_HIGH,
    _F32_LN2_LOW,
    _F32_LOG2_E,
    EXP_SMALLEST,
    EXP_SMALLEST_FLOAT32,
    LN2_HIGH,
    LN2_LOW,
    LOG2_E,
)

_TAYLOR_13 = tuple(1.0 / math.factorial(n) for n in range(13, 1, -1))


def exp_nonpositive(values: np.ndarray, out: np.ndarray) -> None:
    """:func:`streamgmm.kernels.mathfn.exp_nonpositive` on whole arrays."""
    x = np.maximum(values, EXP_SMALLEST)
    k = np.floor(x * LOG2_E + 0.5)
    r = (x - k * LN2_HIGH) - k * LN2_LOW
    p = np.full_like(r, _TAYLOR_13[0])
    for coefficient in (*_TAYLOR_13[1:], 1.0, 1.0):
        p = p * r + coefficient
    scale = ((k.astype(np.int64) + 1023) << 52).view(np.float64)
    out[:] = np.where(values >= EXP_SMALLEST, p * scale, 0.0)


def exp_nonpositive_float32(values: np.ndarray, out: np.ndarray) -> None:
    """:func:`streamgmm.kernels.mathfn.exp_nonpositive_float32` on whole arrays."""
    x = np.maximum(values, EXP_SMALLEST_FLOAT32)
    k = np.floor(x * _F32_LOG2_E + _F32_HALF)
    r = (x - k * _F32_LN2_HIGH) - k * _F32_LN2_LOW
    p = np.full_like(r, _F32_C[7])
    for coefficient in _F32_C[6::-1]:
        p = p * r + coefficient
    scale = ((k.astype(np.int32) + np.int32(127)) << np.int32(23)).view(np.float32)
    out[:] = np.where(values >= EXP_SMALLEST_FLOAT32, p * scale, np.float32(0.0))


@functools.cache
def _libm_logf():
    library = ctypes.CDLL(ctypes.util.find_library("m"))
    library.logf.restype = ctypes.c_float
    library.logf.argtypes = [ctypes.c_float]
    return library.logf


def _logf(values: np.ndarray) -> np.ndarray:
    """The C library's ``logf`` of float32 values, as compiled float32 code
    calls it (``np.log`` may differ in the last bit)."""
    logf = _libm_logf()
    return np.array([logf(value) for value in values.tolist()], dtype=np.float32)


def sequential_sum(values: np.ndarray) -> float:
    """``0.0 + v_0 + v_1 + ...`` in order, as a compiled loop adds."""
    return float(np.cumsum(values, dtype=np.float64)[-1]) if values.size else 0.0


def normalise(log_weighted: np.ndarray, resp_t: np.ndarray, row_weights: np.ndarray) -> float:
    """:func:`streamgmm.kernels.mathfn.normalise` on a whole block."""
    largest = log_weighted[0].copy()
    for k in range(1, log_weighted.shape[0]):
        np.maximum(largest, log_weighted[k], out=largest)
    shifted = log_weighted - largest
    exponentials = np.empty_like(shifted)
    if log_weighted.itemsize == 4:
        exp_nonpositive_float32(shifted, exponentials)
    else:
        exp_nonpositive(shifted, exponentials)
    total = np.zeros(log_weighted.shape[1], dtype=log_weighted.dtype)
    for k in range(log_weighted.shape[0]):
        total += exponentials[k]
    inverse = 1.0 / total.astype(np.float64)
    if log_weighted.itemsize == 4:
        row_log_likelihoods = (_logf(total) + largest).astype(np.float64)
    else:
        row_log_likelihoods = np.array([math.log(value) for value in total.tolist()]) + largest
    if row_weights.shape[0] > 0:
        inverse *= row_weights
        row_log_likelihoods *= row_weights
    resp_t[:] = (exponentials * inverse).T
    return sequential_sum(row_log_likelihoods)


def fill_columns(rows, start: int, stop: int, shift: np.ndarray, columns: np.ndarray) -> None:
    """:func:`streamgmm.kernels.estep.fill_columns` on a whole block."""
    d = rows.X.shape[1]
    block = rows.X[start:stop] if rows.order.shape[0] == 0 else rows.X[rows.order[start:stop]]
    columns[:d, : stop - start] = (block - shift).T
    columns[d, : stop - start] = 1.0


def fill_products(columns: np.ndarray, kind: int, products: np.ndarray) -> None:
    """:func:`streamgmm.kernels.estep.fill_products` on a whole block."""
    d = columns.shape[0] - 1
    if products.shape[0] == 0:
        return
    if kind == PAIRWISE:
        row = 0
        for first in range(d):
            for second in range(first, d):
                np.multiply(columns[first], columns[second], out=products[row])
                row += 1
    elif kind == SQUARES:
        np.multiply(columns[:d], columns[:d], out=products[:d])
    elif kind == NORM:
        products[0] = 0.0
        for first in range(d):
            products[0] += columns[first] * columns[first]


def block_log_density(products: np.ndarray, columns: np.ndarray, operands,
                      chosen) -> np.ndarray:
    """:func:`streamgmm.kernels.estep.block_log_density` on a whole block."""
    if operands.density_mode == LINEAR:
        return (np.dot(chosen.linear_products, products)
                + np.dot(chosen.linear_columns, columns))
    whitened = np.dot(chosen.whitening, columns)
    b = columns.shape[1]
    if operands.density_mode == WHITENED:
        constant = operands.constant
        n_components = constant.shape[0]
        d = whitened.shape[0] // n_components
        out = np.empty((n_components, b), dtype=columns.dtype)
        for k in range(n_components):
            squares = np.zeros(b, dtype=columns.dtype)
            for j in range(d):
                squares += whitened[k * d + j] * whitened[k * d + j]
            out[k] = constant[k] - 0.5 * squares.astype(np.float64)
        return out
    d = whitened.shape[0]
    expanded = np.empty((d + 2, b), dtype=whitened.dtype)
    expanded[0] = 0.0
    expanded[d + 1] = 1.0
    for j in range(d):
        expanded[j + 1] = whitened[j]
        expanded[0] += whitened[j] * whitened[j]
    return np.dot(chosen.reduce, expanded)


def accumulate(products, columns, resp_t, kind, own_index, own_offsets, sums) -> None:
    """:func:`streamgmm.kernels.estep.accumulate` on a whole block."""
    d = columns.shape[0] - 1
    n_components = resp_t.shape[1]
    pooled = np.zeros((d + 1, d + 1))
    if kind == NONE and own_index.size < n_components:
        shared = np.ones(n_components, dtype=columns.dtype)
        shared[own_index] = 0.0
        row_weight = np.zeros(columns.shape[1])
        for k in range(n_components):
            row_weight += resp_t[:, k] * shared[k]
        weighted = np.empty_like(columns)
        weighted[:] = columns * row_weight
        pooled = np.dot(weighted, columns.T).astype(np.float64)
    elif products.shape[0] > 0:
        sums.products[:] += np.dot(products, resp_t)
    sums.columns[:] += np.dot(columns, resp_t)
    shifted = np.empty_like(columns)
    shifted_products = np.empty((sums.own_products.shape[0], columns.shape[1]),
                                dtype=columns.dtype)
    for k in own_index.tolist():
        shifted[:d] = columns[:d] - own_offsets[k][:, None]
        shifted[d] = 1.0
        weights = np.ascontiguousarray(resp_t[:, k])
        if kind == PAIRWISE or kind == NONE:
            own = np.dot(shifted * weights, shifted.T)
            if kind == PAIRWISE:
                sums.own_full[k] += own
            else:
                pooled[:d, :d] += own[:d, :d]
                sums.own_columns[:, k] += own[d]
        else:
            fill_products(shifted, kind, shifted_products)
            sums.own_products[:, k] += _matvec(shifted_products, weights)
            sums.own_columns[:, k] += _matvec(shifted, weights)
    if kind == NONE:
        sums.pooled[:] += pooled


def _matvec(matrix: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """``matrix @ vector`` by the BLAS call numba makes for ``np.dot`` of a
    C-contiguous matrix (NumPy takes another route for a single row)."""
    gemv = blas.sgemv if matrix.dtype == np.float32 else blas.dgemv
    return gemv(1.0, matrix.T, vector, trans=1)


def row_block(values: np.ndarray, start: int, stop: int) -> np.ndarray:
    """:func:`streamgmm.kernels.estep.row_block`."""
    return np.array(values[start:stop], dtype=np.float64, order="C")


def put_columns(out: np.ndarray, start: int, block: np.ndarray) -> None:
    """:func:`streamgmm.kernels.estep.put_columns`."""
    out[:, start : start + block.shape[1]] = block


def rows_usable(rows, begin: int, end: int, limit: float) -> bool:
    """:func:`streamgmm.kernels.pairing.rows_usable`."""
    block = rows.X[begin:end] if rows.order.shape[0] == 0 else rows.X[rows.order[begin:end]]
    return bool((np.abs(block) <= limit).all())


def batch_weight(rows, begin: int, end: int) -> float:
    """:func:`streamgmm.kernels.online.batch_weight` (numba's ``sum`` adds in order)."""
    if rows.weights.shape[0] == 0:
        return float(end - begin)
    weights = (rows.weights[begin:end] if rows.order.shape[0] == 0
               else rows.weights[rows.order[begin:end]])
    return sequential_sum(weights)


def cycle_count() -> int:
    """No cycle counter in the interpreted tier (it never waits for a helper)."""
    return 0




def copy_into(out: np.ndarray, values: np.ndarray) -> None:
    """:func:`streamgmm.kernels.mathfn.copy_into`."""
    out.reshape(-1)[:] = values.reshape(-1)


def add_into(out: np.ndarray, values: np.ndarray) -> None:
    """:func:`streamgmm.kernels.mathfn.add_into`."""
    out.reshape(-1)[:] += values.reshape(-1)


def added(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """:func:`streamgmm.kernels.mathfn.added`."""
    return first + second


def scaled(values: np.ndarray, factor: float) -> np.ndarray:
    """:func:`streamgmm.kernels.mathfn.scaled`."""
    return values * float(factor)


def sum_of_scaled(first: np.ndarray, first_factor: float, second: np.ndarray,
                  second_factor: float) -> np.ndarray:
    """:func:`streamgmm.kernels.mstep.sum_of_scaled`: each product rounded, then summed."""
    return first * first_factor + second * second_factor


from .vectorized_gaps import (  # noqa: E402, F401  (REPLACEMENTS names them)
    add_pattern_mass,
    chunk_patterns,
    condition_rows,
    diagonal_densities,
    diagonal_sums,
    fill_deviations,
    full_gap_sums,
    full_gaps,
    full_sums,
    gather_block,
    ldl_inverses,
    marginal_densities,
    pattern_covariances,
    small_inverses,
    squared_norms,
    transposed,
)

REPLACEMENTS = {
    "mathfn": ("exp_nonpositive", "exp_nonpositive_float32", "normalise", "copy_into",
               "add_into", "added", "scaled"),
    "estep": ("fill_columns", "fill_products", "block_log_density", "accumulate", "row_block",
              "put_columns", "normalise", "add_into", "added"),
    "mstep": ("added", "scaled", "sum_of_scaled"),
    "pairing": ("rows_usable", "copy_into", "add_into", "added", "cycle_count"),
    "online": ("batch_weight", "scaled"),
    "gappy": ("gather_block", "normalise", "pattern_covariances", "add_pattern_mass",
              "fill_deviations", "squared_norms", "condition_rows", "diagonal_densities",
              "diagonal_sums", "full_sums", "marginal_densities"),
    "patterns": ("chunk_patterns", "small_inverses", "ldl_inverses", "pattern_covariances",
                 "add_pattern_mass"),
    "masked": ("fill_products", "block_log_density", "accumulate", "normalise",
               "transposed", "full_gaps", "full_gap_sums",
               "pattern_covariances", "add_pattern_mass"),
}
"""Which names of which kernel modules the interpreted tier replaces by these."""
