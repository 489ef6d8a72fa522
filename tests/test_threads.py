"""BLAS runs single-threaded inside reductions on Dask's threaded scheduler only."""

import dask
import dask.array as da
import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits
from unconverged import unconverged_fit

from streamgmm.reduction import tree_reduce


def _blas_threads(block, row_offset):
    return [max(info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas")]


def _concatenate(parts):
    return [value for part in parts for value in part]


def test_threaded_scheduler_runs_chunks_with_one_blas_thread():
    array = da.from_array(np.ones((40, 3)), chunks=(10, 3))
    with threadpool_limits(limits=2, user_api="blas"):
        with dask.config.set(scheduler="threads"):
            seen = tree_reduce(array, _blas_threads, _concatenate)
        assert seen == [1, 1, 1, 1]
        with dask.config.set(scheduler="sync"):
            seen = tree_reduce(array, _blas_threads, _concatenate)
        assert seen == [2, 2, 2, 2]
        after = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
        assert max(after) == 2


def test_a_fit_keeps_one_blas_thread_between_its_iterations(monkeypatch):
    """Raising the limit between iterations let an OpenBLAS thread spin on the
    other core during the next reduction (docs/benchmarks.md)."""
    import streamgmm.engine
    from streamgmm import GaussianMixture

    seen = []
    m_step = streamgmm.engine.parameters_from_statistics

    def observed_m_step(*arguments, **options):
        seen.append(_blas_threads(None, 0)[0])
        return m_step(*arguments, **options)

    monkeypatch.setattr(streamgmm.engine, "parameters_from_statistics", observed_m_step)
    X = np.random.default_rng(0).normal(size=(2000, 3))
    with threadpool_limits(limits=2, user_api="blas"), dask.config.set(scheduler="threads"):
        unconverged_fit(GaussianMixture(2, max_iter=3, tol=0.0, random_state=0), X)
        after = max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")
    assert len(seen) >= 3 and set(seen) == {1}
    assert after == 2
