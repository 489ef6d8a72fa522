"""Stepwise online EM (issue 3): the update, the schedule, fit/partial_fit, state, safety."""

import copy
import os
import subprocess
import sys
import textwrap

import dask.array as da
import numpy as np
import pytest
from float32_rounding import assert_float32_rounding_of
from threadpoolctl import threadpool_limits
from unconverged import unconverged_fit

from streamgmm import GaussianMixture
from streamgmm.datasets import make_mixture, random_mixture, sample_mixture
from streamgmm.estep import GaussianParameters, statistics_from_responsibilities
from streamgmm.fitting import online_config
from streamgmm.io import load, save
from streamgmm.mstep import parameters_from_statistics
from streamgmm.online import (
    FoldCarry,
    OnlineConfig,
    burn_in_complete,
    current_parameters,
    finish_pass,
    fold_chunk,
    initial_state,
    next_pass_seed,
    pass_draws,
    pass_order,
    step_size,
    stepwise_update,
)
from streamgmm.state import online_state_of
from streamgmm.statistics import SufficientStatistics

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


def _start(X, n_components, covariance_type="full", random_state=0):
    """Starting parameters shared by the models a test compares."""
    start = unconverged_fit(GaussianMixture(
        n_components, covariance_type=covariance_type, max_iter=1, random_state=random_state
    ), X)
    return dict(
        weights_init=start.weights_,
        means_init=start.means_,
        precisions_init=start.precisions_,
        covariance_type=covariance_type,
    )


def _raw_moments(X, resp):
    """Per-component raw sums: n_k, sum g x, sum g x x^T."""
    return resp.sum(0), resp.T @ X, np.einsum("nk,ni,nj->kij", resp, X, X)


# ------------------------------------------------------------------ the math
def test_step_size_schedule():
    assert step_size(1, 0.6, 10.0) == 1.0
    assert step_size(2, 0.6, 0.0) == pytest.approx(2**-0.6)
    assert step_size(7, 0.75, 3.0) == pytest.approx(10**-0.75)
    steps = [step_size(t, 0.6, 2.0) for t in range(2, 50)]
    assert np.all(np.diff(steps) < 0)


def test_stepwise_update_is_the_convex_combination_of_raw_moments():
    rng = np.random.default_rng(0)
    XA, XB = rng.normal(5e3, 1, (300, 3)), rng.normal(5e3 + 2, 2, (500, 3))
    rA, rB = rng.dirichlet(np.ones(4), 300), rng.dirichlet(np.ones(4), 500)
    shift = np.full((4, 3), 5e3)
    a = statistics_from_responsibilities(XA, rA, shift, "full")
    b = statistics_from_responsibilities(XB, rB, shift, "full")
    rho = 0.3
    mixed = stepwise_update(a, b, rho, "full")
    nA, sA, qA = _raw_moments(XA - 5e3, rA)
    nB, sB, qB = _raw_moments(XB - 5e3, rB)
    n = (1 - rho) * nA + rho * nB
    first = ((1 - rho) * sA + rho * sB) / n[:, None]
    second = ((1 - rho) * qA + rho * qB) / n[:, None, None]
    np.testing.assert_allclose(mixed.weight, n, rtol=1e-12)
    np.testing.assert_allclose(mixed.mean - 5e3, first, rtol=1e-9)
    covariance = second - np.einsum("ki,kj->kij", first, first)
    np.testing.assert_allclose(mixed.scatter / n[:, None, None], covariance, atol=1e-9)
    assert mixed.n_samples == pytest.approx((1 - rho) * 300 + rho * 500)


def test_burn_in_needs_d_plus_one_rows_per_component_or_the_cap():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 5))
    resp = np.zeros((40, 2))
    resp[:35, 0], resp[35:, 1] = 1.0, 1.0
    stats = statistics_from_responsibilities(X, resp, np.zeros((2, 5)), "full")
    normalised = stepwise_update(stats, stats, 1.0, "full")._replace()
    per_row = normalised._replace(weight=normalised.weight / 40)
    assert not burn_in_complete(per_row, 40, "full")  # component 1 holds 5 < d + 1 rows
    assert burn_in_complete(per_row, 40, "diag")  # 2 rows suffice for variances
    assert burn_in_complete(per_row, 10 * 2 * 6, "full")  # the cap


def _fold_start(X, n_components=3):
    start = _start(X, n_components)
    params = GaussianParameters(
        start["weights_init"],
        start["means_init"],
        np.linalg.cholesky(start["precisions_init"]),
        "full",
    )
    state = initial_state(n_components, X.shape[1], "full")
    return FoldCarry(state, params, np.linalg.inv(start["precisions_init"]))


CONFIG = OnlineConfig("full", 1e-6, 0.6, 10.0, False)


def _assert_same_carry(a, b):
    assert (a.batches_done, a.count, a.state.n_steps) == (b.batches_done, b.count, b.state.n_steps)
    assert a.total == b.total
    np.testing.assert_array_equal(a.params.means, b.params.means)
    np.testing.assert_array_equal(a.covariances, b.covariances)
    np.testing.assert_array_equal(a.state.statistics.scatter, b.state.statistics.scatter)


def test_folding_chunks_one_by_one_equals_folding_their_rows_at_once():
    """The carry holds everything between chunks: rows left over at a chunk's
    end start the next chunk's first batch, as if the chunks were one."""
    X, _, _ = make_mixture(1000, n_components=3, n_features=2, random_state=3)
    carry = _fold_start(X)
    one_by_one = carry
    for begin in range(0, 1000, 130):
        one_by_one = fold_chunk(one_by_one, X[begin : begin + 130], CONFIG, 48, first_row=begin)
        leftover = 0 if one_by_one.leftover is None else one_by_one.leftover.shape[0]
        assert leftover == min(begin + 130, 1000) % 48
    at_once = fold_chunk(carry, X, CONFIG, 48)
    _assert_same_carry(one_by_one, at_once)
    finished = finish_pass(one_by_one, CONFIG)
    assert finished.leftover is None and finished.count == 1000
    assert finished.batches_done == -(-1000 // 48)


def test_fold_chunk_draws_the_row_order_from_its_seed_and_names_bad_rows():
    X, _, _ = make_mixture(700, n_components=3, n_features=2, random_state=4)
    carry = _fold_start(X)
    shuffled = fold_chunk(carry, X, CONFIG, 64, shuffle_seed=(7, 2))
    again = fold_chunk(carry, X, CONFIG, 64, shuffle_seed=(7, 2))
    permuted = fold_chunk(carry, X[np.random.default_rng((7, 2)).permutation(700)], CONFIG, 64)
    _assert_same_carry(shuffled, again)
    _assert_same_carry(shuffled, permuted)
    other = fold_chunk(carry, X, CONFIG, 64, shuffle_seed=(7, 3))
    assert not np.array_equal(other.params.means, shuffled.params.means)
    bad = X.copy()
    bad[321, 1] = np.inf
    with pytest.raises(ValueError, match="row 1321"):
        fold_chunk(carry, bad, CONFIG, 64, first_row=1000)
    with pytest.raises(ValueError, match="row 5"):
        fold_chunk(carry, bad[[3, 321]], CONFIG, 64, row_numbers=np.array([4, 5]))


def test_fold_in_memory_visits_every_row_once_in_a_seeded_order(monkeypatch):
    from streamgmm import online

    monkeypatch.setattr(online, "SHUFFLED_GATHER_ROWS", 100)
    X, _, _ = make_mixture(1003, n_components=3, n_features=2, random_state=5)
    carry = _fold_start(X)
    folded = online.fold_in_memory(carry, X, 5, CONFIG, 32)
    assert (folded.count, folded.batches_done, folded.leftover) == (1003, 32, None)
    order = np.random.default_rng(5).permutation(1003)
    expected = finish_pass(fold_chunk(carry, X[order], CONFIG, 32), CONFIG)
    _assert_same_carry(folded, expected)
    bad = X.copy()
    bad[777, 1] = np.nan
    with pytest.raises(ValueError, match="777"):
        online.fold_in_memory(carry, bad, 5, CONFIG, 32)


def test_online_fit_of_sorted_data_reaches_the_batch_fit():
    """Rows sorted by component, in memory (two chunks): in stored order every
    mini-batch holds one component; drawn from all rows, a pass per seed is
    enough."""
    X, y, _ = make_mixture(20_000, n_components=4, n_features=3, separation=4.0, random_state=1)
    ordered = X[np.argsort(y, kind="stable")]
    batch = GaussianMixture(4, random_state=0).fit(X).score(X)
    settings = dict(algorithm="online", max_iter=3, random_state=0)
    shuffled = unconverged_fit(GaussianMixture(4, **settings), ordered).score(X)
    stored_order = unconverged_fit(GaussianMixture(4, shuffle=False, **settings), ordered).score(X)
    assert shuffled > batch - 0.005
    assert stored_order < batch - 0.1


# ------------------------------------------------------------ the estimator
@pytest.mark.parametrize(
    "params, message",
    [
        (dict(batch_size=0), "batch_size"),
        (dict(learning_decay=0.5), "learning_decay"),
        (dict(learning_decay=1.2), "learning_decay"),
        (dict(learning_offset=-1.0), "learning_offset"),
        (dict(algorithm="stochastic"), "algorithm"),
        (dict(shuffle="yes"), "shuffle"),
    ],
)
def test_bad_online_parameters_raise(params, message):
    X = np.random.default_rng(0).normal(size=(100, 2))
    for method in ("fit", "partial_fit"):
        model = GaussianMixture(2, **{"algorithm": "online", **params})
        with pytest.raises(ValueError, match=message):
            getattr(model, method)(X)
        assert not hasattr(model, "means_")


def test_partial_fit_rejects_a_different_feature_count():
    X = np.random.default_rng(0).normal(size=(500, 3))
    model = GaussianMixture(2, batch_size=100, random_state=0).partial_fit(X)
    with pytest.raises(ValueError, match="3 features"):
        model.partial_fit(X[:, :2])


def test_partial_fit_checks_hyperparameters_changed_between_calls():
    """Later calls skip the rules only for the very values (and types) they
    accepted: a changed value, a bool for an int, NaN are refused, the model kept."""
    X = np.random.default_rng(0).normal(size=(600, 3))
    model = GaussianMixture(2, batch_size=100, random_state=0).partial_fit(X)
    model.partial_fit(X[:200])
    means = model.means_.copy()
    for name, value in (("batch_size", 0), ("batch_size", True), ("step_floor", float("nan")),
                        ("learning_decay", 0.5), ("reg_covar", np.array([1e-6]))):
        previous = getattr(model, name)
        model.set_params(**{name: value})
        with pytest.raises(ValueError, match=f"'{name}' parameter"):
            model.partial_fit(X[:200])
        model.set_params(**{name: previous})
        np.testing.assert_array_equal(model.means_, means)
    model.set_params(batch_size=1).set_params(batch_size=100)
    model.partial_fit(X[:200])


def test_two_passes_reach_batch_em_within_a_hundredth_of_a_nat():
    """Must show 1 on a small overlapping mixture (the full size is in the benchmark).

    BLAS is limited to one thread only to keep batch EM's 100 iterations fast on a
    shared machine; it changes no result.
    """
    X, _, _ = make_mixture(20_000, n_components=4, n_features=4, separation=1.0, random_state=3)
    with threadpool_limits(limits=1, user_api="blas"):
        start = _start(X, 4)
        batch = GaussianMixture(4, tol=1e-6, max_iter=1000, **start).fit(X)
    online = unconverged_fit(GaussianMixture(
        4, algorithm="online", max_iter=2, tol=0.0, random_state=0, **start
    ), X)
    assert batch.converged_ and batch.n_iter_ > 20  # overlapping: batch EM needs many passes
    assert online.n_iter_ == 2 and online.n_samples_seen_ == 2 * X.shape[0]
    gap = batch.score(X) - online.score(X)
    assert gap < 0.01, gap


@pytest.mark.parametrize("averaging", [False, True])
def test_partial_fit_stream_equals_fit_online(averaging):
    """Must show 2: 50 partial_fit calls == one online pass over the same rows (in
    stored order: ``shuffle=False``)."""
    X, _, _ = make_mixture(50 * 200, n_components=3, n_features=3, separation=2.0, random_state=4)
    shared = dict(batch_size=200, learning_decay=0.7, learning_offset=2.0, averaging=averaging)
    shared.update(_start(X, 3))
    fitted = unconverged_fit(GaussianMixture(
        3, algorithm="online", max_iter=1, tol=0.0, shuffle=False, **shared
    ), X)
    streamed = GaussianMixture(3, **shared)
    for batch in np.split(X, 50):
        streamed.partial_fit(batch)
    assert streamed.n_steps_ == fitted.n_steps_ >= 49
    assert streamed.n_samples_seen_ == fitted.n_samples_seen_ == X.shape[0]
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_allclose(getattr(streamed, name), getattr(fitted, name), atol=1e-12)
    for a, b in zip(streamed.running_statistics_, fitted.running_statistics_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


CONTINUE_IN_FRESH_PROCESS = textwrap.dedent(
    """
    import sys
    import numpy as np
    from streamgmm.io import load, save

    model = load(sys.argv[1])
    for batch in np.split(np.load(sys.argv[2]), int(sys.argv[4])):
        model.partial_fit(batch)
    save(model, sys.argv[3])
    """
)


@pytest.mark.parametrize("averaging", [False, True])
def test_saved_mid_stream_model_continues_in_another_process(tmp_path, averaging):
    """Must show 2: save after 25 of 50 batches, continue in a fresh process."""
    X, _, _ = make_mixture(50 * 200, n_components=3, n_features=3, separation=2.0, random_state=5)
    shared = dict(batch_size=200, learning_offset=1.0, averaging=averaging, **_start(X, 3))
    batches = np.split(X, 50)
    uninterrupted = GaussianMixture(3, **shared)
    for batch in batches:
        uninterrupted.partial_fit(batch)
    halfway = GaussianMixture(3, **shared)
    for batch in batches[:25]:
        halfway.partial_fit(batch)
    save(halfway, tmp_path / "halfway.zarr")
    np.save(tmp_path / "rest.npy", X[25 * 200 :])
    subprocess.run(
        [
            sys.executable,
            "-c",
            CONTINUE_IN_FRESH_PROCESS,
            str(tmp_path / "halfway.zarr"),
            str(tmp_path / "rest.npy"),
            str(tmp_path / "final.zarr"),
            "25",
        ],
        check=True,
        env=dict(os.environ, PYTHONPATH=os.getcwd()),
        timeout=120,
    )
    resumed = load(tmp_path / "final.zarr")
    assert resumed.n_steps_ == uninterrupted.n_steps_
    assert resumed.n_samples_seen_ == uninterrupted.n_samples_seen_
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_allclose(
            getattr(resumed, name), getattr(uninterrupted, name), rtol=1e-12, atol=1e-12
        )


def _snapshot(model):
    return copy.deepcopy(vars(model))


def _assert_same_state(before, after):
    assert before.keys() == after.keys()
    for name, value in before.items():
        _assert_same_value(value, after[name], name)


def _assert_same_value(value, other, name):
    if isinstance(value, dict):
        assert value.keys() == other.keys(), name
        for key in value:
            _assert_same_value(value[key], other[key], f"{name}[{key}]")
    elif isinstance(value, tuple):
        assert type(other) is type(value), name
        for position, (a, b) in enumerate(zip(value, other, strict=True)):
            _assert_same_value(a, b, f"{name}[{position}]")
    else:
        np.testing.assert_array_equal(value, other, err_msg=name)


@pytest.mark.parametrize("bad_value", [np.nan, np.inf])
def test_a_batch_with_nan_or_inf_leaves_the_model_unchanged(bad_value):
    """Must show 4: the whole call is refused, even after earlier batches passed."""
    X, _, _ = make_mixture(3000, n_components=3, n_features=3, random_state=6)
    model = GaussianMixture(3, batch_size=100, averaging=True, random_state=0)
    model.partial_fit(X[:1000])
    before = _snapshot(model)
    poisoned = X[1000:].copy()
    poisoned[1234, 1] = bad_value
    with pytest.raises(ValueError, match="NaN or infinity.*row 1234"):
        model.partial_fit(poisoned)
    _assert_same_state(before, _snapshot(model))
    model.partial_fit(X[1000:])  # and it still learns from good data
    assert model.n_samples_seen_ == 3000


@pytest.mark.parametrize("averaging", [False, True])
def test_partial_fit_remembers_the_m_step_its_steps_ended_with(averaging):
    """A call's first E-step takes the parameters the previous call's steps ended
    with instead of running the M-step of the running statistics again: they are
    that M-step to the last bit, and are used only for the very statistics
    object they came from, under the same settings."""
    X, _, _ = make_mixture(1300, n_components=3, n_features=3, random_state=6)
    model = GaussianMixture(3, batch_size=100, averaging=averaging, random_state=0)
    model.partial_fit(X[:1000])
    model.partial_fit(X[1000:])
    remembered = model._next_parameters
    assert remembered.statistics is model.running_statistics_
    recomputed, _ = parameters_from_statistics(
        model.running_statistics_, model.reg_covar, model.covariance_type
    )
    for name in ("weights", "means", "precisions_cholesky"):
        np.testing.assert_array_equal(getattr(remembered.params, name), getattr(recomputed, name))
    state, config = online_state_of(model), online_config(model)
    fitted = model._fitted_parameters()
    assert current_parameters(state, fitted, config, remembered) is remembered.params
    other = config._replace(reg_covar=1e-3)
    assert current_parameters(state, fitted, other, remembered) is not remembered.params
    copied = state._replace(statistics=SufficientStatistics(*state.statistics))
    assert current_parameters(copied, fitted, config, remembered) is not remembered.params


def test_a_first_call_with_nan_leaves_the_model_unfitted():
    X = np.random.default_rng(0).normal(size=(500, 2))
    X[400, 0] = np.nan
    model = GaussianMixture(2, batch_size=50, means_init=[[0, 0], [1, 1]])
    with pytest.raises(ValueError, match="NaN or infinity"):
        model.partial_fit(X)
    assert not any(name.endswith("_") for name in vars(model))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_online_float32_with_large_offset_fits_like_centred_data(covariance_type):
    truth = random_mixture(3, 4, separation=4.0, random_state=5)
    X, _ = sample_mixture(truth, 20_000, random_state=5)
    offset = 1e4
    shifted32 = (X + offset).astype(np.float32)
    centred64 = shifted32.astype(np.float64) - offset
    start = _start(centred64, 3, covariance_type)
    shared = dict(algorithm="online", batch_size=500, max_iter=2, tol=0.0, random_state=0)
    centred = unconverged_fit(GaussianMixture(3, **shared, **start), centred64)
    far_start = dict(start, means_init=start["means_init"] + offset)
    far = unconverged_fit(GaussianMixture(3, **shared, **far_start), shifted32)
    # float32 attributes for float32 input, as scikit-learn: exact up to their rounding
    assert_float32_rounding_of(far.means_, centred.means_ + offset, 1e-9, "means_")
    assert_float32_rounding_of(far.covariances_, centred.covariances_, 1e-6, "covariances_")
    assert_float32_rounding_of(far.weights_, centred.weights_, 1e-9, "weights_")
    assert np.all(np.isfinite(far.covariances_))


def test_partial_fit_gives_the_same_model_for_every_input_kind(tmp_path):
    """Batches carry over chunk boundaries, so chunking does not change the result."""
    import xarray as xr
    import zarr

    X, _, _ = make_mixture(3000, n_components=3, n_features=2, random_state=11)
    zarr.create_array(store=tmp_path / "x.zarr", data=X, chunks=(700, 2))
    kinds = {
        "numpy": X,
        "dask": da.from_array(X, chunks=(450, 1)),
        "zarr path": str(tmp_path / "x.zarr"),
        "dataarray": xr.DataArray(X.T, dims=("feature", "time")),
    }
    settings = dict(batch_size=256, sample_dim="time", **_start(X, 3))
    models = {
        kind: GaussianMixture(3, **settings).partial_fit(data) for kind, data in kinds.items()
    }
    for kind, model in models.items():
        assert model.n_samples_seen_ == 3000, kind
        np.testing.assert_allclose(model.means_, models["numpy"].means_, atol=1e-12, err_msg=kind)
        np.testing.assert_allclose(
            model.covariances_, models["numpy"].covariances_, atol=1e-12, err_msg=kind
        )


def test_fit_online_is_seeded_stops_on_tol_and_warm_starts():
    X, _, _ = make_mixture(6000, n_components=3, n_features=2, random_state=12)
    chunked = da.from_array(X, chunks=(1500, 2))  # 4 chunks, kept as they are
    settings = dict(algorithm="online", batch_size=128, **_start(X, 3))
    one = unconverged_fit(
        GaussianMixture(3, max_iter=3, tol=0.0, random_state=1, **settings), chunked
    )
    same = unconverged_fit(
        GaussianMixture(3, max_iter=3, tol=0.0, random_state=1, **settings), chunked
    )
    other = unconverged_fit(
        GaussianMixture(3, max_iter=3, tol=0.0, random_state=2, **settings), chunked
    )
    np.testing.assert_array_equal(one.means_, same.means_)
    assert not np.array_equal(one.means_, other.means_)  # another chunk order
    np.testing.assert_allclose(one.means_, other.means_, atol=0.1)

    stopped = GaussianMixture(3, max_iter=50, tol=1e-2, random_state=1, **settings).fit(X)
    assert stopped.converged_ and stopped.n_iter_ < 50
    assert abs(stopped.lower_bounds_[-1] - stopped.lower_bounds_[-2]) < 1e-2

    warm = GaussianMixture(3, max_iter=1, tol=0.0, warm_start=True, random_state=1, **settings)
    unconverged_fit(warm, X)
    steps = warm.n_steps_
    unconverged_fit(warm, X)
    assert warm.n_steps_ > steps and warm.n_samples_seen_ == 2 * X.shape[0]


def test_warm_started_fit_with_max_iter_0_keeps_the_online_state():
    """``max_iter=0`` returns the start, and a warm start's start is the fitted
    model: its running statistics and counters too, so that learning resumes."""
    X, _, _ = make_mixture(3000, n_components=3, n_features=2, random_state=12)
    settings = dict(algorithm="online", batch_size=128, tol=0.0, random_state=1, **_start(X, 3))
    warm = unconverged_fit(GaussianMixture(3, max_iter=1, warm_start=True, **settings), X)
    before = online_state_of(warm)
    warm.set_params(max_iter=0)
    warm.fit(X)
    after = online_state_of(warm)
    assert after is not None
    assert (after.n_steps, after.n_samples_seen) == (before.n_steps, before.n_samples_seen)
    np.testing.assert_array_equal(after.statistics.mean, before.statistics.mean)
    resumed = warm.set_params(max_iter=1)
    unconverged_fit(resumed, X)
    assert resumed.n_samples_seen_ == 2 * X.shape[0]


def test_partial_fit_after_batch_fit_starts_from_the_fitted_parameters():
    X, _, _ = make_mixture(4000, n_components=3, n_features=2, random_state=13)
    model = GaussianMixture(3, random_state=0, batch_size=4000).fit(X)
    assert not hasattr(model, "n_steps_")
    fitted_means = model.means_.copy()
    model.partial_fit(X)  # one batch: the burn-in, then one M-step
    assert model.n_steps_ == 1 and model.n_samples_seen_ == 4000
    np.testing.assert_allclose(model.means_, fitted_means, atol=1e-3)


def test_averaging_must_be_a_bool():
    with pytest.raises(TypeError, match="averaging"):
        GaussianMixture(2, algorithm="online", averaging="yes").fit(np.eye(4))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_model_files_round_trip_the_online_state(tmp_path, covariance_type):
    X, _, _ = make_mixture(2000, n_components=3, n_features=3, random_state=14)
    batch = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)
    save(batch, tmp_path / "batch.zarr")
    loaded = load(tmp_path / "batch.zarr")
    assert not hasattr(loaded, "running_statistics_")
    np.testing.assert_array_equal(loaded.means_, batch.means_)

    settings = dict(covariance_type=covariance_type, batch_size=40, averaging=True)
    far_away = batch.means_.copy()
    far_away[2] += 100.0  # a starved component keeps the burn-in going up to its cap
    waiting = GaussianMixture(
        3,
        weights_init=batch.weights_,
        means_init=far_away,
        precisions_init=batch.precisions_,
        **settings,
    ).partial_fit(X[:80])
    online = GaussianMixture(3, random_state=0, **settings).partial_fit(X)
    for name, model in (("waiting", waiting), ("online", online)):
        save(model, tmp_path / f"{name}.zarr")
        again = load(tmp_path / f"{name}.zarr")
        fitted = {k: v for k, v in _snapshot(model).items() if k.endswith("_")}
        _assert_same_state(fitted, {k: v for k, v in _snapshot(again).items() if k in fitted})
    assert waiting.n_steps_ == 0 and waiting.averaged_statistics_ is None


def test_partial_fit_keeps_a_bounded_record(monkeypatch):
    """A model kept current for long keeps the last PARTIAL_FIT_RECORD entries of
    lower_bounds_ and history_, numbered by call, after a batch fit's records."""
    from streamgmm import fitting

    monkeypatch.setattr(fitting, "PARTIAL_FIT_RECORD", 5)
    X, _, _ = make_mixture(3000, n_components=2, n_features=2, separation=5.0, random_state=0)
    model = unconverged_fit(GaussianMixture(2, max_iter=3, tol=0, random_state=0), X)
    fit_bounds = list(model.lower_bounds_)
    model.partial_fit(X[:500])
    assert model.lower_bounds_[:3] == fit_bounds
    assert np.isfinite(model.history_["elapsed"][:3]).all()
    assert np.isnan(model.history_["elapsed"][3])
    for start in range(500, 3000, 500):
        model.partial_fit(X[start : start + 500])
    assert model.n_iter_ == 3 + 6
    assert len(model.lower_bounds_) == 5
    assert model.lower_bounds_[-1] == model.lower_bound_
    assert model.history_["passes"] == [5.0, 6.0, 7.0, 8.0, 9.0]
    assert model.history_["log_likelihood"] == model.lower_bounds_


@pytest.mark.parametrize("kind", ["numpy", "dask"])
def test_online_em_resumes_exactly_from_a_position_inside_a_pass(kind, monkeypatch):
    """Positions are reported at chunk ends (gathered blocks for NumPy rows) with
    the rows waiting for the next batch; continuing from one, with the generator
    in another state, ends where the uninterrupted run ends."""
    from streamgmm import online

    monkeypatch.setattr(online, "SHUFFLED_GATHER_ROWS", 200)
    X, _, _ = make_mixture(1500, n_components=3, n_features=2, random_state=6)
    start = _fold_start(X)
    in_memory = X if kind == "numpy" else None
    positions = []

    def record(state, params, covariances, position):
        positions.append((state, params, covariances, position))

    def run(rng, **resume):
        return online.online_em(
            da.from_array(X, chunks=(310, 2)),
            resume.pop("params", start.params),
            resume.pop("covariances", start.covariances),
            resume.pop("state", start.state),
            CONFIG,
            batch_size=64,
            max_iter=3,
            tol=0.0,
            rng=rng,
            in_memory=in_memory,
            **resume,
        )

    uninterrupted = run(np.random.default_rng(0), on_position=record, every=4)
    inside = [entry for entry in positions if entry[3].chunks_done and entry[3].passes_done == 1]
    assert inside and any(entry[3].leftover is not None for entry in inside) == (kind == "dask")
    state, params, covariances, position = inside[len(inside) // 2]
    resumed = run(
        np.random.default_rng(99),
        state=state,
        params=params,
        covariances=covariances,
        position=position,
    )
    np.testing.assert_array_equal(resumed.params.means, uninterrupted.params.means)
    np.testing.assert_array_equal(resumed.covariances, uninterrupted.covariances)
    assert resumed.lower_bounds == uninterrupted.lower_bounds


def test_the_next_passs_seed_is_drawn_ahead_without_moving_the_generator():
    """An in-memory fit draws the next pass's order in the background while a
    pass folds; the seed it draws it from is the one the next pass takes."""
    rng = np.random.default_rng(21)
    pass_draws(rng, 6, True)
    state = copy.deepcopy(rng.bit_generator.state)
    predicted = next_pass_seed(rng, 6, True)
    assert rng.bit_generator.state == state
    _, seed = pass_draws(rng, 6, True)
    assert predicted == seed
    np.testing.assert_array_equal(pass_order(1000, seed),
                                  np.random.default_rng(seed).permutation(1000))
    assert next_pass_seed(rng, 6, False) is None
