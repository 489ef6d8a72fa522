"""One variational iteration of BayesianGaussianMixture against one EM iteration of
streamgmm's GaussianMixture and one iteration of scikit-learn's
BayesianGaussianMixture, in the same run (issue 28, Must show 3).

Usage: python benchmarks/bayesian_speed.py [--n-samples 1000000] [--n-features 16]
       [--n-components 8] [--extra 4] [--repeats 2] [--json FILE]

Each time per iteration is ``(time(1 + extra) - time(1)) / extra`` of warm-started
fits, the best of ``repeats`` (:func:`benchmarks.run.seconds_per_iteration`), so
starts, prior passes and set-up cancel. Data: ``make_mixture`` (separation 3,
seed 0) in memory, full covariances, float64. Targets: variational / EM <= 1.2,
scikit-learn / variational >= 15.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from sklearn.mixture import BayesianGaussianMixture as SklearnBayesian

from benchmarks.run import machine_description, seconds_per_iteration, starting_point
from streamgmm import BayesianGaussianMixture, GaussianMixture
from streamgmm.datasets import make_mixture


def arguments(argv) -> list[str]:
    """The command's arguments, for the report."""
    return sys.argv[1:] if argv is None else list(argv)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=1_000_000)
    parser.add_argument("--n-features", type=int, default=16)
    parser.add_argument("--n-components", type=int, default=8)
    parser.add_argument("--extra", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    machine = machine_description()
    n, d, k = args.n_samples, args.n_features, args.n_components
    X, _, _ = make_mixture(n, n_components=k, n_features=d, separation=3.0, random_state=0)
    start = starting_point(X, k, "full")
    common = dict(n_components=k, covariance_type="full", tol=0.0)
    began = time.perf_counter()
    seconds = {
        "streamgmm EM": seconds_per_iteration(GaussianMixture, X, start, args.extra,
                                              args.repeats),
        "streamgmm variational": seconds_per_iteration(
            BayesianGaussianMixture, X, {**common, "init_params": "random_from_data",
                                         "random_state": 0}, args.extra, args.repeats),
        "scikit-learn variational": seconds_per_iteration(
            SklearnBayesian, X, {**common, "init_params": "random_from_data",
                                 "random_state": 0}, args.extra, 1),
    }
    ratios = {
        "variational / EM (target <= 1.2)": seconds["streamgmm variational"]
        / seconds["streamgmm EM"],
        "scikit-learn / variational (target >= 15)": seconds["scikit-learn variational"]
        / seconds["streamgmm variational"],
    }
    report = {
        "command": "python benchmarks/bayesian_speed.py " + " ".join(arguments(argv)),
        "n_samples": n, "n_features": d, "n_components": k,
        "seconds_per_iteration": seconds, "ratios": ratios,
        "wall_seconds": time.perf_counter() - began,
        "machine": machine, "load_average_at_end": os.getloadavg(),
    }
    for name, value in seconds.items():
        print(f"{name:28s} {value:8.3f} s per iteration")
    for name, value in ratios.items():
        print(f"{name:44s} {value:6.2f}")
    print(f"load average at start {machine['load_average_at_start']}, at end "
          f"{report['load_average_at_end']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
