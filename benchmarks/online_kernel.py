"""The compiled online steps against the E-step they are built on, one thread.

    python benchmarks/online_kernel.py [--rows N] [--repeats R]

CPU seconds (best of ``R``, BLAS on one thread) of ``chunk_statistics`` over N
rows (d = 16, K = 8, full, float64: the E-step of all rows, no M-step) and of
``online.online_steps`` over the same rows in their stored order at
``batch_size`` 512 and 4096 (an online pass without reading or shuffling),
without the helper thread (``helper=False``).
Their ratio is the cost of the per-batch work (M-step, Cholesky factors, E-step
operands, merge) and of small E-steps; CPU time keeps it meaningful on a busy
machine, where wall-clock times are not.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np
from threadpoolctl import threadpool_limits

from streamgmm import GaussianMixture, estep
from streamgmm.datasets import make_mixture
from streamgmm.online import OnlineConfig, initial_state, online_steps

os.environ.setdefault("STREAMGMM_KERNELS", "compiled")
"""Time the compiled kernels (a fresh process would run them interpreted until hot)."""

BATCH_SIZES = (512, 4096)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    X, _, _ = make_mixture(args.rows, n_components=8, n_features=16, separation=3.0,
                           random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = GaussianMixture(8, max_iter=1, tol=0.0, random_state=0).fit(X[:100_000])
    params, covariances = start._fitted_parameters(), start.covariances_
    config = OnlineConfig("full", 1e-6, 0.6, 0.0, False)
    state = initial_state(8, 16, "full")
    runs = {"E-step": lambda: estep.chunk_statistics(X, params)}
    for batch_size in BATCH_SIZES:
        runs[batch_size] = lambda size=batch_size: online_steps(
            state, params, covariances, X, config, size, helper=False
        )
    best = dict.fromkeys(runs, np.inf)
    with threadpool_limits(limits=1, user_api="blas"):
        online_steps(state, params, covariances, X[:5000], config, 512, helper=False)
        for _ in range(args.repeats):
            for name, run in runs.items():
                began = time.process_time()
                run()
                best[name] = min(best[name], time.process_time() - began)
    print(f"{args.rows:,} rows, d = 16, K = 8, full, float64, one thread (CPU seconds, "
          f"best of {args.repeats})")
    print(f"E-step of all rows (chunk_statistics): {best['E-step']:.3f} s")
    for batch_size in BATCH_SIZES:
        print(f"online steps, batch_size={batch_size}: {best[batch_size]:.3f} s, "
              f"{best[batch_size] / best['E-step']:.2f} x the E-step")


if __name__ == "__main__":
    main()
