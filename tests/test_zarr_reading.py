"""Reading Zarr chunks straight from their files (streamgmm.zarr_reading): the
same values as Zarr's own reads for every layout it takes, Zarr's reads for the
layouts it does not, and clear errors where Zarr would give fill values."""

import os
import shutil

import dask
import numcodecs
import numpy as np
import pytest
import zarr
from unconverged import unconverged_fit

from streamgmm import GaussianMixture
from streamgmm.inputs import as_rows, row_store_compressor
from streamgmm.zarr_reading import chunk_files, from_zarr

SHAPE, CHUNKS = (1003, 5), (128, 5)


def _values(dtype="float64"):
    rng = np.random.default_rng(0)
    return (rng.standard_normal(SHAPE) * 100).astype(dtype)


def _store(path, values=None, chunks=CHUNKS, **options):
    values = _values() if values is None else values
    array = zarr.create_array(
        store=str(path), shape=values.shape, chunks=chunks, dtype=values.dtype, **options
    )
    array[:] = values
    return zarr.open_array(str(path), mode="r")


READ_DIRECTLY = {
    "v3 zstd (default)": dict(),
    "v3 blosc-lz4": dict(compressors=row_store_compressor()),
    "v3 gzip": dict(compressors=zarr.codecs.GzipCodec()),
    "v3 uncompressed": dict(compressors=None),
    "v2 zstd (default)": dict(zarr_format=2),
    "v2 blosc": dict(zarr_format=2, compressors=numcodecs.Blosc("lz4")),
    "v2 uncompressed": dict(zarr_format=2, compressors=None),
    "v3 column chunks": dict(chunks=(100, 2)),
    "v3 dotted keys": dict(chunk_key_encoding={"name": "v2", "separator": "."}),
    "v2 nested keys": dict(zarr_format=2, chunk_key_encoding={"name": "v2", "separator": "/"}),
}


@pytest.mark.parametrize("layout", READ_DIRECTLY)
@pytest.mark.parametrize("dtype", ["float64", "float32", "int16"])
def test_direct_reads_equal_zarr_reads(tmp_path, layout, dtype):
    options = dict(READ_DIRECTLY[layout])
    array = _store(tmp_path / "x.zarr", _values(dtype), **options)
    assert chunk_files(array) is not None
    read = from_zarr(array)
    assert read.chunks == dask.array.from_zarr(array).chunks
    np.testing.assert_array_equal(read.compute(), array[:])
    assert read.dtype == array.dtype == np.dtype(dtype)


READ_BY_ZARR = {
    "sharded": dict(chunks=(64, 5), shards=(128, 5)),
    "big-endian": dict(serializer=zarr.codecs.BytesCodec(endian="big")),
    "v3 with a checksum": dict(compressors=[zarr.codecs.Crc32cCodec()]),
    "v2 with a filter": dict(zarr_format=2, filters=[numcodecs.Delta(dtype="f8")]),
    "v2 Fortran order": dict(zarr_format=2, order="F"),
}


@pytest.mark.parametrize("layout", READ_BY_ZARR)
def test_other_layouts_are_read_by_zarr(tmp_path, layout):
    array = _store(tmp_path / "x.zarr", **READ_BY_ZARR[layout])
    assert chunk_files(array) is None
    np.testing.assert_array_equal(from_zarr(array).compute(), array[:])


def test_memory_store_is_read_by_zarr():
    array = zarr.create_array(store=zarr.storage.MemoryStore(), shape=SHAPE, chunks=CHUNKS,
                              dtype="float64")
    array[:] = _values()
    assert chunk_files(array) is None
    np.testing.assert_array_equal(from_zarr(array).compute(), _values())


def test_chunks_without_a_file_read_as_the_fill_value(tmp_path):
    values = _values()
    values[128:256] = 7.0
    array = _store(tmp_path / "x.zarr", values, fill_value=7.0)
    assert not os.path.exists(chunk_files(array).chunk_path((1, 0)))
    np.testing.assert_array_equal(from_zarr(array).compute(), values)


def test_array_inside_a_group_is_found_through_either_path(tmp_path):
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    group.create_array("rows", shape=SHAPE, chunks=CHUNKS, dtype="float64")[:] = _values()
    for array in (zarr.open_group(str(tmp_path / "g.zarr"), mode="r")["rows"],
                  zarr.open_array(str(tmp_path / "g.zarr" / "rows"), mode="r")):
        np.testing.assert_array_equal(from_zarr(array).compute(), _values())


def test_a_store_gone_from_disk_is_an_error_not_fill_values(tmp_path):
    array = _store(tmp_path / "x.zarr")
    read = from_zarr(array)
    shutil.move(tmp_path / "x.zarr", tmp_path / "moved.zarr")
    with pytest.raises(FileNotFoundError, match="cannot be read here.*same path"):
        read.compute()


@pytest.mark.parametrize(
    "compressor",
    [row_store_compressor(), zarr.codecs.ZstdCodec(), zarr.codecs.GzipCodec()],
    ids=["blosc", "zstd", "gzip"],
)
@pytest.mark.parametrize("keep_bytes", [10, 100, -8])
def test_a_damaged_chunk_is_an_error_naming_its_file(tmp_path, compressor, keep_bytes):
    """One thread reads whole chunks before the damaged one, so its reusable
    buffer holds a whole chunk's bytes beyond the damaged file's end."""
    array = _store(tmp_path / "x.zarr", compressors=compressor)
    path = chunk_files(array).chunk_path((2, 0))
    with open(path, "r+b") as file:
        file.truncate(keep_bytes if keep_bytes > 0 else os.path.getsize(path) + keep_bytes)
    with (
        dask.config.set(scheduler="synchronous"),
        pytest.raises(ValueError, match=r"c/2/0.*could not be decoded"),
    ):
        from_zarr(array).compute()


def test_an_uncompressed_chunk_of_the_wrong_size_is_an_error(tmp_path):
    array = _store(tmp_path / "x.zarr", compressors=None)
    with open(chunk_files(array).chunk_path((0, 0)), "ab") as file:
        file.write(b"extra")
    with pytest.raises(ValueError, match="holds 5125 bytes, expected 5120"):
        from_zarr(array).compute()


def test_relative_paths_are_read_from_where_they_were_opened(tmp_path, monkeypatch):
    _store(tmp_path / "x.zarr")
    monkeypatch.chdir(tmp_path)
    read = as_rows("x.zarr").array
    monkeypatch.chdir(tmp_path.parent)
    np.testing.assert_array_equal(read.compute(), _values())


def test_a_fit_from_a_store_reads_its_chunk_files(tmp_path):
    X = _values()
    _store(tmp_path / "x.zarr", X, compressors=row_store_compressor())
    rows = as_rows(str(tmp_path / "x.zarr")).array
    assert any(name.startswith("read_zarr_chunk") for name in rows.dask.layers)
    settings = dict(max_iter=5, tol=0, random_state=0)
    from_store = unconverged_fit(GaussianMixture(3, **settings), str(tmp_path / "x.zarr"))
    in_memory = unconverged_fit(GaussianMixture(3, **settings), X)
    np.testing.assert_allclose(from_store.means_, in_memory.means_, rtol=1e-12)
