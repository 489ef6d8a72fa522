"""Checkpoints of a running fit, written atomically and read without pickle.

A checkpoint is one ``.npz`` file (NumPy arrays only, read with
``allow_pickle=False``) holding every array of the fitting state plus a JSON
document (stored as a 0-d unicode array) with the scalars, the random generator's
state and a description of the fit (hyper-parameters and data shape) that a
resumed fit must match.

Layout, for format version 1:

* ``meta``: JSON with ``format``, ``format_version``, ``algorithm`` (``"batch"``
  or ``"online"``),
  ``fit`` (the fingerprint: hyper-parameters, ``n_samples``, ``n_features``,
  ``dtype``), ``init_index`` (the initialisation being run), ``rng_state`` (the
  generator after that initialisation drew its start), and per stored run its
  scalars (``n_iter``, ``converged``).
* ``run/<field>`` and ``best/<field>``: arrays of the current run and of the best
  finished run so far (absent before one finished); fields are ``weights``,
  ``means``, ``precisions_cholesky``, ``covariances``, ``lower_bounds`` and
  ``lower_bound``, and ``history/<key>`` for each key of the run's history
  (passes, log-likelihood, elapsed seconds; absent in older checkpoints).

Stepwise online EM (``algorithm="online"``, one initialisation) stores instead
``online/<field>`` (the parameters of the next E-step, their covariances, the
per-pass ``lower_bounds``) and ``online/running/<statistic>`` and
``online/averaged/<statistic>`` (the running and averaged statistics), with
``meta["online"]`` holding the step counter, rows seen, the pass position
(complete passes, chunks and batches done in the pass in progress, their
log-likelihood sum and row count) and the generator's state before that pass
drew its chunk order; ``online/leftover`` holds the rows of those chunks that
wait for the next batch (fewer than ``batch_size``; absent when there are none).
A reader refuses an algorithm or a format version it does not know.

The file is written to a sibling name in the same folder, flushed to disk and
swapped with the old one (:func:`streamgmm.outputs.write_output`, as every output
of streamgmm), so a crash at any moment leaves either the previous complete
checkpoint or the new one (and perhaps a sibling file, which the next fit with
that checkpoint deletes). A path holding anything but a checkpoint is refused
and left as it is.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from . import outputs
from .engine import EMRun
from .estep import GaussianParameters
from .hyperparameters import IGNORED_BY_CHECKPOINTS
from .online import OnlinePosition, OnlineState
from .outputs import CHECKPOINT_FORMAT, write_output
from .state import run_from_arrays, run_to_arrays

FORMAT_NAME = CHECKPOINT_FORMAT
FORMAT_VERSION = 1

def run_to_entries(run: EMRun, prefix: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """A run (:func:`streamgmm.state.run_to_arrays`) as arrays named
    ``prefix/<name>`` (its ``lower_bound`` among them) and JSON-safe scalars."""
    arrays, scalars = run_to_arrays(run)
    entries = {f"{prefix}/{name}": values for name, values in arrays.items()}
    entries[f"{prefix}/lower_bound"] = np.asarray(scalars.pop("lower_bound"), dtype=np.float64)
    return entries, scalars


def run_from_entries(arrays: dict, scalars: dict, prefix: str, covariance_type: str) -> EMRun:
    """Inverse of :func:`run_to_entries`."""
    own = {
        name.removeprefix(f"{prefix}/"): values
        for name, values in arrays.items()
        if name.startswith(f"{prefix}/")
    }
    return run_from_arrays(
        own, {**scalars, "lower_bound": float(own.pop("lower_bound"))}, covariance_type
    )


_POSITION_SCALARS = ("passes_done", "batches_done", "total", "count", "chunks_done")


def online_to_entries(
    state: OnlineState, params: GaussianParameters, covariances: np.ndarray,
    position: OnlinePosition,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The state of an online fit between two mini-batches (the parameters of
    the next E-step, their covariances and where the passes stand) as arrays
    named ``online/...`` and JSON-safe scalars."""
    run = EMRun(
        params, covariances, lower_bounds=list(position.lower_bounds),
        n_iter=position.passes_done, converged=position.converged, online_state=state,
    )
    arrays, scalars = run_to_entries(run, "online")
    if position.leftover is not None:
        arrays["online/leftover"] = position.leftover
    scalars.update({name: getattr(position, name) for name in _POSITION_SCALARS})
    scalars["pass_rng_state"] = position.pass_rng_state
    return arrays, scalars


def online_from_entries(arrays: dict, scalars: dict, covariance_type: str):
    """Inverse of :func:`online_to_entries`: ``(state, params, covariances, position)``."""
    if scalars["batches_done"] and "chunks_done" not in scalars:
        raise ValueError(
            "The checkpoint was written inside a pass by an older streamgmm, which "
            "counted batches instead of chunks; delete it to start the fit again"
        )
    lower_bounds = arrays["online/lower_bounds"]
    bound = float(lower_bounds[-1]) if len(lower_bounds) else -np.inf
    run = run_from_entries(
        {**arrays, "online/lower_bound": np.asarray(bound)},
        {**scalars, "n_iter": scalars["passes_done"]},
        "online",
        covariance_type,
    )
    position = OnlinePosition(
        scalars["passes_done"],
        run.lower_bounds,
        scalars["converged"],
        scalars["pass_rng_state"],
        scalars["batches_done"],
        scalars["total"],
        scalars["count"],
        scalars.get("chunks_done", 0),
        arrays.get("online/leftover"),
    )
    return run.online_state, run.params, run.covariances, position


IGNORED_HYPERPARAMETERS = IGNORED_BY_CHECKPOINTS
"""Hyper-parameters that do not change a fit's result, so a checkpoint need not
match them (``changes_result=False`` in the table of settings)."""


def fit_fingerprint(hyperparameters: dict[str, Any], data: Any) -> dict:
    """What a checkpoint must match to be resumed by a fit: the hyper-parameters
    that change the result (arrays by their SHA-256) and the data's (a
    :class:`~streamgmm.inputs.RowData`) shape and dtype, not its contents (with
    weights, also how many rows have a positive weight)."""
    hyper = {}
    for name, value in hyperparameters.items():
        if name in IGNORED_HYPERPARAMETERS:
            continue
        if isinstance(value, np.ndarray | list | tuple):
            array = np.ascontiguousarray(value, dtype=np.float64)
            value = f"sha256:{hashlib.sha256(array.tobytes()).hexdigest()}{array.shape}"
        elif isinstance(value, np.random.Generator | np.random.RandomState):
            value = f"{type(value).__name__} (its state is not compared)"
        hyper[name] = value
    fingerprint = {
        **hyper,
        "n_samples": data.n_samples,
        "n_features": data.n_features,
        "dtype": str(data.array.dtype),
    }
    if data.weights is not None:
        fingerprint["weighted_rows"] = data.n_weighted
    return json.loads(json.dumps(fingerprint))


def write_batch_checkpoint(
    path, fingerprint: dict, init_index: int, rng: np.random.Generator,
    best: EMRun | None, run: EMRun,
) -> None:
    """The checkpoint of a batch fit: its current ``run`` (initialisation
    ``init_index``), the ``best`` finished one and the generator's state."""
    arrays, run_scalars = run_to_entries(run, "run")
    meta = {
        "algorithm": "batch",
        "fit": fingerprint,
        "init_index": init_index,
        "rng_state": rng.bit_generator.state,
        "run": run_scalars,
    }
    if best is not None:
        best_arrays, meta["best"] = run_to_entries(best, "best")
        arrays.update(best_arrays)
    write_checkpoint(path, arrays, meta)


def write_online_checkpoint(
    path, fingerprint: dict, rng: np.random.Generator, state: OnlineState,
    params: GaussianParameters, covariances: np.ndarray, position: OnlinePosition,
) -> None:
    """The checkpoint of an online fit (the ``on_position`` call of
    :func:`streamgmm.online.online_em`)."""
    arrays, scalars = online_to_entries(state, params, covariances, position)
    meta = {"algorithm": "online", "fit": fingerprint, "init_index": 0, "online": scalars}
    meta["rng_state"] = rng.bit_generator.state
    write_checkpoint(path, arrays, meta)


def read_fit_checkpoint(path, fingerprint: dict, algorithm: str, covariance_type: str):
    """``(init_index, resumed, best, rng_state)`` from the checkpoint of a fit
    with ``fingerprint``, or None if there is none. ``resumed`` is the current
    run (batch) or ``(state, params, covariances, position)`` (online);
    ``ValueError`` for another algorithm's or another fit's checkpoint."""
    contents = read_checkpoint(path)
    if contents is None:
        return None
    arrays, meta = contents
    if meta.get("algorithm") != algorithm:
        raise ValueError(
            f"The checkpoint {os.fspath(path)!r} was written by algorithm "
            f"{meta.get('algorithm')!r}, not {algorithm!r}"
        )
    check_fingerprint(path, meta["fit"], fingerprint)
    if algorithm == "online":
        resumed = online_from_entries(arrays, meta["online"], covariance_type)
        return 0, resumed, None, meta["rng_state"]
    run = run_from_entries(arrays, meta["run"], "run", covariance_type)
    best = None
    if "best" in meta:
        best = run_from_entries(arrays, meta["best"], "best", covariance_type)
    return meta["init_index"], run, best, meta["rng_state"]


def write_checkpoint(path: str | os.PathLike, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Atomically write ``arrays`` and the JSON document ``meta`` to ``path``
    (:func:`streamgmm.outputs.write_output`: a sibling file, flushed, swapped in;
    a file at ``path`` that is not a checkpoint is refused)."""
    meta = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **meta}
    contents = {name: np.asarray(value, order="C") for name, value in arrays.items()}
    contents["meta"] = np.array(json.dumps(meta))

    def write(temporary):
        with open(temporary, "wb") as handle:
            np.savez(handle, **contents)

    write_output(path, CHECKPOINT_FORMAT, write)


def claim_checkpoint_path(path: str | os.PathLike, inputs: list[Any]) -> list[str]:
    """Make ``path`` ready for a fit: raise ``ValueError`` if it is, contains or
    lies inside one of the fit's ``inputs`` (its data), then delete the stale
    siblings of a killed writer (:func:`remove_stale_temporaries`, returned)."""
    outputs.refuse_inputs(path, inputs)
    return remove_stale_temporaries(path)


def remove_stale_temporaries(path: str | os.PathLike) -> list[str]:
    """Delete the sibling files left next to ``path`` by a writer that was killed
    in the middle of :func:`write_checkpoint` (``.<name>.streamgmm-<token>.new``;
    nothing else is touched); returns their paths. Only one fit may use a
    checkpoint path at a time."""
    target = Path(os.path.realpath(path))
    return [os.fspath(stale) for stale in outputs.remove_stale_temporaries(target)]


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict] | None:
    """The arrays and the ``meta`` document of a checkpoint, or None if there is no
    file at ``path``. Raises ``ValueError`` for a file that is not a readable
    checkpoint or has a newer format version."""
    path = os.fspath(path)
    if not os.path.exists(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        meta = json.loads(str(arrays.pop("meta")))
    except Exception as error:
        raise ValueError(
            f"{path!r} is not a readable streamgmm checkpoint ({error}); "
            "pass another checkpoint path (it is left as it is)"
        ) from error
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise ValueError(
            f"{path!r} is not a streamgmm checkpoint; pass another checkpoint path "
            "(it is left as it is)"
        )
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"{path!r} has checkpoint format version {version!r}; this streamgmm reads "
            f"up to {FORMAT_VERSION}"
        )
    return arrays, meta


def check_fingerprint(path: str | os.PathLike, stored: dict, expected: dict) -> None:
    """Raise ``ValueError`` listing what differs when a checkpoint was written by
    another fit (other hyper-parameters or data of another shape or dtype)."""
    differences = [
        f"{name}: checkpoint has {stored.get(name)!r}, this fit has {value!r}"
        for name, value in expected.items()
        if stored.get(name) != value
    ]
    if differences:
        raise ValueError(
            f"The checkpoint {os.fspath(path)!r} belongs to a different fit ("
            + "; ".join(differences)
            + "); delete it or pass another checkpoint path"
        )


__all__: list[str] = []
"""Nothing here is public API (docs/api.md lists what is)."""
