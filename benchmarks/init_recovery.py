"""How often each init method recovers every true mean of a well-separated mixture.

Usage: python benchmarks/init_recovery.py [--components 20] [--features 8]
       [--rows-per-component 300] [--seeds 20] [--max-iter 20] [--rounds 1 2 3 5]
       [--separation 6]

Writes the data to a temporary Zarr store per seed, fits streamgmm.GaussianMixture
with every init method (and k-means|| with every number of rounds), and prints
the share of seeds in which every true mean is matched by a fitted mean within
0.5 standard deviations (Mahalanobis distance under the true covariance), the
mean number of EM iterations, the mean passes over the data (initialisation plus
EM) and the mean wall time.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

import streamgmm.initialization as initialization
from streamgmm import GaussianMixture
from streamgmm.datasets import means_recovered, random_mixture, write_mixture_zarr


def write_case(directory, seed, n_components, n_features, rows_per_component, separation=6.0):
    truth = random_mixture(n_components, n_features, separation=separation, random_state=seed)
    path = Path(directory) / f"mixture-{seed}.zarr"
    n_samples = n_components * rows_per_component
    write_mixture_zarr(path, n_samples, truth, chunk_rows=n_samples // 4, random_state=seed)
    return path, truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--components", type=int, default=20)
    parser.add_argument("--features", type=int, default=8)
    parser.add_argument("--rows-per-component", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--max-iter", type=int, default=20)
    parser.add_argument("--rounds", type=int, nargs="+", default=[1, 2, 3, 5])
    parser.add_argument("--separation", type=float, default=6.0)
    args = parser.parse_args()
    settings = [("kmeans", None), ("k-means++", None), ("random_from_data", None)]
    settings += [("k-means||", rounds) for rounds in args.rounds]
    results = {setting: [] for setting in settings}
    with tempfile.TemporaryDirectory() as directory, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for seed in range(args.seeds):
            path, truth = write_case(
                directory,
                seed,
                args.components,
                args.features,
                args.rows_per_component,
                args.separation,
            )
            for method, rounds in settings:
                if rounds is not None:
                    initialization.KMEANS_PARALLEL_ROUNDS = rounds
                started = time.perf_counter()
                model = GaussianMixture(
                    args.components,
                    init_params=method,
                    max_iter=args.max_iter,
                    random_state=seed,
                ).fit(str(path))
                elapsed = time.perf_counter() - started
                ok = means_recovered(truth, model.means_)
                init_passes = {"random": 1}.get(method, 2) if rounds is None else rounds + 1
                results[(method, rounds)].append(
                    (ok, model.n_iter_, init_passes + model.n_iter_, elapsed)
                )
    print(
        f"K={args.components} d={args.features} rows/component={args.rows_per_component} "
        f"separation={args.separation} seeds={args.seeds} max_iter={args.max_iter}"
    )
    print(
        f"{'method':<22}{'recovered':>10}{'mean n_iter':>13}{'mean passes':>13}{'mean time s':>13}"
    )
    for (method, rounds), rows in results.items():
        name = method if rounds is None else f"{method} rounds={rounds}"
        ok, n_iter, passes, elapsed = map(np.array, zip(*rows, strict=True))
        print(
            f"{name:<22}{ok.mean():>10.2f}{n_iter.mean():>13.1f}{passes.mean():>13.1f}"
            f"{elapsed.mean():>13.2f}"
        )


if __name__ == "__main__":
    main()
