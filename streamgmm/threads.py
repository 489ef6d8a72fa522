"""One level of parallelism at a time: Dask threads or BLAS threads, not both.

The chunk kernel (:mod:`streamgmm.estep`) is made of many products of a few
thousand rows. When Dask's threaded scheduler already runs one chunk per core,
letting OpenBLAS start its own threads inside every task oversubscribes the
cores; on the 2-core machine of ``docs/benchmarks.md`` that made an EM
iteration about 10 times slower. Reductions therefore run with BLAS limited to
one thread while the threaded scheduler is the active one.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any

import dask
import dask.system
import dask.threaded
from threadpoolctl import ThreadpoolController


def uses_local_threads(collections=()) -> bool:
    """True if ``dask.compute`` would run on the threaded scheduler of this process."""
    scheduler = dask.base.get_scheduler(collections=list(collections) or None)
    return scheduler is None or scheduler is dask.threaded.get


@contextlib.contextmanager
def blas_threads_for_dask(collections=()) -> Iterator[None]:
    """Limit BLAS to one thread per task while the threaded scheduler runs tasks
    in parallel; otherwise leave the BLAS thread count alone."""
    if uses_local_threads(collections):
        with single_threaded_blas():
            yield
    else:
        yield


@contextlib.contextmanager
def local_threads(n_jobs: int | None) -> Iterator[None]:
    """Dask's local (threaded) scheduler with ``n_jobs`` threads inside the
    block (-1: one per core); None leaves Dask's configuration alone. The
    workers of a ``dask.distributed`` cluster are not affected."""
    if n_jobs is None:
        yield
        return
    workers = dask.system.CPU_COUNT if n_jobs == -1 else n_jobs
    with dask.config.set(num_workers=workers):
        yield


def single_threaded_blas() -> SingleThreadedBlas:
    """A context in which BLAS uses one thread.

    Also for work too small to share between threads: stepwise EM's mini-batch
    products and the K small Cholesky factorisations of an M-step, where on a
    busy machine OpenBLAS threads waiting for work made a step about 50 times
    slower (docs/online.md). Sets and restores the libraries' thread counts
    directly (through threadpoolctl's controllers, their thread-control logic
    included, or, for an OpenBLAS whose threads this thread controls, its own
    two functions, :func:`_switches`): about 2 us, where
    ``ThreadpoolController.limit`` took 60 us, a quarter of a ``partial_fit``
    of 512 rows; nested inside another, it costs nothing.
    """
    return SingleThreadedBlas()


class SingleThreadedBlas:
    """The context of :func:`single_threaded_blas` (a class rather than a
    generator: a ``partial_fit`` enters two, and a generator's context cost
    a microsecond more each)."""

    __slots__ = ("previous", "switches")

    def __enter__(self) -> None:
        if getattr(_inside, "single_threaded", False):
            self.previous = None
            return
        self.switches = switches = _switches()
        self.previous = [get() for get, _ in switches]
        for _, put in switches:
            put(1)
        _inside.single_threaded = True

    def __exit__(self, *exception: object) -> None:
        if self.previous is None:
            return
        _inside.single_threaded = False
        for (_, put), threads in zip(self.switches, self.previous, strict=True):
            put(threads)


def _switches() -> list[tuple[Callable[[], int], Callable[[int], object]]]:
    """``(get, set)`` of the thread count of every loaded BLAS library: an
    OpenBLAS without OpenMP whose thread count this thread controls (the only
    thread threadpoolctl lets set it) is switched through its own
    ``openblas_get_num_threads`` and ``openblas_set_num_threads`` (0.3 us a
    call, threadpoolctl's path about 1.5 us); any other library, or a thread
    that does not control the count, through threadpoolctl's controller."""
    this_thread = threading.current_thread()
    switches = []
    for library, direct in _direct_switches():
        shared = getattr(type(library), "_SHARED_STATE", None)
        if direct is not None and shared.controlling_thread is this_thread:
            switches.append(direct)
        else:
            switches.append((_getter(library), library.set_num_threads))
    return switches


def _getter(library: Any) -> Callable[[], int]:
    """threadpoolctl's reading of ``library``'s thread count."""
    return lambda: library.num_threads


@functools.cache
def _direct_switches() -> list[tuple[Any, tuple | None]]:
    """Each BLAS controller with its OpenBLAS functions ``(get, set)`` when it
    is an OpenBLAS that does not thread with OpenMP, else None; found once."""
    found = []
    for library in _blas_libraries():
        direct = None
        if (library.internal_api == "openblas" and library.threading_layer != "openmp"
                and hasattr(type(library), "_SHARED_STATE")):
            try:
                get = library._get_symbol("openblas_get_num_threads")
                put = library._get_symbol("openblas_set_num_threads")
            except AttributeError:  # another threadpoolctl: its public methods then
                get = put = None
            if get is not None and put is not None:
                direct = (get, put)
        found.append((library, direct))
    return found


_inside = threading.local()
"""Whether this thread is inside :func:`single_threaded_blas` (a nested one
then changes nothing)."""


@functools.cache
def _blas_libraries() -> list:
    """The controllers of the loaded BLAS libraries."""
    return _thread_pools().select(user_api="blas").lib_controllers


@functools.cache
def _thread_pools() -> ThreadpoolController:
    """The loaded thread pools, found once (the search costs about 10 ms)."""
    return ThreadpoolController()


__all__: list[str] = []
"""Nothing here is public API (docs/api.md lists what is)."""
