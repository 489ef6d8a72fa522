"""Model files in Zarr (never pickle), and predictions written to Zarr.

A model file is the Dataset of :func:`streamgmm.state.model_to_dataset`
(re-exported here): the parameters as arrays with named dimensions, the
constructor's hyper-parameters and the fitted scalars as attributes, and a
format version, so that it reads the same in any language that reads Zarr.
"""

from __future__ import annotations

import hashlib
import json
import os
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr

from .choices import COVARIANCE_TYPES, parameter_shape
from .outputs import (
    IMPUTED_FORMAT,
    MODEL_FORMAT,
    MODEL_FORMAT_VERSION,
    PREDICTIONS_FORMAT,
    interrupted_replacement,
    write_zarr,
)

if TYPE_CHECKING:
    import xarray as xr

# xarray, the estimator and the serialiser (scikit-learn, Dask, numba) are
# imported by the functions that need them: read_summary, which
# ``streamgmm info`` uses, reads a model file with Zarr alone.

FORMAT_NAME = MODEL_FORMAT
FORMAT_VERSION = MODEL_FORMAT_VERSION
PREDICTIONS_FORMAT_VERSION = 1

def __getattr__(name: str) -> Any:
    """``model_to_dataset`` (re-exported from :mod:`streamgmm.state`), imported on use."""
    if name == "model_to_dataset":
        from .state import model_to_dataset

        return model_to_dataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["load", "model_to_dataset", "predictions_dataset", "save", "save_predictions"]  # noqa: F822

_REQUIRED_ATTRS = ("covariance_type", "hyperparameters", "lower_bound", "n_iter", "converged",
                   "n_features_in")
"""Attributes of every model file (:data:`streamgmm.state.RUN_SCALARS` among them)."""
_NUMERIC_KINDS = "fiub"


def save(model: Any, path: str | os.PathLike, *, overwrite: bool = False) -> None:
    """Write a fitted model to a Zarr store at ``path``.

    An existing model file at ``path`` is replaced atomically (a process killed
    in the middle leaves the old model or the new one); anything else there is
    refused with :class:`~streamgmm.outputs.OutputExistsError` unless
    ``overwrite=True`` (see :mod:`streamgmm.outputs`).
    """
    dataset = numeric_coordinates(model.to_xarray())
    dataset.attrs["checksums"] = json.dumps(
        {name: _checksum(variable.values) for name, variable in dataset.data_vars.items()}
    )
    write_zarr(dataset, path, MODEL_FORMAT, overwrite=overwrite)


def numeric_coordinates(dataset: xr.Dataset) -> xr.Dataset:
    """``dataset`` with feature coordinates numbered from 0: a model file holds
    numeric arrays only (``to_xarray`` labels features by name; the names are
    kept in the ``feature_names_in`` attribute)."""
    import numpy as np

    numbered = {
        name: np.arange(dataset.sizes[name]) for name in ("feature", "feature_j")
        if name in dataset.coords and dataset[name].dtype.kind not in "iuf"
    }
    return dataset.assign_coords(numbered) if numbered else dataset


def save_predictions(
    model: Any,
    X: Any,
    path: str | os.PathLike,
    *,
    proba: bool = False,
    overwrite: bool = False,
    log_likelihood: bool = False,
) -> None:
    """Write the label of every row of ``X`` (and, if ``proba``, its
    responsibilities; if ``log_likelihood``, its log-likelihood
    ``score_samples``) to a Zarr store at ``path``, chunk by chunk.

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
    dataset = predictions_dataset(model, X, proba, log_likelihood)
    dataset.attrs["format_version"] = PREDICTIONS_FORMAT_VERSION
    write_zarr(dataset, path, PREDICTIONS_FORMAT, overwrite=overwrite, inputs=[source])


def save_imputed(
    model: Any,
    X: Any,
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    inputs: Any = (),
) -> tuple[int, int]:
    """Write ``model.impute(X)`` (every NaN replaced by its conditional mean) to
    a Zarr store at ``path`` as the variable ``imputed``, chunk by chunk, chunked
    along samples like ``X`` (a DataArray keeps its dims and coordinates). The
    same rules as :func:`save_predictions`: an earlier imputed store there is
    replaced atomically, anything else refused unless ``overwrite``, and never
    an input (``X``'s store or one of ``inputs``). Returns the shape written."""
    import xarray as xr

    from .inputs import open_zarr_array
    from .zarr_reading import from_zarr

    source = X
    if isinstance(X, str | os.PathLike):
        X = open_zarr_array(X)
    if isinstance(X, zarr.Array):
        X = from_zarr(X).rechunk({0: X.chunks[0]})
    imputed = model.impute(X)
    if isinstance(imputed, xr.DataArray):
        dataset = imputed.to_dataset(name="imputed")
        for variable in dataset.variables.values():
            variable.encoding = {}
    else:
        dataset = xr.Dataset({"imputed": (("sample", "feature"), imputed)})
    write_zarr(dataset, path, IMPUTED_FORMAT, overwrite=overwrite,
               inputs=[source, *inputs])
    return tuple(imputed.shape)


def predictions_dataset(
    model: Any, X: Any, proba: bool, log_likelihood: bool = False
) -> xr.Dataset:
    """A Dataset with ``labels`` (sample), if ``proba`` ``responsibilities``
    (sample, component) and if ``log_likelihood`` ``log_likelihood`` (sample):
    lazy and chunked along samples like ``X`` for Zarr and Dask-backed input, in
    memory for NumPy input. A DataArray ``X`` gives its own sample dimension and
    coordinates."""
    import dask.array as da
    import xarray as xr

    from .zarr_reading import from_zarr

    if isinstance(X, xr.DataArray):
        sample_dim = X.dims[0]
        outputs = {"labels": model.predict(X)}
        if proba:
            outputs["responsibilities"] = model.predict_proba(X)
        if log_likelihood:
            outputs["log_likelihood"] = model.score_samples(X)
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
    if log_likelihood:
        outputs["log_likelihood"] = (("sample",), model.score_samples(X))
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
    cov_shape = parameter_shape(n_components, n_features, covariance_type)
    return {
        "weights": (n_components,),
        "means": (n_components, n_features),
        "covariances": cov_shape,
        "precisions": cov_shape,
        "precisions_cholesky": cov_shape,
    }


def _checked_attrs(path: str, attrs: Any) -> str:
    """The covariance type of a model's attributes, after checking that none of
    the required ones is missing (``ValueError`` naming them) and that the type
    is known."""
    missing = [name for name in _REQUIRED_ATTRS if name not in attrs]
    if missing:
        raise ValueError(f"{path!r} is truncated: attribute(s) {missing} are missing")
    covariance_type = attrs["covariance_type"]
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(f"{path!r} has an unknown covariance_type {covariance_type!r}")
    return covariance_type


def _check_dataset(path: str, dataset: xr.Dataset) -> None:
    """Raise ``ValueError`` naming what is missing, misshapen or corrupted."""
    from .state import ARRAY_HYPERPARAMETERS, PARAMETER_ARRAYS

    attrs = dataset.attrs
    covariance_type = _checked_attrs(path, attrs)
    missing = [name for name in (*PARAMETER_ARRAYS, "lower_bounds") if name not in dataset]
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
    for name in ARRAY_HYPERPARAMETERS:
        fitted = name.removesuffix("_init")
        if name in dataset and dataset[name].shape != dataset[fitted].shape:
            raise ValueError(
                f"{path!r}: variable {name!r} has shape {dataset[name].shape}, expected "
                f"{dataset[fitted].shape} like {fitted!r}"
            )
    _check_checksums(path, dataset)


def _check_checksums(path: str, dataset: xr.Dataset) -> None:
    """Raise ``ValueError`` if a variable is missing or does not match the
    checksum written with it."""
    checksums = json.loads(dataset.attrs.get("checksums", "{}"))
    for name, expected in checksums.items():
        if name not in dataset:
            raise ValueError(f"{path!r} is truncated: variable {name!r} is missing")
        if _checksum(dataset[name].values) != expected:
            raise ValueError(
                f"{path!r} is truncated or corrupted: variable {name!r} does not match "
                "the checksum written with it (a chunk may be missing)"
            )


def _existing_model_path(path: str | os.PathLike) -> str:
    """``path``, or the old model a replacement killed half-way left aside."""
    path = os.fspath(path)
    if not os.path.exists(path):
        aside = interrupted_replacement(path)
        if aside is None:
            raise FileNotFoundError(f"No model file at {path!r}")
        path = os.fspath(aside)
    return path


SUMMARY_ARRAYS = ("weights", "means", "covariances", "history_elapsed")
"""The arrays :func:`read_summary` reads."""


def read_summary(path: str | os.PathLike) -> Any:
    """What ``streamgmm info`` shows of the model file at ``path``, read with
    Zarr alone (no scikit-learn, Dask or xarray, so the command starts fast):
    the fitted ``weights_``, ``means_``, ``covariances_``, ``covariance_type``,
    ``algorithm``, ``n_iter_``, ``converged_``, ``lower_bound_``,
    ``history_`` (``elapsed`` only) and ``feature_names_in_`` (if any), as
    attributes of the same names as a loaded model's. The file is checked as
    :func:`load` checks it (format, version, numeric arrays, shapes, NaN, and
    the checksums of the arrays read). Another estimator's model file is read
    whole by :func:`load`."""
    path = _existing_model_path(path)
    group = _open_checked_group(path)
    attrs = dict(group.attrs)
    if attrs.get("estimator", "GaussianMixture") != "GaussianMixture":
        return load(path)  # another estimator's layout: read it whole
    covariance_type = _checked_attrs(path, attrs)
    checksums = json.loads(attrs.get("checksums", "{}"))
    arrays = {}
    for name in SUMMARY_ARRAYS:
        if name not in group:
            if name == "history_elapsed":
                continue
            raise ValueError(f"{path!r} is truncated: variable(s) [{name!r}] are missing")
        arrays[name] = np.asarray(group[name][...])
        if name in checksums and _checksum(arrays[name]) != checksums[name]:
            raise ValueError(
                f"{path!r} is truncated or corrupted: variable {name!r} does not match "
                "the checksum written with it (a chunk may be missing)"
            )
    n_components, n_features = arrays["weights"].size, int(attrs["n_features_in"])
    for name, shape in _expected_shapes(covariance_type, n_components, n_features).items():
        if name in arrays and arrays[name].shape != shape:
            raise ValueError(
                f"{path!r}: variable {name!r} has shape {arrays[name].shape}, expected {shape}"
            )
    summary = SimpleNamespace(
        estimator="GaussianMixture", weights_=arrays["weights"], means_=arrays["means"],
        covariances_=arrays["covariances"],
        covariance_type=covariance_type,
        algorithm=json.loads(attrs["hyperparameters"]).get("algorithm", "batch"),
        n_iter_=int(attrs["n_iter"]), converged_=bool(attrs["converged"]),
        lower_bound_=float(attrs["lower_bound"]),
        history_={"elapsed": list(arrays.get("history_elapsed", []))},
    )
    if "feature_names_in" in attrs:
        summary.feature_names_in_ = np.asarray(json.loads(attrs["feature_names_in"]), dtype=object)
    return summary


def load(path: str | os.PathLike):
    """Read a model written by :func:`save`.

    Reads numeric arrays and JSON attributes only (never pickle). Raises
    ``FileNotFoundError`` if nothing is at ``path`` and ``ValueError`` naming the
    problem for a store that is not a model, a newer format version, a missing
    variable or chunk, or arrays of the wrong shape. Where a replacement of
    ``path`` was killed half-way (see :mod:`streamgmm.outputs`), the old model
    is read.
    """
    path = _existing_model_path(path)
    import xarray as xr

    from .mixture import GaussianMixture
    from .state import ARRAY_HYPERPARAMETERS, restore_fitted

    _open_checked_group(path)
    try:
        dataset = xr.open_zarr(path, consolidated=False).load()
    except Exception as error:
        raise ValueError(f"{path!r} is not a readable streamgmm model: {error}") from error
    if dataset.attrs.get("estimator") == "BayesianGaussianMixture":
        from .bayesian import BayesianGaussianMixture

        _check_checksums(path, dataset)
        try:
            return BayesianGaussianMixture.from_xarray(dataset)
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{path!r} is not a readable streamgmm model: {error}") from error
    _check_dataset(path, dataset)
    try:
        hyper = json.loads(dataset.attrs["hyperparameters"])
        hyper.update({
            name: dataset[name].values for name in ARRAY_HYPERPARAMETERS if name in dataset
        })
        model = GaussianMixture(**hyper)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path!r} has invalid hyper-parameters: {error}") from error
    if model.covariance_type != dataset.attrs["covariance_type"]:
        raise ValueError(f"{path!r}: covariance_type attributes disagree")
    restore_fitted(model, dataset)
    return model
