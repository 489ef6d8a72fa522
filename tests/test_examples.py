"""Every script in examples/ runs on small data and does what it says."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import zarr

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fit_zarr_out_of_core(tmp_path):
    result = load_example("fit_zarr_out_of_core").main(
        ["--rows", "40000", "--chunk-rows", "8000", "--folder", str(tmp_path)]
    )
    errors = result["errors"]
    assert errors["means"] < 0.1 and errors["weights"] < 0.01 and errors["covariances"] < 0.1
    labels = zarr.open_array(result["labels_path"] / "labels", mode="r")[:]
    X = zarr.open_array(result["data_path"], mode="r")[:]
    assert labels.shape == (40000,)
    np.testing.assert_array_equal(labels, result["model"].predict(X))
    assert (tmp_path / "model.zarr").is_dir()


def test_fit_on_local_cluster_uses_both_workers():
    result = load_example("fit_on_local_cluster").main(["--rows", "40000", "--chunk-rows", "8000"])
    assert len(result["tasks"]) == 2 and all(count > 0 for count in result["tasks"].values())
    errors = result["errors"]
    assert errors["means"] < 0.1 and errors["weights"] < 0.01


def test_xarray_climate_regimes_on_the_grid(tmp_path):
    example = load_example("xarray_climate")
    result = example.main(["--small", "--folder", str(tmp_path)])
    regimes = result["regimes"]["regime"]
    assert regimes.dims == ("time", "lat", "lon")
    climate = example.synthetic_climate(60, 10.0)
    for name in ("time", "lat", "lon"):
        np.testing.assert_array_equal(regimes[name].values, climate[name].values)
    assert min(result["agreement"].values()) > 0.95
    # three zones, three different regimes
    zone = example.climate_zone(regimes["lat"].values)
    majority = {int(np.bincount(regimes.values[:, zone == z].ravel()).argmax()) for z in range(3)}
    assert majority == {0, 1, 2}
    # a rerun in the same folder replaces the example's own stores
    again = example.main(["--small", "--folder", str(tmp_path)])
    np.testing.assert_array_equal(again["regimes"]["regime"].values, regimes.values)


def test_an_example_runs_as_a_script(tmp_path):
    script = EXAMPLES / "xarray_climate.py"
    result = subprocess.run(
        [sys.executable, str(script), "--small", "--folder", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "regime" in result.stdout


def test_streaming_append_leaves_no_temporary_folder(tmp_path):
    script = EXAMPLES / "streaming_append.py"
    result = subprocess.run(
        [sys.executable, str(script), "--appends", "4", "--rows-per-append", "1000",
         "--pause", "0"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    assert "rows learnt 4000" in result.stdout
    assert list(tmp_path.iterdir()) == []
