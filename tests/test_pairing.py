"""The two-thread protocol of the online fold (:mod:`streamgmm.kernels.pairing`):
whichever thread computes a batch's second half, the results are the same to
the last bit; a ``partial_fit``'s standing helper serves calls in quick
succession and leaves when they stop. The kernels are compiled first
(``STREAMGMM_KERNELS=compiled``): only the compiled fold pairs, and with an
empty cache the tiered mode could still be compiling it in the background
when the test's deadline passes."""

import time

import numpy as np

import streamgmm.online as online
from streamgmm import GaussianMixture
from streamgmm.kernels import codes

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
