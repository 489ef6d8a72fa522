"""A stream whose distribution drifts: the step floor keeps the model tracking,
and the prequential score (``history_["log_likelihood"]`` of each
``partial_fit`` call) shows the moment of the move."""

import numpy as np
import pytest

import streamgmm
from streamgmm import GaussianMixture

MEANS = np.array([[0.0, 0.0], [12.0, 0.0], [0.0, 12.0]])
MOVED = np.array([-5.0, 0.0])
"""Component 0 moves by 5 standard deviations (unit covariances)."""
BEFORE, AFTER = 200, 300


def _batch(rng, moved):
    means = MEANS.copy()
    if moved:
        means[0] = MOVED
    return means[rng.integers(0, 3, 512)] + rng.standard_normal((512, 2))


def _follow_stream(step_floor):
    """Partial-fit 512-row batches, ``BEFORE`` of them before the move and
    ``AFTER`` after; returns the model and the moved mean's error after every
    batch since the move (in standard deviations)."""
    rng = np.random.default_rng(0)
    model = GaussianMixture(3, learning_decay=1.0, step_floor=step_floor, means_init=MEANS,
                            random_state=0)
    for _ in range(BEFORE):
        model.partial_fit(_batch(rng, moved=False))
    errors = []
    for _ in range(AFTER):
        model.partial_fit(_batch(rng, moved=True))
        errors.append(np.linalg.norm(model.means_ - MOVED, axis=1).min())
    return model, np.array(errors)


@pytest.fixture(scope="module")
def runs():
    return {floor: _follow_stream(floor) for floor in (0.0, 0.01)}


def test_a_step_floor_recovers_the_moved_mean_and_no_floor_does_not(runs):
    # learning_decay=1 makes the steps 1/t, the plain average of all batches;
    # a floor of 0.01 forgets at that rate instead, keeping 0.99^n of the old
    # statistics n batches after the move: 0.13 (0.67 sd of error) after 200,
    # 0.05 (0.25 sd) after 300.
    _, floored = runs[0.01]
    _, unfloored = runs[0.0]
    assert floored[299] < 0.3
    assert floored[199] == pytest.approx(5 * 0.99**200, abs=0.1)
    assert unfloored[299] > 1.0
    assert np.all(floored[50:] < unfloored[50:])


def test_the_prequential_scores_drop_at_the_move(runs, tmp_path):
    model = runs[0.01][0]
    streamgmm.save(model, tmp_path / "model.zarr")
    loaded = streamgmm.load(tmp_path / "model.zarr")
    assert loaded.history_["log_likelihood"] == model.history_["log_likelihood"]
    assert loaded.step_floor == 0.01
    for model, _ in runs.values():
        scores = np.array(model.history_["log_likelihood"])
        assert scores.shape == (BEFORE + AFTER,)
        assert model.history_["passes"][-1] == BEFORE + AFTER
        before = scores[BEFORE - 50 : BEFORE]
        assert scores[BEFORE] < before.min() - 2.0
    floored = np.array(runs[0.01][0].history_["log_likelihood"])
    unfloored = np.array(runs[0.0][0].history_["log_likelihood"])
    # tracking the move brings the score back; the plain average lags behind
    assert floored[-20:].mean() > unfloored[-20:].mean() + 0.1
