"""Input adapters: every supported kind of X becomes a row-chunked Dask array.

Supported inputs are NumPy arrays, Dask arrays, ``zarr.Array`` objects, paths to
a Zarr store holding a 2-D array, 2-D ``xarray.DataArray`` objects (NumPy- or
Dask-backed), pandas and Dask DataFrames, and paths to Parquet or CSV tables
(:mod:`streamgmm.tables`). :func:`as_rows` returns a :class:`RowData` that also remembers how
to give results back in the kind that came in (:func:`wrap_rows`).
"""

from __future__ import annotations

import dataclasses
import os
import uuid
import warnings
from dataclasses import dataclass
from typing import Any

import dask
import dask.array as da
import numpy as np
import scipy.sparse
import xarray as xr
import zarr

from . import tables
from .cluster import active_client, prepare_workers, reducing_threads
from .zarr_reading import from_zarr

TARGET_CHUNK_BYTES = 32 * 2**20
"""Rows of in-memory data are cut into Dask chunks of about this many bytes."""

MIN_CHUNK_ROWS = 8192


def row_store_compressor() -> zarr.codecs.BloscCodec:
    """The compressor of the row stores streamgmm writes (synthetic data, streams):
    Blosc-LZ4 with byte shuffle. Reading it costs about half the CPU time of
    Zarr's default zstd (128 MB of float64 rows: 56-70 ms against 127-150 ms in
    one thread), and an EM iteration over 10^6 rows takes only about 0.1 s, so
    with zstd decoding alone would cost more than half an iteration
    (docs/benchmarks.md)."""
    return zarr.codecs.BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")


@dataclass(frozen=True)
class RowData:
    """A 2-D input as a Dask array with whole rows in every chunk.

    Attributes
    ----------
    array : dask.array.Array of shape (n_samples, n_features)
    kind : {"numpy", "dask", "zarr", "xarray", "pandas", "dataframe"}
    sample_dim, sample_coords : the DataArray's sample dimension and the
        coordinates along it, to label outputs (xarray inputs only).
    lazy : whether a DataArray input was Dask-backed (its outputs stay lazy).
    in_memory : the NumPy array behind ``array`` for NumPy input (and NumPy-backed
        DataArrays), so that online EM can draw mini-batches from all its rows.
    feature_names : the column names of a data frame whose columns are all
        named by strings (object array of shape (n_features,)), else None.
    index : the row index of a pandas or Dask frame (tables), to label outputs.
    weights : the rows' weights (n_samples,) float64, chunked like ``array``'s
        rows and checked (:func:`with_weights`), or None (every row counts once).
    n_weighted : how many rows have a positive weight (None without weights).
    """

    array: da.Array
    kind: str
    sample_dim: str | None = None
    sample_coords: Any = None
    lazy: bool = False
    in_memory: np.ndarray | None = None
    feature_names: np.ndarray | None = None
    index: Any = None
    weights: da.Array | None = None
    n_weighted: int | None = None

    @property
    def n_samples(self) -> int:
        return int(self.array.shape[0])

    @property
    def n_counted(self) -> int:
        """Rows that count in a fit: those of positive weight (all without weights)."""
        return self.n_samples if self.n_weighted is None else self.n_weighted

    @property
    def n_features(self) -> int:
        return int(self.array.shape[1])


def open_zarr_array(path: str | os.PathLike, ndim: int = 2) -> zarr.Array:
    """Open the ``ndim``-D array in a Zarr store, or at a path inside one, read-only."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No Zarr store at {path!r}")
    try:
        node = zarr.open(store=path, mode="r")
    except Exception as error:
        raise ValueError(f"{path!r} is not a readable Zarr store: {error}") from error
    if isinstance(node, zarr.Array):
        return node
    arrays = [(name, array) for name, array in node.arrays() if array.ndim == ndim]
    if len(arrays) == 1:
        return arrays[0][1]
    names = sorted(name for name, _ in node.arrays())
    dimensional = ("one", "two")[ndim - 1]
    raise ValueError(
        f"The Zarr group at {path!r} holds {len(arrays)} {dimensional}-dimensional arrays "
        f"(arrays: {names}); pass the path of one of them, e.g. {path!r} + '/name'"
    )


def check_matrix(shape: tuple, dtype: np.dtype) -> None:
    """Raise for input that is not a non-empty 2-D numeric array."""
    if len(shape) != 2:
        advice = (
            "Reshape your data: X.reshape(-1, 1) if it has a single feature, "
            "X.reshape(1, -1) if it is a single sample."
            if len(shape) < 2
            else "Put the sample dimensions together first, e.g. "
            "X.reshape(-1, X.shape[-1]) if the last dimension holds the features."
        )
        raise ValueError(
            f"Expected a 2-D array of shape (n_samples, n_features), got {len(shape)}-D "
            f"input of shape {shape}. {advice}"
        )
    kind = np.dtype(dtype).kind  # np.issubdtype's answers (timedelta64 is an integer)
    if kind == "c":
        raise ValueError(f"Complex data not supported: expected real numbers, got dtype {dtype}")
    if kind not in "fiubm":
        raise TypeError(f"Expected numeric input, got dtype {dtype}")
    if shape[0] == 0:
        raise ValueError(
            f"Input has 0 rows: found 0 sample(s) (shape={shape}) while a minimum of 1 "
            "is required."
        )
    if shape[1] == 0:
        raise ValueError(
            f"Input has 0 features: found 0 feature(s) (shape={shape}) while a minimum "
            "of 1 is required."
        )
    check_shape_of_samples(shape)


WIDE_FEATURES = 1000
"""From this many features on, more features than samples is refused at once
(:func:`check_shape_of_samples`): a covariance alone then holds millions of
numbers, and such input is nearly always samples on the wrong axis."""


def check_shape_of_samples(
    shape: tuple, sample_dim: str | None = None, feature_dim: str | None = None
) -> None:
    """Raise ``ValueError`` at once for at least :data:`WIDE_FEATURES` features
    and more features than samples (e.g. a sensor x time DataArray whose
    samples are along time), naming the dimensions, instead of a fit that runs
    for minutes before it cannot allocate its covariances."""
    n_samples, n_features = shape
    if n_features < WIDE_FEATURES or n_features <= n_samples:
        return
    if sample_dim is None:
        where = "samples are rows: if they are the columns, pass X.T"
    else:
        where = (
            f"samples are along {sample_dim!r}, features along {feature_dim!r}: if the "
            f"samples are along {feature_dim!r}, pass sample_dim={feature_dim!r} "
            f"(streamgmm fit --sample-dim {feature_dim})"
        )
    raise ValueError(
        f"X has {n_samples:,} samples and {n_features:,} features ({where}); a full "
        f"covariance of {n_features:,} features holds {n_features**2:,} numbers per component"
    )


def _rows_per_chunk(n_features: int, itemsize: int) -> int:
    return max(MIN_CHUNK_ROWS, TARGET_CHUNK_BYTES // max(1, n_features * itemsize))


def dask_view(array: np.ndarray, chunks: Any) -> da.Array:
    """In-memory ``array`` as a Dask array whose blocks are views of it, with
    ``chunks`` as :func:`dask.array.from_array` takes them.

    ``from_array`` copies the array and hashes it for the array's name, about
    0.1 s per 128 MB, at every fit; a fit wraps its input once and reads it
    only while it runs, so neither is needed here: the name is random, and the
    blocks (not the whole array, as one key) are what a cluster is sent."""
    chunks = da.core.normalize_chunks(chunks, array.shape, dtype=array.dtype)
    name = f"rows-{uuid.uuid4().hex}"
    indices = np.ndindex(*(len(sizes) for sizes in chunks))
    graph = {
        (name, *index): array[block]
        for index, block in zip(indices, da.core.slices_from_chunks(chunks), strict=True)
    }
    meta = np.empty((0,) * array.ndim, dtype=array.dtype)
    return da.Array(graph, name, chunks, meta=meta)


def balanced_rows_per_chunk(n_samples: int, n_features: int, itemsize: int) -> int:
    """Rows per chunk of in-memory data: chunks of at most about
    ``TARGET_CHUNK_BYTES``, nearly equal, and as many as a multiple of
    :func:`reducing_threads` when each still holds ``MIN_CHUNK_ROWS``.

    A pass takes as long as its busiest thread: 700,000 rows of 16 float64 in
    three chunks of up to 262,144 rows left one of two threads idle for a third
    of the pass, and four equal chunks ran 1.15 to 1.5 times faster."""
    n_chunks = -(-n_samples // _rows_per_chunk(n_features, itemsize))
    threads = reducing_threads()
    balanced = -(-n_chunks // threads) * threads
    if n_samples // balanced >= MIN_CHUNK_ROWS:
        n_chunks = balanced
    return -(-n_samples // n_chunks)


def _whole_rows(array: da.Array) -> da.Array:
    """Merge feature chunks, and merge row-chunks much smaller than the target."""
    target_rows = _rows_per_chunk(array.shape[1], array.dtype.itemsize)
    row_chunks = array.chunks[0]
    if array.numblocks[1] == 1 and max(row_chunks) * 4 >= min(target_rows, array.shape[0]):
        return array
    if max(row_chunks) * 4 >= min(target_rows, array.shape[0]):
        return array.rechunk({1: -1})
    factor = max(1, target_rows // max(row_chunks))
    rows = max(row_chunks) * factor
    return array.rechunk({0: rows, 1: -1})


def as_rows(
    X: Any, sample_dim: str | None = None, check_missing: bool = True, columns: Any = None
) -> RowData:
    """Adapt any supported input to a :class:`RowData`. Without
    ``check_missing``, the empty cells of a table are NaN instead of an error
    (``missing="marginalize"``). ``columns``: the columns of a table path to
    use (default: its numeric ones, said in a warning when some were left out
    or one looks like an identifier or label).

    Raises ``TypeError`` for unsupported kinds and non-numeric data, ``ValueError``
    for wrong dimensionality or zero rows, ``FileNotFoundError`` for a missing store.
    """
    if isinstance(X, RowData):
        return X
    if isinstance(X, xr.DataArray):
        return _from_dataarray(X, sample_dim)
    if isinstance(X, str | os.PathLike):
        if tables.table_format(X):
            X = tables.table_source(X, None if columns is None else list(columns))
            if columns is None:
                _say_columns(X)
        else:
            X = open_zarr_array(X)
    if isinstance(X, tables.TableSource):
        array = tables.source_array(X, check_missing)
        check_matrix(array.shape, array.dtype)
        names = np.asarray(X.columns, dtype=object)
        return RowData(array, "dataframe", feature_names=names, index=X.frame.index)
    if tables.is_data_frame(X):
        return _from_frame(X, check_missing)
    if isinstance(X, zarr.Array):
        check_matrix(X.shape, X.dtype)
        return RowData(_whole_rows(from_zarr(X)), "zarr")
    if isinstance(X, da.Array):
        if X.ndim == 2 and any(np.isnan(rows) for rows in X.chunks[0]):
            # Rows dropped lazily (X[mask] with a Dask mask): one pass to count them.
            X = X.compute_chunk_sizes()
        check_matrix(X.shape, X.dtype)
        return RowData(_whole_rows(X), "dask")
    if isinstance(X, xr.Dataset):
        raise TypeError(
            "Got an xarray.Dataset; pass one of its variables (a DataArray), "
            "e.g. ds['name'], or stack several with ds.to_dataarray()"
        )
    if scipy.sparse.issparse(X):
        raise TypeError(
            f"Sparse input is not supported (got {type(X).__name__}); pass a dense array, "
            "e.g. X.toarray(), or a Dask array of dense chunks"
        )
    names = column_names(X)
    array = numbers_from_objects(np.asarray(X))
    check_matrix(array.shape, array.dtype)
    rows = balanced_rows_per_chunk(*array.shape, array.dtype.itemsize)
    return RowData(
        dask_view(array, (rows, -1)), "numpy", in_memory=array, feature_names=names
    )


def _say_columns(source: tables.TableSource) -> None:
    """Warn which columns of a table path were taken as features, when some
    were left out or one looks like an identifier or a label (issue 29)."""
    suspects = tables.identifier_columns(source)
    if not source.skipped and not suspects:
        return
    text = f"fitting on the numeric columns of {source.path}: {', '.join(source.columns)}"
    if source.skipped:
        text += f" (not used: {', '.join(source.skipped)})"
    if suspects:
        text += (
            f"; {', '.join(map(repr, suspects))} looks like an identifier or a label, not a "
            "measurement: choose the columns with streamgmm.inputs.as_rows(path, "
            "columns=[...]) (streamgmm fit --columns)"
        )
    warnings.warn(text, UserWarning, stacklevel=4)


def model_columns(X: Any, feature_names: Any, sample_weight: Any = None) -> Any:
    """The columns to read from a table path ``X`` for a model fitted on
    ``feature_names`` (with the weight column ``sample_weight`` if it names
    one); None for other inputs or a model without feature names."""
    if feature_names is None or not isinstance(X, str | os.PathLike):
        return None
    if not tables.table_format(X):
        return None
    names = [str(name) for name in feature_names]
    if isinstance(sample_weight, str) and sample_weight not in names:
        names.append(sample_weight)
    return names


def _from_frame(X: Any, check_missing: bool = True) -> RowData:
    """A pandas frame (in memory) or a Dask frame (one chunk per partition)."""
    names = column_names(X)
    if tables.is_dask_frame(X):
        array = tables.dask_frame_array(X, check_missing=check_missing)
        check_matrix(array.shape, array.dtype)
        return RowData(array, "dataframe", feature_names=names, index=X.index)
    check_matrix(X.shape, np.float64)
    array = tables.frame_values(X, check_missing=False)
    check_matrix(array.shape, array.dtype)
    rows = balanced_rows_per_chunk(*array.shape, array.dtype.itemsize)
    return RowData(
        dask_view(array, (rows, -1)),
        "pandas",
        in_memory=array,
        feature_names=names,
        index=X.index,
    )


def named_input(X: Any, data: RowData) -> Any:
    """X for scikit-learn's feature-name checks, which know pandas but not Dask
    frames: a Dask frame, table path or :class:`~streamgmm.tables.TableSource`
    stands for an empty pandas frame with its columns."""
    if data.kind not in ("dataframe", "xarray") or data.feature_names is None:
        return X
    if tables.is_dask_frame(X):
        return X._meta
    import pandas as pd

    return pd.DataFrame(columns=list(data.feature_names))


def numbers_from_objects(array: np.ndarray) -> np.ndarray:
    """An object array as float64 (as scikit-learn treats it); other arrays as
    they are. A value that is not a number raises ``TypeError`` naming it."""
    if array.dtype != object:
        return array
    try:
        return array.astype(np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"Expected numeric input; the object array holds a value that is not a number: "
            f"{error}"
        ) from error


def column_names(X: Any) -> np.ndarray | None:
    """The column names of a data frame (pandas, polars, ...) as an object array,
    if they are all strings; None for other inputs and for unnamed or numbered
    columns. Mixed string and other names raise ``TypeError`` (scikit-learn's
    rule for ``feature_names_in_``)."""
    columns = getattr(X, "columns", None)
    if columns is None or isinstance(X, np.ndarray):
        return None
    names = np.asarray(list(columns), dtype=object)
    kinds = {type(name) for name in names}
    if str in kinds and len(kinds) > 1:
        raise TypeError(
            "Feature names are only supported if all input features have string names, "
            f"got column names of types {sorted(kind.__name__ for kind in kinds)}; convert "
            "them all to strings (X.columns = X.columns.astype(str)) or remove them"
        )
    return names if kinds == {str} else None


def _from_dataarray(X: xr.DataArray, sample_dim: str | None) -> RowData:
    if X.ndim != 2:
        raise ValueError(
            f"Expected a 2-D DataArray (samples, features), got dims {X.dims}; "
            "stack the sample dimensions first, e.g. X.stack(sample=('time', 'space'))"
        )
    sample_dim = sample_dim if sample_dim is not None else X.dims[0]
    if sample_dim not in X.dims:
        raise ValueError(f"sample_dim {sample_dim!r} is not a dimension of X {X.dims}")
    feature_dim = next(dim for dim in X.dims if dim != sample_dim)
    X = X.transpose(sample_dim, feature_dim)
    check_shape_of_samples(X.shape, sample_dim, feature_dim)
    inner = as_rows(X.data)
    coords = {name: coord for name, coord in X.coords.items() if coord.dims == (sample_dim,)}
    return RowData(
        inner.array, "xarray", sample_dim, coords, lazy=inner.kind == "dask",
        in_memory=inner.in_memory, feature_names=_coordinate_names(X, feature_dim),
    )


def _coordinate_names(X: xr.DataArray, feature_dim: str) -> np.ndarray | None:
    """The feature coordinate's values as feature names, if they are all strings."""
    if feature_dim not in X.coords:
        return None
    values = X.coords[feature_dim].values.tolist()
    if not values or not all(isinstance(value, str) for value in values):
        return None
    return np.asarray(values, dtype=object)


def wrap_rows(data: RowData, result: da.Array, extra_dim: str | None = None):
    """Return a per-row Dask result in the kind of the input.

    NumPy input gives NumPy output, Dask and Zarr inputs give lazy Dask arrays,
    DataArray input gives a DataArray along the sample dimension (plus
    ``extra_dim`` for 2-D results such as responsibilities). Frames give a
    Series (labels ``"label"``, other per-row values ``"log_likelihood"``) or
    a frame of ``responsibility_<k>`` columns on their index: pandas for pandas,
    lazy Dask for Dask frames and table paths.
    """
    if data.kind in ("pandas", "dataframe"):
        name = tables.LABEL_COLUMN if result.dtype.kind in "iu" else tables.LOG_LIKELIHOOD_COLUMN
        columns = None if result.ndim == 1 else tables.responsibility_columns(result.shape[1])
        return tables.wrap_frame(data.kind, data.index, result, name, columns)
    if data.kind == "numpy":
        return result.compute()
    if data.kind in ("dask", "zarr"):
        return result
    dims = (data.sample_dim,) if result.ndim == 1 else (data.sample_dim, extra_dim)
    values = result if data.lazy else result.compute()
    return xr.DataArray(values, dims=dims, coords=data.sample_coords)


def wrap_like_input(X: Any, data: RowData, result: da.Array):
    """A Dask result of X's shape (rows of ``data``, the input X) in the kind of X:
    NumPy for NumPy, lazy for Dask and Zarr, a DataArray with X's dims and
    coordinates (lazy if X was), a frame with X's columns and index (pandas for
    pandas, lazy Dask for Dask frames and table paths)."""
    if data.kind == "numpy":
        return result.compute()
    if data.kind in ("dask", "zarr"):
        return result
    if data.kind == "xarray":
        feature_dim = next(dim for dim in X.dims if dim != data.sample_dim)
        arranged = X.transpose(data.sample_dim, feature_dim)
        values = result if data.lazy else result.compute()
        return arranged.copy(data=values).transpose(*X.dims)
    columns = getattr(X, "columns", None)
    columns = list(columns if columns is not None else data.feature_names)
    return tables.wrap_frame(data.kind, data.index, result, None, columns)


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
    """``data`` ready for a fit's passes: its Dask array persisted (on the
    workers under a distributed client, else in local memory) when
    :func:`should_persist` says so, and a distributed client's workers ready to
    run the fit's tasks (:func:`streamgmm.cluster.prepare_workers`)."""
    prepare_workers()
    if not should_persist(data, option):
        return data
    if data.weights is None:
        return dataclasses.replace(data, array=data.array.persist())
    array, weights = dask.persist(data.array, data.weights)
    return dataclasses.replace(data, array=array, weights=weights)


# ------------------------------------------------------------------ weights
def weighted_rows(
    X: Any, sample_weight: Any, sample_dim: str | None = None, check_missing: bool = True,
    columns: Any = None,
) -> RowData:
    """:func:`as_rows` of X with its rows' weights (:func:`with_weights`).

    ``sample_weight`` is None, a NumPy or Dask array (n,), a Zarr array or the
    path of a Zarr store holding one 1-D array, a 1-D DataArray along the
    sample dimension, or, for tabular X (data frames, Parquet and CSV tables),
    the name of a column, which then is not a feature. ``check_missing``: as
    :func:`as_rows`'s.
    """
    if columns is not None and isinstance(X, str | os.PathLike):
        X = tables.table_source(X, list(columns))
    if sample_weight is None:
        return as_rows(X, sample_dim, check_missing)
    if isinstance(sample_weight, str) and _is_tabular(X):
        X, sample_weight = tables.split_weight_column(X, sample_weight)
        data = as_rows(X, sample_dim, check_missing)
        return with_weights(data, as_rows(sample_weight).array[:, 0])
    return with_weights(as_rows(X, sample_dim, check_missing), sample_weight)


def _is_tabular(X: Any) -> bool:
    return (
        isinstance(X, tables.TableSource)
        or tables.is_data_frame(X)
        or (isinstance(X, str | os.PathLike) and tables.table_format(X) is not None)
    )


def with_weights(data: RowData, sample_weight: Any) -> RowData:
    """``data`` with ``sample_weight`` as its row weights, float64 and chunked like
    its rows, after checking them (one pass over the weights, none over X).

    Raises ``ValueError`` naming the problem for weights that are not one
    finite, non-negative number per row, that are all zero, or whose chunks
    cannot be aligned with the rows (unknown chunk sizes); ``TypeError`` for
    non-numeric weights.
    """
    weights = _weight_array(sample_weight, data)
    if weights.ndim != 1:
        raise ValueError(
            f"sample_weight must be 1-D (one weight per row), got shape {weights.shape}"
        )
    if not (np.issubdtype(weights.dtype, np.number) or weights.dtype == np.bool_) or (
        np.issubdtype(weights.dtype, np.complexfloating)
    ):
        raise TypeError(f"sample_weight must hold real numbers, got dtype {weights.dtype}")
    if any(np.isnan(size) for size in weights.chunks[0]):
        raise ValueError(
            "sample_weight has chunks of unknown size, which cannot be aligned with the "
            "rows of X; compute them first (e.g. weights.compute_chunk_sizes())"
        )
    if weights.shape[0] != data.n_samples:
        raise ValueError(
            f"sample_weight has {weights.shape[0]} values but X has {data.n_samples} rows; "
            "give one weight per row"
        )
    weights = weights.astype(np.float64).rechunk((data.array.chunks[0],))
    summary = dask.compute(*weight_summary(weights))
    check_weight_values(*summary, weights)
    return dataclasses.replace(data, weights=weights, n_weighted=int(summary[2]))


def _weight_array(sample_weight: Any, data: RowData) -> da.Array:
    """``sample_weight`` of any supported kind as a Dask array."""
    if isinstance(sample_weight, xr.DataArray):
        return _weights_from_dataarray(sample_weight, data)
    if isinstance(sample_weight, str | os.PathLike):
        sample_weight = open_zarr_array(sample_weight, ndim=1)
    if isinstance(sample_weight, zarr.Array):
        return from_zarr(sample_weight)
    if isinstance(sample_weight, da.Array):
        return sample_weight
    array = numbers_from_objects(np.asarray(sample_weight))
    aligned = array.shape == (data.n_samples,)
    return dask_view(array, (data.array.chunks[0],) if aligned else -1)


def _weights_from_dataarray(weights: xr.DataArray, data: RowData) -> da.Array:
    """A DataArray's weights, after checking that they lie along X's sample
    dimension (and its coordinates, where both have them)."""
    sample_dim = data.sample_dim or weights.dims[0]
    if weights.dims != (sample_dim,):
        raise ValueError(
            f"sample_weight must be a 1-D DataArray along the sample dimension {sample_dim!r}, "
            f"got dims {weights.dims}"
        )
    coords = data.sample_coords or {}
    if sample_dim in coords and sample_dim in weights.coords and weights.sizes[
        sample_dim
    ] == data.n_samples and not np.array_equal(
        np.asarray(coords[sample_dim]), np.asarray(weights[sample_dim])
    ):
        raise ValueError(
            f"sample_weight's coordinates along {sample_dim!r} differ from those of X; "
            "align them first (e.g. weights.sel({sample_dim}=X[{sample_dim}]))"
        )
    values = weights.data
    return values if isinstance(values, da.Array) else dask_view(np.asarray(values), -1)


def weight_summary(weights: da.Array) -> tuple:
    """Lazy ``(non-finite count, negative count, positive count, sum)`` of weights."""
    return (
        (~da.isfinite(weights)).sum(),
        (weights < 0).sum(),
        (weights > 0).sum(),
        da.where(da.isfinite(weights), weights, 0).sum(),
    )


def check_weight_values(
    n_nonfinite: int, n_negative: int, n_positive: int, total: float, weights: da.Array
) -> None:
    """Raise ``ValueError`` naming the first bad weight, or for weights that are
    all zero (the summary of :func:`weight_summary`)."""
    for count, problem, bad in (
        (n_nonfinite, "NaN or infinite", lambda w: ~np.isfinite(w)),
        (n_negative, "negative", lambda w: w < 0),
    ):
        if count:
            first = int(da.argmax(bad(weights)).compute())
            raise ValueError(
                f"sample_weight has {int(count)} {problem} value(s), first at row {first}; "
                "weights must be finite and non-negative"
            )
    if not n_positive or not total > 0:
        raise ValueError("sample_weight is zero for every row; at least one weight must be > 0")


__all__ = [
    "as_rows",
    "open_zarr_array",
]
