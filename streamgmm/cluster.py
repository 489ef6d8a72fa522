"""Running on a ``dask.distributed`` cluster: finding the client (keeping the
input in cluster memory across passes is :func:`streamgmm.inputs.persisted_rows`;
see ``docs/cluster.md``)."""

from __future__ import annotations

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


__all__: list[str] = []
"""Nothing here is public API (docs/api.md lists what is)."""
