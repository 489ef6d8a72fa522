"""Starts on gappy rows (issue 27): the gaps filled by column means (what
``missing="marginalize"`` does) against the complete rows only.

    PYTHONPATH=. python benchmarks/missing_starts.py [--rows N] [--seeds S]

For 20% and 40% of values missing completely at random (K = 5, d = 6,
separation 3), each start method (k-means||, hierarchical) and seed: the
observed-data log-likelihood per row at the start, the EM iterations to
tol = 1e-6 and the final log-likelihood, from each kind of start. Prints one
JSON line per case and a summary.
"""

from __future__ import annotations

import argparse
import json
import warnings

import numpy as np

from streamgmm import GaussianMixture
from streamgmm.datasets import make_mixture


def run(G: np.ndarray, start: dict) -> tuple[float, int, float]:
    first = GaussianMixture(5, missing="marginalize", max_iter=1, tol=0.0, **start)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first.fit(G)
        model = GaussianMixture(5, missing="marginalize", max_iter=1000, tol=1e-6,
                                **start).fit(G)
    return float(first.lower_bounds_[0]), int(model.n_iter_), float(model.lower_bound_)


def starts(G: np.ndarray, method: str, seed: int) -> dict:
    common = dict(init_params=method, random_state=seed)
    filled = GaussianMixture(5, missing="marginalize", max_iter=0, **common).fit(G)
    complete = GaussianMixture(5, max_iter=0, **common).fit(G[~np.isnan(G).any(axis=1)])
    return {
        name: dict(weights_init=model.weights_, means_init=model.means_,
                   precisions_init=model.precisions_)
        for name, model in (("filled", filled), ("complete rows", complete))
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args(argv)
    X, _, _ = make_mixture(args.rows, n_components=5, n_features=6, separation=3.0,
                           random_state=0)
    summary: dict = {}
    for fraction in (0.2, 0.4):
        G = X.copy()
        G[np.random.default_rng(1).random(X.shape) < fraction] = np.nan
        n_complete = int((~np.isnan(G).any(axis=1)).sum())
        for method in ("k-means||", "hierarchical"):
            for seed in range(args.seeds):
                for name, start in starts(G, method, seed).items():
                    at_start, n_iter, final = run(G, start)
                    case = dict(missing=fraction, complete_rows=n_complete, method=method,
                                seed=seed, start=name, start_loglik=at_start, n_iter=n_iter,
                                final_loglik=final)
                    print(json.dumps(case))
                    summary.setdefault((fraction, method, name), []).append(case)
    for (fraction, method, name), cases in summary.items():
        best = max(case["final_loglik"] for key, others in summary.items()
                   if key[0] == fraction for case in others)
        finals = np.array([case["final_loglik"] for case in cases])
        print(f"missing {fraction:.0%} {method:>12} {name:>13}: start "
              f"{np.mean([c['start_loglik'] for c in cases]):.4f}, iterations "
              f"{np.median([c['n_iter'] for c in cases]):.0f} (median), final "
              f"{finals.mean():.5f}, at the best optimum found ({best:.5f} +- 1e-4) "
              f"{int((finals > best - 1e-4).sum())}/{len(cases)}")


if __name__ == "__main__":
    main()
