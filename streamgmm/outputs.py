"""Writing outputs without destroying data.

Everything streamgmm writes carries a format marker saying what it is: the
``format`` attribute at the root of a Zarr store (model files, prediction
stores, synthetic rows), the ``format`` of a checkpoint's JSON document, a
``streamgmm-format`` text chunk in a PNG, a ``streamgmm-format`` entry in a
Parquet file's key-value metadata (predictions for tables). A path may be written when nothing is
there, when it is an empty folder, or when it holds a streamgmm output of the
same kind; anything else (a folder with other files, a data store, a plain file,
an output of another kind) is refused with :class:`OutputExistsError` unless the
caller passes ``overwrite=True`` (``--overwrite`` on the command line). Even
then a path that is, contains or lies inside an input of the same call, or that
is or contains the current or the home folder, is refused (``ValueError``).

Replacing is atomic. The new output is written to a hidden sibling
``.<name>.streamgmm-<token>.new``, flushed to disk, and swapped with the old
one in a single ``renameat2(RENAME_EXCHANGE)`` call (Linux); the old output,
now at the sibling name, is then deleted. A process killed at any moment
leaves the old output or the new one at the path, complete, plus perhaps a
sibling that the next write to that path deletes. Where the exchange is not
available (other systems, some network file systems) the old output is first
renamed aside to ``.<name>.streamgmm-<token>.old`` and the new one renamed in:
between those two renames the path is missing, and :func:`interrupted_replacement`
finds the old output for a reader (``streamgmm.load`` uses it) until the next
write to the path puts it back. One writer per path at a time.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import json
import os
import secrets
import shutil
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

MODEL_FORMAT = "streamgmm.GaussianMixture"
MODEL_FORMAT_VERSION = 1
"""Version of the model-file layout :func:`streamgmm.state.model_to_dataset` writes."""
PREDICTIONS_FORMAT = "streamgmm.predictions"
SYNTHETIC_ROWS_FORMAT = "streamgmm.synthetic_rows"
STREAM_ROWS_FORMAT = "streamgmm.stream_rows"
CHECKPOINT_FORMAT = "streamgmm.checkpoint"
PLOT_FORMAT = "streamgmm.plot"
IMPUTED_FORMAT = "streamgmm.imputed"
CRITERIA_FORMAT = "streamgmm.criteria"

KIND_NAMES = {
    MODEL_FORMAT: "a streamgmm model file",
    PREDICTIONS_FORMAT: "a streamgmm prediction store",
    SYNTHETIC_ROWS_FORMAT: "synthetic rows written by streamgmm",
    STREAM_ROWS_FORMAT: "a stream of rows (appended data)",
    CHECKPOINT_FORMAT: "a streamgmm checkpoint",
    PLOT_FORMAT: "a plot written by streamgmm",
    IMPUTED_FORMAT: "data imputed by streamgmm",
    CRITERIA_FORMAT: "a table of criteria written by streamgmm select",
}

NEVER_REPLACED_BY_DEFAULT = frozenset({STREAM_ROWS_FORMAT})
"""Kinds holding data streamgmm cannot write again (rows appended to a stream):
replaced only with ``overwrite=True``."""

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MARKER_KEY = "streamgmm-format"
"""Key of the marker in files with key-value metadata (PNG text chunks, Parquet)."""
PNG_MARKER_KEY = MARKER_KEY
"""Key of the PNG text chunk holding :data:`PLOT_FORMAT`."""
PARQUET_MAGIC = b"PAR1"
CSV_MARKER = b"# " + MARKER_KEY.encode() + b": "
"""First line of a CSV file streamgmm wrote: ``# streamgmm-format: <kind>``
(``pandas.read_csv(path, comment="#")`` skips it)."""

USE_RENAME_EXCHANGE = True
"""Swap with ``renameat2(RENAME_EXCHANGE)`` where the system has it; False
selects the rename-aside fallback everywhere."""

_TEMPORARY = ".streamgmm-"
_ZARR_METADATA = ("zarr.json", ".zattrs", ".zgroup", ".zarray")


class OutputExistsError(FileExistsError):
    """A write was refused because ``path`` holds something streamgmm may not
    replace; ``description`` says what it holds."""

    def __init__(self, path: str, description: str, kind: str) -> None:
        self.path, self.description, self.kind = path, description, kind
        super().__init__(self.message("overwrite=True"))

    def message(self, option: str) -> str:
        """The one-line refusal, naming ``option`` as the way to proceed."""
        return (
            f"refusing to overwrite {self.path}: it holds {self.description}, not "
            f"{kind_name(self.kind)}; choose another path, or pass {option} to replace it"
        )


# ------------------------------------------------------------- what is where
def kind_name(kind: str) -> str:
    """A format marker in words."""
    return KIND_NAMES.get(kind, f"a store marked format={kind!r}")


def stored_format(path: str | os.PathLike) -> str | None:
    """The format marker of what is at ``path``, or None when it carries none."""
    path = Path(path)
    if path.is_dir():
        return _zarr_format(path)
    if path.is_file():
        with open(path, "rb") as file:
            head = file.read(len(PNG_SIGNATURE))
        if head == PNG_SIGNATURE:
            return _png_marker(path)
        if head.startswith(b"PK"):
            return _npz_format(path)
        if head.startswith(PARQUET_MAGIC):
            return _parquet_format(path)
        if head == CSV_MARKER[: len(head)]:
            return _csv_format(path)
    return None


def _csv_format(path: Path) -> str | None:
    """The kind named by a CSV file's marker line (:data:`CSV_MARKER`), if any."""
    with open(path, "rb") as file:
        line = file.readline(200)
    if not line.startswith(CSV_MARKER):
        return None
    return line[len(CSV_MARKER):].strip().decode("utf-8", "replace")


def _zarr_format(folder: Path) -> str | None:
    """The ``format`` attribute at the root of a Zarr store (version 3 or 2)."""
    for name, section in (("zarr.json", "attributes"), (".zattrs", None)):
        try:
            document = json.loads((folder / name).read_text())
        except (OSError, ValueError):
            continue
        attributes = document.get(section, {}) if section else document
        value = attributes.get("format") if isinstance(attributes, dict) else None
        return value if isinstance(value, str) else None
    return None


def _npz_format(path: Path) -> str | None:
    """The ``format`` of the JSON ``meta`` document of a NumPy archive (checkpoints)."""
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as archive:
            value = json.loads(str(archive["meta"])).get("format")
    except Exception:
        return None
    return value if isinstance(value, str) else None


def _parquet_format(path: Path) -> str | None:
    """The ``streamgmm-format`` entry of a Parquet file's key-value metadata."""
    try:
        import pyarrow.parquet as pq

        metadata = pq.read_metadata(path).metadata or {}
    except Exception:
        return None
    value = metadata.get(MARKER_KEY.encode())
    return value.decode("utf-8", "replace") if value is not None else None


def _png_marker(path: Path) -> str | None:
    """The value of the ``streamgmm-format`` text chunk of a PNG file, if any."""
    with open(path, "rb") as file:
        file.seek(len(PNG_SIGNATURE))
        while header := file.read(8):
            if len(header) < 8:
                return None
            length, chunk_type = int.from_bytes(header[:4], "big"), header[4:]
            if chunk_type == b"IDAT" or chunk_type == b"IEND":
                return None
            body = file.read(length)
            file.seek(4, os.SEEK_CUR)
            if chunk_type == b"tEXt":
                key, _, value = body.partition(b"\0")
                if key.decode("latin-1") == PNG_MARKER_KEY:
                    return value.decode("latin-1")
    return None


def describe(path: str | os.PathLike) -> str:
    """What is at ``path``, in words, for a refusal message."""
    path = Path(path)
    found = stored_format(path)
    if found is not None:
        return kind_name(found)
    if path.is_dir():
        if any((path / name).exists() for name in _ZARR_METADATA):
            return "a Zarr store streamgmm did not write"
        entries = len(os.listdir(path))
        return f"a folder with {entries} entr{'y' if entries == 1 else 'ies'}"
    if path.is_file():
        return "a file streamgmm did not write"
    return "something streamgmm did not write"


def input_root(source: Any) -> Path | None:
    """The folder or file on this machine holding an input (a path, or a Zarr
    array in a local store), widened to the root of its Zarr store; None for
    in-memory data and remote stores."""
    location = source
    if not isinstance(source, str | os.PathLike):
        store = getattr(source, "store", None)
        root = getattr(store, "root", None)
        if root is None or not isinstance(root, str | os.PathLike):
            return None
        location = os.path.join(root, getattr(source, "path", "") or "")
    path = Path(os.path.realpath(location))
    while path.parent != path and any(
        (path.parent / name).exists() for name in ("zarr.json", ".zgroup")
    ):
        path = path.parent
    return path


def input_clash(target: Path, source: Path) -> str | None:
    """How ``target`` overlaps the input ``source`` ("is", "contains", "lies
    inside"), or None if it does not."""
    if target == source:
        return "is"
    if source.is_relative_to(target):
        return "contains"
    if target.is_relative_to(source):
        return "lies inside"
    return None


def refuse_inputs(path: str | os.PathLike, inputs: Iterable[Any]) -> Path:
    """The real path of ``path``, after raising ``ValueError`` if it is, contains
    or lies inside one of ``inputs`` (paths or arrays, see :func:`input_root`)."""
    target = Path(os.path.realpath(path))
    for source in inputs:
        root = input_root(source)
        clash = None if root is None else input_clash(target, root)
        if clash:
            raise ValueError(
                f"refusing to write {os.fspath(path)}: it {clash} the input {os.fspath(root)} "
                "of this command; choose another path (overwriting never applies to inputs)"
            )
    return target


def refuse_working_folders(path: str | os.PathLike, target: Path) -> None:
    """Raise ``ValueError`` if ``target`` is or contains the current folder or the
    home folder: a mistyped ``--out . --overwrite`` must not delete them."""
    for folder, name in ((Path.cwd(), "the current folder"), (Path.home(), "the home folder")):
        if Path(os.path.realpath(folder)).is_relative_to(target):
            raise ValueError(
                f"refusing to overwrite {os.fspath(path)}: it "
                f"{'is' if Path(os.path.realpath(folder)) == target else 'contains'} {name}; "
                "choose another path (overwriting never applies to it)"
            )


def check_output(
    path: str | os.PathLike,
    kind: str,
    *,
    overwrite: bool = False,
    inputs: Iterable[Any] = (),
) -> Path:
    """The real path to write ``kind`` to, after refusing what may not be
    replaced (see the module docstring). Raises ``ValueError`` for a path that
    overlaps one of ``inputs`` and :class:`OutputExistsError` for a path holding
    anything but an empty folder or a replaceable output of the same kind."""
    target = refuse_inputs(path, inputs)
    restore_interrupted(target)
    if not os.path.lexists(target):
        return target
    if overwrite:
        refuse_working_folders(path, target)
        return target
    if target.is_dir() and not os.listdir(target):
        return target
    if stored_format(target) == kind and kind not in NEVER_REPLACED_BY_DEFAULT:
        return target
    raise OutputExistsError(os.fspath(path), describe(target), kind)


# ----------------------------------------------------------- atomic replacing
def write_output(
    path: str | os.PathLike,
    kind: str,
    write: Callable[[Path], Any],
    *,
    overwrite: bool = False,
    inputs: Iterable[Any] = (),
) -> Path:
    """Check ``path`` (:func:`check_output`), call ``write(temporary)`` to write
    the new output at a sibling path, and put it in place atomically. Returns the
    real path written."""
    target = check_output(path, kind, overwrite=overwrite, inputs=inputs)
    remove_stale_temporaries(target)
    temporary = sibling(target, "new")
    try:
        write(temporary)
        sync_tree(temporary)
        swap_into_place(temporary, target)
    finally:
        remove_tree(temporary)
    return target


def write_zarr(
    dataset: Any,
    path: str | os.PathLike,
    kind: str,
    *,
    overwrite: bool = False,
    inputs: Iterable[Any] = (),
) -> Path:
    """Write an xarray Dataset as a Zarr store marked ``format=kind`` (computing
    Dask-backed variables chunk by chunk), with :func:`write_output`'s rules:
    only a store marked with the same ``kind`` is replaced without
    ``overwrite``, inputs never, and atomically. Returns the real path."""
    marked = dataset.copy(deep=False)
    marked.attrs = {**dataset.attrs, "format": kind}
    return write_output(
        path,
        kind,
        lambda temporary: marked.to_zarr(temporary, mode="w-", consolidated=False),
        overwrite=overwrite,
        inputs=inputs,
    )


def sibling(target: Path, role: str) -> Path:
    """A fresh hidden name beside ``target``: ``.<name>.streamgmm-<token>.<role>``."""
    return target.parent / f".{target.name}{_TEMPORARY}{secrets.token_hex(6)}.{role}"


def _siblings(target: Path, role: str) -> list[Path]:
    prefix = f".{target.name}{_TEMPORARY}"
    try:
        names = os.listdir(target.parent)
    except FileNotFoundError:
        return []
    return [
        target.parent / name
        for name in names
        if name.startswith(prefix) and name.endswith(f".{role}")
    ]


def swap_into_place(new: Path, target: Path) -> None:
    """Put ``new`` at ``target``; afterwards ``new`` holds the old output (or
    nothing), for the caller to delete."""
    if not os.path.lexists(target):
        os.rename(new, target)
    elif not _exchange(new, target):
        if new.is_file() and target.is_file() and not target.is_symlink():
            os.replace(new, target)
        else:
            aside = sibling(target, "old")
            os.rename(target, aside)
            os.rename(new, target)
            remove_tree(aside)
    _sync_directory(target.parent)


@functools.cache
def _renameat2() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    function.restype = ctypes.c_int
    return function


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths in one system call; False where the system or file system
    cannot."""
    function = _renameat2() if USE_RENAME_EXCHANGE else None
    if function is None:
        return False
    result = function(
        _AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE
    )
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(code, os.strerror(code), os.fspath(second))


def sync_tree(path: Path) -> None:
    """Flush every file and folder under ``path`` to disk, so that a crash of
    the machine after the swap cannot leave a renamed but empty output."""
    if path.is_file():
        _sync_file(path)
        return
    for folder, _, files in os.walk(path):
        for name in files:
            _sync_file(Path(folder) / name)
        _sync_directory(Path(folder))


def _sync_file(path: Path) -> None:
    with open(path, "rb") as file:
        os.fsync(file.fileno())


def _sync_directory(path: Path) -> None:
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def remove_tree(path: Path) -> None:
    """Delete a file or folder tree (nothing if absent)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)


def interrupted_replacement(target: str | os.PathLike) -> Path | None:
    """The old output renamed aside by a replacement that was killed before
    renaming the new one in (rename-aside fallback only), if ``target`` is
    missing and such a sibling exists."""
    target = Path(os.path.realpath(target))
    if os.path.lexists(target):
        return None
    aside = sorted(_siblings(target, "old"), key=lambda path: path.stat().st_mtime)
    return aside[-1] if aside else None


def restore_interrupted(target: Path) -> None:
    """Put back the old output of an interrupted replacement (see
    :func:`interrupted_replacement`)."""
    aside = interrupted_replacement(target)
    if aside is not None:
        os.rename(aside, target)


def remove_stale_temporaries(target: Path) -> list[Path]:
    """Delete the siblings that earlier writes to ``target`` left behind when
    they were killed; returns them."""
    stale = _siblings(target, "new")
    if os.path.lexists(target):
        stale += _siblings(target, "old")
    for path in stale:
        remove_tree(path)
    return stale


__all__ = [
    "OutputExistsError",
    "write_zarr",
    "stored_format",
    "interrupted_replacement",
]
