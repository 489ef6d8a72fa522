"""The decorators every kernel is compiled with, in one place.

:func:`kernel` compiles a function with numba, without the GIL (so that Dask's
threads and the online helper thread run kernels truly in parallel) and cached
on disk; :func:`shared` compiles a function that only kernels call, without
the wrappers Python would need. :func:`part` marks a function that has a
single compiled caller: numba inlines it into that caller instead of compiling
it on its own. Each is cached on disk under one stamp, the source of every
kernel module (:func:`stamped`). The interpreted
tier (:mod:`streamgmm.kernels.tiers`) loads the kernel modules with another
``jit`` module in this one's place, whose decorators leave each function as it
is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from numba import njit


def _sources_digest() -> bytes:
    """SHA-256 of the source of every module of this package, in name order."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.digest()


SOURCES_DIGEST = _sources_digest()
"""What every compiled version in numba's disk cache is stamped with
(:func:`stamped`)."""


def stamped(dispatcher: Any) -> Any:
    """``dispatcher`` with its disk cache stamped with :data:`SOURCES_DIGEST`.

    numba stamps a cached version with the content of the function's own
    file, and loads it while that file is unchanged. A kernel holds code of
    other modules too (its parts inlined, the ``shared`` functions and kernels
    it calls linked in, the records and codes), so after an edit of one of
    those alone numba would load the kernel as it was. With every kernel
    module's source in the stamp, any edit recompiles every kernel. (numba
    keeps the stamp on the cache's index file object; where it does not, the
    dispatcher keeps numba's own stamp.)"""
    index = getattr(getattr(dispatcher, "_cache", None), "_cache_file", None)
    if index is not None and hasattr(index, "_source_stamp"):
        index._source_stamp = SOURCES_DIGEST
    return dispatcher


def kernel(function: Callable) -> Callable:
    """``function``, an entry point Python calls (through
    :mod:`streamgmm.kernels.entries`), compiled by numba on its first call
    (``nogil``, ``cache``), with the CPython wrapper Python calls it through
    (and not numba's C wrapper, which nothing calls)."""
    return stamped(njit(nogil=True, cache=True, no_cfunc_wrapper=True)(function))


def shared(function: Callable) -> Callable:
    """``function``, called by several compiled kernels and never by Python,
    compiled once on its own (``nogil``, ``cache``) without the wrappers a
    call from Python needs: numba makes a CPython wrapper (unboxing every
    argument) and a C wrapper for each compiled function, 500 to 1,700 lines
    of IR each, and optimises and emits them with it although only compiled
    callers call it (docs/benchmarks.md, "Session 17")."""
    return stamped(njit(nogil=True, cache=True, no_cpython_wrapper=True,
                        no_cfunc_wrapper=True)(function))


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
    return stamped(njit(nogil=True, cache=True, inline="always")(function))
