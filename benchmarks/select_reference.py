"""select on mclust's reference data (faithful, diabetes) with each start method.

Usage: python benchmarks/select_reference.py [--seeds 10] [--tol 1e-5]
       [--max-iter 100] [--setups hierarchical k-means|| k-means||x2 kmeans hierarchical+k-means||]

For every data set, setup and ``random_state`` 0..seeds-1, runs
``streamgmm.select`` over K = 1..9 and the four covariance types (n_init=1
unless the setup says ``xN``; ``a+b`` starts every candidate with both methods,
select's default) and prints

* ``mclust``: the share of seeds in which select chose mclust's model, or one
  with a lower BIC, with log-likelihood at least mclust's minus 1e-6 relative;
* ``best optimum``: the share of (candidate, seed) pairs whose final lower bound
  is within 1e-4 per row of the best any setup and seed reached for that
  candidate, and the same share for mclust's chosen candidate alone;
* mean passes over the data and mean seconds per select.
"""

from __future__ import annotations

import argparse
import time
import warnings

import dask
import numpy as np

from benchmarks.reference_data import MCLUST_RESULTS, load_reference
from streamgmm import select

OPTIMUM_TOLERANCE = 1e-4
TYPES = ("full", "tied", "diag", "spherical")


def parse_setup(setup: str) -> tuple[tuple[str, ...], int]:
    """``"a+b"`` -> ((a, b), 1); ``"axN"`` -> ((a,), N)."""
    n_init = 1
    if "x" in setup.rsplit("|", 1)[-1]:
        setup, count = setup.rsplit("x", 1)
        n_init = int(count)
    return tuple(setup.split("+")), n_init


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--tol", type=float, default=1e-5)
    parser.add_argument("--max-iter", type=int, default=100)
    parser.add_argument(
        "--setups",
        nargs="+",
        default=["hierarchical", "k-means||", "k-means||x2", "kmeans", "hierarchical+k-means||"],
    )
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    for name, reference in MCLUST_RESULTS.items():
        X = load_reference(name)
        reference_cell = dict(
            n_components=reference["n_components"], covariance_type=reference["covariance_type"]
        )
        outcomes = {}
        for setup in args.setups:
            methods, n_init = parse_setup(setup)
            rows = []
            for seed in range(args.seeds):
                started = time.perf_counter()
                with dask.config.set(scheduler="synchronous"):
                    model, table = select(
                        X, n_components=range(1, 10), covariance_types=TYPES,
                        init_params=methods, n_init=n_init, tol=args.tol,
                        max_iter=args.max_iter, random_state=seed,
                    )
                elapsed = time.perf_counter() - started
                bic = float(table["bic"].sel(n_components=model.n_components,
                                             covariance_type=model.covariance_type))
                chosen = (model.covariance_type, model.n_components)
                good = chosen == (reference["covariance_type"], reference["n_components"])
                good = (good or bic < reference["bic"]) and (
                    model.score(X) * len(X) >= reference["log_likelihood"] * (1 + 1e-6)
                )
                rows.append((good, table["lower_bound"].values, table.attrs["n_passes"],
                             elapsed))
            outcomes[setup] = rows
        best = np.nanmax([row[1] for rows in outcomes.values() for row in rows], axis=0)
        cell = (reference["n_components"] - 1, TYPES.index(reference["covariance_type"]))
        print(f"{name}: n={len(X)} K=1..9 x {TYPES} seeds={args.seeds} tol={args.tol} "
              f"max_iter={args.max_iter}; mclust's model {reference_cell}")
        print(f"{'setup':<26}{'mclust':>8}{'best optimum':>14}{'at mclust model':>17}"
              f"{'passes':>8}{'seconds':>9}")
        for setup, rows in outcomes.items():
            good, bounds, passes, elapsed = zip(*rows, strict=True)
            bounds = np.array(bounds)
            reached = bounds >= best - OPTIMUM_TOLERANCE
            print(f"{setup:<26}{np.mean(good):>8.2f}{reached.mean():>14.2f}"
                  f"{reached[:, cell[0], cell[1]].mean():>17.2f}{np.mean(passes):>8.1f}"
                  f"{np.mean(elapsed):>9.2f}")


if __name__ == "__main__":
    main()
