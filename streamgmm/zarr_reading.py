"""Read the chunks of a Zarr array in a local store straight from their files.

``dask.array.from_zarr`` reads each chunk through Zarr's asyncio event loop: the
Dask thread waits while the loop's own threads read the file and decode it, and
the hand-offs cost CPU and leave cores idle. An EM iteration over 10^6 rows of 16
float64 takes about 0.1 s in memory, so this overhead is a large part of an
iteration out of core (docs/benchmarks.md, "Reading Zarr"). Here the Dask task
reads the chunk file into a buffer of its thread and decodes it with the
numcodecs codec that Zarr itself would call, both without the GIL, into an array
of its own.

Only plain layouts take this path: a ``LocalStore``, a regular chunk grid, native
byte order, C order, no sharding or filters, and no compressor or one Blosc, Zstd
or Gzip compressor (Zarr's defaults among them). Any other array is read by
``dask.array.from_zarr``, and so is any chunk whose file does not exist (Zarr gives
the fill value there).
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass
from typing import Any, BinaryIO

import dask.array as da
import numcodecs
import numpy as np
import zarr
from dask.base import tokenize


@dataclass(frozen=True)
class ChunkFiles:
    """Where one Zarr array keeps its chunks and how they are encoded.

    Attributes
    ----------
    array : the array itself, to read chunks that have no file (fill values).
    directory : absolute path of the array's folder; chunk keys are relative to
        it. Absolute, so that workers started elsewhere read the same files.
    metadata_file : the array's metadata document, to tell a missing chunk
        from a store this process cannot see.
    chunk_shape : shape of every stored chunk (edge chunks are stored whole).
    dtype : the array's NumPy dtype, native byte order.
    decompressor : numcodecs codec, or None for uncompressed chunks.
    """

    array: zarr.Array
    directory: str
    metadata_file: str
    chunk_shape: tuple[int, ...]
    dtype: np.dtype
    decompressor: Any

    def chunk_path(self, chunk_coords: tuple[int, ...]) -> str:
        return os.path.join(self.directory, self.array.metadata.encode_chunk_key(chunk_coords))


def _native(endianness: Any) -> bool:
    value = getattr(endianness, "value", endianness)
    return value is None or value == sys.byteorder


def _v3_decompressor(codecs: tuple) -> tuple[bool, Any]:
    """(supported, numcodecs decompressor) for a Zarr v3 codec chain."""
    if not codecs or not isinstance(codecs[0], zarr.codecs.BytesCodec):
        return False, None
    if not _native(codecs[0].endian):
        return False, None
    rest = codecs[1:]
    if not rest:
        return True, None
    if len(rest) > 1:
        return False, None
    known = {
        zarr.codecs.BloscCodec: numcodecs.Blosc,
        zarr.codecs.ZstdCodec: numcodecs.Zstd,
        zarr.codecs.GzipCodec: numcodecs.GZip,
    }
    codec_class = known.get(type(rest[0]))
    return (True, codec_class()) if codec_class else (False, None)


def _v2_decompressor(metadata: Any) -> tuple[bool, Any]:
    """(supported, numcodecs decompressor) for Zarr v2 array metadata."""
    if metadata.filters or metadata.order != "C":
        return False, None
    if not _native(getattr(metadata.dtype, "endianness", None)):
        return False, None
    compressor = metadata.compressor
    if compressor is None:
        return True, None
    if isinstance(compressor, numcodecs.Blosc | numcodecs.Zstd | numcodecs.GZip):
        return True, compressor
    return False, None


def chunk_files(array: zarr.Array) -> ChunkFiles | None:
    """The :class:`ChunkFiles` of ``array``, or None if its layout needs Zarr."""
    if not isinstance(array.store, zarr.storage.LocalStore):
        return None
    metadata = array.metadata
    directory = os.path.abspath(os.path.join(str(array.store.root), array.path))
    if metadata.zarr_format == 3:
        grid = metadata.chunk_grid
        if not isinstance(grid, zarr.core.chunk_grids.RegularChunkGrid):
            return None
        supported, decompressor = _v3_decompressor(tuple(metadata.codecs))
        chunk_shape, metadata_name = tuple(grid.chunk_shape), "zarr.json"
    else:
        supported, decompressor = _v2_decompressor(metadata)
        chunk_shape, metadata_name = tuple(metadata.chunks), ".zarray"
    dtype = np.dtype(array.dtype)
    if not supported or dtype.hasobject or not dtype.isnative:
        return None
    return ChunkFiles(
        array, directory, os.path.join(directory, metadata_name), chunk_shape, dtype,
        decompressor,
    )


_scratch = threading.local()


def _scratch_bytes(size: int) -> np.ndarray:
    """``size`` bytes of this thread's reusable buffer for compressed chunks.

    A fresh buffer per chunk costs page faults (and, from 32 MiB, a new ``mmap``)
    every time; reusing one halves the kernel time of a pass over the store."""
    buffer = getattr(_scratch, "buffer", None)
    if buffer is None or buffer.size < size:
        buffer = _scratch.buffer = np.empty(size, dtype=np.uint8)
    return buffer[:size]


def _read_exactly(file: BinaryIO, target: np.ndarray, path: str) -> None:
    view, done = memoryview(target).cast("B"), 0
    while done < len(view):
        count = file.readinto(view[done:])
        if not count:
            raise OSError(f"Zarr chunk {path!r} became shorter while it was read")
        done += count


BLOSC_HEADER_BYTES = 16


def _check_blosc_sizes(raw: np.ndarray, expected_bytes: int, path: str) -> None:
    """Refuse a Blosc frame whose header does not match the file and the chunk.

    The Blosc decoder trusts the compressed size in the header; checked here, a
    short file cannot make it read past the bytes of this chunk. Header: 4 bytes
    (version, codec version, flags, type size), then little-endian uint32
    uncompressed size, block size, compressed size."""
    if raw.size < BLOSC_HEADER_BYTES:
        raise ValueError(f"Zarr chunk {path!r} could not be decoded: {raw.size} bytes "
                         "is shorter than a Blosc header")
    nbytes, _, cbytes = (int(value) for value in raw[4:16].view("<u4"))
    if cbytes != raw.size or nbytes != expected_bytes:
        raise ValueError(
            f"Zarr chunk {path!r} could not be decoded: its Blosc header gives "
            f"{cbytes} compressed and {nbytes} decoded bytes, the file has {raw.size} "
            f"and the chunk needs {expected_bytes}"
        )


def read_zarr_chunk(files: ChunkFiles, block_id: tuple[int, ...]) -> np.ndarray:
    """The block of the array at chunk coordinates ``block_id``, shape clipped to
    the array's extent."""
    selection = tuple(
        slice(index * size, min((index + 1) * size, total))
        for index, size, total in zip(block_id, files.chunk_shape, files.array.shape, strict=True)
    )
    path = files.chunk_path(block_id)
    try:
        file = open(path, "rb", buffering=0)
    except FileNotFoundError:
        if not os.path.exists(files.metadata_file):
            raise FileNotFoundError(
                f"The Zarr store at {files.directory!r} cannot be read here: "
                f"{files.metadata_file!r} does not exist. On a cluster every worker "
                "must see the store at the same path."
            ) from None
        return np.asarray(files.array[selection])
    chunk = np.empty(files.chunk_shape, dtype=files.dtype)
    with file:
        size = os.fstat(file.fileno()).st_size
        if files.decompressor is None:
            if size != chunk.nbytes:
                raise ValueError(
                    f"Zarr chunk {path!r} holds {size} bytes, expected {chunk.nbytes}"
                )
            _read_exactly(file, chunk, path)
        else:
            raw = _scratch_bytes(size)
            _read_exactly(file, raw, path)
            if isinstance(files.decompressor, numcodecs.Blosc):
                _check_blosc_sizes(raw, chunk.nbytes, path)
            try:
                files.decompressor.decode(raw, out=chunk)
            except Exception as error:
                raise ValueError(f"Zarr chunk {path!r} could not be decoded: {error}") from error
    extents = tuple(part.stop - part.start for part in selection)
    if extents == files.chunk_shape:
        return chunk
    return chunk[tuple(slice(0, extent) for extent in extents)]


def from_zarr(array: zarr.Array) -> da.Array:
    """``array`` as a Dask array with one block per Zarr chunk, read by
    :func:`read_zarr_chunk` where the layout allows it, else by
    ``dask.array.from_zarr``."""
    files = chunk_files(array)
    if files is None:
        return da.from_zarr(array)
    chunks = da.core.normalize_chunks(files.chunk_shape, array.shape)
    name = "read_zarr_chunk-" + tokenize(
        files.directory, array.shape, files.chunk_shape, files.dtype.str,
        os.stat(files.metadata_file).st_mtime_ns,
    )
    return da.map_blocks(
        read_zarr_chunk, files, chunks=chunks, dtype=files.dtype,
        meta=np.empty((0,) * array.ndim, dtype=files.dtype), name=name,
    )


__all__: list[str] = []
"""Nothing here is public API (docs/api.md lists what is)."""
