"""GaussianMixture(acceleration=...): the same fit as plain batch EM in fewer
passes, scores that never fall, from a Zarr store, with n_init, from the
command line, and resumed exactly from a checkpoint after SIGKILL."""

import signal

import dask.array as da
import numpy as np
import pytest
import zarr
from test_checkpoint import _start, _wait_for_checkpoint

import streamgmm
from streamgmm import GaussianMixture, acceleration
from streamgmm.checkpoint import read_checkpoint
from streamgmm.datasets import make_mixture
from streamgmm.engine import run_em
from streamgmm.fitting import em_settings, em_step, start_run
from streamgmm.hyperparameters import fit_config, make_rng
from streamgmm.inputs import as_rows
from streamgmm.mixture import ConvergenceWarning

METHODS = ["daarem", "squarem"]
FITTED = ("weights_", "means_", "covariances_", "precisions_cholesky_")


@pytest.fixture(scope="module")
def data():
    """Overlapping components: plain EM needs a few hundred passes."""
    X, _, _ = make_mixture(3000, n_components=3, n_features=2, separation=1.2, random_state=3)
    start = GaussianMixture(3, max_iter=0, random_state=0).fit(X)
    init = dict(weights_init=start.weights_, means_init=start.means_,
                precisions_init=start.precisions_)
    return X, init


@pytest.fixture(scope="module")
def plain(data):
    X, init = data
    with pytest.warns(ConvergenceWarning):
        return GaussianMixture(3, tol=0.0, max_iter=600, **init).fit(X)


def _relative(model, reference, name):
    value, expected = getattr(model, name), getattr(reference, name)
    return float(np.abs(value - expected).max() / np.abs(expected).max())


@pytest.mark.parametrize("method", METHODS)
def test_accelerated_fit_ends_where_plain_em_ends(data, plain, method):
    X, init = data
    assert abs(plain.lower_bounds_[-1] - plain.lower_bounds_[-2]) < 1e-12
    with pytest.warns(ConvergenceWarning):
        model = GaussianMixture(3, tol=0.0, max_iter=150, acceleration=method, **init).fit(X)
    for name in FITTED:
        assert _relative(model, plain, name) < 1e-6, name
    bounds = np.asarray(model.lower_bounds_)
    assert np.all(np.diff(bounds) >= -1e-12 * np.abs(bounds[1:])), np.diff(bounds).min()
    assert model.n_iter_ == 150 and model.history_["passes"][-1] <= 150
    assert model.history_["log_likelihood"] == model.lower_bounds_


@pytest.mark.parametrize("method", METHODS)
def test_accelerated_fit_converges_in_fewer_passes(data, method):
    X, init = data
    plain = GaussianMixture(3, tol=1e-9, max_iter=2000, **init).fit(X)
    model = GaussianMixture(3, tol=1e-9, max_iter=2000, acceleration=method, **init).fit(X)
    assert plain.converged_ and model.converged_
    assert model.n_iter_ < plain.n_iter_ / 2
    assert model.lower_bound_ >= plain.lower_bound_ - 1e-9


def test_the_safeguard_keeps_the_fit_monotone_and_breaking_it_does_not(monkeypatch):
    X, _, _ = make_mixture(3000, n_components=4, n_features=2, separation=0.7, random_state=5)
    settings = dict(tol=0.0, max_iter=120, random_state=0, acceleration="squarem")
    monkeypatch.setattr(acceleration, "STEP_MAX_START", 1e6)
    with pytest.warns(ConvergenceWarning):
        kept = GaussianMixture(4, **settings).fit(X)
    assert np.all(np.diff(kept.lower_bounds_) >= -1e-12 * np.abs(kept.lower_bound_))
    assert len(kept.lower_bounds_) < kept.n_iter_, "nothing was rejected"
    monkeypatch.setattr(acceleration, "accept_extrapolation", lambda *arguments: True)
    with pytest.warns(ConvergenceWarning):
        broken = GaussianMixture(4, **settings).fit(X)
    assert np.any(np.diff(broken.lower_bounds_) < -1e-12 * np.abs(broken.lower_bound_))


@pytest.mark.parametrize(("method", "online_passes"), [*((m, 0) for m in METHODS), ("daarem", 2)])
def test_accelerated_fit_from_a_zarr_store_equals_the_in_memory_fit(data, tmp_path, method,
                                                                    online_passes):
    X, init = data
    path = tmp_path / "x.zarr"
    zarr.create_array(store=str(path), shape=X.shape, chunks=(700, 2), dtype=X.dtype)[:] = X
    settings = dict(tol=1e-8, max_iter=500, acceleration=method, n_online_passes=online_passes,
                    random_state=0, **init)
    from_store = GaussianMixture(3, **settings).fit(str(path))
    # online passes draw mini-batches chunk by chunk: the same chunks in memory
    in_memory = GaussianMixture(3, **settings).fit(
        da.from_array(X, chunks=(700, 2)) if online_passes else X)
    for name in FITTED:
        np.testing.assert_allclose(getattr(from_store, name), getattr(in_memory, name),
                                   rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.parametrize(("method", "online_passes"), [*((m, 0) for m in METHODS), ("daarem", 1)])
def test_accelerated_runs_take_the_same_steps_together_as_alone(data, method, online_passes):
    """n_init's runs share passes; each keeps its own acceleration state."""
    X, _ = data
    model = GaussianMixture(3, tol=1e-8, max_iter=200, acceleration=method,
                            n_online_passes=online_passes)
    rows, config = as_rows(X), fit_config(model.get_params())

    def starts():
        rng = make_rng(2)
        return [start_run(config, rows, rng, None, index) for index in range(3)]

    together, alone = starts(), starts()
    run_em(rows.array, together, em_settings(config), step=em_step(config))
    for run in alone:
        run_em(rows.array, [run], em_settings(config), step=em_step(config))
    for shared, single in zip(together, alone, strict=True):
        assert shared.converged and shared.n_iter == single.n_iter
        assert shared.history["passes"][online_passes] == online_passes + 1
        assert shared.lower_bounds == single.lower_bounds
        np.testing.assert_array_equal(shared.params.means, single.params.means)


def test_command_line_fit_takes_the_acceleration(data, tmp_path):
    from click.testing import CliRunner

    from streamgmm.cli import main

    X, _ = data
    path = tmp_path / "x.zarr"
    zarr.create_array(store=str(path), shape=X.shape, chunks=(1000, 2), dtype=X.dtype)[:] = X
    out = tmp_path / "model.zarr"
    arguments = ["fit", str(path), "-k", "3", "--acceleration", "daarem", "--online-passes", "1",
                 "--random-state", "0", "--tol", "1e-8", "--max-iter", "500", "--quiet",
                 "--out", str(out)]
    result = CliRunner().invoke(main, arguments, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    saved = streamgmm.load(out)
    assert saved.acceleration == "daarem" and saved.n_online_passes == 1
    direct = GaussianMixture(3, acceleration="daarem", n_online_passes=1, random_state=0,
                             tol=1e-8, max_iter=500).fit(str(path))
    np.testing.assert_allclose(saved.means_, direct.means_, rtol=1e-10)
    assert saved.n_iter_ == direct.n_iter_


@pytest.mark.parametrize(("method", "online_passes"), [*((m, 0) for m in METHODS), ("daarem", 2)])
def test_accelerated_fit_killed_with_sigkill_resumes_exactly(tmp_path, method, online_passes):
    X, _, _ = make_mixture(2000, n_components=3, n_features=3, separation=2.0, random_state=4)
    path = tmp_path / "x.zarr"
    zarr.create_array(store=str(path), shape=X.shape, chunks=(500, 3), dtype=X.dtype)[:] = X
    settings = dict(n_components=3, n_init=2, max_iter=25, tol=0.0, random_state=5,
                    acceleration=method, n_online_passes=online_passes)
    with pytest.warns(ConvergenceWarning):
        reference = GaussianMixture(**settings).fit(str(path), checkpoint=tmp_path / "ref.ckpt")
    first = _start(str(path), tmp_path, "killed", delay=0.03, settings=settings)
    _wait_for_checkpoint(tmp_path / "fit.ckpt", first, 0, 3)
    first.send_signal(signal.SIGKILL)
    assert first.wait(timeout=30) == -signal.SIGKILL
    _, meta = read_checkpoint(tmp_path / "fit.ckpt")
    assert meta["run"]["acceleration"]["method"] == method
    assert (meta["init_index"], meta["run"]["n_iter"]) < (1, 25)
    second = _start(str(path), tmp_path, "resumed", delay=0.0, settings=settings)
    _, stderr = second.communicate(timeout=120)
    assert second.returncode == 0, stderr.decode()
    resumed = streamgmm.load(tmp_path / "model-resumed.zarr")
    for name in FITTED:
        np.testing.assert_array_equal(getattr(resumed, name), getattr(reference, name),
                                      err_msg=name)
    assert resumed.n_iter_ == reference.n_iter_
    assert resumed.lower_bounds_ == reference.lower_bounds_
    assert resumed.history_["log_likelihood"] == reference.history_["log_likelihood"]


def test_online_warm_start_is_online_em_then_batch_em_from_its_end(data):
    """``n_online_passes=2``: the online fit's two passes (same seed, same
    draws), then batch EM from where they ended, to the same end as batch EM
    started there; the passes count in ``n_iter_`` and ``history_``, only batch
    EM's points in ``lower_bounds_`` (monotone)."""
    X, _ = data
    with pytest.warns(ConvergenceWarning):
        warm = GaussianMixture(3, acceleration="daarem", n_online_passes=2, tol=0.0,
                               max_iter=202, random_state=1).fit(X)
        online = GaussianMixture(3, algorithm="online", tol=0.0, max_iter=2,
                                 random_state=1).fit(X)
        batch = GaussianMixture(3, weights_init=online.weights_, means_init=online.means_,
                                precisions_init=online.precisions_, tol=0.0,
                                max_iter=600).fit(X)
    history = warm.history_
    assert history["passes"][:3] == [1.0, 2.0, 3.0] and warm.n_iter_ == 202
    assert history["log_likelihood"][:2] == online.history_["log_likelihood"]
    assert history["log_likelihood"][2:] == warm.lower_bounds_
    np.testing.assert_allclose(warm.lower_bounds_[0], batch.lower_bounds_[0], rtol=1e-12)
    bounds = np.asarray(warm.lower_bounds_)
    assert np.all(np.diff(bounds) >= -1e-12 * np.abs(bounds[1:]))
    assert abs(batch.lower_bounds_[-1] - batch.lower_bounds_[-2]) < 1e-12
    for name in FITTED:
        assert _relative(warm, batch, name) < 1e-6, name


def test_online_warm_start_n_init_equals_the_checkpointed_fit(data, tmp_path):
    """The online passes draw from the fit's generator right after their start,
    so the starts drawn all first (no checkpoint) and one by one (checkpoint)
    are the same, and so is the kept run."""
    X, _ = data
    settings = dict(n_init=3, tol=1e-8, max_iter=300, random_state=3, acceleration="squarem",
                    n_online_passes=1)
    together = GaussianMixture(3, **settings).fit(X)
    one_by_one = GaussianMixture(3, **settings).fit(X, checkpoint=tmp_path / "fit.ckpt")
    for name in FITTED:
        np.testing.assert_array_equal(getattr(together, name), getattr(one_by_one, name))
    for key in ("passes", "log_likelihood"):
        assert together.history_[key] == one_by_one.history_[key]
    assert together.n_iter_ == one_by_one.n_iter_


def test_online_warm_start_within_max_iter_and_not_for_max_iter_0(data):
    X, _ = data
    start = GaussianMixture(3, max_iter=0, random_state=0).fit(X)
    zero = GaussianMixture(3, max_iter=0, n_online_passes=2, random_state=0).fit(X)
    np.testing.assert_array_equal(zero.means_, start.means_)
    with pytest.warns(ConvergenceWarning):
        short = GaussianMixture(3, max_iter=3, tol=0.0, n_online_passes=2, random_state=0).fit(X)
    assert short.n_iter_ == 3 and len(short.lower_bounds_) == 1
    with pytest.warns(ConvergenceWarning):
        only = GaussianMixture(3, max_iter=2, tol=0.0, n_online_passes=5, random_state=0).fit(X)
    assert only.n_iter_ == 2 and only.lower_bounds_ == []
    with pytest.raises(ValueError, match="n_online_passes"):
        GaussianMixture(3, n_online_passes=-1).fit(X)


@pytest.mark.parametrize("method", METHODS)
def test_select_with_acceleration_keeps_the_models_fit_returns(data, method):
    """Every candidate of an accelerated grid is the accelerated fit of that
    candidate (the runs share passes, each keeps its own state), in fewer
    passes than the plain grid."""
    X, _ = data
    settings = dict(n_init=2, random_state=4, tol=1e-8, max_iter=500, init_params="k-means||")
    model, table = streamgmm.select(X, [2, 3], ["full", "diag"], acceleration=method,
                                    **settings)
    for K in (2, 3):
        for covariance_type in ("full", "diag"):
            alone = GaussianMixture(K, covariance_type=covariance_type, acceleration=method,
                                    **settings).fit(X)
            cell = table.sel(n_components=K, covariance_type=covariance_type)
            assert float(cell["lower_bound"]) == alone.lower_bound_
            assert int(cell["n_iter"]) == alone.n_iter_
    assert model.acceleration == method
    chosen = GaussianMixture(model.n_components, covariance_type=model.covariance_type,
                             acceleration=method, **settings).fit(X)
    for name in FITTED:
        np.testing.assert_array_equal(getattr(model, name), getattr(chosen, name))
    _, plain = streamgmm.select(X, [2, 3], ["full", "diag"], **settings)
    assert table.attrs["n_passes"] < plain.attrs["n_passes"]
    np.testing.assert_allclose(table["lower_bound"], plain["lower_bound"], rtol=1e-6)


def test_command_line_select_takes_the_acceleration(data, tmp_path):
    from click.testing import CliRunner

    from streamgmm.cli import main

    X, _ = data
    path = tmp_path / "x.zarr"
    zarr.create_array(store=str(path), shape=X.shape, chunks=(1000, 2), dtype=X.dtype)[:] = X
    out = tmp_path / "model.zarr"
    arguments = ["select", str(path), "-k", "2-3", "--covariance-types", "full",
                 "--acceleration", "squarem", "--random-state", "1", "--out", str(out)]
    result = CliRunner().invoke(main, arguments, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    saved = streamgmm.load(out)
    model, _ = streamgmm.select(str(path), [2, 3], ["full"], acceleration="squarem",
                                random_state=1)
    assert saved.acceleration == "squarem" and saved.n_iter_ == model.n_iter_
    np.testing.assert_array_equal(saved.means_, model.means_)
    with pytest.raises(ValueError, match="acceleration"):
        streamgmm.select(X, [2], ["full"], acceleration="anderson")


def test_online_warm_start_takes_the_row_weights(data):
    """Row weights reach the online passes and batch EM: unit weights give the
    unweighted warm-started fit up to the order of the components (weighted
    starts draw rows differently) and the tolerance."""
    X, _ = data
    settings = dict(tol=1e-10, max_iter=400, random_state=2, acceleration="daarem",
                    n_online_passes=2)
    plain = GaussianMixture(3, **settings).fit(X)
    unit = GaussianMixture(3, **settings).fit(X, sample_weight=np.ones(len(X)))
    assert unit.history_["passes"][2] == 3.0 and unit.converged_
    np.testing.assert_allclose(unit.lower_bound_, plain.lower_bound_, rtol=1e-9)
    order, plain_order = np.argsort(unit.weights_), np.argsort(plain.weights_)
    np.testing.assert_allclose(unit.weights_[order], plain.weights_[plain_order], rtol=1e-4)
    np.testing.assert_allclose(unit.means_[order], plain.means_[plain_order], rtol=1e-4,
                               atol=1e-4)
