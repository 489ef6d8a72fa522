"""Cost of EM with missing values (issue 27) against complete data, in one run.

    PYTHONPATH=. python benchmarks/missing_values.py [--rows N] [--repeats R]
                                                     [--json OUT]

1. A batch iteration (one :func:`streamgmm.engine.run_em` pass, Dask's threaded
   scheduler, the chunks of in-memory NumPy input) over N rows (default 10^6),
   d = 16, K = 8 (``run.py``'s data and start), complete
   (``missing="raise"``) and with 10% of values missing completely at random
   (``missing="marginalize"``), for the diag and full types, in R alternating
   turns (complete, then with gaps, so that both meet the same load): the
   best wall time and CPU time (both threads) of each, and their ratios
   (targets: 1.5 diag, 3 full); on a loaded machine the CPU ratio is the one
   that holds.
2. CPU time per row of one chunk's statistics
   (:func:`streamgmm.missing.chunk_statistics`, one BLAS thread), diag and
   full, as the number of distinct missingness patterns in the chunk grows
   from 1 to one per row: rows of 65,536 (patterns drawn among the 2,516 masks
   with 1 to 4 of the 16 values missing) and, for one pattern per row, 2,516
   rows; and of the same chunk complete.
3. CPU time of one 250,000-row chunk's statistics (one BLAS thread, R + 4
   alternating turns, the best of each): complete rows, the chunk with 10%
   missing in one pass (every row through the kernel for rows with gaps, as
   :func:`streamgmm.missing.chunk_statistics` does), and split (complete rows
   copied out to the complete kernel, the others to the gaps' kernel, the two
   statistics merged).

Kernels compiled (``STREAMGMM_KERNELS=compiled``, warm). Prints one JSON
object (also written to ``--json``) with the load average.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time

import numpy as np

os.environ.setdefault("STREAMGMM_KERNELS", "compiled")
from run import starting_point  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from streamgmm import estep, missing  # noqa: E402
from streamgmm.covariance import precision_cholesky_from_precisions  # noqa: E402
from streamgmm.datasets import make_mixture  # noqa: E402
from streamgmm.engine import EMRun, EMSettings, run_em  # noqa: E402
from streamgmm.estep import GaussianParameters  # noqa: E402
from streamgmm.inputs import as_rows  # noqa: E402
from streamgmm.statistics import merge_all  # noqa: E402


def parameters(start: dict) -> GaussianParameters:
    cov = start["covariance_type"]
    return GaussianParameters(
        start["weights_init"], start["means_init"],
        precision_cholesky_from_precisions(start["precisions_init"], cov), cov,
    )


def one_iteration(array, params: GaussianParameters, option: str) -> tuple[float, float]:
    """Wall and process CPU time (both threads) of one batch EM pass."""
    settings = EMSettings(tol=0.0, max_iter=1, reg_covar=1e-6, missing=option)
    began, cpu_began = time.perf_counter(), time.process_time()
    run_em(array, [EMRun(params, None)], settings)
    return time.perf_counter() - began, time.process_time() - cpu_began


def iteration_turns(X: np.ndarray, gappy: np.ndarray, params: GaussianParameters,
                    repeats: int) -> dict:
    """Best wall and CPU times of a pass over the complete rows X and over the
    rows with gaps, in ``repeats`` alternating turns (after one warm-up each)."""
    arrays = {"complete": (as_rows(X).array, "raise"),
              "gappy": (as_rows(gappy).array, "marginalize")}
    best = {name: [np.inf, np.inf] for name in arrays}
    for turn in range(repeats + 1):
        for name, (array, option) in arrays.items():
            wall, cpu = one_iteration(array, params, option)
            if turn > 0:
                best[name] = [min(best[name][0], wall), min(best[name][1], cpu)]
    return {"complete_seconds": best["complete"][0], "gappy_seconds": best["gappy"][0],
            "ratio": best["gappy"][0] / best["complete"][0],
            "complete_cpu_seconds": best["complete"][1], "gappy_cpu_seconds": best["gappy"][1],
            "cpu_ratio": best["gappy"][1] / best["complete"][1]}


def small_masks(d: int, most: int) -> np.ndarray:
    """Every mask of d values with 1 to ``most`` missing, (P, d) bool."""
    masks = []
    for m in range(1, most + 1):
        for columns in itertools.combinations(range(d), m):
            mask = np.zeros(d, dtype=bool)
            mask[list(columns)] = True
            masks.append(mask)
    return np.array(masks)


def chunk_cpu(chunk: np.ndarray, params: GaussianParameters, repeats: int) -> float:
    """Best CPU time of one chunk's statistics, one BLAS thread."""
    best = np.inf
    with threadpool_limits(1):
        missing.chunk_statistics(chunk, params)
        for _ in range(repeats):
            began = time.process_time()
            missing.chunk_statistics(chunk, params)
            best = min(best, time.process_time() - began)
    return best


def split_statistics(chunk: np.ndarray, params: GaussianParameters):
    """The other organisation: complete rows and rows with gaps copied apart,
    through their own kernels, merged."""
    gaps = np.isnan(chunk)
    complete = ~gaps.any(axis=1)
    with_gaps = ~complete & ~gaps.all(axis=1)
    return merge_all([estep.chunk_statistics(chunk[complete], params),
                      missing.gappy_statistics(chunk[with_gaps], params)],
                     params.covariance_type)


def organisations(X: np.ndarray, gappy: np.ndarray, params: GaussianParameters,
                  repeats: int) -> dict:
    """Best CPU times (one BLAS thread) of a chunk's statistics: complete, with
    gaps in one pass, with gaps split; in alternating turns."""
    variants = {"complete": lambda: estep.chunk_statistics(X, params),
                "one_pass": lambda: missing.chunk_statistics(gappy, params),
                "split": lambda: split_statistics(gappy, params)}
    best = dict.fromkeys(variants, np.inf)
    with threadpool_limits(1):
        for turn in range(repeats + 5):
            for name, run in variants.items():
                began = time.process_time()
                run()
                if turn > 0:
                    best[name] = min(best[name], time.process_time() - began)
    return {f"{name}_cpu_seconds": value for name, value in best.items()} | {
        "one_pass_ratio": best["one_pass"] / best["complete"],
        "split_ratio": best["split"] / best["complete"]}


def pattern_cpu(X: np.ndarray, params: GaussianParameters, n_patterns: int, rows: int,
                rng: np.random.Generator, repeats: int) -> dict:
    """CPU time per row of a chunk of ``rows`` rows whose gaps follow
    ``n_patterns`` masks with 1 to 4 missing values."""
    masks = small_masks(X.shape[1], 4)
    chosen = masks[rng.permutation(masks.shape[0])[:n_patterns]]
    if rows == n_patterns:
        which = np.arange(rows)
    else:
        which = rng.integers(0, n_patterns, size=rows)
    chunk = X[:rows].copy()
    chunk[chosen[which]] = np.nan
    best = chunk_cpu(chunk, params, repeats)
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
    rows = min(65_536, args.rows)
    for cov in ("diag", "full"):
        params = parameters(starting_point(X, 8, cov))
        report["iteration"][cov] = dict(iteration_turns(X, gappy, params, args.repeats),
                                        target=1.5 if cov == "diag" else 3.0)
        complete = chunk_cpu(X[:rows], params, args.repeats)
        report[f"patterns_{cov}"] = [{"patterns": 0, "rows": rows, "cpu_seconds": complete,
                                      "microseconds_per_row": 1e6 * complete / rows}] + [
            pattern_cpu(X, params, n, rows, rng, args.repeats)
            for n in (1, 10, 100, 1000, 2516) if n <= rows
        ] + [pattern_cpu(X, params, 2516, 2516, rng, args.repeats)]
        chunk = min(250_000, args.rows)
        report[f"organisations_{cov}"] = organisations(X[:chunk], gappy[:chunk], params,
                                                        args.repeats)
    report["load_after"] = os.getloadavg()
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        with open(args.json, "w") as handle:
            handle.write(text)


if __name__ == "__main__":
    main()
