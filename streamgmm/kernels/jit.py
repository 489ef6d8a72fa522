"""The decorator every kernel is compiled with, in one place.

:func:`kernel` compiles a function with numba, without the GIL (so that Dask's
threads and the online helper thread run kernels truly in parallel) and cached
on disk. The interpreted tier (:mod:`streamgmm.kernels.tiers`) loads the kernel
modules with another ``jit`` module in this one's place, whose ``kernel``
leaves each function as it is.
"""

from __future__ import annotations

from collections.abc import Callable

from numba import njit


def kernel(function: Callable) -> Callable:
    """``function`` compiled by numba on its first call (``nogil``, ``cache``)."""
    return njit(nogil=True, cache=True)(function)
