"""Learning from rows another process appends to a Zarr array (issue 3)."""

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import zarr
from unconverged import unconverged_fit

from streamgmm import GaussianMixture
from streamgmm.datasets import make_mixture
from streamgmm.io import load, save
from streamgmm.online import (
    COMMITTED_ROWS_ATTRIBUTE,
    append_rows,
    create_stream_array,
    update_from_zarr,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "streaming_append.py"

APPENDER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from streamgmm.online import append_rows

    rows = np.load(sys.argv[2])
    for block in np.array_split(rows, int(sys.argv[3])):
        append_rows(sys.argv[1], block)
        time.sleep(0.05)
    """
)


def _env():
    return dict(os.environ, PYTHONPATH=os.getcwd())


def _start(X):
    start = unconverged_fit(GaussianMixture(3, max_iter=1, random_state=0), X)
    return dict(
        weights_init=start.weights_, means_init=start.means_, precisions_init=start.precisions_
    )


def test_example_runs(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            str(EXAMPLE),
            "--appends",
            "8",
            "--rows-per-append",
            "1000",
            "--pause",
            "0.05",
            "--directory",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "rows learnt 8000;" in result.stdout
    error = float(result.stdout.strip().split()[-1])
    assert error < 0.2
    assert load(tmp_path / "model.zarr").stream_position_ == 8000


def test_model_keeps_up_with_a_process_that_appends(tmp_path):
    """The reader polls while a real second process appends in 30 blocks; it ends
    with the model that one partial_fit over the same rows gives."""
    X, _, _ = make_mixture(12_345, n_components=3, n_features=4, random_state=8)
    settings = dict(batch_size=256, learning_offset=1.0, **_start(X))
    path = tmp_path / "rows.zarr"
    create_stream_array(path, 4, chunk_rows=1000)
    np.save(tmp_path / "rows.npy", X)
    appender = subprocess.Popen(
        [sys.executable, "-c", APPENDER, str(path), str(tmp_path / "rows.npy"), "30"],
        env=_env(),
    )
    reader = GaussianMixture(3, **settings)
    updates_during_appends = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        done = appender.poll() is not None
        learnt = update_from_zarr(reader, path)
        updates_during_appends += bool(learnt) and not done
        if done:
            break
        time.sleep(0.02)
    assert appender.wait() == 0
    whole = X.shape[0] // 256 * 256
    assert reader.stream_position_ == whole
    assert updates_during_appends >= 2

    offline = GaussianMixture(3, **settings).partial_fit(X[:whole])
    assert reader.n_steps_ == offline.n_steps_
    for name in ("weights_", "means_", "covariances_"):
        np.testing.assert_allclose(getattr(reader, name), getattr(offline, name), atol=1e-12)

    save(reader, tmp_path / "model.zarr")
    restarted = load(tmp_path / "model.zarr")
    assert update_from_zarr(restarted, path) == 0
    assert update_from_zarr(restarted, path, include_partial_batch=True) == X.shape[0] - whole
    assert restarted.stream_position_ == X.shape[0]


def test_rows_with_nan_are_refused_and_the_position_kept(tmp_path):
    X, _, _ = make_mixture(3000, n_components=3, n_features=2, random_state=9)
    path = tmp_path / "rows.zarr"
    create_stream_array(path, 2, chunk_rows=512)
    append_rows(path, X[:1000])
    model = GaussianMixture(3, batch_size=250, random_state=0)
    assert update_from_zarr(model, path) == 1000
    bad = X[1000:].copy()
    bad[700] = np.inf
    append_rows(path, bad)
    steps = model.n_steps_
    with pytest.raises(ValueError, match="row 1700"):
        update_from_zarr(model, path)
    assert model.stream_position_ == 1000 and model.n_steps_ == steps


def test_a_shrunken_array_is_reported(tmp_path):
    X, _, _ = make_mixture(2000, n_components=3, n_features=2, random_state=10)
    path = tmp_path / "rows.zarr"
    create_stream_array(path, 2)
    append_rows(path, X)
    model = GaussianMixture(3, batch_size=500, random_state=0)
    update_from_zarr(model, path)
    zarr.open_array(path, mode="r+").attrs[COMMITTED_ROWS_ATTRIBUTE] = 100
    with pytest.raises(ValueError, match="rewritten"):
        update_from_zarr(model, path)
