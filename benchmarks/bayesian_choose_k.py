"""Choosing K: one BayesianGaussianMixture fit with too many components against
``select`` over a grid of K, in the same run (issue 28, Must show 4).

Usage: python benchmarks/bayesian_choose_k.py [--n-samples 1000000] [--n-features 8]
       [--true-components 20] [--n-components 50] [--select-max 40] [--json FILE]
       [--reference-only]

Data: ``random_mixture(true_components, n_features, separation=6, seed 0)``,
``n_samples`` rows written to a Zarr store (chunks of 100,000 rows) in a
temporary folder, and 100,000 held-out rows from another seed. Fits (full
covariances, random_state 0):

* variational: ``BayesianGaussianMixture(n_components, weight_concentration_prior_type=
  "dirichlet_process", tol=1e-5 * n, max_iter=500, moves=True)`` on the store (tol
  per row as select's); components
  holding >= 1% of the weight are counted; the held-out log-likelihood per row is
  that of the plug-in mixture (posterior mean weights, means and covariances);
* ``select(store, n_components=range(2, select_max + 1), covariance_types=("full",))``:
  the BIC-best model and its held-out log-likelihood per row.

Both wall times include their starts. Then, on mclust's reference data (faithful,
diabetes), the number of components holding >= 1% of the weight of the best of
10 starts of a 10-component fit with mclust's covariance type, without and with
merge moves.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from benchmarks.bayesian_speed import arguments
from benchmarks.reference_data import MCLUST_RESULTS, load_reference
from benchmarks.run import machine_description
from streamgmm import BayesianGaussianMixture, select
from streamgmm.datasets import random_mixture, sample_mixture, write_mixture_zarr
from streamgmm.estep import GaussianParameters, e_step
from streamgmm.variational import precision_factors


def plug_in_log_likelihood(model: BayesianGaussianMixture, X: np.ndarray) -> float:
    """Mean log-likelihood per row of X under the posterior-mean mixture."""
    params = GaussianParameters(model.weights_, model.means_,
                                precision_factors(model.covariances_, model.covariance_type),
                                model.covariance_type)
    return float(e_step(X, params)[0].mean())


def reference_counts(n_starts: int = 10) -> dict:
    """Components holding >= 1% of the weight, best of ``n_starts`` starts of a
    10-component fit, without and with merge moves."""
    counts = {}
    for name, reference in MCLUST_RESULTS.items():
        X = load_reference(name)
        counts[name] = {"mclust": reference["n_components"]}
        for moves in (False, True):
            model = BayesianGaussianMixture(10, covariance_type=reference["covariance_type"],
                                            n_init=n_starts, max_iter=2000, tol=1e-6,
                                            moves=moves, random_state=0).fit(X)
            key = "variational, moves" if moves else "variational"
            counts[name][key] = {"components": model.n_components_effective_,
                                 "lower_bound": model.lower_bound_,
                                 "weights": np.sort(model.weights_)[::-1].round(4).tolist()}
            print(f"{name}: mclust {reference['n_components']}, {key} "
                  f"{model.n_components_effective_} (weights "
                  f"{counts[name][key]['weights'][:6]}, bound {model.lower_bound_:.3f})")
    return counts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=1_000_000)
    parser.add_argument("--n-features", type=int, default=8)
    parser.add_argument("--true-components", type=int, default=20)
    parser.add_argument("--n-components", type=int, default=50)
    parser.add_argument("--select-max", type=int, default=40)
    parser.add_argument("--reference-only", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    report = {"command": "python benchmarks/bayesian_choose_k.py " + " ".join(arguments(argv)),
              "machine": machine_description()}
    if not args.reference_only:
        truth = random_mixture(args.true_components, args.n_features, random_state=0)
        held_out, _ = sample_mixture(truth, 100_000, random_state=1)
        with tempfile.TemporaryDirectory() as folder:
            store = os.path.join(folder, "x.zarr")
            write_mixture_zarr(store, args.n_samples, truth, random_state=0)
            began = time.perf_counter()
            model = BayesianGaussianMixture(
                args.n_components, weight_concentration_prior_type="dirichlet_process",
                tol=1e-5 * args.n_samples, max_iter=500, moves=True, random_state=0).fit(store)
            variational_seconds = time.perf_counter() - began
            began = time.perf_counter()
            best, table = select(store, n_components=range(2, args.select_max + 1),
                                 covariance_types=("full",), random_state=0)
            select_seconds = time.perf_counter() - began
        used = int(np.sum(model.weights_ >= 0.01))
        report["synthetic"] = {
            "n_samples": args.n_samples, "true_components": args.true_components,
            "variational": {
                "components_with_1_percent": used,
                "n_iter": model.n_iter_, "converged": bool(model.converged_),
                "accepted_merges": model.n_moves_,
                "held_out_log_likelihood": plug_in_log_likelihood(model, held_out),
                "seconds": variational_seconds},
            "select": {
                "n_components": int(best.n_components),
                "held_out_log_likelihood": float(best.score(held_out)),
                "seconds": select_seconds},
        }
        synthetic = report["synthetic"]
        synthetic["held_out_gap"] = (synthetic["select"]["held_out_log_likelihood"]
                                     - synthetic["variational"]["held_out_log_likelihood"])
        synthetic["time_ratio"] = select_seconds / variational_seconds
        print(json.dumps(synthetic, indent=2))
    report["reference"] = reference_counts()
    report["load_average_at_end"] = os.getloadavg()
    print(f"load average at start {report['machine']['load_average_at_start']}, at end "
          f"{report['load_average_at_end']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
