"""BayesianGaussianMixture: parity with scikit-learn from the same start, every
input kind, model files, online SVI, choosing K, bad priors."""

import json
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pandas as pd
import pytest
import sklearn.exceptions
import xarray as xr
import zarr
from sklearn.cluster import KMeans
from sklearn.mixture import BayesianGaussianMixture as SklearnBayesian
from sklearn.utils.estimator_checks import check_estimator
from unconverged import unconverged_fit

import streamgmm
from streamgmm import BayesianGaussianMixture
from streamgmm.checkpoint import read_checkpoint
from streamgmm.datasets import make_mixture

TYPES = ("full", "tied", "diag", "spherical")
PRIOR_TYPES = ("dirichlet_process", "dirichlet_distribution")
VARIATIONAL = ("mean_precision_", "means_", "degrees_of_freedom_", "covariances_",
               "precisions_cholesky_", "weights_")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return np.concatenate([
        rng.normal(size=(300, 3)) + 5,
        rng.normal(size=(200, 3)) * 0.5 - 2,
        rng.normal(size=(100, 3)) + [0, 6, 0],
    ])


def _assert_same(model, reference, rtol=1e-8, atol=0.0):
    np.testing.assert_allclose(np.asarray(model.weight_concentration_),
                               np.asarray(reference.weight_concentration_), rtol=rtol, atol=atol)
    for name in VARIATIONAL:
        np.testing.assert_allclose(getattr(model, name), getattr(reference, name), rtol=rtol,
                                   atol=atol, err_msg=name)
    np.testing.assert_allclose(model.lower_bound_, reference.lower_bound_, rtol=rtol, atol=atol)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_equals_sklearn_from_the_same_start(data, covariance_type):
    """scikit-learn starts from k-means labels; ours from the same labels."""
    K = 4
    labels = KMeans(K, n_init=1, random_state=0).fit(data).labels_
    for prior_type in PRIOR_TYPES:
        for n_iter in (1, 10):
            settings = dict(n_components=K, covariance_type=covariance_type, tol=0.0,
                            max_iter=n_iter, weight_concentration_prior_type=prior_type)
            reference = unconverged_fit(SklearnBayesian(**settings, random_state=0), data)
            model = unconverged_fit(BayesianGaussianMixture(**settings, labels_init=labels),
                                    data)
            assert model.n_iter_ == reference.n_iter_ == n_iter
            _assert_same(model, reference)
            assert len(model.lower_bounds_) == n_iter
    np.testing.assert_array_equal(model.predict(data), reference.predict(data))
    np.testing.assert_allclose(model.predict_proba(data), reference.predict_proba(data),
                               rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(model.score_samples(data), reference.score_samples(data),
                               rtol=1e-8)
    assert model.score(data) == pytest.approx(reference.score(data), rel=1e-8)


def test_lower_bound_never_decreases(data):
    model = BayesianGaussianMixture(6, tol=1e-10, max_iter=300, random_state=1).fit(data)
    assert model.converged_
    assert np.all(np.diff(model.lower_bounds_) >= -1e-9 * abs(model.lower_bound_))


@pytest.mark.parametrize("estimator", [
    BayesianGaussianMixture(),
    BayesianGaussianMixture(algorithm="online", batch_size=16, max_iter=5),
], ids=["default", "online"])
def test_check_estimator_passes(estimator):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sklearn.exceptions.SkipTestWarning)
        results = check_estimator(estimator, on_fail=None)
    failed = {r["check_name"]: repr(r["exception"]) for r in results if r["status"] == "failed"}
    assert not failed
    assert len(results) >= 40


def test_unused_components_are_counted_and_dropped(data):
    model = BayesianGaussianMixture(8, max_iter=500, random_state=0).fit(data)
    assert model.n_components_effective_ == 3
    used = np.flatnonzero(model.weights_ >= 0.01)
    assert np.isclose(model.weights_[used].sum(), 1.0, atol=0.02)
    model.set_params(drop_unused=True)
    labels = model.predict(data)
    assert set(np.unique(labels)) == set(used)
    proba = model.predict_proba(data)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert np.all(proba[:, np.setdiff1d(np.arange(8), used)] == 0)


# ------------------------------------------------------------ input kinds
def _fit(X, **kwargs):
    settings = dict(n_components=3, max_iter=15, tol=0.0, random_state=0,
                    init_params="random_from_data")
    return unconverged_fit(BayesianGaussianMixture(**settings), X, **kwargs)


def test_every_input_kind_equals_in_memory(tmp_path):
    X, _, _ = make_mixture(3000, n_components=3, n_features=3, separation=3.0, random_state=2)
    reference = _fit(X)
    store = zarr.create_array(store=str(tmp_path / "x.zarr"), shape=X.shape,
                              chunks=(700, 3), dtype=X.dtype)
    store[:] = X
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    frame.to_parquet(tmp_path / "x.parquet")
    inputs = {
        "pandas": frame,
        "parquet": str(tmp_path / "x.parquet"),
        "zarr": str(tmp_path / "x.zarr"),
        "dask": da.from_array(X, chunks=(500, 3)),
        "xarray": xr.DataArray(da.from_array(X, chunks=(900, 3)), dims=("sample", "feature")),
    }
    for kind, X_kind in inputs.items():
        model = _fit(X_kind)
        _assert_same(model, reference, rtol=1e-10)
        assert model.n_iter_ == reference.n_iter_, kind
    np.testing.assert_array_equal(_fit(frame).feature_names_in_, ["a", "b", "c"])


def test_sample_weight_counts_rows(data):
    weights = np.ones(len(data))
    weights[::3] = 2.0
    repeated = np.concatenate([data, data[::3]])
    labels = KMeans(3, n_init=1, random_state=0).fit(data).labels_
    weighted = BayesianGaussianMixture(3, max_iter=5, tol=0.0, labels_init=labels)
    repeated_model = BayesianGaussianMixture(3, max_iter=5, tol=0.0,
                                             labels_init=np.concatenate([labels, labels[::3]]))
    unconverged_fit(weighted, data, sample_weight=weights)
    unconverged_fit(repeated_model, repeated)
    _assert_same(weighted, repeated_model, rtol=1e-9)


# ----------------------------------------------------------- model files
def test_save_load_and_partial_fit_continue_exactly(data, tmp_path):
    model = BayesianGaussianMixture(4, random_state=0, batch_size=64, max_iter=50)
    model.partial_fit(data[:300])
    streamgmm.save(model, tmp_path / "m.zarr")
    loaded = streamgmm.load(tmp_path / "m.zarr")
    assert isinstance(loaded, BayesianGaussianMixture)
    _assert_same(loaded, model, rtol=0)
    np.testing.assert_array_equal(loaded.score_samples(data), model.score_samples(data))
    assert loaded.to_xarray().identical(model.to_xarray())
    model.partial_fit(data[300:])
    loaded.partial_fit(data[300:])
    _assert_same(loaded, model, rtol=0)
    assert loaded.n_steps_ == model.n_steps_ == 10


def test_partial_fit_after_fit_counts_the_fitted_rows(data):
    model = _fit(data)
    assert model.n_samples_seen_ == len(data)
    model.partial_fit(data[:100])
    assert model.n_samples_seen_ == len(data) + 100 and model.n_steps_ == 1


def test_to_xarray_names_dimensions(data):
    model = _fit(data)
    dataset = model.to_xarray()
    assert dataset["means"].dims == ("component", "feature")
    assert dataset["weight_concentration"].dims == ("stick", "component")
    assert dataset.attrs["estimator"] == "BayesianGaussianMixture"


# ------------------------------------------------------------- bad priors
def _fitted_state(model):
    """The fitted attributes, as a comparable string (set_params changes the rest)."""
    return repr({name: np.asarray(value, dtype=object).tolist()
                 for name, value in sorted(vars(model).items()) if name.endswith("_")})


def _exploding(X):
    """X as a Dask array that raises if any pass reads it."""

    def explode(block):
        raise RuntimeError("a pass over the data started")

    return da.from_array(X, chunks=(200, X.shape[1])).map_blocks(explode, dtype=X.dtype)


@pytest.mark.parametrize(
    ("prior", "message"),
    [
        (dict(weight_concentration_prior=-1.0), "weight_concentration_prior must be a positive"),
        (dict(mean_precision_prior=0.0), "mean_precision_prior must be a positive"),
        (dict(degrees_of_freedom_prior=1.5), "degrees_of_freedom_prior must be"),
        (dict(mean_prior=[0.0, 1.0]), r"mean_prior must have shape \(3,\)"),
        (dict(covariance_prior=np.diag([1.0, -1.0, 1.0])), "positive definite"),
        (dict(covariance_prior=[[1.0, 2.0], [0.0, 1.0]]), r"shape \(3, 3\)"),
        (dict(covariance_prior=[[1.0, 0.5, 0], [0.0, 1.0, 0], [0, 0, 1]]), "symmetric"),
        (dict(covariance_type="diag", covariance_prior=[1.0, 0.0, 1.0]), "must be positive"),
        (dict(covariance_type="spherical", covariance_prior=np.ones(3)), r"shape \(\)"),
        (dict(labels_init=np.arange(5)), r"labels_init must have shape \(600,\)"),
        (dict(labels_init=np.full(600, 7)), r"integers in \[0, 3\)"),
    ],
)
def test_bad_priors_fail_before_any_pass(data, prior, message):
    fitted = _fit(data)
    before = _fitted_state(fitted)
    fitted.set_params(**prior)
    with pytest.raises(ValueError, match=message):
        fitted.fit(_exploding(data))
    assert _fitted_state(fitted) == before


def test_nan_rows_are_named_and_leave_the_model(data):
    fitted = _fit(data)
    before = _fitted_state(fitted)
    bad = data.copy()
    bad[17, 1] = np.nan
    with pytest.raises(ValueError, match="first bad row 17"):
        fitted.fit(bad)
    with pytest.raises(ValueError, match="NaN"):
        fitted.partial_fit(bad)
    assert _fitted_state(fitted) == before


# ------------------------------------------------------------------ online
def test_online_fit_approaches_the_batch_fit():
    X, _, _ = make_mixture(20000, n_components=3, n_features=3, separation=4.0, random_state=3)
    batch = BayesianGaussianMixture(3, random_state=0, tol=1e-6, max_iter=200).fit(X)
    online = BayesianGaussianMixture(3, random_state=0, algorithm="online", max_iter=3,
                                     batch_size=500).fit(X)
    assert online.n_iter_ == 3
    assert online.score(X) > batch.score(X) - 0.01


def test_threads_equal_processes_scheduler(data):
    reference = _fit(data)
    with dask.config.set(scheduler="synchronous"):
        model = _fit(da.from_array(data, chunks=(100, 3)))
    _assert_same(model, reference, rtol=1e-12)


# ------------------------------------------------- checkpoints, a cluster
SCRIPT = Path(__file__).with_name("_bayesian_checkpoint_fit.py")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    X, _, _ = make_mixture(2000, n_components=3, n_features=3, separation=2.0, random_state=4)
    path = tmp_path_factory.mktemp("data") / "x.zarr"
    array = zarr.create_array(store=str(path), shape=X.shape, chunks=(500, 3), dtype=X.dtype)
    array[:] = X
    return str(path)


def test_sigkill_and_resume_from_a_checkpoint_is_exact(store, tmp_path):
    """Batch; online fits checkpoint at the end of every pass through the same
    code (not killed here: each process costs about 5 s of imports)."""
    settings = dict(n_components=5, n_init=2, max_iter=8, tol=0.0, random_state=5)
    reference = unconverged_fit(BayesianGaussianMixture(**settings), store)

    def start(name, delay):
        return subprocess.Popen(
            [sys.executable, str(SCRIPT), store, str(tmp_path / "fit.ckpt"),
             str(tmp_path / f"model-{name}.zarr"), str(tmp_path / f"calls-{name}"),
             str(delay), json.dumps(settings)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=Path(__file__).parent)

    first = start("killed", 0.05)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        contents = read_checkpoint(tmp_path / "fit.ckpt") if (
            tmp_path / "fit.ckpt").exists() else None
        if contents is not None and contents[0]["run0/counters"][0] >= 2:
            break
        assert first.poll() is None, first.communicate()[1].decode()
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    assert first.wait(timeout=30) == -signal.SIGKILL
    interrupted = int(read_checkpoint(tmp_path / "fit.ckpt")[0]["run0/counters"][0])
    assert 2 <= interrupted < settings["max_iter"]
    second = start("resumed", 0.0)
    _, stderr = second.communicate(timeout=120)
    assert second.returncode == 0, stderr.decode()
    resumed = streamgmm.load(tmp_path / "model-resumed.zarr")
    _assert_same(resumed, reference, rtol=1e-12)
    assert resumed.n_iter_ == reference.n_iter_
    assert resumed.lower_bounds_ == reference.lower_bounds_
    reads = (tmp_path / "calls-resumed").stat().st_size
    assert reads < 4 * settings["max_iter"], "the restarted fit did not resume"


def test_checkpoint_of_another_fit_is_refused(store, tmp_path):
    settings = dict(n_components=3, max_iter=2, tol=0.0, random_state=0)
    unconverged_fit(BayesianGaussianMixture(**settings), store, checkpoint=tmp_path / "c.ckpt")
    with pytest.raises(ValueError, match="belongs to a different fit"):
        BayesianGaussianMixture(**{**settings, "n_components": 4}).fit(
            store, checkpoint=tmp_path / "c.ckpt")


def test_merge_moves_keep_only_gains_and_end_with_the_right_components():
    X, _, _ = make_mixture(6000, n_components=4, n_features=3, separation=5.0, random_state=1)
    settings = dict(n_components=12, tol=1e-4 * len(X), max_iter=400, random_state=0)
    plain = BayesianGaussianMixture(**settings).fit(X)
    moved = BayesianGaussianMixture(**settings, moves=True).fit(X)
    assert moved.converged_ and moved.n_moves_ >= 1
    assert moved.n_components_effective_ == 4
    assert np.all(np.diff(moved.lower_bounds_) >= -1e-9 * abs(moved.lower_bound_))
    assert moved.n_iter_ < plain.n_iter_
    assert moved.lower_bound_ >= plain.lower_bound_ - 1e-6 * abs(plain.lower_bound_)


def test_command_line_fits_saves_and_describes(store, tmp_path):
    from click.testing import CliRunner

    from streamgmm.cli import main

    out = tmp_path / "model.zarr"
    result = CliRunner().invoke(
        main, ["bayes", store, "-k", "6", "--moves", "--random-state", "0", "--max-iter", "300",
               "-o", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "hold at least 0.01 of the weight" in result.output
    model = streamgmm.load(out)
    assert isinstance(model, BayesianGaussianMixture) and model.moves
    assert model.n_components_effective_ == 3
    info = CliRunner().invoke(main, ["info", str(out)], catch_exceptions=False)
    assert info.output.startswith("BayesianGaussianMixture: 6 components")
    bad = CliRunner().invoke(main, ["bayes", store, "-k", "0", "-o", str(out)])
    assert bad.exit_code != 0


def test_benchmark_scripts_run_at_a_tiny_size(tmp_path, capsys):
    from benchmarks import bayesian_online, bayesian_speed

    assert bayesian_speed.main(["--n-samples", "3000", "--n-features", "3", "--n-components",
                                "2", "--extra", "1", "--repeats", "1"]) == 0
    assert "variational / EM" in capsys.readouterr().out
    out = tmp_path / "online.json"
    assert bayesian_online.main(["--rows", "3000", "--components", "2", "--features", "2",
                                 "--passes", "1", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["online"]["passes"] == 1 and np.isfinite(report["gap"])


def test_mclusts_reference_counts_with_both_covariance_priors():
    """Issue 28, Must show 4 (docs/benchmarks.md, "Choosing K"): with merge moves,
    the best of 10 starts of 10 components keeps mclust's 3 on diabetes (full) under
    both covariance priors; on faithful (tied) only under mclust's scale of the
    covariance prior, as the bound's best optimum under scikit-learn's default has 2."""
    from benchmarks.bayesian_choose_k import WEIGHT_PRIOR_TYPES, covariance_priors
    from benchmarks.reference_data import MCLUST_RESULTS, load_reference

    expected = {"faithful": {"default": 2, "mclust scale": 3},
                "diabetes": {"default": 3, "mclust scale": 3}}
    for name, reference in MCLUST_RESULTS.items():
        X = load_reference(name)
        for prior_name, prior in covariance_priors(X, 10).items():
            for prior_type in WEIGHT_PRIOR_TYPES:
                model = BayesianGaussianMixture(
                    10, covariance_type=reference["covariance_type"],
                    weight_concentration_prior_type=prior_type, n_init=10, max_iter=2000,
                    tol=1e-6, moves=True, random_state=0, **prior).fit(X)
                assert model.n_components_effective_ == expected[name][prior_name], (
                    name, prior_name, prior_type)


def test_faithful_bound_prefers_two_components_by_default_three_at_mclusts_scale():
    """From EM's 2- and 3-component tied optima as starts: under the default priors
    both end at the same 2-component optimum (no 3-component optimum is kept),
    under mclust's scale the 3-component optimum has the higher bound; scikit-learn
    agrees from the same starts."""
    from benchmarks.bayesian_choose_k import objective_comparison

    report = objective_comparison("faithful")
    assert report["em"][3]["bic"] < report["em"][2]["bic"]
    for prior_type in ("dirichlet_process", "dirichlet_distribution"):
        runs = {(prior, k): report["variational"][f"{prior}, {prior_type}, from EM K={k}"]
                for prior in ("default", "mclust scale") for k in (2, 3)}
        for run in runs.values():
            assert run["lower_bound"] == pytest.approx(run["sklearn_lower_bound"], rel=1e-8)
            assert run["components"] == run["sklearn_components"]
        assert runs["default", 3]["components"] == runs["default", 2]["components"] == 2
        assert runs["default", 3]["lower_bound"] == pytest.approx(
            runs["default", 2]["lower_bound"], rel=1e-8)
        assert runs["mclust scale", 3]["components"] == 3
        assert runs["mclust scale", 3]["lower_bound"] > runs["mclust scale", 2]["lower_bound"]
