"""Weighted online EM over pre-aggregated counts against weighted batch EM (issue 17).

The rows of ``online_vs_batch.py``'s data (300,000 x 10, K = 10, separation 1.0,
``random_state=0``) are rounded to the nearest multiple of ``--grid`` in every
feature (the data hold no repeated rows otherwise), and the repeated rows are
collapsed into distinct rows with their counts as ``sample_weight``. Batch EM
over the counts (to convergence, ``tol=1e-7``; the same fit as over the
rounded rows, ``tests/test_sample_weight.py``) gives the reference weighted mean
log-likelihood L*; online EM over the counts, from the same k-means start (of
the rounded rows), reports its gap to L* after each of 2 passes, next to online
EM over all the rounded rows (the peer: the same data without counts).

    python benchmarks/online_counts.py                      # 300k rows, grid 2.0
    python benchmarks/online_counts.py --rows 60000 --batch-sizes 256
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings

import numpy as np
from online_vs_batch import add_data_arguments, benchmark_data, starting_parameters
from threadpoolctl import threadpool_limits

from streamgmm import GaussianMixture
from streamgmm.hyperparameters import LEARNING_DECAY


def collapsed(X: np.ndarray, grid: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(rounded rows, distinct rows, their counts)`` of X rounded to ``grid``."""
    rounded = np.round(X / grid) * grid
    distinct, counts = np.unique(rounded, axis=0, return_counts=True)
    return rounded, distinct, counts


def online_gaps(rows, weights, start, batch_size, reference, n_components, passes=2):
    """Gap to ``reference`` of the weighted score after each of ``passes`` online
    passes, and the seconds of the passes."""
    model = GaussianMixture(
        n_components, algorithm="online", batch_size=batch_size, warm_start=True, max_iter=1,
        tol=0.0, random_state=0, learning_decay=LEARNING_DECAY, **start,
    )
    gaps, seconds = [], 0.0
    for _ in range(passes):
        began = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(rows, sample_weight=weights)
        seconds += time.perf_counter() - began
        gaps.append(reference - model.score(rows, sample_weight=weights))
    return gaps, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_arguments(parser)
    parser.add_argument("--grid", type=float, default=2.0)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 256, 512])
    args = parser.parse_args()
    X = benchmark_data(args)
    rounded, distinct, counts = collapsed(X, args.grid)
    K = args.components
    with threadpool_limits(limits=1, user_api="blas"):
        start = starting_parameters(rounded, K, 0)
        began = time.perf_counter()
        batch = GaussianMixture(K, tol=1e-7, max_iter=2000, **start).fit(
            distinct, sample_weight=counts
        )
        batch_seconds = time.perf_counter() - began
        reference = batch.score(distinct, sample_weight=counts)
        results = []
        for batch_size in args.batch_sizes:
            counted, counted_seconds = online_gaps(
                distinct, counts, start, batch_size, reference, K
            )
            plain, plain_seconds = online_gaps(rounded, None, start, batch_size, reference, K)
            results.append({
                "batch_size": batch_size, "counts_gaps": counted,
                "counts_seconds": counted_seconds, "rows_gaps": plain,
                "rows_seconds": plain_seconds,
            })
            print(json.dumps(results[-1]), flush=True)
    print(json.dumps({
        "rows": args.rows, "grid": args.grid, "distinct_rows": int(distinct.shape[0]),
        "largest_count": int(counts.max()), "batch_n_iter": int(batch.n_iter_),
        "batch_seconds": batch_seconds, "reference": reference,
        "load_average": os.getloadavg(),
    }))


if __name__ == "__main__":
    main()
