"""Start-up time: ``import streamgmm``, ``streamgmm --help`` and ``streamgmm info
MODEL`` in fresh processes (issue 26, Must show 5: at most 1 s, 1.5 s, 1.5 s in a
warm environment, i.e. files in the page cache and numba's cache filled).

Usage::

    python benchmarks/startup.py [--repeats 5] [--root CHECKOUT] [--json out.json]

Every command runs ``--repeats`` times in a fresh subprocess, the commands
taking turns so that a change in the machine's load touches all; the figures
are the fastest and the median wall-clock time of each (the fastest is the
one to compare with the targets: it is the start-up with the least
interference from other processes). A bare interpreter (``python -c pass``)
is timed alongside as the floor, and ``from streamgmm import GaussianMixture``
(what a script that fits pays: scikit-learn, Dask, numba) for comparison. A
first untimed round warms the page cache. The model for ``info`` is fitted once
beforehand, in a scratch folder. ``--root`` times another checkout of the
package (for example one before a change) with this interpreter.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def streamgmm_command() -> list[str]:
    """The installed ``streamgmm`` script beside this interpreter (else ``-m``)."""
    script = shutil.which("streamgmm", path=os.path.dirname(sys.executable))
    return [script] if script else [sys.executable, "-m", "streamgmm"]


def commands(model: Path) -> dict[str, list[str]]:
    python = [sys.executable, "-c"]
    return {
        "python -c pass": [*python, "pass"],
        "import streamgmm": [*python, "import streamgmm"],
        "streamgmm --help": [*streamgmm_command(), "--help"],
        "streamgmm info MODEL": [*streamgmm_command(), "info", str(model)],
        "from streamgmm import GaussianMixture": [
            *python, "from streamgmm import GaussianMixture"
        ],
    }


def wall_time(command: list[str], root: Path = ROOT) -> float:
    """Seconds of one run of ``command`` with the package of ``root`` first on
    the path (its output discarded; it must succeed)."""
    environment = {**os.environ, "PYTHONPATH": str(root)}
    started = time.perf_counter()
    # From a neutral folder: ``python -c`` puts the current folder first on the path.
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=environment,
                   cwd=tempfile.gettempdir())
    return time.perf_counter() - started


def make_model(folder: Path, root: Path = ROOT) -> Path:
    """A small fitted model file to run ``info`` on, written by the package of ``root``."""
    path = folder / "model.zarr"
    code = (
        "import numpy as np\nfrom streamgmm import GaussianMixture, save\n"
        "rows = np.random.default_rng(0).normal(size=(2000, 4))\n"
        f"save(GaussianMixture(2, random_state=0).fit(rows), {str(path)!r})"
    )
    wall_time([sys.executable, "-c", code], root)
    return path


def measure(repeats: int, root: Path = ROOT) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory(prefix="streamgmm-startup-") as scratch:
        runs = commands(make_model(Path(scratch), root))
        for command in runs.values():
            wall_time(command, root)
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(repeats):
            for name, command in runs.items():
                times[name].append(wall_time(command, root))
    return {
        name: {"fastest": min(values), "median": statistics.median(values)}
        for name, values in times.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--root", type=Path, default=ROOT)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    results = measure(args.repeats, args.root.resolve())
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"start-up of {args.root}, {args.repeats} fresh processes each "
          f"(load average at the end {load:.1f})")
    print(f"{'command':<40} {'fastest':>8} {'median':>8}")
    for name, figures in results.items():
        print(f"{name:<40} {figures['fastest']:>7.2f}s {figures['median']:>7.2f}s")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
