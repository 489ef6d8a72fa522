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
diabetes, raw as mclust fits them), the number of components holding >= 1% of
the weight of the best of 10 starts of a 10-component fit with mclust's
covariance type, without and with merge moves, for both weight prior types and
two covariance priors: scikit-learn's default (the data's covariance) and
mclust's default scale (``defaultPrior``, Fraley & Raftery 2007: the data's
covariance divided by ``n_components ** (2 / d)``), other priors at their
defaults.

Last, the objective itself (:func:`objective_comparison`): EM's best of 20
starts with mclust's K and with one component fewer, and the variational fit
(10 components) started from each of these assignments (``labels_init``) to
convergence, under both covariance priors and weight prior types, with
scikit-learn's ``BayesianGaussianMixture`` from the same starts as a check.
Under a fixed objective the start whose optimum has the higher lower bound is
the one a fit maximising the bound should end at.
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
from sklearn.mixture import BayesianGaussianMixture as SklearnBayesian

from benchmarks.bayesian_speed import arguments
from benchmarks.reference_data import MCLUST_RESULTS, load_reference
from benchmarks.run import machine_description
from streamgmm import BayesianGaussianMixture, GaussianMixture, select
from streamgmm.datasets import random_mixture, sample_mixture, write_mixture_zarr
from streamgmm.estep import GaussianParameters, e_step
from streamgmm.variational import precision_factors


def plug_in_log_likelihood(model: BayesianGaussianMixture, X: np.ndarray) -> float:
    """Mean log-likelihood per row of X under the posterior-mean mixture."""
    params = GaussianParameters(model.weights_, model.means_,
                                precision_factors(model.covariances_, model.covariance_type),
                                model.covariance_type)
    return float(e_step(X, params)[0].mean())


WEIGHT_PRIOR_TYPES = ("dirichlet_process", "dirichlet_distribution")


def mclust_scale(X: np.ndarray, n_components: int) -> np.ndarray:
    """mclust's default scale of the covariance prior (``defaultPrior``, Fraley &
    Raftery 2007): the data's covariance divided by ``n_components ** (2 / d)``,
    the covariance of a component that fills 1/K of the data's volume."""
    return np.cov(X, rowvar=False) / n_components ** (2.0 / X.shape[1])


def covariance_priors(X: np.ndarray, n_components: int) -> dict:
    """The two covariance priors compared: scikit-learn's default and mclust's."""
    return {"default": {}, "mclust scale": {"covariance_prior": mclust_scale(X, n_components)}}


def reference_counts(n_starts: int = 10, n_components: int = 10) -> dict:
    """Components holding >= 1% of the weight, best of ``n_starts`` starts of a
    ``n_components``-component fit, without and with merge moves, for both weight
    prior types and both covariance priors."""
    counts = {}
    for name, reference in MCLUST_RESULTS.items():
        X = load_reference(name)
        counts[name] = {"mclust": reference["n_components"]}
        for prior_name, prior in covariance_priors(X, n_components).items():
            for prior_type in WEIGHT_PRIOR_TYPES:
                for moves in (False, True):
                    model = BayesianGaussianMixture(
                        n_components, covariance_type=reference["covariance_type"],
                        weight_concentration_prior_type=prior_type, n_init=n_starts,
                        max_iter=2000, tol=1e-6, moves=moves, random_state=0, **prior).fit(X)
                    key = f"{prior_name}, {prior_type}, {'moves' if moves else 'no moves'}"
                    counts[name][key] = {
                        "components": model.n_components_effective_,
                        "lower_bound": model.lower_bound_,
                        "weights": np.sort(model.weights_)[::-1].round(4).tolist()}
                    print(f"{name}: mclust {reference['n_components']}; {key}: "
                          f"{model.n_components_effective_} (weights "
                          f"{counts[name][key]['weights'][:6]}, bound {model.lower_bound_:.3f})")
    return counts


class _LabelledStart(SklearnBayesian):
    """scikit-learn's estimator started from the one-hot responsibilities of
    ``labels`` (its start from k-means labels, with labels of our choice)."""

    def __init__(self, labels=None, **kwargs):
        super().__init__(**kwargs)
        self.labels = labels

    def _initialize_parameters(self, X, random_state, xp=None):
        resp = np.zeros((X.shape[0], self.n_components))
        resp[np.arange(X.shape[0]), self.labels] = 1.0
        self._initialize(X, resp)


def objective_comparison(name: str = "faithful", n_components: int = 10,
                         em_starts: int = 20) -> dict:
    """The lower bound of the optimum reached from mclust's K and from one fewer
    (EM's best of ``em_starts`` starts, each as ``labels_init``), under both
    covariance priors and weight prior types; EM's log-likelihood and BIC of both."""
    reference = MCLUST_RESULTS[name]
    X = load_reference(name)
    cov_type, chosen = reference["covariance_type"], reference["n_components"]
    report = {"em": {}, "variational": {}}
    labels = {}
    for k in (chosen - 1, chosen):
        em = GaussianMixture(k, covariance_type=cov_type, n_init=em_starts, tol=1e-8,
                             max_iter=2000, random_state=0).fit(X)
        labels[k] = em.predict(X)
        report["em"][k] = {"log_likelihood": float(em.score(X) * len(X)),
                           "bic": float(em.bic(X))}
        print(f"{name}: EM {cov_type} K={k}: log-likelihood "
              f"{report['em'][k]['log_likelihood']:.3f}, BIC {report['em'][k]['bic']:.3f}")
    for prior_name, prior in covariance_priors(X, n_components).items():
        for prior_type in WEIGHT_PRIOR_TYPES:
            settings = dict(n_components=n_components, covariance_type=cov_type, tol=1e-8,
                            max_iter=5000, weight_concentration_prior_type=prior_type, **prior)
            for k, start in labels.items():
                ours = BayesianGaussianMixture(**settings, labels_init=start).fit(X)
                theirs = _LabelledStart(labels=start, **settings).fit(X)
                key = f"{prior_name}, {prior_type}, from EM K={k}"
                report["variational"][key] = {
                    "lower_bound": ours.lower_bound_,
                    "components": ours.n_components_effective_,
                    "sklearn_lower_bound": float(np.ravel(theirs.lower_bound_)[-1]),
                    "sklearn_components": int(np.sum(theirs.weights_ >= 0.01))}
                row = report["variational"][key]
                print(f"{name}: {key}: bound {row['lower_bound']:.3f}, "
                      f"{row['components']} components (scikit-learn "
                      f"{row['sklearn_lower_bound']:.3f}, {row['sklearn_components']})")
    return report


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
    report["objective"] = objective_comparison()
    report["load_average_at_end"] = os.getloadavg()
    print(f"load average at start {report['machine']['load_average_at_start']}, at end "
          f"{report['load_average_at_end']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
