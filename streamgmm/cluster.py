"""Running on a ``dask.distributed`` cluster: finding the client and keeping the
input in cluster memory across passes (see ``docs/cluster.md``)."""

from __future__ import annotations

import dataclasses
from typing import Any

import dask

from .inputs import RowData


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


def should_persist(data: RowData, option: bool | str) -> bool:
    """Whether ``persist=option`` keeps ``data`` in memory for the fit.

    ``"auto"`` persists only NumPy input (already in memory, so it fits) and only
    under a distributed client, where it would otherwise travel from the client
    with every pass's graph. Zarr, Dask and xarray inputs are streamed unless
    ``persist=True``.
    """
    if option == "auto":
        return data.kind in ("numpy", "pandas") and active_client() is not None
    return bool(option)


def persisted_rows(data: RowData, option: bool | str) -> RowData:
    """``data`` with its Dask array persisted (on the workers under a distributed
    client, else in local memory) when :func:`should_persist` says so."""
    if not should_persist(data, option):
        return data
    return dataclasses.replace(data, array=data.array.persist())


def client_in_use(collections=()) -> Any:
    """The ``dask.distributed`` client that ``dask.compute`` of ``collections``
    would use now, or None (no client, or another scheduler chosen with
    ``dask.config.set(scheduler=...)``)."""
    client = active_client()
    if client is None:
        return None
    scheduler = dask.base.get_scheduler(collections=list(collections) or None)
    return client if scheduler == client.get else None
