"""Models as xarray Datasets, and model files in Zarr (never pickle).

A model file holds the parameters as arrays with named dimensions, the
constructor's hyper-parameters and the fitted scalars as attributes, and a
format version, so that it reads the same in any language that reads Zarr.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import numpy as np
import xarray as xr
import zarr

from .outputs import MODEL_FORMAT, PREDICTIONS_FORMAT, interrupted_replacement, write_zarr
from .statistics import scatter_shape

FORMAT_NAME = MODEL_FORMAT
FORMAT_VERSION = 1
PREDICTIONS_FORMAT_VERSION = 1

COVARIANCE_DIMS = {
    "full": ("component", "feature", "feature_j"),
    "tied": ("feature", "feature_j"),
    "diag": ("component", "feature"),
    "spherical": ("component",),
}

_ARRAY_HYPERPARAMETERS = ("weights_init", "means_init", "precisions_init")
"""Saved as variables with the dims of the fitted ``weights``, ``means`` and
``precisions`` (the name without ``_init``), whose shapes they have."""
_PARAMETER_VARIABLES = ("weights", "means", "covariances", "precisions", "precisions_cholesky")
_REQUIRED_ATTRS = (
    "covariance_type",
    "hyperparameters",
    "converged",
    "n_iter",
    "lower_bound",
    "n_features_in",
)
_NUMERIC_KINDS = "fiub"


def model_to_dataset(model: Any) -> xr.Dataset:
    """The fitted parameters of ``model`` as a Dataset.

    Variables: ``weights`` (component), ``means`` (component, feature),
    ``covariances``, ``precisions`` and ``precisions_cholesky`` (dims by
    covariance type, the second feature axis named ``feature_j``) and
    ``lower_bounds`` (iteration), ``history_<key>`` (record) for every key of
    ``history_``, and ``weights_init``, ``means_init``, ``precisions_init`` where
    those hyper-parameters are set. The other hyper-parameters and the fitted
    scalars are attrs.
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
        "lower_bounds": (("iteration",), np.asarray(model.lower_bounds_, model.means_.dtype)),
    }
    for key, values in getattr(model, "history_", {}).items():
        data_vars[f"history_{key}"] = (("record",), np.asarray(values, dtype=np.float64))
    for name in _ARRAY_HYPERPARAMETERS:
        value = getattr(model, name)
        if value is not None:
            dims = data_vars[name.removesuffix("_init")][0]
            data_vars[name] = (dims, np.asarray(value, dtype=np.float64))
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
    if hasattr(model, "feature_names_in_"):
        attrs["feature_names_in"] = json.dumps([str(name) for name in model.feature_names_in_])
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


def save(model: Any, path: str | os.PathLike, *, overwrite: bool = False) -> None:
    """Write a fitted model to a Zarr store at ``path``.

    An existing model file at ``path`` is replaced atomically (a process killed
    in the middle leaves the old model or the new one); anything else there is
    refused with :class:`~streamgmm.outputs.OutputExistsError` unless
    ``overwrite=True`` (see :mod:`streamgmm.outputs`).
    """
    dataset = model_to_dataset(model)
    dataset.attrs["checksums"] = json.dumps(
        {name: _checksum(variable.values) for name, variable in dataset.data_vars.items()}
    )
    write_zarr(dataset, path, MODEL_FORMAT, overwrite=overwrite)


def save_predictions(
    model: Any,
    X: Any,
    path: str | os.PathLike,
    *,
    proba: bool = False,
    overwrite: bool = False,
) -> None:
    """Write the label of every row of ``X`` (and, if ``proba``, its
    responsibilities) to a Zarr store at ``path``, chunk by chunk.

    The store holds ``labels`` (sample) and ``responsibilities`` (sample,
    component), chunked along samples like ``X`` (see :func:`predictions_dataset`),
    and the attribute ``format="streamgmm.predictions"``. An existing prediction
    store at ``path`` is replaced atomically; anything else is refused unless
    ``overwrite=True``, and a ``path`` that is, contains or lies inside ``X``'s
    store always (see :mod:`streamgmm.outputs`).
    """
    from .inputs import open_zarr_array

    source = X
    if isinstance(X, str | os.PathLike):
        X = open_zarr_array(X)
    dataset = predictions_dataset(model, X, proba)
    dataset.attrs["format_version"] = PREDICTIONS_FORMAT_VERSION
    write_zarr(dataset, path, PREDICTIONS_FORMAT, overwrite=overwrite, inputs=[source])


def predictions_dataset(model: Any, X: Any, proba: bool) -> xr.Dataset:
    """A Dataset with ``labels`` (sample) and, if ``proba``, ``responsibilities``
    (sample, component): lazy and chunked along samples like ``X`` for Zarr and
    Dask-backed input, in memory for NumPy input. A DataArray ``X`` gives its
    own sample dimension and coordinates."""
    import dask.array as da

    from .zarr_reading import from_zarr

    if isinstance(X, xr.DataArray):
        sample_dim = X.dims[0]
        outputs = {"labels": model.predict(X)}
        if proba:
            outputs["responsibilities"] = model.predict_proba(X)
        dataset = xr.Dataset(outputs)
        if not X.chunks:
            return dataset
        rows = X.chunksizes[sample_dim][0]
        return dataset.chunk({sample_dim: rows, "component": -1} if proba else {sample_dim: rows})
    if isinstance(X, zarr.Array):
        rows = X.chunks[0]
        X = from_zarr(X).rechunk({0: rows})
    labels = model.predict(X)
    outputs = {"labels": (("sample",), labels)}
    if proba:
        outputs["responsibilities"] = (("sample", "component"), model.predict_proba(X))
    if isinstance(labels, da.Array):
        rows = X.chunks[0]
        outputs = {
            name: (dims, values.rechunk((rows, -1)[: values.ndim]))
            for name, (dims, values) in outputs.items()
        }
    return xr.Dataset(outputs)


def _checksum(values: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and bytes, to detect truncated stores
    (Zarr reads a missing chunk as its fill value without complaint)."""
    values = np.asarray(values, order="C")
    digest = hashlib.sha256(f"{values.dtype.str}{values.shape}".encode())
    digest.update(values.tobytes())
    return digest.hexdigest()


def _open_checked_group(path: str) -> zarr.Group:
    """The store's root group, after checking from metadata alone that it is a
    model of a known version holding only numeric arrays. Nothing is decoded
    before that, so an object array (whose codec could unpickle) is never read."""
    try:
        group = zarr.open_group(store=path, mode="r")
    except Exception as error:
        raise ValueError(
            f"{path!r} is not a streamgmm model file (not a readable Zarr group: {error})"
        ) from error
    attrs = dict(group.attrs)
    if attrs.get("format") != FORMAT_NAME:
        raise ValueError(
            f"{path!r} is not a streamgmm model file (its 'format' attribute is "
            f"{attrs.get('format')!r}, expected {FORMAT_NAME!r})"
        )
    version = attrs.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"{path!r} has an invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{path!r} was written by a newer streamgmm (format version {version}; "
            f"this one reads up to {FORMAT_VERSION}); upgrade streamgmm"
        )
    try:
        arrays = list(group.arrays())
    except Exception as error:
        raise ValueError(f"{path!r} holds an array this reader refuses: {error}") from error
    for name, array in arrays:
        if np.dtype(array.dtype).kind not in _NUMERIC_KINDS:
            raise ValueError(
                f"{path!r}: variable {name!r} has dtype {array.dtype}; model files hold "
                "numeric arrays only (object arrays are refused, never unpickled)"
            )
    return group


def _expected_shapes(covariance_type: str, n_components: int, n_features: int) -> dict:
    cov_shape = scatter_shape(n_components, n_features, covariance_type)
    return {
        "weights": (n_components,),
        "means": (n_components, n_features),
        "covariances": cov_shape,
        "precisions": cov_shape,
        "precisions_cholesky": cov_shape,
    }


def _check_dataset(path: str, dataset: xr.Dataset) -> None:
    """Raise ``ValueError`` naming what is missing, misshapen or corrupted."""
    attrs = dataset.attrs
    missing_attrs = [name for name in _REQUIRED_ATTRS if name not in attrs]
    if missing_attrs:
        raise ValueError(f"{path!r} is truncated: attribute(s) {missing_attrs} are missing")
    covariance_type = attrs["covariance_type"]
    if covariance_type not in COVARIANCE_DIMS:
        raise ValueError(f"{path!r} has an unknown covariance_type {covariance_type!r}")
    missing = [name for name in (*_PARAMETER_VARIABLES, "lower_bounds") if name not in dataset]
    if missing:
        raise ValueError(f"{path!r} is truncated: variable(s) {missing} are missing")
    n_components, n_features = dataset["weights"].size, int(attrs["n_features_in"])
    for name, shape in _expected_shapes(covariance_type, n_components, n_features).items():
        if dataset[name].shape != shape:
            raise ValueError(
                f"{path!r}: variable {name!r} has shape {dataset[name].shape}, expected "
                f"{shape} for {n_components} component(s), {n_features} feature(s) and "
                f"covariance_type {covariance_type!r}"
            )
        if not np.all(np.isfinite(dataset[name].values)):
            raise ValueError(f"{path!r}: variable {name!r} holds NaN or infinity")
    for name in _ARRAY_HYPERPARAMETERS:
        fitted = name.removesuffix("_init")
        if name in dataset and dataset[name].shape != dataset[fitted].shape:
            raise ValueError(
                f"{path!r}: variable {name!r} has shape {dataset[name].shape}, expected "
                f"{dataset[fitted].shape} like {fitted!r}"
            )
    checksums = json.loads(attrs.get("checksums", "{}"))
    for name, expected in checksums.items():
        if name not in dataset:
            raise ValueError(f"{path!r} is truncated: variable {name!r} is missing")
        if _checksum(dataset[name].values) != expected:
            raise ValueError(
                f"{path!r} is truncated or corrupted: variable {name!r} does not match "
                "the checksum written with it (a chunk may be missing)"
            )


def load(path: str | os.PathLike):
    """Read a model written by :func:`save`.

    Reads numeric arrays and JSON attributes only (never pickle). Raises
    ``FileNotFoundError`` if nothing is at ``path`` and ``ValueError`` naming the
    problem for a store that is not a model, a newer format version, a missing
    variable or chunk, or arrays of the wrong shape. Where a replacement of
    ``path`` was killed half-way (see :mod:`streamgmm.outputs`), the old model
    is read.
    """
    from .mixture import GaussianMixture, fitted_scalar

    path = os.fspath(path)
    if not os.path.exists(path):
        aside = interrupted_replacement(path)
        if aside is None:
            raise FileNotFoundError(f"No model file at {path!r}")
        path = os.fspath(aside)
    _open_checked_group(path)
    try:
        dataset = xr.open_zarr(path, consolidated=False).load()
    except Exception as error:
        raise ValueError(f"{path!r} is not a readable streamgmm model: {error}") from error
    _check_dataset(path, dataset)
    try:
        hyper = json.loads(dataset.attrs["hyperparameters"])
        hyper.update({
            name: dataset[name].values for name in _ARRAY_HYPERPARAMETERS if name in dataset
        })
        model = GaussianMixture(**hyper)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path!r} has invalid hyper-parameters: {error}") from error
    if model.covariance_type != dataset.attrs["covariance_type"]:
        raise ValueError(f"{path!r}: covariance_type attributes disagree")
    model.weights_ = dataset["weights"].values
    model.means_ = dataset["means"].values
    model.covariances_ = dataset["covariances"].values
    model.precisions_ = dataset["precisions"].values
    model.precisions_cholesky_ = dataset["precisions_cholesky"].values
    dtype = model.means_.dtype
    model.lower_bounds_ = [fitted_scalar(value, dtype) for value in dataset["lower_bounds"].values]
    model.history_ = {
        name.removeprefix("history_"): [float(v) for v in dataset[name].values]
        for name in dataset.data_vars
        if name.startswith("history_")
    }
    model.converged_ = bool(dataset.attrs["converged"])
    model.n_iter_ = int(dataset.attrs["n_iter"])
    model.lower_bound_ = fitted_scalar(float(dataset.attrs["lower_bound"]), dtype)
    model.n_features_in_ = int(dataset.attrs["n_features_in"])
    if "feature_names_in" in dataset.attrs:
        model.feature_names_in_ = np.asarray(
            json.loads(dataset.attrs["feature_names_in"]), dtype=object
        )
    restore_online_state(model, dataset)
    return model
