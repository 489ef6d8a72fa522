"""Passes and seconds to a converged mixture: plain batch EM, SQUAREM, DAAREM,
incremental EM, online passes then SQUAREM or DAAREM (``GaussianMixture(
n_online_passes=..., acceleration=...)``), and scikit-learn, all from one start.

L* is plain batch EM's mean log-likelihood at tol 1e-10. Every method leaves a
trace of (passes, mean log-likelihood, seconds); the table gives the passes and
the seconds after which a fit knew it was within 1e-4 and 1e-6 nats of L*:

* batch methods (plain, SQUAREM, DAAREM, scikit-learn) compute the mean
  log-likelihood of the parameters they evaluate in the pass itself; the count
  is that pass (for the warm-started rows, counted after the online passes,
  whose prequential scores are not a log-likelihood of one set of parameters
  and are not used);
* incremental EM computes no mean log-likelihood of its parameters: it is
  scored after every pass by a pass that is not timed, and the count is the
  passes made plus the one a fit would need to know.

Data sets: ``overlapping`` is ``online_vs_batch.py --separation 0.7`` (300,000 x
10, K = 10, its k-means start), ``separated`` is ``run.py``'s full d = 16, K = 8
case (10^6 rows, separation 3, its start from two scikit-learn iterations);
``check-a``, ``check-b`` and ``check-c`` (:data:`CASES`) check settings chosen
on those two, ``--damping-offset`` sets DAAREM's damping for such a check.

    python benchmarks/time_to_converge.py --reference-cache /tmp/references.json
    python benchmarks/time_to_converge.py --cases overlapping --rows 30000   # quick
    python benchmarks/time_to_converge.py --exact-passes 400   # exactness (long)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SklearnMixture

from streamgmm import GaussianMixture, acceleration
from streamgmm.acceleration import ACCELERATIONS
from streamgmm.covariance import precision_cholesky_from_precisions
from streamgmm.datasets import make_mixture
from streamgmm.engine import EMRun, EMSettings, run_em
from streamgmm.estep import GaussianParameters, chunk_log_likelihood
from streamgmm.inputs import as_rows
from streamgmm.reduction import tree_reduce
from streamgmm.threads import blas_threads_for_dask, single_threaded_blas

sys.path.insert(0, str(Path(__file__).resolve().parent))
from incremental_em import incremental_em  # noqa: E402
from online_vs_batch import starting_parameters  # noqa: E402
from run import starting_point  # noqa: E402

GAPS = (1e-4, 1e-6)
REFERENCE_TOL = 1e-10

CASES = {
    "overlapping": dict(rows=300_000, components=10, features=10, separation=0.7),
    "separated": dict(rows=1_000_000, components=8, features=16, separation=3.0),
    "check-a": dict(rows=100_000, components=6, features=8, separation=1.0, seed=1),
    "check-b": dict(rows=150_000, components=12, features=5, separation=0.8, seed=2),
    "check-c": dict(rows=100_000, components=4, features=20, separation=1.5, seed=3),
}
"""The two data sets of issue 16 and three more (``check-*``, k-means starts) on
which settings chosen on the first two are checked."""


def case_data(name, rows):
    """Rows and the ``*_init`` start of a data set."""
    case = CASES[name]
    seed = case.get("seed", 0)
    X, _, _ = make_mixture(rows or case["rows"], case["components"], case["features"],
                           separation=case["separation"], random_state=seed)
    if name != "separated":
        return X, starting_parameters(X, case["components"], seed)
    start = starting_point(X, case["components"], "full")
    return X, {key: start[key] for key in ("weights_init", "means_init", "precisions_init")}


def start_parameters(start) -> GaussianParameters:
    factor = precision_cholesky_from_precisions(np.asarray(start["precisions_init"]), "full")
    return GaussianParameters(np.asarray(start["weights_init"]),
                              np.asarray(start["means_init"]), factor, "full")


def reached(trace, reference, gap):
    """(passes, seconds) of the first trace entry within ``gap`` of ``reference``."""
    for passes, score, seconds in trace:
        if score >= reference - gap:
            return passes, seconds
    return None


def relative_difference(params, covariances, reference_params, reference_covariances):
    """Largest difference of weights, means and covariances, relative to the
    largest magnitude of the reference's array."""
    pairs = [(params.weights, reference_params.weights), (params.means, reference_params.means),
             (covariances, reference_covariances)]
    return max(float(np.abs(a - b).max() / np.abs(b).max()) for a, b in pairs)


def batch_fit(X, n_components, start, max_passes, **options):
    """Batch EM through ``GaussianMixture`` (plain, or with ``options`` such as
    ``acceleration``) from ``start`` to tol 1e-10 (unless ``options`` say
    otherwise): its trace from ``history_``, its parameters, covariances and passes."""
    options = {"tol": REFERENCE_TOL} | options
    model = GaussianMixture(n_components, max_iter=max_passes, **start, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X)
    history = model.history_
    trace = list(zip(history["passes"], history["log_likelihood"], history["elapsed"],
                     strict=True))
    params = model._fitted_parameters()
    return trace, params, np.asarray(model.covariances_), model.n_iter_


def score_of(array, params):
    total, count = tree_reduce(array, chunk_log_likelihood,
                               lambda parts: tuple(map(sum, zip(*parts, strict=True))), params)
    return total / count


def incremental_trace(X, params, reference, chunk_rows, chunks_per_step, max_passes):
    """Incremental EM until within the smallest gap of L* (or ``max_passes``),
    each pass scored by an untimed pass."""
    chunks = [X[first:first + chunk_rows] for first in range(0, X.shape[0], chunk_rows)]
    array = as_rows(X).array
    trace, seconds = [], 0.0
    with ThreadPoolExecutor(2) as pool, single_threaded_blas():
        passes = incremental_em(chunks, params, 1e-6, chunks_per_step, pool.map)
        for n_pass in range(1, max_passes + 1):
            began = time.perf_counter()
            current, _ = next(passes)
            seconds += time.perf_counter() - began
            score = score_of(array, current)
            trace.append((n_pass + 1, score, seconds))
            if score >= reference - min(GAPS):
                break
    return trace


def warm_started(X, n_components, start, online_passes, max_passes, method):
    """``GaussianMixture(n_online_passes=online_passes, acceleration=method)``:
    online EM's defaults for ``online_passes`` passes, then accelerated batch EM
    (the trace keeps the batch passes, counted after the online ones)."""
    trace, end, covariances, n_iter = batch_fit(
        X, n_components, start, max_passes, acceleration=method,
        n_online_passes=online_passes, random_state=0)
    return [entry for entry in trace if entry[0] > online_passes], end, covariances, n_iter


class _TimedLines:
    """A stdout that notes when each of scikit-learn's verbose lines was written."""

    def __init__(self):
        self.times = []

    def write(self, text):
        if text.lstrip().startswith("Iteration"):
            self.times.append(time.perf_counter())

    def flush(self):
        pass


def sklearn_trace(X, n_components, start, max_passes):
    """scikit-learn (tol 1e-10, at most ``max_passes`` iterations): the mean
    log-likelihood of every iteration and the seconds from the start of ``fit``
    to the end of that iteration (from its verbose line, written as it ends)."""
    model = SklearnMixture(n_components, tol=REFERENCE_TOL, max_iter=max_passes, verbose=2,
                           verbose_interval=1, **start)
    lines = _TimedLines()
    began = time.perf_counter()
    with warnings.catch_warnings(), contextlib.redirect_stdout(lines):
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X)
    return [(index + 1, score, seconds - began)
            for index, (score, seconds) in enumerate(zip(model.lower_bounds_, lines.times,
                                                         strict=True))], model.n_iter_


def compile_online_steps(X, n_components):
    """One small online fit, so that no timed fit includes Numba's compilation."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        GaussianMixture(n_components, algorithm="online", max_iter=1).fit(X[:5000])


def run_case(name, args, cache):
    X, start = case_data(name, args.rows)
    compile_online_steps(X, CASES[name]["components"])
    n_components = CASES[name]["components"]
    params = start_parameters(start)
    key = f"{name} {X.shape[0]}"
    if key in cache and not args.recompute:
        plain = cache[key]
    else:
        trace, end, covariances, n_iter = batch_fit(X, n_components, start, args.max_passes)
        plain = dict(trace=trace, n_iter=n_iter, weights=end.weights.tolist(),
                     means=end.means.tolist(), covariances=covariances.tolist())
        cache[key] = plain
        if args.reference_cache:
            Path(args.reference_cache).write_text(json.dumps(cache))
    reference = plain["trace"][-1][1]
    reference_params = GaussianParameters(np.asarray(plain["weights"]),
                                          np.asarray(plain["means"]), None, "full")
    rows = {"plain batch EM": dict(trace=plain["trace"], total=plain["n_iter"])}

    for method in args.methods:
        trace, end, covariances, n_iter = batch_fit(X, n_components, start, args.max_passes,
                                                    acceleration=method)
        rows[method] = dict(trace=trace, total=n_iter, difference=relative_difference(
            end, covariances, reference_params, np.asarray(plain["covariances"])))
    for online_passes in args.warm_passes:
        for method in args.warm_methods:
            trace, end, covariances, n_iter = warm_started(X, n_components, start,
                                                           online_passes, args.max_passes,
                                                           method)
            rows[f"{online_passes} online + {method}"] = dict(
                trace=trace, total=n_iter, difference=relative_difference(
                    end, covariances, reference_params, np.asarray(plain["covariances"])))
    if not args.no_incremental:
        rows["incremental EM"] = dict(trace=incremental_trace(
            X, params, reference, args.chunk_rows, args.chunks_per_step, args.max_incremental))
    if not args.no_sklearn:
        reference_passes = reached(plain["trace"], reference, min(GAPS))
        limit = int(reference_passes[0]) + 5 if reference_passes else args.max_passes
        trace, total = sklearn_trace(X, n_components, start, limit)
        rows["scikit-learn"] = dict(trace=trace, total=total)
    return reference, rows


def exactness(name, args):
    """Issue 16's exactness on a benchmark data set: each acceleration run with
    tol 0 for ``args.exact_passes`` passes from the case's start, then plain EM
    from the same start with tol 0 for up to ``args.exact_plain_passes`` passes,
    printing the largest relative difference of weights, means and covariances
    between plain EM's iterate and each accelerated end as plain EM goes on
    (the accelerated ends are fixed points; plain EM approaches them slowly)."""
    X, start = case_data(name, args.rows)
    n_components = CASES[name]["components"]
    ends = {}
    for method in args.methods:
        trace, end, covariances, _ = batch_fit(X, n_components, start, args.exact_passes,
                                               acceleration=method, tol=0.0)
        ends[method] = (end, covariances)
        print(f"  {method}: mean log-likelihood {trace[-1][1]:.10f}, last change "
              f"{trace[-1][1] - trace[-2][1]:.1e}", flush=True)
    shown = {}

    def compare(run):
        if run.n_iter % args.exact_every == 0 or run.n_iter == args.exact_plain_passes:
            shown[run.n_iter] = {method: relative_difference(run.params, run.covariances, *end)
                                 for method, end in ends.items()}
            print(f"  plain EM pass {run.n_iter:>6}: " + ", ".join(
                f"{method} {value:.1e}" for method, value in shown[run.n_iter].items()),
                flush=True)

    print(f"\n{name}: accelerated runs of {args.exact_passes} passes (tol 0) against plain EM "
          f"from the same start (tol 0), largest relative parameter difference")
    run = EMRun(start_parameters(start), None)
    settings = EMSettings(0.0, args.exact_plain_passes, 1e-6)
    array = as_rows(X).array
    with blas_threads_for_dask([array]):
        run_em(array, [run], settings, on_iteration=compare)
    return shown


def format_row(method, row, reference):
    cells = []
    for gap in GAPS:
        hit = reached(row["trace"], reference, gap)
        cells += [f"{hit[0]:>6.0f}", f"{hit[1]:>8.2f}"] if hit else [f"{'-':>6}", f"{'-':>8}"]
    total = row.get("total")
    difference = row.get("difference")
    return (f"{method:<24} " + " ".join(cells) + f" {'' if total is None else total:>6}"
            + (f" {difference:>9.1e}" if difference is not None else ""))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=list(CASES),
                        default=["overlapping", "separated"])
    parser.add_argument("--rows", type=int, help="rows of every data set (default: its own)")
    parser.add_argument("--max-passes", type=int, default=5000)
    parser.add_argument("--max-incremental", type=int, default=300)
    parser.add_argument("--chunk-rows", type=int, default=16_384)
    parser.add_argument("--chunks-per-step", type=int, default=2)
    parser.add_argument("--methods", nargs="*", choices=list(ACCELERATIONS),
                        default=list(ACCELERATIONS))
    parser.add_argument("--warm-methods", nargs="*", choices=list(ACCELERATIONS),
                        default=list(ACCELERATIONS))
    parser.add_argument("--warm-passes", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--no-sklearn", action="store_true")
    parser.add_argument("--no-incremental", action="store_true")
    parser.add_argument("--recompute", action="store_true", help="ignore the reference cache")
    parser.add_argument("--reference-cache", help="JSON file keeping plain EM's runs")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--damping-offset", type=float,
                        help="DAAREM's damping offset instead of acceleration.DAMPING_OFFSET")
    parser.add_argument("--exact-passes", type=int, default=0,
                        help="check exactness instead: accelerated runs of this many passes")
    parser.add_argument("--exact-plain-passes", type=int, default=5000)
    parser.add_argument("--exact-every", type=int, default=250)
    args = parser.parse_args(argv)
    if args.damping_offset is not None:
        acceleration.DAMPING_OFFSET = args.damping_offset
    if args.exact_passes:
        found = {name: exactness(name, args) for name in args.cases}
        if args.json:
            args.json.write_text(json.dumps(found, indent=2))
        return 0
    cache = {}
    if args.reference_cache and os.path.exists(args.reference_cache):
        cache = json.loads(Path(args.reference_cache).read_text())
    report = {"load_before": os.getloadavg(), "cases": {}}
    for name in args.cases:
        reference, rows = run_case(name, args, cache)
        print(f"\n{name}: L* = {reference:.8f} (plain batch EM, tol {REFERENCE_TOL:g}); "
              f"load {os.getloadavg()[0]:.1f}")
        print(f"{'method':<24} {'1e-4':>6} {'seconds':>8} {'1e-6':>6} {'seconds':>8} "
              f"{'passes':>6} {'param diff':>9}")
        for method, row in rows.items():
            print(format_row(method, row, reference), flush=True)
        report["cases"][name] = {"reference": reference, "rows": {
            method: {str(gap): reached(row["trace"], reference, gap) for gap in GAPS}
            | {"total": row.get("total"), "difference": row.get("difference")}
            for method, row in rows.items()}}
    report["load_after"] = os.getloadavg()
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
