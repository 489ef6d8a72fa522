"""Cost of EM with missing values (issue 27) against complete data, in one run.

    PYTHONPATH=. python benchmarks/missing_values.py [--rows N] [--repeats R]
                                                     [--json OUT]

1. A batch iteration (one :func:`streamgmm.engine.run_em` pass, Dask's threaded
   scheduler, the chunks of in-memory NumPy input) over N rows (default 10^6),
   d = 16, K = 8 (``run.py``'s data and start), complete
   (``missing="raise"``) and with 10% of values missing completely at random
   (``missing="marginalize"``), for the diag and full types: the best of R
   wall times and CPU times (both threads) each, and their ratios (targets:
   1.5 diag, 3 full); on a loaded machine the CPU ratio is the one that holds.
2. CPU time per row of one chunk's statistics
   (:func:`streamgmm.missing.chunk_statistics`, one BLAS thread) as the number
   of distinct missingness patterns in the chunk grows from 1 to one per row:
   rows of 65,536 (patterns drawn among the 2,516 masks with 1 to 4 of the 16
   values missing) and, for one pattern per row, 2,516 rows.

Prints one JSON object (also written to ``--json``) with the load average.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time

import numpy as np
from run import starting_point
from threadpoolctl import threadpool_limits

from streamgmm import missing
from streamgmm.covariance import precision_cholesky_from_precisions
from streamgmm.datasets import make_mixture
from streamgmm.engine import EMRun, EMSettings, run_em
from streamgmm.estep import GaussianParameters
from streamgmm.inputs import as_rows


def parameters(start: dict) -> GaussianParameters:
    cov = start["covariance_type"]
    return GaussianParameters(
        start["weights_init"], start["means_init"],
        precision_cholesky_from_precisions(start["precisions_init"], cov), cov,
    )


def iteration_seconds(X: np.ndarray, params: GaussianParameters, option: str,
                      repeats: int) -> tuple[float, float]:
    """Best wall time and best process CPU time (both threads) of one batch EM
    pass over X."""
    array = as_rows(X).array
    settings = EMSettings(tol=0.0, max_iter=1, reg_covar=1e-6, missing=option)
    wall = cpu = np.inf
    for _ in range(repeats):
        run = EMRun(params, None)
        began, cpu_began = time.perf_counter(), time.process_time()
        run_em(array, [run], settings)
        wall = min(wall, time.perf_counter() - began)
        cpu = min(cpu, time.process_time() - cpu_began)
    return wall, cpu


def small_masks(d: int, most: int) -> np.ndarray:
    """Every mask of d values with 1 to ``most`` missing, (P, d) bool."""
    masks = []
    for m in range(1, most + 1):
        for columns in itertools.combinations(range(d), m):
            mask = np.zeros(d, dtype=bool)
            mask[list(columns)] = True
            masks.append(mask)
    return np.array(masks)


def pattern_cpu(X: np.ndarray, params: GaussianParameters, n_patterns: int, rows: int,
                rng: np.random.Generator, repeats: int) -> dict:
    masks = small_masks(X.shape[1], 4)
    chosen = masks[rng.permutation(masks.shape[0])[:n_patterns]]
    if rows == n_patterns:
        which = np.arange(rows)
    else:
        which = rng.integers(0, n_patterns, size=rows)
    chunk = X[:rows].copy()
    chunk[chosen[which]] = np.nan
    best = np.inf
    with threadpool_limits(1):
        missing.chunk_statistics(chunk, params)
        for _ in range(repeats):
            began = time.process_time()
            missing.chunk_statistics(chunk, params)
            best = min(best, time.process_time() - began)
    return {"patterns": int(np.unique(np.isnan(chunk), axis=0).shape[0]), "rows": rows,
            "cpu_seconds": best, "microseconds_per_row": 1e6 * best / rows}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    X, _, _ = make_mixture(args.rows, n_components=8, n_features=16, separation=3.0,
                           random_state=0)
    rng = np.random.default_rng(1)
    gappy = X.copy()
    gappy[rng.random(X.shape) < 0.1] = np.nan
    report = {"rows": args.rows, "features": 16, "components": 8, "missing_fraction":
              float(np.isnan(gappy).mean()), "load_before": os.getloadavg(), "iteration": {}}
    for cov in ("diag", "full"):
        params = parameters(starting_point(X, 8, cov))
        complete, complete_cpu = iteration_seconds(X, params, "raise", args.repeats)
        with_gaps, gaps_cpu = iteration_seconds(gappy, params, "marginalize", args.repeats)
        report["iteration"][cov] = {"complete_seconds": complete, "gappy_seconds": with_gaps,
                                    "ratio": with_gaps / complete,
                                    "complete_cpu_seconds": complete_cpu,
                                    "gappy_cpu_seconds": gaps_cpu,
                                    "cpu_ratio": gaps_cpu / complete_cpu,
                                    "target": 1.5 if cov == "diag" else 3.0}
    params = parameters(starting_point(X, 8, "full"))
    rows = min(65_536, args.rows)
    report["patterns_full"] = [
        pattern_cpu(X, params, n, rows, rng, args.repeats) for n in (1, 10, 100, 1000, 2516)
        if n <= rows
    ] + [pattern_cpu(X, params, 2516, 2516, rng, args.repeats)]
    report["load_after"] = os.getloadavg()
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        with open(args.json, "w") as handle:
            handle.write(text)


if __name__ == "__main__":
    main()
