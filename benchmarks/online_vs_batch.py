"""Online (stepwise) EM against batch EM from the same starting parameters.

Draws a mixture with overlapping components, runs batch EM to convergence to get
the reference per-sample log-likelihood L*, then reports, for batch EM and for
online EM with each (batch_size, learning_decay, learning_offset, averaging) of a
grid, the passes over the data and the wall time needed to reach L* - 0.01 nats,
and the gap to L* after 2 online passes. Times exclude the (shared)
initialisation and the scoring passes used to measure progress.

    python benchmarks/online_vs_batch.py                 # 300k rows, 10 x 10, the grid
    python benchmarks/online_vs_batch.py --rows 50000 --no-grid   # quick check
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time

import numpy as np
from threadpoolctl import threadpool_limits

from streamgmm import GaussianMixture
from streamgmm.covariance import precisions_from_cholesky
from streamgmm.datasets import make_mixture
from streamgmm.hyperparameters import BATCH_SIZE, LEARNING_DECAY, LEARNING_OFFSET
from streamgmm.initialization import initialize_parameters
from streamgmm.inputs import as_rows

TARGET_GAP = 0.01


def starting_parameters(X, n_components, random_state):
    params, _ = initialize_parameters(
        as_rows(X),
        n_components,
        "full",
        1e-6,
        "kmeans",
        np.random.default_rng(random_state),
        100_000,
    )
    return dict(
        weights_init=params.weights,
        means_init=params.means,
        precisions_init=precisions_from_cholesky(params.precisions_cholesky, "full"),
    )


def batch_reference(X, n_components, start, max_iter):
    """Batch EM to convergence; returns L*, and the passes and seconds to L* - gap."""
    model = GaussianMixture(n_components, tol=1e-7, max_iter=max_iter, **start)
    started = time.perf_counter()
    model.fit(X)
    seconds = time.perf_counter() - started
    final = model.score(X)
    bounds = np.asarray([*model.lower_bounds_[1:], final])
    # bounds[j] is the log-likelihood of the parameters after j + 1 iterations
    passes = int(np.argmax(bounds >= final - TARGET_GAP)) + 1
    rerun = GaussianMixture(n_components, tol=0.0, max_iter=passes, **start)
    started = time.perf_counter()
    rerun.fit(X)
    return final, model.n_iter_, seconds, passes, time.perf_counter() - started


def online_run(X, n_components, start, settings, reference, max_passes):
    """Passes and seconds for online EM to reach L* - gap, and the gap after 2 passes."""
    model = GaussianMixture(
        n_components,
        algorithm="online",
        warm_start=True,
        max_iter=1,
        tol=0.0,
        random_state=0,
        **settings,
        **start,
    )
    seconds, reached, gaps = 0.0, None, []
    for n_pass in range(1, max_passes + 1):
        started = time.perf_counter()
        model.fit(X)
        seconds += time.perf_counter() - started
        gaps.append(reference - model.score(X))
        if reached is None and gaps[-1] <= TARGET_GAP:
            reached = (n_pass, seconds)
        if reached is not None and n_pass >= 2:
            break
    return reached, gaps[1] if len(gaps) > 1 else float("nan")


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """--rows, --components, --features and --separation of the benchmark's data."""
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--components", type=int, default=10)
    parser.add_argument("--features", type=int, default=10)
    parser.add_argument("--separation", type=float, default=1.0)


def benchmark_data(args: argparse.Namespace) -> np.ndarray:
    """The rows the arguments of :func:`add_data_arguments` describe."""
    X, _, _ = make_mixture(
        args.rows, args.components, args.features, separation=args.separation, random_state=0
    )
    return X


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_arguments(parser)
    parser.add_argument("--max-passes", type=int, default=6)
    parser.add_argument("--batch-max-iter", type=int, default=2000)
    parser.add_argument("--blas-threads", type=int, default=1)
    parser.add_argument("--no-grid", action="store_true", help="only the defaults")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 1024, 4096, 16384])
    parser.add_argument("--decays", type=float, nargs="+", default=[0.6, 0.75, 0.9])
    parser.add_argument("--offsets", type=float, nargs="+", default=[0.0, 10.0])
    parser.add_argument("--averaging", choices=["both", "off", "on"], default="both")
    parser.add_argument(
        "--reference-cache", help="JSON file to keep batch EM's results in between runs"
    )
    args = parser.parse_args()

    X = benchmark_data(args)
    with threadpool_limits(limits=args.blas_threads, user_api="blas"):
        start = starting_parameters(X, args.components, 0)
        key = f"{args.rows} {args.components} {args.features} {args.separation}"
        cache = {}
        if args.reference_cache and os.path.exists(args.reference_cache):
            with open(args.reference_cache) as file:
                cache = json.load(file)
        if key not in cache:
            cache[key] = batch_reference(X, args.components, start, args.batch_max_iter)
            if args.reference_cache:
                with open(args.reference_cache, "w") as file:
                    json.dump(cache, file)
        reference, n_iter, total, passes, seconds = cache[key]
        print(
            f"{args.rows} rows, {args.components} components, {args.features} features, "
            f"separation {args.separation}, BLAS threads {args.blas_threads}"
        )
        print(
            f"batch EM converged (tol 1e-7) in {n_iter} passes, {total:.1f} s: "
            f"L* = {reference:.5f}"
        )
        header = (
            f"{'algorithm':<9} {'batch_size':>10} {'decay':>6} {'offset':>6} "
            f"{'avg':>5} {'passes':>6} {'seconds':>8} {'gap@2':>8}"
        )
        print(header)
        print("-" * len(header))
        print(f"{'batch':<9} {'':>10} {'':>6} {'':>6} {'':>5} {passes:>6} {seconds:>8.2f} {'':>8}")
        grid = [(BATCH_SIZE, LEARNING_DECAY, LEARNING_OFFSET, False)]
        if not args.no_grid:
            averaging = {"both": (False, True), "off": (False,), "on": (True,)}[args.averaging]
            grid += list(itertools.product(args.batch_sizes, args.decays, args.offsets, averaging))
        for batch_size, decay, offset, averaging in dict.fromkeys(grid):
            settings = dict(
                batch_size=batch_size,
                learning_decay=decay,
                learning_offset=offset,
                averaging=averaging,
            )
            reached, gap_after_two = online_run(
                X, args.components, start, settings, reference, args.max_passes
            )
            passes_text, seconds_text = (
                (f"{reached[0]:>6}", f"{reached[1]:>8.2f}")
                if reached
                else (f">{args.max_passes:>5}", f"{'-':>8}")
            )
            print(
                f"{'online':<9} {batch_size:>10} {decay:>6} {offset:>6} "
                f"{str(averaging):>5} {passes_text} {seconds_text} {gap_after_two:>8.4f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
