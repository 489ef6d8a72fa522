"""BLAS runs single-threaded inside reductions on Dask's threaded scheduler only."""

import dask
import dask.array as da
import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

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
