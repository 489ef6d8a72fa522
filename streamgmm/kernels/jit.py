"""The decorators every kernel is compiled with, in one place.

:func:`kernel` compiles a function with numba, without the GIL (so that Dask's
threads and the online helper thread run kernels truly in parallel) and cached
on disk; :func:`shared` compiles a function that only kernels call, without
the wrappers Python would need. :func:`part` marks a function that has a
single compiled caller: numba inlines it into that caller instead of compiling
it on its own. The interpreted
tier (:mod:`streamgmm.kernels.tiers`) loads the kernel modules with another
``jit`` module in this one's place, whose decorators leave each function as it
is.
"""

from __future__ import annotations

from collections.abc import Callable

from numba import njit


def kernel(function: Callable) -> Callable:
    """``function``, an entry point Python calls (through
    :mod:`streamgmm.kernels.entries`), compiled by numba on its first call
    (``nogil``, ``cache``), with the CPython wrapper Python calls it through
    (and not numba's C wrapper, which nothing calls)."""
    return njit(nogil=True, cache=True, no_cfunc_wrapper=True)(function)


def shared(function: Callable) -> Callable:
    """``function``, called by several compiled kernels and never by Python,
    compiled once on its own (``nogil``, ``cache``) without the wrappers a
    call from Python needs: numba makes a CPython wrapper (unboxing every
    argument) and a C wrapper for each compiled function, 500 to 1,700 lines
    of IR each, and optimises and emits them with it although only compiled
    callers call it (docs/benchmarks.md, "Session 17")."""
    return njit(nogil=True, cache=True, no_cpython_wrapper=True, no_cfunc_wrapper=True)(function)


def part(function: Callable) -> Callable:
    """``function`` inlined by numba into its one compiled caller.

    numba compiles each :func:`kernel` into a library of its own, then links
    that library's code into every compiled caller and optimises it again
    there; for a function with a single caller the first compile buys nothing.
    Inlined, it is typed and optimised only inside its caller (about a fifth
    less CPU for ``streamgmm compile``, the same machine arithmetic: see
    docs/benchmarks.md). ``tests/test_architecture.py`` keeps every function
    with one caller a part and every part with one caller.
    """
    return njit(nogil=True, cache=True, inline="always")(function)
