"""Warm batch speed of two versions of the code, in turns (issue 26 Must show 2).

Usage::

    python benchmarks/warm_turns.py BEFORE_TREE AFTER_TREE [--turns T] [--repeats R]

Each turn runs, in a fresh process for each tree in turn, the first case of
that tree's own ``benchmarks/run.py`` (N = 10^6, d = 16, K = 8, full, float64:
streamgmm's seconds per iteration, best of R, and scikit-learn's, once, on the
same data from the same start). Wall-clock time on a shared machine only
grows with load, so each version's figure is its fastest turn; the figures
compared are those fastest streamgmm times and the ratios to scikit-learn.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, os, sys
os.environ.setdefault("STREAMGMM_KERNELS", "compiled")
from run import SIZES, in_memory_case
n, _, extra, _ = SIZES["default"]
case, _, _ = in_memory_case("full d=16 K=8 float64", n, 16, 8, "full", "float64", extra,
                              int(sys.argv[1]))
print(json.dumps({"streamgmm": case.seconds["streamgmm"], "sklearn": case.seconds["sklearn"],
                  "load": os.getloadavg()[0]}))
"""


def one_turn(tree: Path, repeats: int) -> dict:
    """Seconds per iteration of streamgmm and scikit-learn in a fresh process on ``tree``."""
    environment = dict(os.environ, PYTHONPATH=f"{tree}:{tree / 'benchmarks'}")
    output = subprocess.run([sys.executable, "-c", CHILD, str(repeats)], env=environment,
                            cwd=tree, capture_output=True, text=True)
    if output.returncode:
        raise RuntimeError(f"{tree}: {output.stderr[-2000:]}")
    return json.loads(output.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    runs: dict[str, list[dict]] = {"before": [], "after": []}
    for turn in range(args.turns):
        for name in ("before", "after"):
            result = one_turn(getattr(args, name), args.repeats)
            runs[name].append(result)
            ratio = result["sklearn"] / result["streamgmm"]
            print(f"turn {turn + 1} {name:6s} streamgmm {result['streamgmm']:.4f} s, scikit-learn "
                  f"{result['sklearn']:.3f} s, ratio {ratio:.1f}x, load {result['load']:.1f}",
                  flush=True)
    best = {name: min(r["streamgmm"] for r in results) for name, results in runs.items()}
    sklearn = {name: min(r["sklearn"] for r in results) for name, results in runs.items()}
    for name in runs:
        print(f"{name:6s} fastest: streamgmm {best[name]:.4f} s/iteration, scikit-learn "
              f"{sklearn[name]:.3f} s, ratio {sklearn[name] / best[name]:.1f}x")
    print(f"after / before, fastest streamgmm iteration: {best['after'] / best['before']:.3f} "
          "(Must show 2: at most 1.05)")


if __name__ == "__main__":
    main()
