"""The fitted state, written and read in one place.

A model's fitted attributes, an EM run (:class:`~streamgmm.engine.EMRun`) and a
set of named arrays plus scalars are three forms of the same state:

* :func:`run_from_model` and :func:`set_fitted` go between attributes and runs;
* :func:`run_to_arrays` and :func:`run_from_arrays` go between runs and named
  arrays (``weights``, ``means``, ``precisions_cholesky``, ``covariances``,
  ``precisions`` if kept, ``lower_bounds``, ``history/<key>``,
  ``running/<statistic>`` and ``averaged/<statistic>``) and JSON-safe scalars
  (``lower_bound``, ``n_iter``, ``converged``, the stepwise-EM counters and
  ``stream_position``); an accelerated run's step state
  (:mod:`streamgmm.acceleration`) as ``acceleration/<field>`` arrays and an
  ``acceleration`` scalar entry naming its method.

Model files (:mod:`streamgmm.io`) and checkpoints (:mod:`streamgmm.checkpoint`)
store those arrays and scalars, each under its own names.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import xarray as xr

from .acceleration import method_of, state_from_arrays, state_to_arrays
from .covariance import DIMS, precisions_from_cholesky
from .engine import EMRun
from .estep import GaussianParameters
from .online import OnlineState, seen_count
from .outputs import MODEL_FORMAT, MODEL_FORMAT_VERSION
from .progress import HISTORY_KEYS
from .statistics import SufficientStatistics

STATISTICS_FIELDS = ("weight", "mean", "scatter", "log_likelihood", "n_samples")
ONLINE_STATISTICS = {"running": "running_statistics_", "averaged": "averaged_statistics_"}
"""Name of a stepwise-EM statistics set -> the model attribute holding it."""
ONLINE_COUNTERS = ("n_steps", "n_samples_seen", "n_averaged")
"""Stepwise-EM counters: scalars here, attributes with a trailing underscore."""
RUN_SCALARS = ("lower_bound", "n_iter", "converged")
"""Scalars of every run (:func:`run_to_arrays`): model-file attributes."""
PARAMETER_ARRAYS = ("weights", "means", "covariances", "precisions", "precisions_cholesky")
"""Parameter arrays of every model file (:func:`model_to_dataset`)."""


_FLOAT32, _FLOAT64 = np.dtype(np.float32), np.dtype(np.float64)


def fitted_dtype(input_dtype: np.dtype) -> np.dtype:
    """The dtype of fitted attributes for input of ``input_dtype``: float32
    stays float32, everything else (float64, integers, booleans) gives float64,
    as scikit-learn converts it."""
    return _FLOAT32 if _FLOAT32 == input_dtype else _FLOAT64


def fitted_scalar(value: float, dtype: np.dtype) -> float:
    """A lower bound as scikit-learn exposes it: a NumPy scalar of ``dtype``,
    except ``-inf`` (no EM iteration ran), which stays a Python float."""
    return float(value) if value == -np.inf else np.dtype(dtype).type(value)


def set_fitted(model: Any, run: EMRun, n_features: int, dtype: np.dtype) -> None:
    """Expose ``run`` as the fitted attributes of ``model``, arrays and lower
    bounds in ``dtype`` (the feature names are the caller's)."""
    params = run.params
    model.weights_ = params.weights.astype(dtype)
    model.means_ = params.means.astype(dtype)
    model.precisions_cholesky_ = params.precisions_cholesky.astype(dtype)
    model.covariances_ = np.asarray(run.covariances).astype(dtype)
    model.__dict__.pop(DEFERRED_PRECISIONS, None)  # a previous fit's, if any
    if run.precisions is None:
        _defer_precisions(model, params.precisions_cholesky, params.covariance_type, dtype)
    else:
        model.precisions_ = run.precisions.astype(dtype)
    model.converged_ = run.converged
    model.n_iter_ = run.n_iter
    model.lower_bound_ = fitted_scalar(run.lower_bound, dtype)
    bounds, scalar = run.lower_bounds, np.dtype(dtype).type
    if bounds and (type(bounds[-1]) is not scalar or type(bounds[0]) is not scalar):
        bounds = [fitted_scalar(value, dtype) for value in bounds]
    model.lower_bounds_ = bounds
    _set_online_state(model, run.online_state)
    model.history_ = run.full_history()
    model.n_features_in_ = n_features


DEFERRED_PRECISIONS = "_deferred_precisions"
"""Attribute of a model whose ``precisions_`` is computed when first read: the
precision factors, covariance type and dtype it is computed from."""


def _defer_precisions(model: Any, factors: np.ndarray, covariance_type: str,
                      dtype: np.dtype) -> None:
    """``precisions_`` of ``factors`` in ``dtype``: kept to be computed when
    first read (:func:`deferred_attribute`) if the model's class reads deferred
    attributes (``DEFERS_PRECISIONS``; a ``partial_fit`` then does not spend
    a twentieth of its time on a product its caller may never read), else now.
    ``factors`` are the run's own float64 array, which nothing writes to."""
    if not getattr(type(model), "DEFERS_PRECISIONS", False):
        model.precisions_ = _precisions(factors, covariance_type, dtype)
        return
    model.__dict__.pop("precisions_", None)
    setattr(model, DEFERRED_PRECISIONS, (factors, covariance_type, dtype))


def _precisions(factors: np.ndarray, covariance_type: str, dtype: np.dtype) -> np.ndarray:
    """Precision matrices of float64 precision factors, in ``dtype``."""
    return precisions_from_cholesky(factors, covariance_type).astype(dtype, copy=False)


def deferred_attribute(model: Any, name: str) -> Any:
    """A fitted attribute of ``model`` computed on first reading and kept
    (``precisions_`` after :func:`set_fitted`); ``AttributeError`` for any other
    name, as for an attribute that is not there (``__getattr__``)."""
    if name == "precisions_":
        source = model.__dict__.pop(DEFERRED_PRECISIONS, None)
        if source is not None:
            model.precisions_ = _precisions(*source)
            return model.precisions_
    raise AttributeError(f"{type(model).__name__!r} object has no attribute {name!r}")


def _set_online_state(model: Any, state: OnlineState | None) -> None:
    """Store (or, for ``None``, remove) the stepwise-EM state as attributes."""
    if state is None:
        for name in [*ONLINE_STATISTICS.values(), *(f"{name}_" for name in ONLINE_COUNTERS)]:
            model.__dict__.pop(name, None)
        return
    model.running_statistics_ = state.statistics
    model.averaged_statistics_ = state.averaged
    model.n_steps_ = state.n_steps
    model.n_samples_seen_ = state.n_samples_seen
    model.n_averaged_ = state.n_averaged


def online_state_of(model: Any) -> OnlineState | None:
    """The stepwise-EM state of a fitted model, or None if it has none."""
    if not hasattr(model, "running_statistics_"):
        return None
    return OnlineState(
        model.running_statistics_,
        model.n_steps_,
        model.n_samples_seen_,
        model.averaged_statistics_,
        model.n_averaged_,
    )


def run_from_model(model: Any, precisions: bool = True) -> EMRun:
    """The fitted state of ``model`` as a run, arrays as they are (not copied);
    without ``precisions``, the run's precisions are None (not read: computed
    from its parameters if needed)."""
    params = GaussianParameters(
        model.weights_, model.means_, model.precisions_cholesky_, model.covariance_type
    )
    return EMRun(
        params,
        model.covariances_,
        lower_bound=model.lower_bound_,
        lower_bounds=model.lower_bounds_,
        n_iter=model.n_iter_,
        converged=model.converged_,
        history=getattr(model, "history_", None),
        online_state=online_state_of(model),
        precisions=model.precisions_ if precisions else None,
    )


def run_to_arrays(run: EMRun) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """A run as named arrays and JSON-safe scalars (module docs)."""
    params = run.params
    arrays = {
        "weights": params.weights,
        "means": params.means,
        "precisions_cholesky": params.precisions_cholesky,
        "covariances": np.asarray(run.covariances),
        "lower_bounds": np.asarray(run.lower_bounds, dtype=params.means.dtype),
    }
    if run.precisions is not None:
        arrays["precisions"] = run.precisions
    for key, values in (run.history or {}).items():
        arrays[f"history/{key}"] = np.asarray(values, dtype=np.float64)
    scalars = {
        "lower_bound": float(run.lower_bound),
        "n_iter": int(run.n_iter),
        "converged": bool(run.converged),
    }
    state = run.online_state
    if state is not None:
        for name, stats in (("running", state.statistics), ("averaged", state.averaged)):
            if stats is not None:
                for field in STATISTICS_FIELDS:
                    arrays[f"{name}/{field}"] = np.asarray(getattr(stats, field), np.float64)
        scalars.update({name: int(getattr(state, name)) for name in ONLINE_COUNTERS})
    if run.step_state is not None:
        accelerated, numbers = state_to_arrays(run.step_state)
        arrays.update({f"acceleration/{name}": value for name, value in accelerated.items()})
        scalars["acceleration"] = {"method": method_of(run.step_state), **numbers}
    return arrays, scalars


def run_from_arrays(arrays: dict, scalars: dict, covariance_type: str) -> EMRun:
    """Inverse of :func:`run_to_arrays`; absent history or online state stay
    absent (None)."""
    params = GaussianParameters(
        arrays["weights"], arrays["means"], arrays["precisions_cholesky"], covariance_type
    )
    history = {
        key: [float(value) for value in arrays[f"history/{key}"]]
        for key in HISTORY_KEYS
        if f"history/{key}" in arrays
    }
    step_state = None
    if "acceleration" in scalars:
        numbers = dict(scalars["acceleration"])
        method = numbers.pop("method")
        accelerated = {name.removeprefix("acceleration/"): value for name, value in arrays.items()
                       if name.startswith("acceleration/")}
        step_state = state_from_arrays(method, accelerated, numbers)
    return EMRun(
        params,
        arrays["covariances"],
        step_state=step_state,
        lower_bound=float(scalars["lower_bound"]),
        lower_bounds=[float(value) for value in arrays["lower_bounds"]],
        n_iter=int(scalars["n_iter"]),
        converged=bool(scalars["converged"]),
        history=history or None,
        online_state=_online_state_from_arrays(arrays, scalars),
        precisions=arrays.get("precisions"),
    )


def _online_state_from_arrays(arrays: dict, scalars: dict) -> OnlineState | None:
    if "running/weight" not in arrays:
        return None

    def statistics(name: str) -> SufficientStatistics | None:
        if f"{name}/weight" not in arrays:
            return None
        values = {field: arrays[f"{name}/{field}"] for field in STATISTICS_FIELDS}
        values["log_likelihood"] = float(values["log_likelihood"])
        values["n_samples"] = float(values["n_samples"])
        return SufficientStatistics(**values)

    return OnlineState(
        statistics("running"),
        int(scalars["n_steps"]),
        seen_count(scalars["n_samples_seen"]),
        statistics("averaged"),
        int(scalars["n_averaged"]),
    )


# ------------------------------------------------------------ model files
ARRAY_HYPERPARAMETERS = ("weights_init", "means_init", "precisions_init")
"""Saved as variables with the dims of the fitted ``weights``, ``means`` and
``precisions`` (the name without ``_init``), whose shapes they have."""

_DATASET_PREFIXES = {"history/": "history_", "running/": "online_", "averaged/": "averaged_"}
"""Prefix of a name of :func:`run_to_arrays` -> prefix of its model-file variable."""


def _variable_dims(name: str, covariance_type: str) -> tuple[str, ...]:
    """Dimension names of the model-file variable of array ``name``."""
    field = name.rsplit("/", 1)[-1]
    if name.startswith("history/"):
        return ("record",)
    if field in ("weights", "weight"):
        return ("component",)
    if field in ("means", "mean"):
        return ("component", "feature")
    if field == "lower_bounds":
        return ("iteration",)
    if field in ("log_likelihood", "n_samples"):
        return ()
    return DIMS[covariance_type]


def _variable_name(name: str) -> str:
    for prefix, variable_prefix in _DATASET_PREFIXES.items():
        if name.startswith(prefix):
            return variable_prefix + name.removeprefix(prefix)
    return name


def model_to_dataset(model: Any) -> xr.Dataset:
    """The fitted state of ``model`` as a Dataset (the model file's contents).

    Variables: the arrays of :func:`run_to_arrays` with dims (``weights``
    (component), ``means`` (component, feature), ``covariances``,
    ``precisions`` and ``precisions_cholesky`` (dims by covariance type, the
    second feature axis named ``feature_j``), ``lower_bounds`` (iteration),
    ``history_<key>`` (record), the stepwise-EM statistics as ``online_<field>``
    and ``averaged_<field>``), and ``weights_init``, ``means_init``,
    ``precisions_init`` where those hyper-parameters are set. Attrs: the other
    hyper-parameters (JSON), the scalars of :func:`run_to_arrays` (``converged``
    as 0 or 1), ``n_features_in``, ``feature_names_in`` (JSON) and
    ``stream_position`` where the model has them.
    """
    model._check_is_fitted()
    cov_type = model.covariance_type
    arrays, scalars = run_to_arrays(run_from_model(model))
    data_vars = {
        _variable_name(name): (_variable_dims(name, cov_type), values)
        for name, values in arrays.items()
    }
    for name in ARRAY_HYPERPARAMETERS:
        value = getattr(model, name)
        if value is not None:
            dims = data_vars[name.removesuffix("_init")][0]
            data_vars[name] = (dims, np.asarray(value, dtype=np.float64))
    hyper = {
        name: value
        for name, value in model.get_params().items()
        if name not in ARRAY_HYPERPARAMETERS and _json_safe(value)
    }
    attrs = {
        "format": MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "covariance_type": cov_type,
        "hyperparameters": json.dumps(hyper),
        **scalars,
        "converged": int(scalars["converged"]),
        "n_features_in": int(model.n_features_in_),
    }
    if hasattr(model, "feature_names_in_"):
        attrs["feature_names_in"] = json.dumps([str(name) for name in model.feature_names_in_])
    if hasattr(model, "stream_position_"):
        attrs["stream_position"] = int(model.stream_position_)
    K, d = model.means_.shape
    coords = {"component": np.arange(K), "feature": np.arange(d)}
    if "feature_j" in DIMS[cov_type]:
        coords["feature_j"] = np.arange(d)
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def restore_fitted(model: Any, dataset: xr.Dataset) -> None:
    """Set the fitted attributes of ``model`` from a Dataset written by
    :func:`model_to_dataset` (checked by the caller)."""
    attrs = dataset.attrs
    arrays = {}
    for name, variable in dataset.data_vars.items():
        canonical = str(name)
        for prefix, variable_prefix in _DATASET_PREFIXES.items():
            if canonical.startswith(variable_prefix):
                canonical = prefix + canonical.removeprefix(variable_prefix)
        arrays[canonical] = variable.values
    scalars = {name: attrs[name] for name in RUN_SCALARS}
    if "running/weight" in arrays:
        scalars.update({name: attrs[name] for name in ONLINE_COUNTERS})
    run = run_from_arrays(arrays, scalars, model.covariance_type)
    set_fitted(model, run, int(attrs["n_features_in"]), arrays["means"].dtype)
    if "feature_names_in" in attrs:
        model.feature_names_in_ = np.asarray(json.loads(attrs["feature_names_in"]), dtype=object)
    if "stream_position" in attrs:
        model.stream_position_ = int(attrs["stream_position"])


def _json_safe(value: Any) -> bool:
    try:
        json.dumps(value)
    except TypeError:
        return False
    return True


__all__: list[str] = []
"""Nothing here is public API (docs/api.md lists what is)."""
