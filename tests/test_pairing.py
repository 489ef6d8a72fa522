"""The two-thread protocol of the online fold (:mod:`streamgmm.kernels.pairing`):
whichever thread computes which piece of a batch, the results are the same to
the last bit, and a range's sums are its blocks' sums added in order (what
the pieces rely on); a ``partial_fit``'s standing helper serves calls in
quick succession and leaves when they stop. The kernels are compiled first
(``STREAMGMM_KERNELS=compiled``): only the compiled fold pairs, and with an
empty cache the tiered mode could still be compiling it in the background
when the test's deadline passes."""

import time

import numpy as np
import pytest

import streamgmm.online as online
from streamgmm import GaussianMixture, estep
from streamgmm.covariance import as_blocks, writeable
from streamgmm.datasets import make_mixture
from streamgmm.estep import kernel_plan
from streamgmm.kernels import codes
from streamgmm.kernels.estep import typed_range_sums
from streamgmm.kernels.operands import density_operands
from streamgmm.kernels.records import rows_record
from streamgmm.mstep import parameters_from_statistics

FITTED = ("weights_", "means_", "covariances_", "precisions_cholesky_", "lower_bounds_")


def _helped() -> int:
    return sum(int(standing.pairing.sync[codes.SYNC_HELPED])
               for standing in online._standing.values())


def _learn(monkeypatch, cores: int, batches: list) -> GaussianMixture:
    monkeypatch.setenv("STREAMGMM_KERNELS", "compiled")
    monkeypatch.setattr(online, "_CORES", cores)
    model = GaussianMixture(3, algorithm="online", batch_size=512, max_iter=2, random_state=0)
    model.fit(np.concatenate(batches[:8]))
    for batch in batches[8:]:
        model.partial_fit(batch)
    return model


def test_a_helper_thread_changes_no_bit_of_a_fit_or_of_partial_fit(monkeypatch):
    rng = np.random.default_rng(4)
    batches = [rng.normal(size=(512, 5)) + 3 * (i % 3) for i in range(60)]
    alone = _learn(monkeypatch, 1, batches)
    helped_before = _helped()
    deadline = time.monotonic() + 30
    while True:
        paired = _learn(monkeypatch, 2, batches)
        for name in FITTED:
            np.testing.assert_array_equal(getattr(paired, name), getattr(alone, name))
        if _helped() > helped_before or time.monotonic() > deadline:
            break
    assert _helped() > helped_before, "the standing helper never computed a half"


def test_a_standing_helper_leaves_when_the_calls_stop(monkeypatch):
    monkeypatch.setenv("STREAMGMM_KERNELS", "compiled")
    monkeypatch.setattr(online, "_CORES", 2)
    rng = np.random.default_rng(5)
    model = GaussianMixture(2, algorithm="online", batch_size=256, random_state=0)
    for _ in range(20):
        model.partial_fit(rng.normal(size=(256, 3)))
    helpers = [standing.helping for standing in online._standing.values()
               if standing.helping is not None]
    assert helpers
    deadline = time.monotonic() + 20
    while not all(helper.done() for helper in helpers) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert all(helper.done() for helper in helpers)


def test_a_batch_of_many_pieces_gives_the_same_bits_with_a_helper(monkeypatch):
    """Batches of 4,096 rows of 16 features and 8 components: 10 pieces of
    at most 428 rows, which the two threads share by claiming from either end."""
    monkeypatch.setenv("STREAMGMM_KERNELS", "compiled")
    X, _, _ = make_mixture(24_576, n_components=8, n_features=16, random_state=2)
    pairings = []
    made = online._pairing
    monkeypatch.setattr(online, "_pairing", lambda *a, **k: pairings.append(made(*a, **k))
                        or pairings[-1])

    def fit(cores: int) -> GaussianMixture:
        monkeypatch.setattr(online, "_CORES", cores)
        return GaussianMixture(8, algorithm="online", batch_size=4096, max_iter=3,
                               random_state=0).fit(X)

    alone = fit(1)
    assert not pairings
    deadline = time.monotonic() + 60
    while True:
        paired = fit(2)
        for name in FITTED:
            np.testing.assert_array_equal(getattr(paired, name), getattr(alone, name))
        helped = sum(int(pairing.sync[codes.SYNC_HELPED]) for pairing in pairings)
        if helped > 0 or time.monotonic() > deadline:
            break
    assert pairings and pairings[0].buffers[0].done.shape[0] >= 10
    assert helped > 0, "the helper never computed a piece"


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_a_ranges_sums_are_its_blocks_sums_added_in_order(covariance_type):
    """With a component far away (summed about its own mean), for
    every covariance type: the sums of rows 3:480 in blocks of 97 rows are
    those of each block alone, added in order, to the last bit."""
    rng = np.random.default_rng(8)
    d, K = 5, 3
    centres = rng.normal(size=(K, d)) * 3
    centres[2] += 1e3
    X = np.concatenate([c + rng.normal(size=(200, d)) * (0.5 if k == 2 else 1)
                        for k, c in enumerate(centres)])
    resp = np.eye(K)[np.repeat(np.arange(K), 200)]
    stats = estep.statistics_from_responsibilities(X, resp, centres, covariance_type)
    params, _ = parameters_from_statistics(stats, 1e-6, covariance_type)
    plan = kernel_plan(covariance_type, K, d)._replace(block=97)
    factors = as_blocks(params.precisions_cholesky, covariance_type)
    operands = density_operands(writeable(params.weights), writeable(params.means), factors,
                                writeable(1.0 / factors[:, 0, :1] ** 2 * np.ones((K, d))),
                                plan)
    assert operands.own_index.size > 0
    rows = rows_record(X, rng.permutation(X.shape[0]))
    whole = typed_range_sums(rows, 3, 480, operands, operands.double, plan)
    total = typed_range_sums(rows, 3, 100, operands, operands.double, plan)
    log_likelihood = total.log_likelihood
    for start in range(100, 480, 97):
        block = typed_range_sums(rows, start, min(start + 97, 480), operands, operands.double,
                                 plan)
        for name in ("products", "columns", "own_products", "own_columns", "own_full", "pooled"):
            getattr(total, name)[...] += getattr(block, name)
        log_likelihood += block.log_likelihood
    for name in ("products", "columns", "own_products", "own_columns", "own_full", "pooled"):
        assert getattr(whole, name).tobytes() == getattr(total, name).tobytes(), name
    assert whole.log_likelihood == log_likelihood
