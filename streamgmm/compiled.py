"""The two loops of the E-step kernel that NumPy cannot run without temporaries.

Both are compiled by numba on first use (and cached on disk), release the GIL so
that Dask's threads run them in parallel, and work on rows laid out as columns
(``(features, n)``), so that every inner loop runs over contiguous memory and
vectorises. Measured against the best NumPy formulation in ``docs/benchmarks.md``
(4x and 2x faster on blocks of 512 rows, d = 16, K = 8).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(nogil=True, cache=True)
def pairwise_products(columns: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover
    """Write ``columns[a] * columns[b]`` for ``a <= b`` (row-major upper triangle)
    into the first ``d (d + 1) / 2`` rows of ``out``.

    columns : (d, n); out : (>= d (d + 1) / 2, n), same dtype.
    """
    d, n = columns.shape
    row = 0
    for first in range(d):
        for second in range(first, d):
            for i in range(n):
                out[row, i] = columns[first, i] * columns[second, i]
            row += 1


@njit(nogil=True, cache=True)
def grouped_square_sums(
    whitened: np.ndarray, constant: np.ndarray, out: np.ndarray
) -> None:  # pragma: no cover
    """``out[k, i] = constant[k] - 1/2 sum_j whitened[k d + j, i]^2``.

    whitened : (K d, n), the whitened rows of all K components stacked;
    constant : (K,); out : (K, n).
    """
    n_components, n = out.shape
    d = whitened.shape[0] // n_components
    for k in range(n_components):
        for i in range(n):
            out[k, i] = 0.0
        for j in range(d):
            row = k * d + j
            for i in range(n):
                out[k, i] += whitened[row, i] * whitened[row, i]
        half = 0.5
        for i in range(n):
            out[k, i] = constant[k] - half * out[k, i]
