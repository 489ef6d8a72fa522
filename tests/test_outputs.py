"""Outputs never destroy data: streamgmm replaces only an output of the same kind
it wrote, refuses anything else (leaving every byte as it was) unless told to
overwrite, never writes over an input, and replaces atomically (a writer killed
with SIGKILL leaves a loadable model)."""

import contextlib
import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402
import zarr  # noqa: E402
from click.testing import CliRunner  # noqa: E402

import streamgmm  # noqa: E402
from streamgmm import GaussianMixture, load, save, save_predictions  # noqa: E402
from streamgmm.cli import main  # noqa: E402
from streamgmm.datasets import random_mixture, sample_mixture, write_mixture_zarr  # noqa: E402
from streamgmm.online import create_stream_array  # noqa: E402
from streamgmm.outputs import OutputExistsError, stored_format  # noqa: E402
from streamgmm.plot import save_figure  # noqa: E402

WORKTREE = Path(__file__).resolve().parents[1]
ROWS, CHUNK = 3000, 1000


def tree_digest(path: Path) -> dict[str, str]:
    """Every file's SHA-256, every folder and link under ``path`` (or the file itself)."""
    if not os.path.lexists(path):
        return {}
    if path.is_file():
        return {".": hashlib.sha256(path.read_bytes()).hexdigest()}
    entries = {}
    for item in sorted(path.rglob("*")):
        name = str(item.relative_to(path))
        if item.is_symlink():
            entries[name] = f"link to {os.readlink(item)}"
        elif item.is_dir():
            entries[name] = "folder"
        else:
            entries[name] = hashlib.sha256(item.read_bytes()).hexdigest()
    return entries


def temporaries(folder: Path) -> list[str]:
    return [name for name in os.listdir(folder) if ".streamgmm-" in name]


def user_rows(path: Path) -> Path:
    """A Zarr array of rows that streamgmm did not write (no format marker)."""
    X, _ = sample_mixture(random_mixture(3, 3, random_state=4), ROWS, random_state=4)
    array = zarr.create_array(store=str(path), shape=X.shape, chunks=(CHUNK, 3), dtype="f8")
    array[:] = X
    return path


def precious_folder(path: Path) -> Path:
    path.mkdir()
    (path / "notes.txt").write_text("three years of notes")
    (path / "sub").mkdir()
    (path / "sub" / "data.bin").write_bytes(bytes(range(256)))
    return path


def plain_file(path: Path) -> Path:
    path.write_text("not streamgmm's")
    return path


@pytest.fixture(scope="module")
def models(mixture_data):
    X = mixture_data[0]
    return [GaussianMixture(3, random_state=seed).fit(X) for seed in (0, 1)]


def make_target(kind: str, folder: Path, model) -> Path:
    """Something at ``folder / kind`` of the given kind."""
    path = folder / kind
    if kind == "folder":
        return precious_folder(path)
    if kind == "zarr-data":
        return user_rows(path)
    if kind == "file":
        return plain_file(path)
    if kind == "model":
        save(model, path)
    elif kind == "predictions":
        save_predictions(model, np.zeros((10, 3)), path)
    elif kind == "synthetic":
        write_mixture_zarr(path, 100, random_mixture(2, 3), chunk_rows=50)
    elif kind == "stream":
        create_stream_array(path, 3)
    return path


def assert_refused(call, path: Path, *, overwrite_hint=True) -> Exception:
    """``call()`` raises, and nothing at or beside ``path`` changed."""
    before, siblings = tree_digest(path), sorted(os.listdir(path.parent))
    with pytest.raises((OutputExistsError, ValueError)) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    if overwrite_hint:
        assert isinstance(caught.value, OutputExistsError) and "overwrite=True" in message
    assert tree_digest(path) == before
    assert sorted(os.listdir(path.parent)) == siblings
    return caught.value


# ----------------------------------------------------------------- Python
@pytest.mark.parametrize(
    "kind", ["folder", "zarr-data", "file", "predictions", "synthetic", "stream"]
)
def test_save_refuses_anything_but_a_model(models, tmp_path, kind):
    path = make_target(kind, tmp_path, models[0])
    assert_refused(lambda: save(models[1], path), path)


@pytest.mark.parametrize("kind", ["folder", "zarr-data", "file", "model", "synthetic"])
def test_save_predictions_refuses_anything_but_predictions(models, tmp_path, kind):
    path = make_target(kind, tmp_path, models[0])
    assert_refused(lambda: save_predictions(models[1], np.ones((5, 3)), path), path)


@pytest.mark.parametrize("kind", ["folder", "zarr-data", "file", "model", "predictions"])
def test_write_mixture_zarr_refuses_anything_but_its_rows(models, tmp_path, kind):
    path = make_target(kind, tmp_path, models[0])
    truth = random_mixture(2, 3)
    assert_refused(lambda: write_mixture_zarr(path, 100, truth, chunk_rows=50), path)


@pytest.mark.parametrize("kind", ["stream", "synthetic", "folder"])
def test_create_stream_array_refuses_anything_even_a_stream(models, tmp_path, kind):
    path = make_target(kind, tmp_path, models[0])
    assert_refused(lambda: create_stream_array(path, 3), path)


def test_save_figure_refuses_files_it_did_not_write(tmp_path):
    foreign = tmp_path / "photo.png"
    figure, _ = plt.subplots()
    figure.savefig(foreign)  # a real PNG, without streamgmm's marker
    assert_refused(lambda: save_figure(plt.subplots()[0], foreign), foreign)
    text = plain_file(tmp_path / "text.png")
    assert_refused(lambda: save_figure(plt.subplots()[0], text), text)
    plt.close("all")


def test_foreign_checkpoint_path_is_refused_untouched(mixture_data, tmp_path):
    for path in (precious_folder(tmp_path / "ckpt"), plain_file(tmp_path / "notes.ckpt")):
        assert_refused(
            lambda path=path: GaussianMixture(3, max_iter=2).fit(mixture_data[0], checkpoint=path),
            path,
            overwrite_hint=False,
        )


def test_a_checkpoint_inside_the_data_is_refused(tmp_path):
    rows = user_rows(tmp_path / "rows.zarr")
    for source in (rows, str(rows), zarr.open_array(str(rows), mode="r")):
        assert_refused(
            lambda source=source: GaussianMixture(3, max_iter=2).fit(
                source, checkpoint=rows / "fit.ckpt"
            ),
            rows,
            overwrite_hint=False,
        )


def test_the_same_kind_is_replaced(models, mixture_data, tmp_path):
    X = mixture_data[0][:500]
    path = tmp_path / "model.zarr"
    save(models[0], path)
    save(models[1], path)
    np.testing.assert_array_equal(load(path).means_, models[1].means_)
    labels = tmp_path / "labels.zarr"
    save_predictions(models[0], X, labels, proba=True)
    save_predictions(models[1], X, labels)
    stored = xr.open_zarr(labels, consolidated=False)
    assert list(stored.data_vars) == ["labels"]
    np.testing.assert_array_equal(stored["labels"].values, models[1].predict(X))
    assert stored.attrs["format"] == "streamgmm.predictions"
    plot = tmp_path / "model.png"
    for _ in range(2):
        save_figure(plt.subplots()[0], plot)
        assert stored_format(plot) == "streamgmm.plot"
    rows = tmp_path / "rows.zarr"
    first = write_mixture_zarr(rows, 100, random_mixture(2, 3), chunk_rows=50)[:]
    second = write_mixture_zarr(rows, 100, random_mixture(2, 3), random_state=1)[:]
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(zarr.open_array(str(rows), mode="r")[:], second)
    assert temporaries(tmp_path) == []


def test_an_empty_folder_is_written(models, tmp_path):
    (tmp_path / "empty").mkdir()
    save(models[0], tmp_path / "empty")
    np.testing.assert_array_equal(load(tmp_path / "empty").means_, models[0].means_)


def test_overwrite_replaces_anything_but_an_input(models, tmp_path):
    folder = precious_folder(tmp_path / "precious")
    save(models[0], folder, overwrite=True)
    np.testing.assert_array_equal(load(folder).means_, models[0].means_)
    rows = user_rows(tmp_path / "rows.zarr")
    link = tmp_path / "link.zarr"
    link.symlink_to(rows)
    for target, words in [
        (rows, "is the input"),
        (link, "is the input"),
        (rows / "labels", "lies inside the input"),
        (tmp_path / "." / "rows.zarr" / ".." / "rows.zarr", "is the input"),
        (tmp_path, "contains the input"),
    ]:
        error = assert_refused(
            lambda target=target: save_predictions(models[0], str(rows), target, overwrite=True),
            target,
            overwrite_hint=False,
        )
        assert words in str(error) and "overwriting never applies to inputs" in str(error)
    assert tree_digest(rows) == tree_digest(user_rows(tmp_path / "again.zarr"))


def test_overwrite_never_replaces_the_current_folder(models, tmp_path, monkeypatch):
    folder = precious_folder(tmp_path / "precious")
    monkeypatch.chdir(folder / "sub")
    for target, words in ((folder, "contains the current"), (folder / "sub", "is the current")):
        error = assert_refused(
            lambda target=target: save(models[0], target, overwrite=True),
            target,
            overwrite_hint=False,
        )
        assert words in str(error)


def test_stale_temporaries_of_a_killed_save_are_removed(models, tmp_path):
    path = tmp_path / "model.zarr"
    save(models[0], path)
    stale = tmp_path / ".model.zarr.streamgmm-0123456789ab.new"
    save(models[1], stale)  # what a killed writer leaves: a complete or partial store
    foreign = plain_file(tmp_path / ".model.zarr.notes")
    save(models[1], path)
    assert not stale.exists() and foreign.exists()
    np.testing.assert_array_equal(load(path).means_, models[1].means_)


def test_an_old_model_renamed_aside_is_loaded_and_put_back(models, tmp_path):
    """The rename-aside fallback's crash window: the old model renamed aside, the
    new one not yet renamed in."""
    path = tmp_path / "model.zarr"
    save(models[0], path)
    aside = tmp_path / ".model.zarr.streamgmm-0123456789ab.old"
    os.rename(path, aside)
    np.testing.assert_array_equal(load(path).means_, models[0].means_)
    save(models[1], path)
    np.testing.assert_array_equal(load(path).means_, models[1].means_)
    assert temporaries(tmp_path) == []


# ------------------------------------------------------- killed while saving
@pytest.fixture(scope="module")
def large_models(tmp_path_factory):
    """Two full-covariance models of 40 components in 40 dimensions (about 1.5 MB
    per covariance array), saved, so that a save takes long enough to be hit."""
    folder = tmp_path_factory.mktemp("large")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4000, 40)) + 3 * rng.integers(0, 4, size=(4000, 1))
    paths = []
    for seed in (0, 1):
        model = GaussianMixture(40, max_iter=1, init_params="random_from_data", random_state=seed)
        with pytest.warns(Warning):
            model.fit(X)
        save(model, folder / f"model{seed}.zarr")
        paths.append(folder / f"model{seed}.zarr")
    return paths


@pytest.mark.parametrize("exchange", ["1", "0"], ids=["rename-exchange", "rename-aside"])
def test_sigkill_during_save_leaves_a_loadable_model(large_models, tmp_path, exchange):
    candidates = [load(path).means_ for path in large_models]
    target = tmp_path / "model.zarr"
    environment = {**os.environ, "PYTHONPATH": str(WORKTREE)}
    script = Path(__file__).with_name("_save_repeatedly.py")
    rng = random.Random(int(exchange))
    interrupted = 0
    for _ in range(4 if exchange == "1" else 3):
        process = subprocess.Popen(
            [sys.executable, str(script), *map(str, large_models), str(target), exchange],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert process.stdout.readline().strip() == b"ready", process.stderr.read()
        time.sleep(rng.uniform(0.0, 0.6))
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
        process.stdout.close()
        process.stderr.close()
        interrupted += bool(temporaries(tmp_path))
        means = load(target).means_
        assert any(np.array_equal(means, candidate) for candidate in candidates)
    assert interrupted >= 1, "no kill landed inside a save"
    save(load(large_models[0]), target)
    assert temporaries(tmp_path) == []


# ------------------------------------------------------------ command line
def run_cli(*args, cwd):
    environment = {**os.environ, "PYTHONPATH": str(WORKTREE)}
    environment.pop("STREAMGMM_TRACEBACK", None)
    return subprocess.run(
        [sys.executable, "-m", "streamgmm.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=environment,
        cwd=cwd,
        timeout=120,
    )


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, models):
    folder = tmp_path_factory.mktemp("workspace")
    user_rows(folder / "rows.zarr")
    (folder / "link.zarr").symlink_to(folder / "rows.zarr")
    precious_folder(folder / "precious")
    plain_file(folder / "notes.txt")
    model = GaussianMixture(3, random_state=0).fit(
        zarr.open_array(str(folder / "rows.zarr"), mode="r")[:]
    )
    save(model, folder / "model.zarr")
    save(model, folder / "other.zarr")
    return folder


REFUSED = {
    "fit over a folder": ("fit rows.zarr -k 3 --out precious", "--overwrite"),
    "fit over its data": ("fit rows.zarr -k 3 --out rows.zarr", "is the input"),
    "fit over its data, --overwrite": (
        "fit rows.zarr -k 3 --out rows.zarr --overwrite",
        "is the input",
    ),
    "fit over its data through a link": (
        "fit link.zarr -k 3 --out rows.zarr --overwrite",
        "is the input",
    ),
    "fit over a folder holding its data": (
        "fit rows.zarr -k 3 --out . --overwrite",
        "contains the input",
    ),
    "fit into its data": ("fit rows.zarr -k 3 --out rows.zarr/model --overwrite", "lies inside"),
    "fit with a foreign checkpoint": (
        "fit rows.zarr -k 3 --checkpoint notes.txt --out new.zarr",
        "not a readable streamgmm checkpoint",
    ),
    "fit with a checkpoint inside its data": (
        "fit rows.zarr -k 3 --checkpoint rows.zarr/fit.ckpt --out new.zarr",
        "lies inside",
    ),
    "fit with --checkpoint and --out alike": (
        "fit rows.zarr -k 3 --checkpoint model.zarr --out model.zarr",
        "name the same path",
    ),
    "predict over a model": ("predict model.zarr rows.zarr --out other.zarr", "model file"),
    "predict over its model, --overwrite": (
        "predict model.zarr rows.zarr --out model.zarr --overwrite",
        "is the input",
    ),
    "predict over a file": ("predict model.zarr rows.zarr --out notes.txt", "--overwrite"),
    "plot over a file": ("plot model.zarr --out notes.txt", "--overwrite"),
}


def invoke_in_process(arguments: list[str], folder: Path):
    """The command run by click's test runner in ``folder``: (exit code, stderr)."""
    with contextlib.chdir(folder):
        result = CliRunner().invoke(main, arguments, catch_exceptions=False)
    return result.exit_code, result.stderr


def invoke_in_subprocess(arguments: list[str], folder: Path):
    """The command run in its own process in ``folder``: (exit code, stderr)."""
    result = run_cli(*arguments, cwd=folder)
    return result.returncode, result.stderr


IN_SUBPROCESS = {"fit over a folder", "fit over its data, --overwrite", "predict over a file"}


@pytest.mark.parametrize("case", list(REFUSED))
def test_cli_refuses_with_one_line_and_changes_nothing(workspace, case):
    arguments, expected = REFUSED[case]
    run = invoke_in_subprocess if case in IN_SUBPROCESS else invoke_in_process
    before = tree_digest(workspace)
    status, stderr = run(arguments.split(), workspace)
    assert status == 1, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:"), stderr
    assert expected in lines[0] and "Traceback" not in stderr
    assert tree_digest(workspace) == before


def test_cli_replaces_its_own_outputs(workspace, tmp_path):
    data = str(workspace / "rows.zarr")
    for arguments in (
        ["fit", data, "-k", "3", "--random-state", "1", "--out", "m.zarr"],
        ["fit", data, "-k", "2", "--random-state", "1", "--out", "m.zarr"],
        ["predict", "m.zarr", data, "--out", "l.zarr"],
        ["predict", "m.zarr", data, "--out", "l.zarr", "--proba"],
        ["plot", "m.zarr", "--out", "m.png"],
        ["plot", "m.zarr", data, "--out", "m.png"],
    ):
        status, stderr = invoke_in_process(arguments, tmp_path)
        assert status == 0, stderr
    assert streamgmm.load(tmp_path / "m.zarr").n_components == 2
    assert "responsibilities" in xr.open_zarr(tmp_path / "l.zarr", consolidated=False)
    assert stored_format(tmp_path / "m.png") == "streamgmm.plot"
    assert temporaries(tmp_path) == []


DEMO = ["demo", "--n-samples", "4000", "--chunk-rows", "1000", "--n-components", "2", "-q"]


def test_demo_twice_replaces_its_outputs_and_refuses_others(tmp_path, monkeypatch):
    # what the demo writes, not its kernels: they run tiered, as in any fit
    # (the demo would compile them first; tests/test_cli.py runs it so)
    monkeypatch.setenv("STREAMGMM_KERNELS", "tiered")
    for _ in range(2):
        status, stderr = invoke_in_process([*DEMO, "--out", str(tmp_path)], tmp_path)
        assert status == 0, stderr
    assert stored_format(tmp_path / "mixture.zarr") == "streamgmm.synthetic_rows"
    assert stored_format(tmp_path / "streamgmm-demo.png") == "streamgmm.plot"
    assert temporaries(tmp_path) == []
    for name, make in (("mixture.zarr", user_rows), ("streamgmm-demo.png", plain_file)):
        folder = tmp_path / name.split(".")[0]
        folder.mkdir()
        make(folder / name)
        before = tree_digest(folder)
        status, stderr = invoke_in_process([*DEMO, "--out", str(folder)], folder)
        assert status == 1 and "--overwrite" in stderr and len(stderr.splitlines()) == 1
        assert tree_digest(folder) == before
