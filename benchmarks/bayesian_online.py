"""Stochastic variational inference against batch variational EM on the online
benchmark's data (issue 28, Must show 5).

Usage: python benchmarks/bayesian_online.py [--rows 300000] [--components 10]
       [--features 10] [--separation 1.0] [--passes 3] [--batch-size 512] [--json FILE]

Data: ``benchmarks/online_vs_batch.py``'s (``make_mixture``, overlapping
components, seed 0). Both fits start from the same k-means|| start
(``random_state=0``, K = the true number, Dirichlet-process prior). Batch runs to
``tol = 1e-6`` per row; SVI runs ``passes`` passes. Compared: the mean
log-likelihood per row of the data under each fit's posterior-mean mixture
(weights, means, covariances), and the wall times (including the start).
Target: SVI within 0.01 nats per row of batch after 3 passes.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from benchmarks.bayesian_choose_k import plug_in_log_likelihood
from benchmarks.bayesian_speed import arguments
from benchmarks.online_vs_batch import add_data_arguments, benchmark_data
from benchmarks.run import machine_description
from streamgmm import BayesianGaussianMixture


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_arguments(parser)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    machine = machine_description()
    X = benchmark_data(args)
    common = dict(n_components=args.components, random_state=0)
    began = time.perf_counter()
    batch = BayesianGaussianMixture(**common, tol=1e-6 * len(X), max_iter=2000).fit(X)
    batch_seconds = time.perf_counter() - began
    began = time.perf_counter()
    online = BayesianGaussianMixture(**common, algorithm="online", max_iter=args.passes,
                                     batch_size=args.batch_size).fit(X)
    online_seconds = time.perf_counter() - began
    report = {
        "command": "python benchmarks/bayesian_online.py " + " ".join(arguments(argv)),
        "rows": len(X), "components": args.components, "features": args.features,
        "batch": {"log_likelihood": plug_in_log_likelihood(batch, X), "passes": batch.n_iter_,
                  "converged": bool(batch.converged_), "seconds": batch_seconds},
        "online": {"log_likelihood": plug_in_log_likelihood(online, X),
                   "passes": online.n_iter_, "steps": online.n_steps_,
                   "seconds": online_seconds},
        "machine": machine, "load_average_at_end": os.getloadavg(),
    }
    report["gap"] = report["batch"]["log_likelihood"] - report["online"]["log_likelihood"]
    print(json.dumps({k: v for k, v in report.items() if k != "machine"}, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
