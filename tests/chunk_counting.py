"""A real Zarr store that counts the chunk reads made through it."""

from __future__ import annotations

import threading

import zarr
from zarr.storage import LocalStore, WrapperStore


class CountingStore(WrapperStore):
    """A LocalStore wrapper that records every chunk key read (metadata excluded)."""

    def __init__(self, store):
        super().__init__(store)
        self.chunk_reads: list[str] = []
        self._lock = threading.Lock()

    async def get(self, key, prototype, byte_range=None):
        if key.startswith("c/") or "/c/" in key:
            with self._lock:
                self.chunk_reads.append(key)
        return await super().get(key, prototype, byte_range)

    def reset(self) -> None:
        with self._lock:
            self.chunk_reads.clear()

    @property
    def n_reads(self) -> int:
        return len(self.chunk_reads)


def open_counting(path) -> tuple[zarr.Array, CountingStore]:
    """Open the Zarr array at ``path`` read-only through a :class:`CountingStore`."""
    store = CountingStore(LocalStore(str(path), read_only=True))
    return zarr.open_array(store=store, mode="r"), store


def n_chunks(array: zarr.Array) -> int:
    """Number of chunks of a Zarr array (one pass reads each once)."""
    return int(array.nchunks)
