"""What a newcomer and a real client met (issue 29, items 1-11), each as the
command or call that showed it, on small files. Command-line tests run the
installed ``streamgmm`` script in a real subprocess."""

import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr

import streamgmm
from streamgmm import ConvergenceWarning, GaussianMixture
from streamgmm.progress import FitProgress

WORKTREE = Path(__file__).resolve().parents[1]
COLUMNS = ["height", "width", "depth", "temp", "pressure"]


def streamgmm_script() -> list[str]:
    script = Path(sys.executable).with_name("streamgmm")
    return [str(script)] if script.exists() else [sys.executable, "-m", "streamgmm"]


CTRL_C_AT_DEFAULT = [sys.executable, "-c",
                     "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
                     "os.execv(sys.argv[1], sys.argv[1:])"]
"""Prefix of a command whose process starts with Ctrl-C at its default action.
A test run started in the background of a shell without job control inherits
SIGINT ignored, and a Python started so keeps ignoring it: the Ctrl-C tests
then sent a signal the fit never saw (it ran on after the test's timeout)."""


def environment(**extra) -> dict:
    env = {**os.environ, "PYTHONPATH": str(WORKTREE), **extra}
    env.pop("STREAMGMM_TRACEBACK", None)
    return env


def run(*args, timeout=300, **extra):
    return subprocess.run(
        [*streamgmm_script(), *map(str, args)], capture_output=True, text=True,
        env=environment(**extra), timeout=timeout,
    )


def one_line_error(result, *fragments):
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr and lines[-1].startswith("Error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[-1], lines[-1]
    return lines[-1]


def measurements(n=600, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    true = rng.integers(0, 2, n)
    values = rng.normal(size=(n, len(COLUMNS))) + 6.0 * true[:, None]
    frame = pd.DataFrame(values, columns=COLUMNS)
    frame["true"] = true
    return frame


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("newcomer")
    frame = measurements()
    frame.to_parquet(path / "measurements.parquet")
    frame.to_csv(path / "measurements.csv", index=False)
    np.save(path / "three.npy", frame[COLUMNS[:3]].to_numpy())
    fitted = run("fit", path / "measurements.parquet", "--columns", ",".join(COLUMNS), "-k", 2,
                 "--random-state", 0, "--out", path / "m.zarr", "-q")
    assert fitted.returncode == 0, fitted.stderr
    return path


# 1 ------------------------------------------------------ columns chosen at fit time
def test_1_predict_score_and_plot_use_the_columns_the_model_was_fitted_on(folder):
    table = folder / "measurements.parquet"
    predicted = run("predict", folder / "m.zarr", table, "--out", folder / "labels.parquet")
    assert predicted.returncode == 0, predicted.stderr
    assert "height, width, depth, temp, pressure (the model's features" in predicted.stdout
    labels = pd.read_parquet(folder / "labels.parquet")["label"].to_numpy()
    truth = measurements()["true"].to_numpy()
    assert max(np.mean(labels == truth), np.mean(labels != truth)) == 1.0
    scored = run("score", folder / "m.zarr", table)
    assert scored.returncode == 0, scored.stderr
    plotted = run("plot", folder / "m.zarr", table, "--out", folder / "m.png",
                  "--features", "height", "temp")
    assert plotted.returncode == 0, plotted.stderr
    model = streamgmm.load(folder / "m.zarr")
    np.testing.assert_array_equal(model.predict(str(table)).compute().to_numpy(), labels)
    assert np.isfinite(model.score(str(folder / "measurements.csv")))


def test_1_a_feature_count_mismatch_is_one_clear_line_everywhere(folder):
    message = "X has 3 features, but GaussianMixture is expecting 5 features as input."
    for command in (["score"], ["plot", "--out", folder / "bad.png"],
                    ["predict", "--out", folder / "bad.zarr"]):
        result = run(command[0], folder / "m.zarr", folder / "three.npy", *command[1:])
        one_line_error(result, message)
    model = streamgmm.load(folder / "m.zarr")
    from streamgmm.plot import plot_model

    with pytest.raises(ValueError, match="X has 3 features"):
        plot_model(model, np.load(folder / "three.npy"))


# 2 ------------------------------------------------------------- columns in Python
def test_2_python_says_which_columns_of_a_table_it_used_and_doubts_a_label_column(folder):
    with pytest.warns(UserWarning, match="height, width, depth, temp, pressure, true") as seen:
        GaussianMixture(2, max_iter=5, random_state=0).fit(str(folder / "measurements.csv"))
    assert "'true' looks like an identifier or a label" in str(seen[0].message)
    from streamgmm.inputs import as_rows

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        chosen = as_rows(str(folder / "measurements.csv"), columns=COLUMNS)
    model = GaussianMixture(2, random_state=0).fit(chosen)
    assert list(model.feature_names_in_) == COLUMNS


def test_2_the_command_line_notes_a_label_column(folder):
    result = run("fit", folder / "measurements.csv", "-k", 2, "--max-iter", 3, "-q",
                 "--out", folder / "all.zarr")
    assert result.returncode == 0, result.stderr
    assert "'true' looks like an identifier or a label" in result.stderr


# 3 --------------------------------------------------------- text early in a CSV
def test_3_text_in_the_first_rows_of_a_csv_column_is_an_error_naming_column_and_row(folder):
    frame = measurements().astype({"width": object})
    frame.loc[40, "width"] = "oops"
    path = folder / "oops.csv"
    frame.to_csv(path, index=False)
    result = run("fit", path, "-k", 2, "--out", folder / "oops.zarr")
    one_line_error(result, "column 'width'", "'oops' in row 40")
    with pytest.raises(TypeError, match="column 'width' .* 'oops' in row 40"):
        GaussianMixture(2).fit(str(path))
    leaving_it_out = [name for name in COLUMNS if name != "width"]
    result = run("fit", path, "--columns", ",".join(leaving_it_out), "-k", 2, "-q",
                 "--out", folder / "oops.zarr")
    assert result.returncode == 0, result.stderr


# 4 ------------------------------------------------- samples on the wrong dimension
def test_4_samples_on_the_second_dimension_are_refused_at_once_naming_sample_dim():
    values = da.zeros((8, 62_500), chunks=(8, 1))
    sensors = xr.DataArray(values, dims=("sensor", "time"))
    started = time.perf_counter()
    with pytest.raises(ValueError, match="pass sample_dim='time'"):
        GaussianMixture(2).fit(sensors)
    assert time.perf_counter() - started < 5.0
    with pytest.raises(ValueError, match="pass X.T"):
        GaussianMixture(2).fit(np.zeros((10, 2000)))


# 5 ------------------------------------------------------------ names in display
def test_5_info_shows_feature_names(folder):
    result = run("info", folder / "m.zarr")
    assert result.returncode == 0, result.stderr
    assert "height" in result.stdout and "mean[0]" not in result.stdout


def test_5_a_dataarray_keeps_its_feature_coordinates():
    rng = np.random.default_rng(1)
    names = [f"s{j}" for j in range(8)]
    X = xr.DataArray(rng.normal(size=(300, 8)), dims=("time", "sensor"),
                     coords={"sensor": names})
    model = GaussianMixture(2, random_state=0).fit(X)
    assert list(model.feature_names_in_) == names
    assert list(model.to_xarray()["feature"].values) == names
    assert model.predict(X).shape == (300,)
    from streamgmm.plot import projection

    assert projection(model, ["s2", "s5"])[1] == ["s2", "s5"]


# 6 ------------------------------------------------------------------- silence
def test_6_select_shows_its_progress_when_verbose(folder):
    result = run("select", folder / "three.npy", "-k", "1-2", "--covariance-types", "diag",
                 "-v", "--out", folder / "selected.zarr")
    assert result.returncode == 0, result.stderr
    assert "select: starting" in result.stderr and "runs still going" in result.stderr


def test_6_the_first_progress_record_shows_no_nan_change():
    lines = []

    class Stream:
        def write(self, text):
            lines.append(text)

        def flush(self):
            pass

        def isatty(self):
            return False

    progress = FitProgress(2, 10, "batch EM", verbose_interval=1, stream=Stream())
    progress.record(-3.0, 1)
    progress.record(-2.5, 2)
    text = "".join(lines)
    assert "nan" not in text and "change +0.5" in text


def interrupted_after(process: subprocess.Popen, text: str) -> tuple[int, str]:
    """Send SIGINT to ``process`` once a line of its standard error holds
    ``text`` (within 240 s, while it runs); its exit status and standard error."""
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True)
    reader.start()
    deadline = time.time() + 240
    while not any(text in line for line in lines):
        assert time.time() < deadline and process.poll() is None, lines
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=120)
    finally:
        process.kill()
    reader.join(timeout=10)
    return process.returncode, "".join(lines)


def test_6_ctrl_c_exits_130_pointing_at_checkpoint_and_a_rerun_says_it_resumed(tmp_path):
    rows = np.random.default_rng(2).normal(size=(40_000, 4))
    np.save(tmp_path / "rows.npy", rows)
    checkpoint = tmp_path / "fit.ckpt"
    command = [*streamgmm_script(), "fit", str(tmp_path / "rows.npy"), "-k", 4, "--tol", 0,
               "--max-iter", 100_000, "--random-state", 0, "--checkpoint", str(checkpoint),
               "--out", str(tmp_path / "m.zarr")]
    process = subprocess.Popen([*CTRL_C_AT_DEFAULT, *map(str, command)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=environment())
    deadline = time.time() + 240
    try:
        while not checkpoint.exists() and time.time() < deadline and process.poll() is None:
            time.sleep(0.2)
        assert checkpoint.exists()
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "run the same command again to resume" in stderr
    assert "Traceback" not in stderr and not (tmp_path / "m.zarr").exists()
    rerun = list(map(str, command))
    rerun[rerun.index("100000")] = "3"  # a checkpoint of another max_iter is refused...
    refused = run(*rerun[len(streamgmm_script()):])
    assert refused.returncode == 1
    resumed = subprocess.Popen([*CTRL_C_AT_DEFAULT, *map(str, command)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=environment())
    returncode, _ = interrupted_after(resumed, "resumed from checkpoint")
    assert returncode == 130


def test_6_ctrl_c_without_a_checkpoint_mentions_checkpoint(tmp_path):
    np.save(tmp_path / "rows.npy", np.random.default_rng(3).normal(size=(20_000, 3)))
    process = subprocess.Popen(
        [*CTRL_C_AT_DEFAULT, *streamgmm_script(), "fit", str(tmp_path / "rows.npy"), "-k", "3",
         "--tol", "0", "--max-iter", "100000", "-v", "--out", str(tmp_path / "m.zarr")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment(),
    )
    returncode, text = interrupted_after(process, "step")
    assert returncode == 130, text
    assert "with --checkpoint FILE" in text and "Traceback" not in text


# 7 ------------------------------------------------------ online EM's fixed passes
def test_7_online_em_for_a_fixed_number_of_passes_gives_no_convergence_warning():
    X = measurements()[COLUMNS].to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        model = GaussianMixture(2, algorithm="online", max_iter=2, random_state=0).fit(X)
    assert model.n_iter_ == 2


# 8 -------------------------------------------------------- local parallelism
def test_8_n_jobs_sets_the_threads_of_the_local_scheduler_and_changes_no_number():
    X = measurements()[COLUMNS].to_numpy()
    threads = set()

    def record(block):
        if block.shape[0] > 1:  # not dask's calls on tiny blocks for the dtype
            threads.add(threading.get_ident())
        return block

    rows = da.from_array(X, chunks=(50, -1)).map_blocks(record)
    one = GaussianMixture(2, n_jobs=1, random_state=0).fit(rows)
    assert len(threads) == 1
    every = GaussianMixture(2, random_state=0).fit(X)
    np.testing.assert_allclose(one.means_, every.means_, rtol=1e-12)
    assert dask.config.get("num_workers", None) is None


def test_8_threads_option_and_a_missing_scheduler_says_what_it_waits_for(folder, tmp_path):
    result = run("fit", folder / "three.npy", "-k", 2, "--threads", 1, "-q",
                 "--out", tmp_path / "m.zarr")
    assert result.returncode == 0, result.stderr
    started = time.perf_counter()
    result = run("score", folder / "m.zarr", folder / "three.npy", "--scheduler",
                 "tcp://127.0.0.1:9", DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT="2s")
    assert result.returncode == 1
    assert "connecting to the Dask scheduler at tcp://127.0.0.1:9 (giving up after 2s" in (
        result.stderr)
    assert time.perf_counter() - started < 60


# 9 --------------------------------------------------------------- CLI gaps
def test_9_python_m_streamgmm_and_per_row_scores_as_csv(folder, tmp_path):
    result = subprocess.run([sys.executable, "-m", "streamgmm", "--help"], capture_output=True,
                            text=True, env=environment(), timeout=120)
    assert result.returncode == 0 and "Usage: streamgmm [OPTIONS] COMMAND" in result.stdout
    out = tmp_path / "scores.csv"
    result = run("predict", folder / "m.zarr", folder / "measurements.parquet", "--proba",
                 "--log-likelihood", "--out", out)
    assert result.returncode == 0, result.stderr
    written = pd.read_csv(out, comment="#", index_col=0)
    model = streamgmm.load(folder / "m.zarr")
    frame = measurements()[COLUMNS]
    np.testing.assert_allclose(written["log_likelihood"], model.score_samples(frame), rtol=1e-9)
    assert list(written.columns[:1]) == ["label"]
    again = run("predict", folder / "m.zarr", folder / "measurements.parquet", "--out", out)
    assert again.returncode == 0, again.stderr  # replaces its own CSV
    result = run("predict", folder / "m.zarr", folder / "three.npy", "--out", tmp_path / "x.csv")
    assert result.returncode == 1  # three features: one line (test_1 above)


def test_9_select_takes_fit_options_and_saves_its_table_and_plot(folder, tmp_path):
    result = run("select", folder / "three.npy", "-k", "1-3", "--covariance-types", "full",
                 "--init-params", "k-means||", "--n-init", 2, "--tol", 1e-4,
                 "--random-state", 0, "--table", tmp_path / "criteria.csv",
                 "--plot", tmp_path / "criteria.png", "--out", tmp_path / "best.zarr")
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(tmp_path / "criteria.csv", comment="#")
    assert list(table["n_components"]) == [1, 2, 3] and table["chosen"].sum() == 1
    assert (tmp_path / "criteria.png").stat().st_size > 0
    X = np.load(folder / "three.npy")
    best, grid = streamgmm.select(X, range(1, 4), ["full"], init_params="k-means||", n_init=2,
                                  tol=1e-4, random_state=0)
    assert best.n_components == int(table.loc[table["chosen"], "n_components"].iloc[0])
    with pytest.raises(TypeError, match="unexpected keyword argument 'covariance_type'"):
        streamgmm.select(X, covariance_type="full")


# 10 -------------------------------------------------------- a real client (pyxpcm)
def test_10a_random_state_none_follows_numpy_global_seed():
    X = measurements()[COLUMNS].to_numpy()
    fits = []
    for _ in range(2):
        np.random.seed(7)  # noqa: NPY002  (what pyxpcm does)
        fits.append(GaussianMixture(3, init_params="random").fit(X).means_)
    np.testing.assert_array_equal(fits[0], fits[1])


def test_10b_a_model_rebuilt_from_its_fitted_attributes_predicts():
    X = measurements()[COLUMNS].to_numpy()
    fitted = GaussianMixture(2, random_state=0).fit(X)
    rebuilt = GaussianMixture(2)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        setattr(rebuilt, name, getattr(fitted, name))
    np.testing.assert_array_equal(rebuilt.predict(X), fitted.predict(X))


def test_10c_rows_dropped_lazily_with_a_dask_mask_are_fitted():
    X = da.from_array(measurements()[COLUMNS].to_numpy(), chunks=(100, -1))
    kept = X[X[:, 0] > -1.0]
    assert np.isnan(kept.shape[0])
    model = GaussianMixture(2, random_state=0).fit(kept)
    reference = GaussianMixture(2, random_state=0).fit(kept.compute())
    np.testing.assert_allclose(model.means_, reference.means_, rtol=1e-10)


def test_10d_predicting_nan_rows_does_not_speak_of_fitting():
    X = measurements()[COLUMNS].to_numpy().copy()
    model = GaussianMixture(2, random_state=0).fit(X)
    X[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN") as raised:
        model.predict(X)
    assert "fitting" not in str(raised.value)


# 11 ---------------------------------------------------------------------- small
def test_11_small_things(tmp_path):
    # scikit-learn's "X has 1 features" stays (check_estimator matches it); ours say "1 feature"
    result = run("make-data", tmp_path / "one.zarr", "--n-samples", 50, "--n-features", 1, "-k", 1)
    assert "x 1 feature," in result.stdout, result.stderr
    one = run("fit", tmp_path / "one.zarr", "-k", 1, "-q", "--out", tmp_path / "one-model.zarr")
    assert one.returncode == 0, one.stderr
    assert "1 component, 1 feature," in run("info", tmp_path / "one-model.zarr").stdout
    with pytest.raises(ValueError) as raised:
        GaussianMixture(np.int64(17)).fit(np.zeros((5, 2)))
    assert "np.int64" not in str(raised.value)
    with pytest.raises(ValueError, match="Got 0 instead") as raised:
        GaussianMixture(np.int64(0)).fit(np.zeros((5, 2)))
    from streamgmm.datasets import random_mixture, write_mixture_zarr

    write_mixture_zarr(tmp_path / "r.zarr", 500, random_mixture(2, 3, random_state=0))
    assert zarr.open_array(tmp_path / "r.zarr", mode="r").chunks == (500, 3)
    result = run("--help")
    assert "Parquet or CSV table" in result.stdout
    index = (WORKTREE / "docs" / "index.md").read_text()
    for example in (WORKTREE / "examples").glob("*.py"):
        assert f"examples/{example.name}" in index
    assert "minutes" in (WORKTREE / "README.md").read_text().split("## Use")[0]
