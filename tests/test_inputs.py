"""Every input kind gives the same model, and outputs come back in the input's kind."""

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr
import zarr

from streamgmm import GaussianMixture


def _fit(X, **kwargs):
    return GaussianMixture(3, random_state=0, tol=1e-6, max_iter=30, **kwargs).fit(X)


def _assert_same_model(a, b):
    np.testing.assert_allclose(a.weights_, b.weights_, rtol=1e-10)
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-10)
    np.testing.assert_allclose(a.covariances_, b.covariances_, rtol=1e-10)
    assert a.n_iter_ == b.n_iter_
    assert a.lower_bound_ == pytest.approx(b.lower_bound_, rel=1e-12)


@pytest.fixture(scope="module")
def reference(mixture_data):
    X, _, _ = mixture_data
    return X, _fit(X)


def test_dask_array_with_uneven_chunks(reference):
    X, expected = reference
    chunks = ((700, 1300, 2500, 1, 1499), (2, 1))
    lazy = da.from_array(X, chunks=chunks)
    _assert_same_model(_fit(lazy), expected)


def test_compressed_zarr_store_on_disk(reference, tmp_path):
    X, expected = reference
    path = tmp_path / "data.zarr"
    array = zarr.create_array(
        store=str(path),
        shape=X.shape,
        chunks=(1000, 3),
        dtype="f8",
        compressors=zarr.codecs.BloscCodec(cname="zstd", clevel=3),
    )
    array[:] = X
    assert array.compressors, "the store should be compressed"
    _assert_same_model(_fit(path), expected)
    _assert_same_model(_fit(str(path)), expected)
    _assert_same_model(_fit(zarr.open_array(str(path), mode="r")), expected)


def test_zarr_group_with_one_array_and_path_inside(reference, tmp_path):
    X, expected = reference
    group = zarr.open_group(str(tmp_path / "group.zarr"), mode="w")
    group.create_array("rows", shape=X.shape, chunks=(2000, 3), dtype="f8")[:] = X
    _assert_same_model(_fit(tmp_path / "group.zarr"), expected)
    _assert_same_model(_fit(tmp_path / "group.zarr" / "rows"), expected)
    group.create_array("other", shape=X.shape, chunks=(2000, 3), dtype="f8")[:] = X
    with pytest.raises(ValueError, match="two-dimensional arrays"):
        _fit(tmp_path / "group.zarr")


def test_dask_backed_dataarray_with_samples_on_either_axis(reference):
    X, expected = reference
    labelled = xr.DataArray(
        da.from_array(X, chunks=(1500, 2)),
        dims=("time", "band"),
        coords={"time": np.arange(X.shape[0]) * 10, "band": ["r", "g", "b"]},
    )
    _assert_same_model(_fit(labelled), expected)
    _assert_same_model(_fit(labelled.T, sample_dim="time"), expected)


def test_outputs_keep_the_input_kind(reference):
    X, model = reference
    lazy = da.from_array(X, chunks=1000)
    labels = model.predict(lazy)
    assert isinstance(labels, da.Array)
    np.testing.assert_array_equal(labels.compute(), model.predict(X))
    proba = model.predict_proba(lazy)
    assert isinstance(proba, da.Array) and proba.shape == (X.shape[0], 3)
    assert isinstance(model.score_samples(X), np.ndarray)

    times = np.arange(X.shape[0]) * 10
    labelled = xr.DataArray(
        da.from_array(X, chunks=(1500, 3)),
        dims=("time", "band"),
        coords={"time": times, "station": ("time", np.arange(X.shape[0]) % 7)},
    )
    out = model.predict_proba(labelled)
    assert isinstance(out, xr.DataArray) and out.dims == ("time", "component")
    assert isinstance(out.data, da.Array), "a Dask-backed DataArray must stay lazy"
    np.testing.assert_array_equal(out["time"].values, times)
    np.testing.assert_array_equal(out["station"].values, np.arange(X.shape[0]) % 7)
    np.testing.assert_allclose(out.values, model.predict_proba(X))
    eager = model.score_samples(labelled.compute())
    assert isinstance(eager, xr.DataArray) and isinstance(eager.data, np.ndarray)
    assert eager.dims == ("time",)


def test_to_xarray_has_named_dimensions(reference):
    _, model = reference
    params = model.to_xarray()
    assert params["means"].dims == ("component", "feature")
    assert params["weights"].dims == ("component",)
    assert params["covariances"].dims == ("component", "feature", "feature_j")
    np.testing.assert_array_equal(params["covariances"].values, model.covariances_)


def test_integer_input_is_fitted_as_float(mixture_data):
    X, _, _ = mixture_data
    rounded = np.round(X * 100).astype(np.int64)
    a = _fit(rounded)
    b = _fit(rounded.astype(np.float64))
    _assert_same_model(a, b)


def test_in_memory_rows_are_cut_into_balanced_chunks():
    """As many nearly equal chunks as a multiple of the threads, so that no
    thread is left waiting at the end of a pass, unless chunks would get small."""
    from streamgmm.inputs import as_rows, balanced_rows_per_chunk

    with dask.config.set(num_workers=2):
        assert balanced_rows_per_chunk(700_000, 16, 8) == 175_000  # 3 chunks -> 4
        assert balanced_rows_per_chunk(1_000_000, 16, 8) == 250_000
        assert balanced_rows_per_chunk(10_000, 3, 8) == 10_000  # halves under 8,192
        X = np.zeros((40_000, 3))
        assert as_rows(X).array.chunks[0] == (20_000, 20_000)
        assert as_rows(X).in_memory is X
    with dask.config.set(num_workers=3):
        assert balanced_rows_per_chunk(700_000, 16, 8) == 233_334


@pytest.mark.parametrize("kind", ["numpy", "pandas"])
def test_in_memory_rows_are_wrapped_without_a_copy(kind):
    """NumPy and pandas rows become Dask blocks that are views of the caller's
    array (``da.from_array`` would copy and hash all of them at every fit)."""
    import pandas as pd

    from streamgmm.inputs import as_rows

    X = np.random.default_rng(0).normal(size=(40_000, 3))
    data = as_rows(X if kind == "numpy" else pd.DataFrame(X))
    blocks = dask.compute(*data.array.to_delayed().ravel(), scheduler="sync")
    assert len(blocks) == 2
    assert all(np.shares_memory(block, data.in_memory) for block in blocks)
    np.testing.assert_array_equal(np.concatenate(blocks), X, strict=True)
    assert as_rows(X).array.name != data.array.name
