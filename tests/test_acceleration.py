"""SQUAREM, DAAREM and incremental EM (streamgmm.acceleration) as pure functions:
the parameterisation, the safeguards, and the fixed point of plain EM."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from streamgmm import acceleration
from streamgmm.acceleration import (
    ACCELERATIONS,
    AcceleratedEM,
    advance,
    damped_coefficients,
    extrapolate,
    from_vector,
    point_parameters,
    start_acceleration,
    state_from_arrays,
    state_to_arrays,
    to_vector,
    usable,
)
from streamgmm.datasets import make_mixture
from streamgmm.engine import EMRun, EMSettings, run_em
from streamgmm.estep import chunk_statistics
from streamgmm.initialization import initialize_parameters
from streamgmm.inputs import as_rows
from streamgmm.mstep import CholeskyError, parameters_from_statistics
from streamgmm.statistics import merge_all

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "incremental_em.py"
_spec = importlib.util.spec_from_file_location("incremental_em", BENCHMARK)
incremental = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(incremental)
StatisticsTree, incremental_em = incremental.StatisticsTree, incremental.incremental_em
"""Incremental EM lives with its benchmark (benchmarks/incremental_em.py)."""

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


def start_of(X, n_components, covariance_type, seed=0):
    params, _ = initialize_parameters(
        as_rows(X), n_components, covariance_type, 1e-6, "random_from_data",
        np.random.default_rng(seed), 100_000,
    )
    return params


@pytest.fixture(scope="module")
def overlapping():
    """A small mixture whose components overlap, so that plain EM is slow."""
    X, _, _ = make_mixture(3000, n_components=3, n_features=2, separation=1.2, random_state=3)
    return X


@pytest.fixture(scope="module")
def plain_ends(overlapping):
    """Plain EM's 3000 passes from each covariance type's start, computed once."""
    return {
        covariance_type: plain_em(overlapping, start_of(overlapping, 3, covariance_type), 1e-6,
                                  3000)
        for covariance_type in COVARIANCE_TYPES
    }


def plain_em(X, params, reg_covar, passes):
    """Plain EM for exactly ``passes`` passes: mean log-likelihoods and the end."""
    scores = []
    for _ in range(passes):
        stats = chunk_statistics(X, params)
        scores.append(stats.log_likelihood / stats.n_samples)
        params, covariances = parameters_from_statistics(stats, reg_covar,
                                                         params.covariance_type)
    return scores, params, covariances


def accelerated_em(X, params, reg_covar, tol, max_passes, method):
    """The engine's run of ``method`` from ``params`` (``n_iter`` counts passes,
    ``lower_bounds`` holds the accepted points' mean log-likelihoods)."""
    run = EMRun(params, None)
    run_em(as_rows(X).array, [run], EMSettings(tol, max_passes, reg_covar),
           step=AcceleratedEM(method))
    return run


def relative_difference(a, b):
    return float(np.abs(np.asarray(a) - np.asarray(b)).max() / np.abs(np.asarray(b)).max())


def decreases(scores):
    """Steps of ``scores`` down by more than rounding (1e-12 relative)."""
    scores = np.asarray(scores)
    return np.flatnonzero(np.diff(scores) < -1e-12 * np.abs(scores[1:]))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_vector_round_trip_and_every_vector_is_a_mixture(overlapping, covariance_type):
    params = start_of(overlapping, 3, covariance_type)
    vector = to_vector(params)
    back = from_vector(vector, 3, 2, covariance_type)
    for original, again in zip(params[:3], back[:3], strict=True):
        np.testing.assert_allclose(again, original, rtol=1e-13, atol=1e-15)
    rng = np.random.default_rng(0)
    for _ in range(20):
        wild = from_vector(vector + rng.normal(scale=5.0, size=vector.size), 3, 2,
                           covariance_type)
        assert usable(wild)
        np.testing.assert_allclose(wild.weights.sum(), 1.0)
        stats = chunk_statistics(overlapping, wild)
        assert np.isfinite(stats.log_likelihood)


def test_unusable_vectors_are_told_apart(overlapping):
    vector = to_vector(start_of(overlapping, 3, "full"))
    vector[-1] = 800.0  # exp overflows to infinity
    assert not usable(from_vector(vector, 3, 2, "full"))


def test_a_step_of_minus_one_is_two_plain_em_steps():
    rng = np.random.default_rng(1)
    start, first, second = rng.normal(size=(3, 7))
    np.testing.assert_array_equal(extrapolate(start, first, second, -1.0), second)
    step = acceleration.extrapolation_step(start, first, second, step_max=1e9)
    assert step <= -1.0
    assert acceleration.extrapolation_step(start, first, second, step_max=2.0) >= -2.0


@pytest.mark.parametrize("method", sorted(ACCELERATIONS))
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_accelerated_em_ends_where_plain_em_ends(overlapping, plain_ends, method,
                                                 covariance_type):
    """Both run until their parameters stop moving (tol 0): plain EM 3000 passes,
    which leave its mean log-likelihood within rounding of its limit, the
    accelerated EM 400."""
    params = start_of(overlapping, 3, covariance_type)
    plain_scores, plain, plain_covariances = plain_ends[covariance_type]
    assert abs(plain_scores[-1] - plain_scores[-2]) < 1e-13
    run = accelerated_em(overlapping, params, 1e-6, 0.0, 400, method)
    assert relative_difference(run.params.weights, plain.weights) < 1e-6
    assert relative_difference(run.params.means, plain.means) < 1e-6
    assert relative_difference(run.covariances, plain_covariances) < 1e-6
    assert len(decreases(run.lower_bounds)) == 0
    assert run.lower_bounds[-1] >= plain_scores[-1] - 1e-12


@pytest.mark.parametrize("method", sorted(ACCELERATIONS))
def test_accelerated_em_stops_at_tol_as_plain_em(overlapping, method):
    params = start_of(overlapping, 3, "full")
    run = accelerated_em(overlapping, params, 1e-6, 1e-6, 3000, method)
    assert run.converged and run.n_iter < 3000
    final = chunk_statistics(overlapping, run.params)
    assert final.log_likelihood / final.n_samples - run.lower_bounds[-1] < 1e-5


@pytest.mark.parametrize("method", sorted(ACCELERATIONS))
def test_a_broken_safeguard_lets_the_log_likelihood_fall(method, monkeypatch):
    """Long, undamped steps on six overlapping components: the safeguard rejects
    some and the kept scores never fall; accepting every step lets them fall."""
    X, _, _ = make_mixture(4000, n_components=6, n_features=4, separation=0.8, random_state=2)
    params = start_of(X, 6, "full")
    monkeypatch.setattr(acceleration, "STEP_MAX_START", 1e6)
    monkeypatch.setattr(acceleration, "DAMPING_OFFSET", -20.0)  # no damping
    rejected = []
    update = ACCELERATIONS[method][1]

    def counting(state, score, mapped, valid, tol):
        new, outcome = update(state, score, mapped, valid, tol)
        rejected.append(not outcome.accepted)
        return new, outcome

    monkeypatch.setitem(ACCELERATIONS, method, (ACCELERATIONS[method][0], counting))
    kept = accelerated_em(X, params, 1e-6, 1e-10, 200, method)
    assert any(rejected), "the safeguard had nothing to reject"
    assert len(decreases(kept.lower_bounds)) == 0
    monkeypatch.setattr(acceleration, "accept_extrapolation", lambda *args: True)
    broken = accelerated_em(X, params, 1e-6, 1e-10, 200, method)
    assert len(decreases(broken.lower_bounds)) > 0


def test_damped_coefficients_shrink_the_least_squares_solution():
    rng = np.random.default_rng(2)
    differences, residual = rng.normal(size=(30, 4)), rng.normal(size=30)
    least_squares = np.linalg.lstsq(differences, residual, rcond=None)[0]
    np.testing.assert_allclose(damped_coefficients(differences, residual, 1.0), least_squares,
                               rtol=1e-6)
    for share in (0.5, 0.01):
        damped = damped_coefficients(differences, residual, share)
        np.testing.assert_allclose(np.linalg.norm(damped) ** 2,
                                   share * np.linalg.norm(least_squares) ** 2, rtol=1e-6)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_statistics_tree_keeps_the_exact_total(covariance_type):
    X, _, _ = make_mixture(5000, n_components=3, n_features=3, offset=50.0, random_state=4)
    params = start_of(X, 3, covariance_type)
    chunks = np.array_split(X, 7)
    parts = [chunk_statistics(chunk, params) for chunk in chunks]
    tree = StatisticsTree(parts, covariance_type)
    whole = chunk_statistics(X, params)
    for got, expected in zip(tree.total[:3], whole[:3], strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-9)
    moved = start_of(X, 3, covariance_type, seed=1)
    tree.replace(3, chunk_statistics(chunks[3], moved))
    expected = merge_all([*parts[:3], chunk_statistics(chunks[3], moved), *parts[4:]],
                         covariance_type)
    for got, want in zip(tree.total[:3], expected[:3], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-9)


def test_incremental_em_reaches_plain_em_fixed_point(overlapping, plain_ends):
    params = start_of(overlapping, 3, "full")
    _, plain, _ = plain_ends["full"]
    chunks = np.array_split(overlapping, 6)
    passes = incremental_em(chunks, params, 1e-6, chunks_per_step=1)
    for _ in range(800):
        current, covariances = next(passes)
    assert relative_difference(current.means, plain.means) < 1e-6
    assert relative_difference(current.weights, plain.weights) < 1e-6
    stats = chunk_statistics(overlapping, current)
    again, _ = parameters_from_statistics(stats, 1e-6, "full")
    assert relative_difference(again.means, current.means) < 1e-6


@pytest.mark.parametrize("method", sorted(ACCELERATIONS))
def test_state_survives_arrays_exactly(overlapping, method):
    params = start_of(overlapping, 3, "full")
    state = start_acceleration(method, params)
    for _ in range(4):
        stats = chunk_statistics(overlapping, point_parameters(state, 3, 2, "full"))
        state = advance(method, state, stats, 1e-6, "full").state
    arrays, scalars = state_to_arrays(state)
    again = state_from_arrays(method, arrays, json.loads(json.dumps(scalars)))
    assert type(again) is type(state)
    for name, value in state._asdict().items():
        np.testing.assert_array_equal(getattr(again, name), value)
        assert type(getattr(again, name)) is type(value) or isinstance(value, np.ndarray)


def test_a_failed_m_step_rejects_a_proposal_and_raises_otherwise(overlapping):
    params = start_of(overlapping, 3, "full")
    stats = chunk_statistics(overlapping, params)
    broken = stats._replace(scatter=-stats.scatter)  # no positive definite covariance
    state = start_acceleration("daarem", params)
    with pytest.raises(CholeskyError):
        advance("daarem", state, broken, 0.0, "full")
    proposing = state._replace(stage=acceleration.EVALUATE_PROPOSAL,
                               current=state.point, current_map=state.point,
                               current_score=-1.0)
    outcome = advance("daarem", proposing, broken, 0.0, "full")
    assert not outcome.accepted and outcome.params is None
    np.testing.assert_array_equal(outcome.state.point, proposing.current_map)


def em_steps_of_changing_length(rate, n_steps):
    """DAAREM's state after ``n_steps`` plain EM steps along one direction, each
    ``rate`` times as long as the one before, with the proposal it then makes."""
    direction = np.array([1.0, 0.5, -0.25])
    state = acceleration.daarem_start(np.zeros(3))
    for k in range(n_steps):
        mapped = state.point + rate**k * direction
        state, outcome = acceleration.daarem_update(state, -10.0 + k, mapped, lambda _: True)
        assert outcome.accepted
    return state, direction


def test_daarem_over_relaxes_em_steps_that_grow():
    """Growing EM steps (EM leaving a plateau near a saddle, as on
    time_to_converge.py's separated data): the Anderson model's fixed point lies
    behind, so no pass is spent on it; the history restarts and the next pass
    evaluates ``x + eta (F(x) - x)``, ``eta`` doubling while such steps are
    kept and starting again after one is rejected. With shrinking steps the
    Anderson proposal goes ahead of EM and is evaluated."""
    direction = np.array([1.0, 0.5, -0.25])
    state = acceleration.daarem_start(np.zeros(3))
    state, _ = acceleration.daarem_update(state, -10.0, state.point + direction, lambda _: True)
    state, _ = acceleration.daarem_update(state, -9.0, state.point + 1.1 * direction,
                                          lambda _: True)
    assert state.stage == acceleration.EVALUATE_RELAXED and state.proposing()
    assert state.point_differences.shape[1] == 0
    np.testing.assert_allclose(state.point, 3.2 * direction)  # x1 + 2 F(x1) - 2 x1
    state, outcome = acceleration.daarem_update(state, -8.0, state.point + 1.3 * direction,
                                                lambda _: True)
    assert outcome.accepted and state.stage == acceleration.EVALUATE_RELAXED
    assert state.relaxation == acceleration.RELAXATION_START * acceleration.RELAXATION_FACTOR
    assert state.accepted_steps == 0  # the damping counts Anderson steps only
    np.testing.assert_allclose(state.point, (3.2 + 4 * 1.3) * direction)
    em_image = state.current_map
    state, outcome = acceleration.daarem_update(state, -8.5, state.point + direction,
                                                lambda _: True)
    assert not outcome.accepted and state.stage == acceleration.EVALUATE_EM
    np.testing.assert_array_equal(state.point, em_image)
    assert state.relaxation == acceleration.RELAXATION_START
    state, direction = em_steps_of_changing_length(0.9, 3)
    assert state.proposing()
    em_step = state.current_map - state.current
    assert np.dot(state.point - state.current, em_step) > np.dot(em_step, em_step)


def test_daarem_measures_convergence_on_em_steps_only():
    """A proposal that stands with a gain below tol does not end the fit (on
    run.py's 10^6 separated rows such a stop came 147 passes in, short of
    plain EM's log-likelihood): the next pass takes the EM step from it, whose
    gain is then measured as plain EM's would be."""
    direction = np.array([1.0, 0.5, -0.25])
    state = acceleration.daarem_start(np.zeros(3))
    for k, score in enumerate((-10.0, -9.0, -8.5)):
        state, _ = acceleration.daarem_update(state, score, state.point + 0.5**k * direction,
                                              lambda _: True, tol=1e-3)
    assert state.stage == acceleration.EVALUATE_PROPOSAL
    mapped = state.point + 0.01 * direction
    state, outcome = acceleration.daarem_update(state, -8.5 + 1e-4, mapped, lambda _: True,
                                                tol=1e-3)
    assert outcome.accepted and not outcome.em_step
    assert state.stage == acceleration.EVALUATE_EM
    np.testing.assert_array_equal(state.point, mapped)
    state, outcome = acceleration.daarem_update(state, -8.5 + 2e-4, mapped + 1e-3 * direction,
                                                lambda _: True, tol=1e-3)
    assert outcome.accepted and outcome.em_step
