"""CPU seconds of one chunk's E-step statistics, one BLAS thread: a comparison of
two versions of the code that holds on a loaded machine, where wall times do not.

    PYTHONPATH=<code tree> python benchmarks/chunk_cpu.py [--covariance-type T]
                                                         [--rows N] [--repeats R]

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


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--covariance-type", default="tied")
    parser.add_argument("--rows", type=int, default=250_000)
    parser.add_argument("--repeats", type=int, default=15)
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
    cpu, wall = [], []
    with threadpool_limits(1):
        estep.chunk_statistics(chunk, params)
        for _ in range(args.repeats):
            cpu_began, wall_began = time.process_time(), time.perf_counter()
            estep.chunk_statistics(chunk, params)
            cpu.append(time.process_time() - cpu_began)
            wall.append(time.perf_counter() - wall_began)
    print(json.dumps({
        "code": os.path.dirname(os.path.dirname(estep.__file__)), "covariance_type": cov,
        "rows": args.rows, "own_shift": int(estep.density_factors(params).own_shift.sum()),
        "cpu_best_s": min(cpu), "cpu_median_s": float(np.median(cpu)), "wall_best_s": min(wall),
        "load_average": os.getloadavg(),
    }))


if __name__ == "__main__":
    main()
