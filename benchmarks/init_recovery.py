"""How often each init method recovers every true mean, and how often EM from it
reaches the best optimum found.

Usage: python benchmarks/init_recovery.py [--components 20] [--features 8]
       [--rows-per-component 300] [--seeds 20] [--max-iter 20] [--rounds 2]
       [--separation 6] [--elongation 1] [--tol 1e-3]
       [--methods kmeans k-means++ random_from_data hierarchical]

Writes the data to a temporary Zarr store per seed, fits streamgmm.GaussianMixture
with every method (and k-means|| with every number of rounds), and prints per
method the share of seeds in which every true mean is matched by a fitted mean
within 0.5 standard deviations (Mahalanobis distance under the true covariance),
the share of seeds in which its final lower bound is within 1e-4 per row of the
best of all methods and of EM started from the true parameters ("best optimum"),
the mean number of EM iterations, the mean passes over the data (initialisation
plus EM) and the mean wall time.

``--elongation E`` draws elongated clusters of different sizes instead: every
component's covariance has one axis E times longer (in standard deviation) than
the others, in a random direction, and is scaled by a factor drawn log-uniformly
in [1/4, 4]; the means are drawn with scale ``separation`` times E (so the
clusters touch about as often as round ones would).
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
from streamgmm.datasets import MixtureTruth, means_recovered, random_mixture, write_mixture_zarr
from streamgmm.selection import _init_passes

OPTIMUM_TOLERANCE = 1e-4
"""Per-row lower-bound gap under which a fit counts as reaching the best optimum."""


def elongated_mixture(n_components, n_features, elongation, separation, seed) -> MixtureTruth:
    """Elongated components of different sizes (module docs)."""
    rng = np.random.default_rng([seed, 7])
    weights = rng.dirichlet(np.full(n_components, 5.0))
    means = rng.normal(scale=separation * elongation, size=(n_components, n_features))
    covariances = np.empty((n_components, n_features, n_features))
    for k in range(n_components):
        rotation, _ = np.linalg.qr(rng.normal(size=(n_features, n_features)))
        variances = np.ones(n_features)
        variances[0] = elongation**2
        scale = np.exp(rng.uniform(np.log(0.25), np.log(4.0)))
        covariances[k] = scale * (rotation * variances) @ rotation.T
    return MixtureTruth(weights, means, covariances)


def write_case(directory, seed, args):
    if args.elongation > 1:
        truth = elongated_mixture(
            args.components, args.features, args.elongation, args.separation, seed
        )
    else:
        truth = random_mixture(
            args.components, args.features, separation=args.separation, random_state=seed
        )
    path = Path(directory) / f"mixture-{seed}.zarr"
    n_samples = args.components * args.rows_per_component
    write_mixture_zarr(path, n_samples, truth, chunk_rows=n_samples // 4, random_state=seed)
    return path, truth


def fit_from_truth(path, truth, args) -> float:
    """Final lower bound of EM started from the true parameters."""
    model = GaussianMixture(
        args.components,
        weights_init=truth.weights,
        means_init=truth.means,
        precisions_init=np.linalg.inv(truth.covariances),
        max_iter=args.max_iter,
        tol=args.tol,
    ).fit(str(path))
    return model.lower_bound_


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--components", type=int, default=20)
    parser.add_argument("--features", type=int, default=8)
    parser.add_argument("--rows-per-component", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--max-iter", type=int, default=20)
    parser.add_argument("--tol", type=float, default=1e-3)
    parser.add_argument("--rounds", type=int, nargs="+", default=[2])
    parser.add_argument("--separation", type=float, default=6.0)
    parser.add_argument("--elongation", type=float, default=1.0)
    parser.add_argument(
        "--methods",
        nargs="+",
        default=["kmeans", "k-means++", "random_from_data", "hierarchical"],
    )
    args = parser.parse_args()
    settings = [(method, None) for method in args.methods]
    settings += [("k-means||", rounds) for rounds in args.rounds]
    results = {setting: [] for setting in settings}
    with tempfile.TemporaryDirectory() as directory, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for seed in range(args.seeds):
            path, truth = write_case(directory, seed, args)
            bounds = {}
            for method, rounds in settings:
                if rounds is not None:
                    initialization.KMEANS_PARALLEL_ROUNDS = rounds
                started = time.perf_counter()
                model = GaussianMixture(
                    args.components,
                    init_params=method,
                    max_iter=args.max_iter,
                    tol=args.tol,
                    random_state=seed,
                ).fit(str(path))
                elapsed = time.perf_counter() - started
                ok = means_recovered(truth, model.means_)
                passes = _init_passes(method) + model.n_iter_
                bounds[(method, rounds)] = model.lower_bound_
                results[(method, rounds)].append([ok, model.n_iter_, passes, elapsed])
            best = max(max(bounds.values()), fit_from_truth(path, truth, args))
            for setting, bound in bounds.items():
                results[setting][-1].append(bound >= best - OPTIMUM_TOLERANCE)
    print(
        f"K={args.components} d={args.features} rows/component={args.rows_per_component} "
        f"separation={args.separation} elongation={args.elongation} seeds={args.seeds} "
        f"max_iter={args.max_iter} tol={args.tol}"
    )
    print(
        f"{'method':<22}{'recovered':>10}{'best optimum':>14}{'mean n_iter':>13}"
        f"{'mean passes':>13}{'mean time s':>13}"
    )
    for (method, rounds), rows in results.items():
        name = method if rounds is None else f"{method} rounds={rounds}"
        ok, n_iter, passes, elapsed, best = map(np.array, zip(*rows, strict=True))
        print(
            f"{name:<22}{ok.mean():>10.2f}{best.mean():>14.2f}{n_iter.mean():>13.1f}"
            f"{passes.mean():>13.1f}{elapsed.mean():>13.2f}"
        )


if __name__ == "__main__":
    main()
