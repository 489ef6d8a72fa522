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

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from . import outputs
from .estep import GaussianParameters
from .outputs import CHECKPOINT_FORMAT, write_output

FORMAT_NAME = CHECKPOINT_FORMAT
FORMAT_VERSION = 1

_RUN_ARRAYS = ("weights", "means", "precisions_cholesky", "covariances", "lower_bounds")


def run_to_arrays(run: dict, prefix: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Split an EM run (the dict ``GaussianMixture._batch_em`` returns) into arrays
    named ``prefix/<field>`` and JSON-safe scalars."""
    params: GaussianParameters = run["params"]
    arrays = {
        f"{prefix}/weights": params.weights,
        f"{prefix}/means": params.means,
        f"{prefix}/precisions_cholesky": params.precisions_cholesky,
        f"{prefix}/covariances": run["covariances"],
        f"{prefix}/lower_bounds": np.asarray(run["lower_bounds"], dtype=np.float64),
        f"{prefix}/lower_bound": np.asarray(run["lower_bound"], dtype=np.float64),
    }
    for key, values in (run.get("history") or {}).items():
        arrays[f"{prefix}/history/{key}"] = np.asarray(values, dtype=np.float64)
    scalars = {"n_iter": int(run["n_iter"]), "converged": bool(run["converged"])}
    return arrays, scalars


def run_from_arrays(arrays: dict, scalars: dict, prefix: str, covariance_type: str) -> dict:
    """Inverse of :func:`run_to_arrays`."""
    params = GaussianParameters(
        arrays[f"{prefix}/weights"],
        arrays[f"{prefix}/means"],
        arrays[f"{prefix}/precisions_cholesky"],
        covariance_type,
    )
    run = {
        "params": params,
        "covariances": arrays[f"{prefix}/covariances"],
        "lower_bound": float(arrays[f"{prefix}/lower_bound"]),
        "lower_bounds": [float(value) for value in arrays[f"{prefix}/lower_bounds"]],
        "n_iter": int(scalars["n_iter"]),
        "converged": bool(scalars["converged"]),
    }
    history_prefix = f"{prefix}/history/"
    history = {
        name.removeprefix(history_prefix): [float(value) for value in values]
        for name, values in arrays.items()
        if name.startswith(history_prefix)
    }
    if history:
        run["history"] = history
    return run


_STATISTICS_FIELDS = ("weight", "mean", "scatter", "log_likelihood", "n_samples")


def online_to_arrays(state, params: GaussianParameters, covariances, position):
    """Split the state of an online fit (an ``OnlineState``, the parameters of
    the next E-step, their covariances and an ``OnlinePosition``) into arrays
    named ``online/...`` and JSON-safe scalars."""
    arrays = {
        "online/weights": params.weights,
        "online/means": params.means,
        "online/precisions_cholesky": params.precisions_cholesky,
        "online/covariances": covariances,
        "online/lower_bounds": np.asarray(position.lower_bounds, dtype=np.float64),
    }
    if position.leftover is not None:
        arrays["online/leftover"] = position.leftover
    for name, stats in (("running", state.statistics), ("averaged", state.averaged)):
        if stats is not None:
            for field in _STATISTICS_FIELDS:
                arrays[f"online/{name}/{field}"] = np.asarray(getattr(stats, field), np.float64)
    scalars = {
        "n_steps": int(state.n_steps),
        "n_samples_seen": int(state.n_samples_seen),
        "n_averaged": int(state.n_averaged),
        "passes_done": int(position.passes_done),
        "converged": bool(position.converged),
        "pass_rng_state": position.pass_rng_state,
        "batches_done": int(position.batches_done),
        "total": float(position.total),
        "count": int(position.count),
        "chunks_done": int(position.chunks_done),
    }
    return arrays, scalars


def online_from_arrays(arrays: dict, scalars: dict, covariance_type: str):
    """Inverse of :func:`online_to_arrays`: ``(state, params, covariances, position)``."""
    from .online import OnlinePosition, OnlineState
    from .statistics import SufficientStatistics

    def statistics(name):
        if f"online/{name}/weight" not in arrays:
            return None
        values = {field: arrays[f"online/{name}/{field}"] for field in _STATISTICS_FIELDS}
        values["log_likelihood"] = float(values["log_likelihood"])
        values["n_samples"] = float(values["n_samples"])
        return SufficientStatistics(**values)

    state = OnlineState(
        statistics("running"),
        scalars["n_steps"],
        scalars["n_samples_seen"],
        statistics("averaged"),
        scalars["n_averaged"],
    )
    params = GaussianParameters(
        arrays["online/weights"],
        arrays["online/means"],
        arrays["online/precisions_cholesky"],
        covariance_type,
    )
    if scalars["batches_done"] and "chunks_done" not in scalars:
        raise ValueError(
            "The checkpoint was written inside a pass by an older streamgmm, which "
            "counted batches instead of chunks; delete it to start the fit again"
        )
    position = OnlinePosition(
        scalars["passes_done"],
        [float(value) for value in arrays["online/lower_bounds"]],
        scalars["converged"],
        scalars["pass_rng_state"],
        scalars["batches_done"],
        scalars["total"],
        scalars["count"],
        scalars.get("chunks_done", 0),
        arrays.get("online/leftover"),
    )
    return state, params, arrays["online/covariances"], position


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


__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "check_fingerprint",
    "claim_checkpoint_path",
    "read_checkpoint",
    "remove_stale_temporaries",
    "run_from_arrays",
    "run_to_arrays",
    "write_checkpoint",
]
