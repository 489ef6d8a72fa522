"""Iteration history on the fitted model, and progress output by verbosity and terminal."""

import fcntl
import io
import os
import pty
import struct
import subprocess
import sys
import termios
import textwrap

import numpy as np
import pytest
from unconverged import unconverged_fit

import streamgmm
from streamgmm import GaussianMixture
from streamgmm.progress import FitProgress


def test_history_records_every_iteration_of_the_best_run(mixture_data):
    X, _, _ = mixture_data
    model = GaussianMixture(3, n_init=2, tol=1e-6, random_state=0).fit(X)
    history = model.history_
    assert set(history) == {"passes", "log_likelihood", "elapsed"}
    assert history["passes"] == list(range(1, model.n_iter_ + 1))
    np.testing.assert_array_equal(history["log_likelihood"], model.lower_bounds_)
    assert history["log_likelihood"][-1] == model.lower_bound_
    assert np.all(np.diff(history["elapsed"]) > 0)
    # EM never lowers the likelihood (up to rounding).
    assert np.all(np.diff(history["log_likelihood"]) > -1e-9)


def test_history_survives_save_and_load(mixture_data, tmp_path):
    X, _, _ = mixture_data
    model = GaussianMixture(3, random_state=0).fit(X)
    streamgmm.save(model, tmp_path / "model.zarr")
    loaded = streamgmm.load(tmp_path / "model.zarr")
    assert loaded.history_ == model.history_


@pytest.mark.parametrize("verbose", [0, 1])
def test_silent_when_not_on_a_terminal(mixture_data, capfd, verbose):
    X, _, _ = mixture_data
    GaussianMixture(3, verbose=verbose, max_iter=5, random_state=0).fit(X[:1000])
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_verbose_2_prints_a_line_every_interval_off_a_terminal(mixture_data, capfd):
    X, _, _ = mixture_data
    model = unconverged_fit(GaussianMixture(
        3, verbose=2, verbose_interval=2, tol=0.0, max_iter=6, random_state=0
    ), X[:1000])
    out, err = capfd.readouterr()
    start, *lines = err.strip().splitlines()
    assert start == "start 1 of 1: k-means|| on the data"  # said before the first step
    assert out == ""
    assert len(lines) == model.n_iter_ // 2 == 3
    assert lines[0].startswith("batch EM, init 0: step 2, passes 2")
    assert f"loglik {model.history_['log_likelihood'][1]:.6g}" in lines[0]


def test_progress_bar_on_a_terminal_shows_loglik_and_change():
    script = textwrap.dedent(
        """
        from streamgmm import GaussianMixture
        from streamgmm.datasets import make_mixture
        X, _, _ = make_mixture(2000, 3, 2, random_state=0)
        GaussianMixture(3, verbose=1, tol=0.0, max_iter=4, random_state=0).fit(X)
        """
    )
    main, child = pty.openpty()
    # a terminal of 24 rows and 120 columns (a fresh pty has size 0 x 0)
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=child,
    )
    os.close(child)
    output = b""
    while True:
        try:
            data = os.read(main, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        output += data
    process.wait(timeout=60)
    os.close(main)
    text = output.decode(errors="replace")
    assert process.returncode == 0, text
    assert "batch EM, start 1" in text and "init 0" not in text
    assert "4/4" in text  # a bar over max_iter steps, at the last iteration
    assert "loglik" in text and "change" in text


def test_a_bar_that_converges_early_ends_at_100_percent_saying_so():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    with FitProgress(1, 100, "batch EM, init 0", stream=stream) as progress:
        for passes in range(1, 31):
            progress.record(-4.0 - 1 / passes, passes)
    last = stream.getvalue().replace("\r", "\n").strip().splitlines()[-1]
    assert "batch EM, start 1: done after 30 of at most 100" in last
    assert "100%" in last and "30/30" in last
    stream = Terminal()
    with pytest.raises(KeyboardInterrupt):
        with FitProgress(1, 100, "online EM", stream=stream) as progress:
            progress.record(-4.0, 1)
            raise KeyboardInterrupt
    assert "done after" not in stream.getvalue() and "1/100" in stream.getvalue()


def test_fit_progress_records_without_output():
    progress = FitProgress(verbose=0, total=3, description="x")
    progress.record(-2.0, passes=0.5)
    progress.record(-1.5, passes=1.0)
    progress.close()
    assert progress.history["passes"] == [0.5, 1.0]
    assert progress.history["log_likelihood"] == [-2.0, -1.5]


def test_history_from_lower_bounds_for_runs_without_a_recorder():
    from streamgmm.progress import history_from_lower_bounds

    history = history_from_lower_bounds([-3.0, -2.5])
    assert history["passes"] == [1.0, 2.0]
    assert history["log_likelihood"] == [-3.0, -2.5]
    assert np.isnan(history["elapsed"]).all()


def test_online_em_records_a_history_and_prints_lines(mixture_data, capfd):
    X, _, _ = mixture_data
    model = unconverged_fit(GaussianMixture(
        3,
        algorithm="online",
        batch_size=500,
        max_iter=3,
        tol=0.0,
        verbose=2,
        verbose_interval=1,
        random_state=0,
    ), X)
    assert model.history_["passes"] == [1.0, 2.0, 3.0]
    np.testing.assert_array_equal(model.history_["log_likelihood"], model.lower_bounds_)
    start, *lines = capfd.readouterr().err.strip().splitlines()
    assert start.startswith("start 1 of 1: ")  # said before the first step
    assert [line.split(",")[0] for line in lines] == [f"online EM: step {i}" for i in (1, 2, 3)]
    assert lines[0].startswith("online EM: step 1, passes 1")
