"""Tabular input: Parquet and CSV files read out of core, and data frames as X.

A table becomes a row-chunked Dask array through ``dask.dataframe``: one chunk
per partition (a Parquet file or row group, a block of CSV lines), converted to
an (n, d) array of its chosen columns when a pass reaches it, so only a few
partitions are ever in memory. The columns default to every numeric column.
A missing value or a text column ends with a one-line error naming the column
and the rows, as NaN in an array does. Results keep the table's index: pandas
in, pandas out; a Dask frame or a table path in, a lazy Dask frame out.
"""

from __future__ import annotations

import glob
import io
import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

CSV_SUFFIXES = (".csv",)
"""Comma-separated, uncompressed (blocks of lines are read from byte offsets)."""
PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_BLOCK_BYTES = 32 * 2**20
"""Bytes of CSV text per partition (about 1.3 million numbers)."""

_PARQUET_READING = threading.Lock()
"""One row group decoded at a time per process (see :func:`_parquet_values`)."""

LABEL_COLUMN = "label"
LOG_LIKELIHOOD_COLUMN = "log_likelihood"


def responsibility_columns(n_components: int) -> list[str]:
    """Column names of the responsibilities: ``responsibility_0`` ... ``_{K-1}``."""
    return [f"responsibility_{k}" for k in range(n_components)]


# ------------------------------------------------------------ what is a table
def table_format(path: str | os.PathLike) -> str | None:
    """``"parquet"`` or ``"csv"`` for a path naming a table (a file, a folder of
    such files, or a glob pattern), else None. Zarr stores are never tables."""
    text = os.fspath(path)
    if os.path.isdir(text):
        if any(os.path.exists(os.path.join(text, name)) for name in ("zarr.json", ".zgroup")):
            return None
        names = os.listdir(text)
        if any(name.lower().endswith(PARQUET_SUFFIXES) for name in names):
            return "parquet"
        if any(name.lower().endswith(CSV_SUFFIXES) for name in names):
            return "csv"
        if text.lower().rstrip("/").endswith(PARQUET_SUFFIXES):
            return "parquet"
        return None
    lower = text.lower()
    if lower.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if lower.endswith(CSV_SUFFIXES):
        return "csv"
    return None


def table_files(path: str, kind: str) -> list[str]:
    """The files a table path names, sorted; ``FileNotFoundError`` if none."""
    if glob.has_magic(path):
        files = sorted(glob.glob(path))
    elif os.path.isdir(path):
        suffixes = PARQUET_SUFFIXES if kind == "parquet" else CSV_SUFFIXES
        files = sorted(
            os.path.join(path, name)
            for name in os.listdir(path)
            if name.lower().endswith(suffixes) and not name.startswith((".", "_"))
        )
    else:
        files = [path] if os.path.isfile(path) else []
    if not files:
        raise FileNotFoundError(f"No {kind} file at {path!r}")
    return files


def is_data_frame(X: Any) -> bool:
    """Whether X is a pandas or dask DataFrame (checked without importing them)."""
    module = type(X).__module__
    return type(X).__name__ == "DataFrame" and module.startswith(("pandas", "dask"))


def is_dask_frame(X: Any) -> bool:
    return is_data_frame(X) and type(X).__module__.startswith("dask")


# ------------------------------------------------------------------ reading
@dataclass(frozen=True)
class TableSource:
    """A table on disk and the columns to use: what :func:`table_source` makes of
    a path, and what the input adapters read (:func:`source_rows`).

    Attributes
    ----------
    path : the path as given (file, folder or glob pattern).
    kind : "parquet" or "csv".
    files : the files it names, sorted.
    columns : the chosen column names, in order.
    skipped : the table's other columns.
    frame : a lazy Dask frame of the chosen columns, one partition per Parquet
        row group or per block of CSV lines, with the table's index.
    lengths : rows per partition.
    parts : (file, row group, first row of the group in its file) of every
        partition (Parquet; empty for CSV).
    """

    path: str
    kind: str
    files: tuple[str, ...]
    columns: tuple[str, ...]
    skipped: tuple[str, ...]
    frame: Any
    lengths: tuple[int, ...]
    parts: tuple[tuple[str, int, int], ...] = ()


def table_source(path: str | os.PathLike, columns: Sequence[str] | None = None) -> TableSource:
    """The table at ``path`` (a Parquet or CSV file, a folder of them, or a glob
    pattern) with ``columns`` (default: every numeric column; see
    :func:`choose_columns`). Reads Parquet metadata, or parses CSV once to count
    each block's rows (they are indexed by their number in the files, from 0)."""
    path = os.fspath(path)
    kind = table_format(path)
    if kind is None:
        raise ValueError(f"{path!r} is not a Parquet or CSV table")
    files = table_files(path, kind)
    if kind == "parquet":
        frame, lengths, parts = _read_parquet(files)
    else:
        (frame, lengths), parts = _read_csv(files), ()
    if kind == "csv":
        text = [name for name, dtype in frame.dtypes.items() if not _is_number(dtype)]
        wanted = text if columns is None else [name for name in text if name in columns]
        check_numbers_in_text(files[0], wanted)
    chosen, skipped = choose_columns(frame, columns, path)
    return TableSource(
        path, kind, tuple(files), tuple(chosen), tuple(skipped), frame[chosen], lengths, parts
    )


IDENTIFIER_NAMES = re.compile(
    r"(^|[_\W])(id|ids|key|index|idx|label|labels|class|target|true|truth|y|cluster|group)$",
    re.IGNORECASE,
)
"""Names of integer columns that usually identify or label rows rather than measure them."""


def identifier_columns(source: TableSource) -> list[str]:
    """The chosen integer columns that look like identifiers or labels: a name
    such as ``id``, ``label``, ``class`` or ``true``, or values that count up by
    one in the first part of the table (a row number)."""
    integers = [
        name for name in source.columns
        if getattr(source.frame.dtypes[name], "kind", "") in "iu"
    ]
    if not integers:
        return []
    first = source.frame[integers].partitions[0].compute()
    suspects = []
    for name in integers:
        values = first[name].to_numpy()
        counting = values.size > 2 and bool(np.all(np.diff(values) == 1))
        if IDENTIFIER_NAMES.search(name) or counting:
            suspects.append(name)
    return suspects


def split_weight_column(X: Any, name: str) -> tuple[Any, Any]:
    """``(features, weights)`` of tabular X (a pandas or Dask frame, a table path or
    :class:`TableSource`) whose column ``name`` holds the rows' weights: X
    without that column, and that column alone, in the same kind (so that both
    have the same partitions)."""
    if is_data_frame(X):
        if name not in X.columns:
            raise ValueError(
                f"sample_weight {name!r} is not a column of X; its columns are "
                f"{', '.join(map(str, X.columns))}"
            )
        return X.drop(columns=[name]), X[[name]]
    source = X if isinstance(X, TableSource) else table_source(X)
    features = [column for column in source.columns if column != name]
    if source.columns == (name,) or not features:
        raise ValueError(f"{source.path!r} has no column left as a feature besides {name!r}")
    return table_source(source.path, features), table_source(source.path, [name])


def _read_parquet(files: list[str]) -> tuple[Any, tuple[int, ...], tuple]:
    """Parquet files as a Dask frame with one partition per row group, the row
    groups' lengths (from the files' metadata), and the partitions' parts."""
    import dask.dataframe as dd
    import pyarrow.parquet as pq

    parts, lengths = [], []
    try:
        for name in files:
            metadata = pq.read_metadata(name)
            first = 0
            for group in range(metadata.num_row_groups):
                rows = metadata.row_group(group).num_rows
                parts.append((name, group, first))
                lengths.append(rows)
                first += rows
        meta = _parquet_part((files[0], 0, 0), empty=True)
    except Exception as error:
        raise ValueError(f"{files[0]!r} is not a readable Parquet table: {error}") from error
    frame = dd.from_map(_parquet_part, parts, meta=meta, enforce_metadata=False)
    return frame, tuple(lengths), tuple(parts)


def _parquet_part(part: tuple[str, int, int], columns=None, empty: bool = False) -> Any:
    """One row group of a Parquet file as a pandas frame with the file's index
    (a range index stored as metadata continues across row groups)."""
    import pandas as pd
    import pyarrow.parquet as pq

    name, group, first = part
    file = pq.ParquetFile(name)
    if empty:
        frame = file.schema_arrow.empty_table().to_pandas()
    else:
        frame = file.read_row_group(group, columns=columns, use_pandas_metadata=True).to_pandas()
    pandas_meta = file.schema_arrow.pandas_metadata or {}
    index = (pandas_meta.get("index_columns") or [None])[0]
    if isinstance(index, dict) and index.get("kind") == "range":
        start = index["start"] + index["step"] * first
        frame.index = pd.RangeIndex(
            start, start + index["step"] * len(frame), index["step"], name=index.get("name")
        )
    return frame


def _parquet_values(part: tuple[str, int, int], columns: tuple[str, ...], dtype,
                    check_missing: bool = True) -> np.ndarray:
    """The chosen columns of one row group as a C-ordered (n, d) array, filled a
    column at a time, so that reading holds the array and one column. A column
    with nulls raises ``ValueError`` naming it and the rows by index label
    (without ``check_missing``, nulls become NaN in a float array)."""
    import pyarrow.parquet as pq

    name, group, _ = part
    with _PARQUET_READING:
        file = pq.ParquetFile(name, pre_buffer=False)
        out = np.empty((file.metadata.row_group(group).num_rows, len(columns)), dtype=dtype)
        for j, column in enumerate(columns):
            values = file.read_row_group(group, columns=[column], use_threads=False).column(0)
            if values.null_count and not check_missing and out.dtype.kind == "f":
                out[:, j] = values.to_numpy(zero_copy_only=False)
                continue
            if values.null_count:
                try:
                    frame_values(_parquet_part(part, [column]))
                except ValueError as error:
                    raise ValueError(f"{name}: {error}") from None
            out[:, j] = values.to_numpy()
    return out


def source_array(source: TableSource, check_missing: bool = True):
    """The chosen columns of a table as a Dask array, one chunk per partition;
    empty cells raise ``ValueError`` naming them when a pass reaches them, or,
    without ``check_missing``, are NaN.

    Parquet chunks are read by a blockwise task (no task of their own), so that
    Dask fuses reading with what a pass computes from the chunk: a chunk read
    by an own root task waited in memory for its consumer, and a pass over
    four row groups then held all four (80 MB for chunks of 16 MB)."""
    import dask.array as da

    if source.kind != "parquet":
        return dask_frame_array(source.frame, source.lengths, check_missing)
    meta = source.frame._meta
    check_numeric(meta)
    dtype = np.result_type(*[_numpy_dtype(dtype) for dtype in meta.dtypes])
    numbers = da.arange(len(source.parts), chunks=1)

    def read(number: np.ndarray) -> np.ndarray:
        return _parquet_values(source.parts[int(number[0])], source.columns, dtype,
                               check_missing)

    return numbers.map_blocks(
        read,
        chunks=(source.lengths, (len(source.columns),)),
        new_axis=1,
        dtype=dtype,
        meta=np.empty((0, len(source.columns)), dtype=dtype),
    )


def _read_csv(files: list[str]) -> tuple[Any, tuple[int, ...]]:
    """CSV files as a Dask frame of blocks of lines, indexed by row number."""
    import dask
    import dask.dataframe as dd
    import pandas as pd

    with open(files[0], "rb") as file:
        sample = file.read(256 * 1024)
    try:
        meta = pd.read_csv(io.BytesIO(sample), nrows=1000).iloc[:0]
    except Exception as error:
        raise ValueError(f"{files[0]!r} is not a readable CSV table: {error}") from error
    blocks = [
        (name, offset, CSV_BLOCK_BYTES)
        for name in files
        for offset in range(0, max(1, os.path.getsize(name)), CSV_BLOCK_BYTES)
    ]
    frame = dd.from_map(_csv_block, blocks, meta=meta, dtypes=meta.dtypes.to_dict())
    lengths = np.asarray(dask.compute(frame.map_partitions(len))[0], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    frame = dd.from_map(
        _csv_block,
        blocks,
        list(starts),
        meta=meta,
        dtypes=meta.dtypes.to_dict(),
        divisions=(*map(int, starts), int(starts[-1] + lengths[-1] - 1)),
    )
    return frame, tuple(int(n) for n in lengths)


def _csv_block(block: tuple[str, int, int], first_row: int = 0, dtypes=None) -> Any:
    """The rows of one block of a CSV file (the lines starting in it), parsed
    with the dtypes of the file's sample; a value that does not parse raises
    ``TypeError`` naming its column, row and text."""
    import pandas as pd
    from fsspec.utils import read_block

    name, offset, length = block
    with open(name, "rb") as file:
        header = file.readline()
        data = read_block(file, offset, length, delimiter=b"\n")
    if offset == 0:
        data = data[len(header) :]
    text = header + data
    try:
        part = pd.read_csv(io.BytesIO(text), dtype=dtypes)
    except (ValueError, TypeError) as error:
        raise _csv_value_error(name, text, dtypes, first_row, offset) from error
    part.index = pd.RangeIndex(first_row, first_row + len(part))
    return part


def _csv_value_error(name: str, text: bytes, dtypes, first_row: int, offset: int) -> TypeError:
    """The error for a block whose values do not fit the dtypes of the sample:
    the first cell that is not a number, with its column and row."""
    import pandas as pd

    strings = pd.read_csv(io.BytesIO(text), dtype=str, keep_default_na=False)
    if first_row == 0 and offset > 0:
        first_row = _rows_before(name, offset)
    for column, dtype in (dtypes or {}).items():
        if not _is_number(dtype):
            continue
        values = strings[column]
        numbers = pd.to_numeric(values.where(values != "", "nan"), errors="coerce")
        bad = np.flatnonzero(numbers.isna().to_numpy() & (values != "").to_numpy())
        if bad.size:
            return TypeError(
                f"column {column!r} of {name} holds text, not a number: {values.iloc[bad[0]]!r} "
                f"in row {first_row + bad[0]} ({bad.size} such value(s) in rows "
                f"{first_row + bad[0]} to {first_row + bad[-1]}); fix the file or leave the "
                "column out with --columns"
            )
    return TypeError(f"{name}: a value does not fit its column's type near row {first_row}")


def check_numbers_in_text(name: str, columns: Sequence[str]) -> None:
    """Raise ``TypeError`` naming the column, rows and text for a CSV column
    that the file's first rows make a text column although most of its values
    there are numbers (a stray ``'oops'`` in row 40 must not make the column
    disappear from the features, as the same value at row 150,000 is an error:
    see :func:`_csv_value_error`)."""
    import pandas as pd

    if not columns:
        return
    with open(name, "rb") as file:
        sample = file.read(256 * 1024)
    strings = pd.read_csv(io.BytesIO(sample), nrows=1000, dtype=str, keep_default_na=False,
                          usecols=list(columns))
    for column in columns:
        values = strings[column]
        filled = (values != "").to_numpy()
        numbers = pd.to_numeric(values.where(values != "", "nan"), errors="coerce")
        bad = np.flatnonzero(numbers.isna().to_numpy() & filled)
        if bad.size and bad.size * 2 < filled.sum():
            raise TypeError(
                f"column {column!r} of {name} holds text, not a number: "
                f"{values.iloc[bad[0]]!r} in row {bad[0]} ({bad.size} such value(s) in its "
                f"first {len(values)} rows, rows {bad[0]} to {bad[-1]}); fix the file or "
                "leave the column out with --columns"
            )


def _rows_before(name: str, offset: int) -> int:
    """Data rows in a CSV file before the line starting at byte ``offset``."""
    with open(name, "rb") as file:
        head = file.read(offset)
    return head.count(b"\n") - 1


# ----------------------------------------------------------------- columns
def choose_columns(
    frame: Any, columns: Sequence[str] | None, source: str = "the table"
) -> tuple[list[str], list[str]]:
    """``(chosen, skipped)`` column names: ``columns`` after checking they exist
    and hold numbers, or every numeric (or boolean) column; ``skipped`` are the
    columns not chosen. Raises ``ValueError`` for unknown columns or when none
    is numeric, ``TypeError`` for a chosen text column."""
    names = [str(name) for name in frame.columns]
    numeric = [str(name) for name, dtype in frame.dtypes.items() if _is_number(dtype)]
    if columns is None or len(columns) == 0:
        if not numeric:
            raise ValueError(
                f"{source} has no numeric column (columns: {', '.join(names)}); convert "
                "the values to numbers"
            )
        chosen = numeric
    else:
        chosen = [str(name) for name in columns]
        unknown = [name for name in chosen if name not in names]
        if unknown:
            raise ValueError(
                f"{source} has no column {', '.join(map(repr, unknown))}; its columns are "
                f"{', '.join(names)}"
            )
        text = [name for name in chosen if name not in numeric]
        if text:
            dtype = frame.dtypes[text[0]]
            raise TypeError(
                f"column {text[0]!r} of {source} holds {dtype} values, not numbers; "
                f"choose numeric columns (numeric: {', '.join(numeric) or 'none'})"
            )
    return chosen, [name for name in names if name not in chosen]


def _is_number(dtype: Any) -> bool:
    kind = getattr(dtype, "kind", "O")
    return kind in "fiub" and not str(dtype).startswith(("category", "datetime", "timedelta"))


# ------------------------------------------------------------- as row data
def frame_values(part: Any, check_missing: bool = True) -> np.ndarray:
    """The values of a pandas frame as a C-ordered (n, d) array, after checking
    that every column holds numbers (text that reads as numbers is converted)
    and, with ``check_missing``, no missing values. Errors name the column, the
    rows by index label, and how many there are. (A pandas X is converted
    without ``check_missing``: its NaN rows get the array's error when a pass
    reaches them, after scikit-learn's feature-name checks.)"""
    columns = {}
    for column, dtype in part.dtypes.items():
        values = part[column]
        if not _is_number(dtype):
            values = _numbers_in(values, column)
        missing = values.isna().to_numpy() if check_missing else np.zeros(0, bool)
        if missing.any():
            labels = part.index[np.flatnonzero(missing)]
            raise ValueError(
                f"column {column!r} has {labels.size} missing value(s) (null or NaN), first "
                f"at index {labels[0]!r}, last at {labels[-1]!r}; remove or impute them"
            )
        columns[column] = values
    dtype = np.result_type(*[_numpy_dtype(values.dtype) for values in columns.values()])
    out = np.empty((len(part), len(columns)), dtype=dtype)
    for j, values in enumerate(columns.values()):
        out[:, j] = values.to_numpy(dtype=dtype, na_value=np.nan)
    return out


def _numbers_in(values: Any, column: Any) -> Any:
    """A column of text or objects as numbers, or ``TypeError`` naming the first
    value that is not one, by its index label."""
    import pandas as pd

    numbers = pd.to_numeric(values, errors="coerce")
    bad = np.flatnonzero(numbers.isna().to_numpy() & values.notna().to_numpy())
    if bad.size:
        raise TypeError(
            f"column {column!r} holds text, not numbers: {values.iloc[bad[0]]!r} at index "
            f"{values.index[bad[0]]!r} ({bad.size} such value(s)); choose numeric columns"
        )
    return numbers


def _numpy_dtype(dtype: Any) -> np.dtype:
    """The NumPy dtype of a pandas column's dtype (nullable ones included)."""
    return np.dtype(getattr(dtype, "numpy_dtype", dtype))


def check_numeric(meta: Any) -> None:
    """Raise ``TypeError`` naming a column of a frame's metadata that does not
    hold numbers, ``ValueError`` for a frame without columns."""
    for column, dtype in meta.dtypes.items():
        if not _is_number(dtype):
            raise TypeError(
                f"column {column!r} holds {dtype} values, not numbers; choose numeric "
                "columns, e.g. frame[[...]], or --columns"
            )
    if meta.shape[1] == 0:
        raise ValueError("The table has no columns")


def dask_frame_array(frame: Any, lengths: Sequence[int] | None = None,
                     check_missing: bool = True):
    """A Dask array (n, d) with one chunk per partition of a Dask frame, so that
    results line up with the frame's partitions; ``lengths`` (rows per
    partition) are computed when not given (a pass over the frame)."""
    import dask
    import dask.array as da

    meta = frame._meta
    check_numeric(meta)
    dtype = np.result_type(*[_numpy_dtype(dtype) for dtype in meta.dtypes])
    if lengths is None:
        lengths = tuple(int(n) for n in dask.compute(frame.map_partitions(len))[0])
    return da.concatenate(
        [
            da.from_delayed(dask.delayed(frame_values)(block, check_missing),
                            (n, meta.shape[1]), dtype=dtype)
            for block, n in zip(frame.to_delayed(), lengths, strict=True)
        ]
    )


def wrap_frame(kind: str, index: Any, result: Any, name: str, columns: list[str] | None):
    """A per-row Dask result as a pandas Series/DataFrame (``kind="pandas"``) or
    a lazy Dask one (``"dataframe"``) on the input's ``index``."""
    import pandas as pd

    if kind == "pandas":
        values = result.compute()
        if values.ndim == 1:
            return pd.Series(values, index=index, name=name)
        return pd.DataFrame(values, index=index, columns=columns)
    import dask.dataframe as dd

    return dd.from_dask_array(result, columns=name if result.ndim == 1 else columns, index=index)


# ------------------------------------------------------------------ outputs
def prediction_parts(model: Any, X: Any, proba: bool, log_likelihood: bool) -> list:
    """Delayed pandas frames, one per part of X, of ``label`` (and with ``proba``
    ``responsibility_<k>``, with ``log_likelihood`` the per-row log-likelihood):
    on the index of a table or frame, else on row numbers from 0."""
    import dask
    import dask.array as da
    import dask.dataframe as dd
    import pandas as pd

    if isinstance(X, str | os.PathLike) and table_format(X):
        names = getattr(model, "feature_names_in_", None)
        X = table_source(X, None if names is None else [str(name) for name in names])
    if is_data_frame(X) and not is_dask_frame(X):
        X = dd.from_pandas(X, npartitions=1)
    tabular = isinstance(X, TableSource) or is_dask_frame(X)
    outputs = [model.predict(X)]
    if proba:
        outputs.append(model.predict_proba(X))
    if log_likelihood:
        outputs.append(model.score_samples(X))
    if tabular:
        columns = [output.to_delayed() for output in outputs]
    else:
        arrays = [da.asarray(output) for output in outputs]
        rows = arrays[0].chunks[0]
        arrays = [array.rechunk((rows, -1)[: array.ndim]) for array in arrays]
        starts = np.concatenate([[0], np.cumsum(rows)[:-1]]).astype(int)
        names = [LABEL_COLUMN]
        if proba:
            names.append(responsibility_columns(model.n_components))
        if log_likelihood:
            names.append(LOG_LIKELIHOOD_COLUMN)
        columns = [
            [dask.delayed(_numbered)(block, int(start), name)
             for block, start in zip(array.to_delayed().ravel(), starts, strict=True)]
            for array, name in zip(arrays, names, strict=True)
        ]
    return [
        dask.delayed(pd.concat)([dask.delayed(_as_frame)(piece) for piece in pieces], axis=1)
        for pieces in zip(*columns, strict=True)
    ]


def _numbered(values: np.ndarray, start: int, name: Any) -> Any:
    """A block of per-row results as a pandas object indexed by row number."""
    import pandas as pd

    index = pd.RangeIndex(start, start + len(values))
    if values.ndim == 1:
        return pd.Series(values, index=index, name=name)
    return pd.DataFrame(values, index=index, columns=name)


def save_table_predictions(
    model: Any,
    X: Any,
    path: str | os.PathLike,
    *,
    proba: bool = False,
    log_likelihood: bool = False,
    overwrite: bool = False,
    inputs: Sequence[Any] = (),
) -> int:
    """Write the label of every row of ``X`` (a table, a frame, or any input for
    CSV), with ``proba`` its responsibilities and with ``log_likelihood`` its
    log-likelihood (``score_samples``, for outlier scores), to one file at
    ``path``: Parquet (one row group per part of the input), or CSV when
    ``path`` ends with ``.csv`` (after a first line ``# streamgmm-format:
    streamgmm.predictions``, which ``pandas.read_csv(path, comment="#")``
    skips), with the input's index (row numbers for arrays) and the columns
    ``label``, ``responsibility_<k>`` and ``log_likelihood``, computed a few
    parts at a time. A later call replaces the file (atomically); anything else
    there is refused unless ``overwrite`` (see :mod:`streamgmm.outputs`).
    Returns the rows written."""
    import dask
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .cluster import reducing_threads
    from .outputs import CSV_MARKER, MARKER_KEY, PREDICTIONS_FORMAT, write_output

    sources = list(inputs)
    if isinstance(X, TableSource):
        sources += list(X.files)
    parts = prediction_parts(model, X, proba, log_likelihood)
    group = reducing_threads()
    marker = {MARKER_KEY.encode(): PREDICTIONS_FORMAT.encode()}
    as_csv = str(path).lower().endswith(".csv")
    written = 0

    def computed():
        nonlocal written
        for start in range(0, len(parts), group):
            for part in dask.compute(*parts[start : start + group]):
                written += len(part)
                yield part

    def write_csv(temporary) -> None:
        with open(temporary, "w", newline="") as handle:
            handle.write(f"{CSV_MARKER.decode()}{PREDICTIONS_FORMAT}\n")
            for number, part in enumerate(computed()):
                part.to_csv(handle, header=number == 0, index=True)

    def write_parquet(temporary) -> None:
        writer = None
        try:
            for part in computed():
                table = pa.Table.from_pandas(part, preserve_index=True)
                if writer is None:
                    schema = table.schema.with_metadata(
                        {**(table.schema.metadata or {}), **marker}
                    )
                    writer = pq.ParquetWriter(temporary, schema)
                writer.write_table(table.replace_schema_metadata(writer.schema.metadata))
        finally:
            if writer is not None:
                writer.close()

    write_output(path, PREDICTIONS_FORMAT, write_csv if as_csv else write_parquet,
                 overwrite=overwrite, inputs=sources)
    return written


def _as_frame(part: Any) -> Any:
    return part.to_frame() if part.ndim == 1 else part


__all__: list[str] = []
"""Nothing here is public API (docs/api.md lists what is)."""
