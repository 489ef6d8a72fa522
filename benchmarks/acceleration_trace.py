"""Pass-by-pass trace of an accelerated run (SQUAREM or DAAREM) on one of
``time_to_converge.py``'s data sets: for every pass, whether it evaluated a
proposal, whether the point was kept, its mean log-likelihood, and DAAREM's
damping count and history length. Used to find why a run stalls.

    python benchmarks/acceleration_trace.py separated daarem 900 --every 50
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

from streamgmm import acceleration
from streamgmm.estep import chunk_statistics
from streamgmm.statistics import merge_all
from streamgmm.threads import single_threaded_blas

sys.path.insert(0, str(Path(__file__).resolve().parent))
from time_to_converge import CASES, case_data, start_parameters  # noqa: E402


def trace(name, method, passes, rows, chunk_rows=25_000):
    """One dict per pass (see the module docs)."""
    X, start = case_data(name, rows)
    params = start_parameters(start)
    chunks = [X[first:first + chunk_rows] for first in range(0, X.shape[0], chunk_rows)]
    n_components, n_features = params.means.shape
    state = acceleration.start_acceleration(method, params)
    found = []
    with ThreadPoolExecutor(2) as pool, single_threaded_blas():
        for n_pass in range(1, passes + 1):
            point = acceleration.point_parameters(state, n_components, n_features, "full")
            statistics = merge_all(pool.map(partial(chunk_statistics, params=point), chunks),
                                   "full")
            outcome = acceleration.advance(method, state, statistics, 1e-6, "full")
            entry = dict(n_pass=n_pass, proposal=state.proposing(), kept=outcome.accepted,
                         score=outcome.score)
            if method == "daarem":
                entry |= dict(damping_count=state.accepted_steps,
                              history=state.point_differences.shape[1])
            found.append(entry)
            state = outcome.state
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", choices=list(CASES))
    parser.add_argument("method", choices=list(acceleration.ACCELERATIONS))
    parser.add_argument("passes", type=int)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--every", type=int, default=1, help="print every n-th pass")
    args = parser.parse_args(argv)
    entries = trace(args.case, args.method, args.passes, args.rows)
    for entry in entries:
        if entry["n_pass"] % args.every == 0:
            print(entry)
    rejected = sum(not entry["kept"] for entry in entries)
    print(f"{rejected} of {len(entries)} passes evaluated a proposal that was rejected; "
          f"last kept mean log-likelihood "
          f"{max(entry['score'] for entry in entries if entry['kept']):.10f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
