"""Running on a ``dask.distributed`` cluster: finding the client and readying
its workers (keeping the input in cluster memory across passes is
:func:`streamgmm.inputs.persisted_rows`; see ``docs/cluster.md``)."""

from __future__ import annotations

import importlib
from typing import Any

import dask
import dask.system


def active_client() -> Any:
    """The default ``dask.distributed`` client, or None when there is none (or
    distributed is not installed)."""
    try:
        from distributed import default_client
    except ImportError:
        return None
    try:
        return default_client()
    except ValueError:
        return None


def reducing_threads() -> int:
    """Threads that will reduce the chunks: those of the current
    ``dask.distributed`` client's workers, else the threaded scheduler's."""
    client = active_client()
    if client is not None:
        return max(1, sum(client.nthreads().values()))
    return int(dask.config.get("num_workers", None) or dask.system.CPU_COUNT)


def client_in_use(collections=()) -> Any:
    """The ``dask.distributed`` client that ``dask.compute`` of ``collections``
    would use now, or None (no client, or another scheduler chosen with
    ``dask.config.set(scheduler=...)``)."""
    client = active_client()
    if client is None:
        return None
    scheduler = dask.base.get_scheduler(collections=list(collections) or None)
    return client if scheduler == client.get else None


TASK_MODULES = ("dask.array", "streamgmm.zarr_reading", "streamgmm.reduction",
                "streamgmm.initialization", "streamgmm.estep")
"""The modules a fit's tasks run in. A fresh worker imports them when its first
task arrives, about a second (``dask.array`` alone brings numba, pandas and
xarray)."""


def prepare_workers() -> None:
    """Have every worker of the distributed client in use import
    :data:`TASK_MODULES` now, all at once.

    A fit's first passes reach one worker, then another (the first reads a few
    rows), so fresh workers would import one after the other, each while the
    fit waits; on workers that have them this is one round trip.
    """
    client = client_in_use()
    if client is not None:
        client.run(_import_modules, TASK_MODULES)


def _import_modules(names: tuple[str, ...]) -> None:
    for name in names:
        importlib.import_module(name)


__all__: list[str] = []
"""Nothing here is public API (docs/api.md lists what is)."""
