"""Models as xarray Datasets, and model files in Zarr (never pickle).

A model file holds the parameters as arrays with named dimensions, the
constructor's hyper-parameters and the fitted scalars as attributes, and a
format version, so that it reads the same in any language that reads Zarr.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import xarray as xr

FORMAT_NAME = "streamgmm.GaussianMixture"
FORMAT_VERSION = 1

COVARIANCE_DIMS = {
    "full": ("component", "feature", "feature_j"),
    "tied": ("feature", "feature_j"),
    "diag": ("component", "feature"),
    "spherical": ("component",),
}

_ARRAY_HYPERPARAMETERS = ("weights_init", "means_init", "precisions_init")


def model_to_dataset(model: Any) -> xr.Dataset:
    """The fitted parameters of ``model`` as a Dataset.

    Variables: ``weights`` (component), ``means`` (component, feature),
    ``covariances``, ``precisions`` and ``precisions_cholesky`` (dims by
    covariance type, the second feature axis named ``feature_j``) and
    ``lower_bounds`` (iteration), and ``history_<key>`` (record) for every key of
    ``history_``. Hyper-parameters and fitted scalars are attrs.
    """
    model._check_is_fitted()
    cov_dims = COVARIANCE_DIMS[model.covariance_type]
    K, d = model.means_.shape
    data_vars = {
        "weights": (("component",), model.weights_),
        "means": (("component", "feature"), model.means_),
        "covariances": (cov_dims, model.covariances_),
        "precisions": (cov_dims, model.precisions_),
        "precisions_cholesky": (cov_dims, model.precisions_cholesky_),
        "lower_bounds": (("iteration",), np.asarray(model.lower_bounds_, dtype=np.float64)),
    }
    for key, values in getattr(model, "history_", {}).items():
        data_vars[f"history_{key}"] = (("record",), np.asarray(values, dtype=np.float64))
    params = model.get_params()
    hyper = {
        name: value
        for name, value in params.items()
        if name not in _ARRAY_HYPERPARAMETERS and _json_safe(value)
    }
    attrs = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "covariance_type": model.covariance_type,
        "hyperparameters": json.dumps(hyper),
        "converged": int(model.converged_),
        "n_iter": int(model.n_iter_),
        "lower_bound": float(model.lower_bound_),
        "n_features_in": int(model.n_features_in_),
    }
    online_vars, online_attrs = online_state_variables(model)
    data_vars.update(online_vars)
    attrs.update(online_attrs)
    coords = {"component": np.arange(K), "feature": np.arange(d)}
    if "feature_j" in cov_dims:
        coords["feature_j"] = np.arange(d)
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


ONLINE_PREFIXES = {"running_statistics_": "online_", "averaged_statistics_": "averaged_"}
"""Model attribute holding a SufficientStatistics -> prefix of its variables."""

ONLINE_COUNTERS = ("n_steps_", "n_samples_seen_", "n_averaged_")


def online_state_variables(model: Any) -> tuple[dict, dict]:
    """Data variables and attrs for the stepwise-EM state of ``model`` (empty if
    it has none), so that a loaded model continues the schedule exactly.

    Each statistics set becomes ``<prefix>weight`` (component), ``<prefix>mean``
    (component, feature), ``<prefix>scatter`` (dims by covariance type) and the
    0-d float64 variables ``<prefix>log_likelihood`` and ``<prefix>n_samples``;
    the counters and ``stream_position_`` are integer attrs. Files without these
    read as before (format version 1 stays readable both ways).
    """
    data_vars, attrs = {}, {}
    if hasattr(model, "running_statistics_"):
        cov_dims = COVARIANCE_DIMS[model.covariance_type]
        for attribute, prefix in ONLINE_PREFIXES.items():
            stats = getattr(model, attribute)
            if stats is None:
                continue
            data_vars[prefix + "weight"] = (("component",), stats.weight)
            data_vars[prefix + "mean"] = (("component", "feature"), stats.mean)
            data_vars[prefix + "scatter"] = (cov_dims, stats.scatter)
            data_vars[prefix + "log_likelihood"] = ((), np.float64(stats.log_likelihood))
            data_vars[prefix + "n_samples"] = ((), np.float64(stats.n_samples))
        for name in ONLINE_COUNTERS:
            attrs[name.rstrip("_")] = int(getattr(model, name))
    if hasattr(model, "stream_position_"):
        attrs["stream_position"] = int(model.stream_position_)
    return data_vars, attrs


def restore_online_state(model: Any, dataset: xr.Dataset) -> None:
    """Set the stepwise-EM attributes of ``model`` from a Dataset written by
    :func:`model_to_dataset` (nothing if the file holds no online state)."""
    from .statistics import SufficientStatistics

    if "stream_position" in dataset.attrs:
        model.stream_position_ = int(dataset.attrs["stream_position"])
    if "online_weight" not in dataset:
        return
    for attribute, prefix in ONLINE_PREFIXES.items():
        stats = None
        if prefix + "weight" in dataset:
            stats = SufficientStatistics(
                weight=dataset[prefix + "weight"].values,
                mean=dataset[prefix + "mean"].values,
                scatter=dataset[prefix + "scatter"].values,
                log_likelihood=float(dataset[prefix + "log_likelihood"].values),
                n_samples=float(dataset[prefix + "n_samples"].values),
            )
        setattr(model, attribute, stats)
    for name in ONLINE_COUNTERS:
        setattr(model, name, int(dataset.attrs[name.rstrip("_")]))


def _json_safe(value: Any) -> bool:
    try:
        json.dumps(value)
    except TypeError:
        return False
    return True


def save(model: Any, path: str | os.PathLike) -> None:
    """Write a fitted model to a Zarr store at ``path`` (overwriting it)."""
    model_to_dataset(model).to_zarr(os.fspath(path), mode="w", consolidated=False)


def load(path: str | os.PathLike):
    """Read a model written by :func:`save`. Reads arrays and JSON attributes only;
    raises ``ValueError`` for a store that is not a streamgmm model."""
    from .mixture import GaussianMixture

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No model file at {path!r}")
    try:
        dataset = xr.open_zarr(path, consolidated=False).load()
    except Exception as error:
        raise ValueError(f"{path!r} is not a readable streamgmm model: {error}") from error
    if dataset.attrs.get("format") != FORMAT_NAME:
        raise ValueError(f"{path!r} is not a streamgmm model file")
    version = int(dataset.attrs.get("format_version", -1))
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{path!r} was written by a newer streamgmm (format version {version}; "
            f"this one reads up to {FORMAT_VERSION}); upgrade streamgmm"
        )
    model = GaussianMixture(**json.loads(dataset.attrs["hyperparameters"]))
    model.weights_ = dataset["weights"].values
    model.means_ = dataset["means"].values
    model.covariances_ = dataset["covariances"].values
    model.precisions_ = dataset["precisions"].values
    model.precisions_cholesky_ = dataset["precisions_cholesky"].values
    model.lower_bounds_ = list(dataset["lower_bounds"].values)
    model.history_ = {
        name.removeprefix("history_"): [float(v) for v in dataset[name].values]
        for name in dataset.data_vars
        if name.startswith("history_")
    }
    model.converged_ = bool(dataset.attrs["converged"])
    model.n_iter_ = int(dataset.attrs["n_iter"])
    model.lower_bound_ = float(dataset.attrs["lower_bound"])
    model.n_features_in_ = int(dataset.attrs["n_features_in"])
    restore_online_state(model, dataset)
    return model
