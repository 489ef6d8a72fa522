"""Checkpoints: a fit killed with SIGKILL resumes from its last checkpoint and ends
with the parameters of an uninterrupted fit; checkpoints of other fits are refused."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr
from _checkpoint_fit import counted_blocks  # noqa: I001
from unconverged import unconverged_fit

from streamgmm import GaussianMixture, load
from streamgmm.checkpoint import read_checkpoint, write_checkpoint
from streamgmm.datasets import make_mixture

SCRIPT = Path(__file__).with_name("_checkpoint_fit.py")
SETTINGS = dict(n_components=3, n_init=2, max_iter=12, tol=0.0, random_state=5)
FITTED = ("weights_", "means_", "covariances_", "precisions_cholesky_")


@pytest.fixture(scope="module")
def data_path(tmp_path_factory):
    X, _, _ = make_mixture(2000, n_components=3, n_features=3, separation=2.0, random_state=4)
    path = tmp_path_factory.mktemp("data") / "x.zarr"
    array = zarr.create_array(store=str(path), shape=X.shape, chunks=(500, 3), dtype=X.dtype)
    array[:] = X
    return str(path)


def _start(data_path, folder: Path, tag: str, delay: float, settings=SETTINGS) -> subprocess.Popen:
    paths = [str(SCRIPT.parent.parent), str(SCRIPT.parent), os.environ.get("PYTHONPATH")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, paths))}
    arguments = [
        sys.executable,
        str(SCRIPT),
        data_path,
        str(folder / "fit.ckpt"),
        str(folder / f"model-{tag}.zarr"),
        str(folder / f"calls-{tag}"),
        str(delay),
        json.dumps(settings),
    ]
    return subprocess.Popen(arguments, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for_checkpoint(path: Path, process: subprocess.Popen, init_index: int, n_iter: int):
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read().decode()
        contents = read_checkpoint(path) if path.exists() else None
        if contents is not None:
            meta = contents[1]
            if (meta["init_index"], meta["run"]["n_iter"]) >= (init_index, n_iter):
                return meta
        time.sleep(0.02)
    raise AssertionError("the fit never wrote the expected checkpoint")


@pytest.mark.parametrize("kill_at", [(0, 3), (1, 2)], ids=["first-init", "second-init"])
def test_fit_killed_with_sigkill_resumes_to_the_uninterrupted_result(data_path, tmp_path, kill_at):
    counter = tmp_path / "calls-reference"
    reference = unconverged_fit(
        GaussianMixture(**SETTINGS), counted_blocks(data_path, str(counter), 0.0),
        checkpoint=tmp_path / "reference.ckpt",
    )
    full_fit_reads = counter.stat().st_size

    first = _start(data_path, tmp_path, "killed", delay=0.03)
    meta = _wait_for_checkpoint(tmp_path / "fit.ckpt", first, *kill_at)
    first.send_signal(signal.SIGKILL)
    assert first.wait(timeout=30) == -signal.SIGKILL
    assert not (tmp_path / "model-killed.zarr").exists()
    arrays, meta = read_checkpoint(tmp_path / "fit.ckpt")
    interrupted_at = (meta["init_index"], meta["run"]["n_iter"])
    assert kill_at <= interrupted_at < (SETTINGS["n_init"] - 1, SETTINGS["max_iter"])

    second = _start(data_path, tmp_path, "resumed", delay=0.0)
    _, stderr = second.communicate(timeout=120)
    assert second.returncode == 0, stderr.decode()
    resumed = load(tmp_path / "model-resumed.zarr")
    resumed_reads = (tmp_path / "calls-resumed").stat().st_size
    assert resumed_reads < full_fit_reads, "the restarted fit did not resume"
    for name in FITTED:
        np.testing.assert_allclose(
            getattr(resumed, name), getattr(reference, name), rtol=1e-10, atol=0, err_msg=name
        )
    assert resumed.n_iter_ == reference.n_iter_
    assert resumed.lower_bounds_ == pytest.approx(reference.lower_bounds_, rel=1e-12)
    assert resumed.history_["log_likelihood"] == resumed.lower_bounds_
    elapsed = resumed.history_["elapsed"]
    assert np.isfinite(elapsed).all(), "elapsed times before the kill were lost"
    assert np.all(np.diff(elapsed) >= 0)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_temporary_files_of_a_killed_writer_are_removed(data_path, tmp_path):
    checkpoint = tmp_path / "fit.ckpt"
    stale = tmp_path / ".fit.ckpt.streamgmm-0123456789ab.new"  # as write_checkpoint names it
    stale.write_bytes(b"half a checkpoint")
    unrelated = [
        tmp_path / ".other.ckpt.streamgmm-0123456789ab.new",
        tmp_path / ".fit.ckpt.my-backup.tmp",
    ]
    for path in unrelated:
        path.write_bytes(b"not ours")
    two_iterations = GaussianMixture(**{**SETTINGS, "max_iter": 2})
    unconverged_fit(two_iterations, data_path, checkpoint=checkpoint)
    assert not stale.exists() and all(path.exists() for path in unrelated)
    assert read_checkpoint(checkpoint)[1]["run"]["n_iter"] == 2


def test_finished_checkpoint_returns_the_fit_without_reading_the_data(data_path, tmp_path):
    settings = {**SETTINGS, "max_iter": 4}
    checkpoint = tmp_path / "fit.ckpt"
    first = unconverged_fit(GaussianMixture(**settings), data_path, checkpoint=checkpoint)
    counter = tmp_path / "calls"
    again = unconverged_fit(
        GaussianMixture(**settings), counted_blocks(data_path, str(counter), 0.0),
        checkpoint=checkpoint,
    )
    assert not counter.exists()
    for name in FITTED:
        np.testing.assert_array_equal(getattr(again, name), getattr(first, name))


def test_checkpoint_of_another_fit_is_refused(data_path, tmp_path):
    checkpoint = tmp_path / "fit.ckpt"
    two_iterations = GaussianMixture(**{**SETTINGS, "max_iter": 2})
    unconverged_fit(two_iterations, data_path, checkpoint=checkpoint)
    with pytest.raises(ValueError, match="different fit.*n_components"):
        GaussianMixture(**{**SETTINGS, "max_iter": 2, "n_components": 2}).fit(
            data_path, checkpoint=checkpoint
        )
    X = zarr.open_array(data_path, mode="r")[:1000]
    with pytest.raises(ValueError, match="n_samples"):
        GaussianMixture(**{**SETTINGS, "max_iter": 2}).fit(X, checkpoint=checkpoint)


def test_unreadable_or_foreign_checkpoint_files_are_refused(data_path, tmp_path):
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable streamgmm checkpoint"):
        GaussianMixture(**SETTINGS).fit(data_path, checkpoint=garbage)
    future = tmp_path / "future.ckpt"
    write_checkpoint(future, {}, {"algorithm": "batch"})
    arrays, meta = read_checkpoint(future)
    np.savez(
        future.with_suffix(".npz"),
        meta=np.array(json.dumps({**meta, "format_version": 99})),
    )
    os.replace(future.with_suffix(".npz"), future)
    with pytest.raises(ValueError, match="format version 99"):
        GaussianMixture(**SETTINGS).fit(data_path, checkpoint=future)


def test_checkpoint_holds_no_pickled_objects(data_path, tmp_path):
    checkpoint = tmp_path / "fit.ckpt"
    two_iterations = GaussianMixture(**{**SETTINGS, "max_iter": 2})
    unconverged_fit(two_iterations, data_path, checkpoint=checkpoint)
    with np.load(checkpoint, allow_pickle=False) as archive:
        kinds = {archive[name].dtype.kind for name in archive.files}
    assert kinds <= {"f", "U"}


ONLINE = dict(
    n_components=3, algorithm="online", batch_size=50, max_iter=3, tol=0.0, random_state=5
)


def test_online_fit_killed_mid_pass_resumes_to_the_uninterrupted_result(data_path, tmp_path):
    counter = tmp_path / "calls-reference"
    reference = unconverged_fit(
        GaussianMixture(**ONLINE), counted_blocks(data_path, str(counter), 0.0)
    )
    full_fit_reads = counter.stat().st_size

    settings = {**ONLINE, "checkpoint_every": 5}
    first = _start(data_path, tmp_path, "killed", delay=0.2, settings=settings)
    checkpoint = tmp_path / "fit.ckpt"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert first.poll() is None, first.stderr.read().decode()
        contents = read_checkpoint(checkpoint) if checkpoint.exists() else None
        if contents is not None:
            position = contents[1]["online"]
            if position["passes_done"] == 1 and position["batches_done"] >= 10:
                break
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    assert first.wait(timeout=30) == -signal.SIGKILL
    position = read_checkpoint(checkpoint)[1]["online"]
    assert position["passes_done"] < ONLINE["max_iter"]
    assert position["batches_done"] > 0, "the kill should fall inside a pass"

    second = _start(data_path, tmp_path, "resumed", delay=0.0, settings=settings)
    _, stderr = second.communicate(timeout=120)
    assert second.returncode == 0, stderr.decode()
    resumed = load(tmp_path / "model-resumed.zarr")
    assert (tmp_path / "calls-resumed").stat().st_size < full_fit_reads
    for name in FITTED:
        np.testing.assert_allclose(
            getattr(resumed, name), getattr(reference, name), rtol=1e-10, atol=0, err_msg=name
        )
    assert resumed.n_steps_ == reference.n_steps_
    assert resumed.lower_bounds_ == pytest.approx(reference.lower_bounds_, rel=1e-12)
    assert resumed.history_["log_likelihood"] == resumed.lower_bounds_
    assert resumed.history_["passes"] == [float(n) for n in range(1, resumed.n_iter_ + 1)]


def test_online_checkpoint_needs_a_single_initialisation(data_path, tmp_path):
    with pytest.raises(ValueError, match="n_init=1"):
        GaussianMixture(**{**ONLINE, "n_init": 2}).fit(data_path, checkpoint=tmp_path / "c")
