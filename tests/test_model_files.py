"""Model files: exact round trips, and a clear error for every kind of bad file.
Loading reads numeric arrays and JSON only: it never unpickles."""

import copy
import json
import os
import pickle
import shutil

import numpy as np
import pytest
import xarray as xr
import zarr

from streamgmm import GaussianMixture, load, save
from streamgmm.io import FORMAT_VERSION, model_to_dataset

FITTED = ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_")


@pytest.fixture(scope="module")
def fitted(mixture_data):
    X, _, _ = mixture_data
    return {
        cov: GaussianMixture(3, covariance_type=cov, max_iter=20, random_state=0).fit(X)
        for cov in ("full", "tied", "diag", "spherical")
    }


@pytest.fixture
def saved(fitted, tmp_path):
    path = tmp_path / "model.zarr"
    save(fitted["full"], path)
    return path


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_round_trip_is_exact(fitted, mixture_data, tmp_path, covariance_type):
    model = copy.deepcopy(fitted[covariance_type])
    model.set_params(tol=1e-4, reg_covar=1e-5, verbose_interval=3)
    save(model, tmp_path / "m.zarr")
    loaded = load(tmp_path / "m.zarr")
    for name in FITTED:
        np.testing.assert_array_equal(getattr(loaded, name), getattr(model, name))
    assert loaded.get_params() == model.get_params()
    assert loaded.lower_bounds_ == model.lower_bounds_
    assert (loaded.n_iter_, loaded.converged_, loaded.lower_bound_, loaded.n_features_in_) == (
        model.n_iter_,
        model.converged_,
        model.lower_bound_,
        model.n_features_in_,
    )
    X = mixture_data[0][:500]
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_array_hyperparameters_are_kept(fitted, mixture_data, tmp_path, covariance_type):
    """A loaded model has the starting point it was given, so refitting it from
    that start gives what refitting the original gives."""
    source = fitted[covariance_type]
    model = GaussianMixture(
        3,
        covariance_type=covariance_type,
        weights_init=source.weights_,
        means_init=source.means_ + 0.1,
        precisions_init=source.precisions_,
        max_iter=3,
    ).fit(mixture_data[0])
    save(model, tmp_path / "m.zarr")
    loaded = load(tmp_path / "m.zarr")
    for name in ("weights_init", "means_init", "precisions_init"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(model, name))
    X = mixture_data[0][:2000]
    np.testing.assert_array_equal(loaded.fit(X).means_, model.fit(X).means_)


def test_a_misshapen_array_hyperparameter_is_refused(fitted, tmp_path):
    model = copy.deepcopy(fitted["diag"])
    model.set_params(means_init=model.means_)
    dataset = model_to_dataset(model)
    dataset["means_init"] = (("component", "extra"), np.zeros((3, 1)))
    dataset.to_zarr(tmp_path / "m.zarr", mode="w", consolidated=False)
    with pytest.raises(ValueError, match="'means_init' has shape \\(3, 1\\), expected"):
        load(tmp_path / "m.zarr")


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="No model file"):
        load(tmp_path / "nothing.zarr")


def test_store_that_is_not_a_model_is_refused(tmp_path):
    other = zarr.open_group(str(tmp_path / "other.zarr"), mode="w")
    other.create_array("weights", shape=(3,), dtype="f8")
    with pytest.raises(ValueError, match="not a streamgmm model file.*'format'"):
        load(tmp_path / "other.zarr")
    plain = tmp_path / "plain.txt"
    plain.write_text("hello")
    with pytest.raises(ValueError, match="not a streamgmm model file"):
        load(plain)
    (tmp_path / "folder").mkdir()
    with pytest.raises(ValueError, match="not a streamgmm model file"):
        load(tmp_path / "folder")


def test_future_format_version_is_refused(saved):
    zarr.open_group(str(saved), mode="r+").attrs["format_version"] = FORMAT_VERSION + 1
    with pytest.raises(ValueError, match="newer streamgmm.*upgrade"):
        load(saved)


def test_deleted_chunk_is_detected(saved):
    chunks = [
        os.path.join(folder, name)
        for folder, _, names in os.walk(saved / "means")
        for name in names
        if name != "zarr.json"
    ]
    assert chunks
    os.remove(chunks[0])
    with pytest.raises(ValueError, match="'means'.*(truncated|NaN)"):
        load(saved)


def test_deleted_variable_is_named(saved):
    shutil.rmtree(saved / "covariances")
    with pytest.raises(ValueError, match="truncated.*'covariances'"):
        load(saved)


def test_changed_values_fail_the_checksum(saved):
    group = zarr.open_group(str(saved), mode="r+")
    group["weights"][0] = group["weights"][0] + 1e-9
    with pytest.raises(ValueError, match="'weights' does not match the checksum"):
        load(saved)


def test_wrong_shapes_are_refused(fitted, tmp_path):
    dataset = model_to_dataset(fitted["full"])
    K, d = fitted["full"].means_.shape
    dataset = dataset.drop_vars("covariances")
    dataset["covariances"] = (("component", "feature"), np.ones((K, d)))
    dataset.to_zarr(tmp_path / "bad.zarr", mode="w", consolidated=False)
    with pytest.raises(ValueError, match=rf"'covariances' has shape \({K}, {d}\), expected"):
        load(tmp_path / "bad.zarr")


def test_unknown_hyperparameter_is_refused(saved):
    group = zarr.open_group(str(saved), mode="r+")
    hyper = json.loads(group.attrs["hyperparameters"])
    group.attrs["hyperparameters"] = json.dumps({**hyper, "run_this": "rm -rf /"})
    with pytest.raises(ValueError, match="invalid hyper-parameters.*run_this"):
        load(saved)


def test_string_variables_are_refused(fitted, tmp_path):
    dataset = model_to_dataset(fitted["diag"])
    dataset["note"] = (("component",), np.array(["a", "b", "c"], dtype=object))
    dataset.to_zarr(tmp_path / "strings.zarr", mode="w", consolidated=False)
    with pytest.raises(ValueError, match="'note' has dtype.*numeric arrays only"):
        load(tmp_path / "strings.zarr")


class _Trap:
    """Unpickling this creates a folder: the proof that something unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_pickled_object_array_is_never_unpickled(fitted, tmp_path):
    """A Zarr v2 store that looks like a model but holds an object array whose
    chunk is a pickle (numcodecs' "pickle" filter) is refused before any chunk is
    decoded."""
    path, marker = tmp_path / "trap.zarr", str(tmp_path / "unpickled")
    attrs = dict(model_to_dataset(fitted["full"]).attrs)
    (path / "trap").mkdir(parents=True)
    (path / ".zgroup").write_text(json.dumps({"zarr_format": 2}))
    (path / ".zattrs").write_text(json.dumps(attrs))
    (path / "trap" / ".zarray").write_text(
        json.dumps(
            {
                "zarr_format": 2,
                "shape": [1],
                "chunks": [1],
                "dtype": "|O",
                "fill_value": 0,
                "order": "C",
                "compressor": None,
                "filters": [{"id": "pickle"}],
            }
        )
    )
    (path / "trap" / ".zattrs").write_text(json.dumps({"_ARRAY_DIMENSIONS": ["component"]}))
    payload = np.empty(1, dtype=object)
    payload[0] = _Trap(marker)
    (path / "trap" / "0").write_bytes(pickle.dumps(payload))
    with pytest.raises(ValueError, match="refuse"):
        load(path)
    assert not os.path.exists(marker)


def test_dataset_is_labelled(fitted):
    dataset = fitted["full"].to_xarray()
    assert isinstance(dataset, xr.Dataset)
    assert dataset["covariances"].dims == ("component", "feature", "feature_j")
    assert dataset.attrs["format_version"] == FORMAT_VERSION
