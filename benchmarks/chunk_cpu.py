"""CPU seconds of one chunk's E-step statistics, one BLAS thread: a comparison of
two versions of the code that holds on a loaded machine, where wall times do not.

    PYTHONPATH=<code tree> python benchmarks/chunk_cpu.py [--covariance-type T]
                                                         [--rows N] [--repeats R]
                                                         [--weighted]

The chunk is the first N rows of ``run.py``'s data (d = 16, K = 8, separation 3)
and the parameters ``run.py``'s common start for the type. Prints the best and
the median process CPU time of ``chunk_statistics`` over R calls, the best wall
time and the load average, as one JSON line. Run it in turns with two
``PYTHONPATH`` values to compare two versions.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from run import starting_point
from threadpoolctl import threadpool_limits

from streamgmm import estep
from streamgmm.covariance import precision_cholesky_from_precisions
from streamgmm.datasets import make_mixture

os.environ.setdefault("STREAMGMM_KERNELS", "compiled")
"""Time the compiled kernels (a fresh process would run them interpreted until hot)."""


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--covariance-type", default="tied")
    parser.add_argument("--rows", type=int, default=250_000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--weighted", action="store_true")
    args = parser.parse_args(argv)
    cov = args.covariance_type
    X, _, _ = make_mixture(1_000_000, n_components=8, n_features=16, separation=3.0,
                           random_state=0)
    start = starting_point(X, 8, cov)
    params = estep.GaussianParameters(
        start["weights_init"], start["means_init"],
        precision_cholesky_from_precisions(start["precisions_init"], cov), cov,
    )
    chunk = np.ascontiguousarray(X[: args.rows])
    variants = {"unweighted": {}}
    if args.weighted:
        weights = np.random.default_rng(0).uniform(0, 3, args.rows)
        variants["weighted"] = {"sample_weight": weights}
    cpu = {name: [] for name in variants}
    wall = {name: [] for name in variants}
    with threadpool_limits(1):
        for keywords in variants.values():
            estep.chunk_statistics(chunk, params, **keywords)
        for _ in range(args.repeats):
            for name, keywords in variants.items():
                cpu_began, wall_began = time.process_time(), time.perf_counter()
                estep.chunk_statistics(chunk, params, **keywords)
                cpu[name].append(time.process_time() - cpu_began)
                wall[name].append(time.perf_counter() - wall_began)
    report = {
        "code": os.path.dirname(os.path.dirname(estep.__file__)), "covariance_type": cov,
        "rows": args.rows, "own_shift": int(estep.density_factors(params).own_shift.sum()),
        "cpu_best_s": min(cpu["unweighted"]), "cpu_median_s": float(np.median(cpu["unweighted"])),
        "wall_best_s": min(wall["unweighted"]),
    }
    if args.weighted:
        report.update(
            weighted_cpu_best_s=min(cpu["weighted"]),
            weighted_cpu_median_s=float(np.median(cpu["weighted"])),
            weighted_over_unweighted=min(cpu["weighted"]) / min(cpu["unweighted"]),
        )
    print(json.dumps({**report, "load_average": os.getloadavg()}))


if __name__ == "__main__":
    main()
