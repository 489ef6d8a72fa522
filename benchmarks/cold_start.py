"""Cold start: wall time of a first fit in a fresh process with an empty numba
cache (issue 26), and of filling the cache.

Usage::

    python benchmarks/cold_start.py [--tree PATH] [--cases batch,online,...]
                                    [--repeats R] [--fill] [--json out.json]

Each case runs in a new Python process whose ``NUMBA_CACHE_DIR`` is a new empty
folder (and, with ``--warm``, in a second process on the cache the first one
left). The figure is the wall time from the process's start to the end of the
fit, import included, as a user who types the command sees it, and the import
alone. ``--tree`` runs another checkout of streamgmm (for example the code
before a change, in a git worktree) with this environment. ``--fill`` times
``streamgmm compile`` (every kernel, 2 processes) on an empty cache.
``--cluster`` times a fit of 100,000 rows (d = 4, K = 3, a Zarr store) on a
2-worker ``LocalCluster`` (worker processes, one thread each) from the
creation of the cluster and its ``Client`` to the end of the fit, with the
workers' cache empty and then filled beforehand by ``streamgmm compile``, and
for comparison the same span for the smallest Dask job on that store (the
floor: fresh workers import ``dask.array`` and read the chunks). The script
imports its library (``streamgmm`` with scikit-learn, or ``dask.array``) at
its top, before the timed span, as a user's script does; that import is
reported apart.

Cases (10,000 rows, d = 4, K = 3, a mixture of 3 separated Gaussians):

* ``batch``: the default fit (batch EM, full, float64);
* ``online``: ``algorithm="online"``; ``partial_fit``: one call on 512 rows;
* ``tied``, ``diag``, ``spherical``: the default fit of each covariance type;
* ``float32``: float32 rows; ``readonly``: read-only rows (what a Dask worker
  holds); ``weights``: ``sample_weight``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CASES = ("batch", "online", "partial_fit", "tied", "diag", "spherical", "float32",
         "readonly", "weights")

CHILD = r"""
import time
started = time.perf_counter()
import warnings
import numpy as np
import streamgmm
imported = time.perf_counter()
case = {case!r}
rng = np.random.default_rng(0)
X = rng.normal(size=(10_000, 4)) + rng.integers(0, 3, size=(10_000, 1)) * 4.0
options = {{}}
fit_options = {{}}
if case == "online":
    options["algorithm"] = "online"
if case in ("tied", "diag", "spherical"):
    options["covariance_type"] = case
if case == "float32":
    X = X.astype(np.float32)
if case == "readonly":
    X.flags.writeable = False
if case == "weights":
    fit_options["sample_weight"] = rng.random(len(X)) + 0.5
model = streamgmm.GaussianMixture(n_components=3, random_state=0, **options)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    if case == "partial_fit":
        model.partial_fit(X[:512])
    else:
        model.fit(X, **fit_options)
finished = time.perf_counter()
print(imported - started, finished - started)
"""


def run_case(case: str, tree: Path, cache: str) -> tuple[float, float]:
    """(import seconds, wall seconds to the end of the fit) of one fresh process."""
    environment = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=str(tree))
    environment.pop("STREAMGMM_KERNELS", None)
    started = time.perf_counter()
    output = subprocess.run([sys.executable, "-c", CHILD.format(case=case)], env=environment,
                            capture_output=True, text=True, cwd=tree, check=True)
    wall = time.perf_counter() - started
    imported, _ = map(float, output.stdout.split()[-2:])
    return imported, wall


CLUSTER_CHILD = r"""
import sys, time, tempfile, warnings

if __name__ == "__main__":
    # Everything under this guard: the cluster's worker processes are spawned
    # and import this script as a module, which would otherwise make its data
    # again in every worker (it did before 2026-12-06, adding seconds).
    import numpy as np
    import zarr
    from dask.distributed import Client, LocalCluster

    # The job's library is imported at the top, as a script does, before the
    # span that is timed (from cluster creation); its import is timed apart.
    imported = time.perf_counter()
    if sys.argv[1] == "floor":
        import dask.array as da
    else:
        from streamgmm import GaussianMixture
    imported = time.perf_counter() - imported

    rng = np.random.default_rng(0)
    X = rng.normal(size=(100_000, 4)) + rng.integers(0, 3, size=(100_000, 1)) * 4.0
    store = tempfile.mkdtemp() + "/rows.zarr"
    zarr.create_array(store, data=X, chunks=(25_000, 4))
    started = time.perf_counter()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster):
        ready = time.perf_counter() - started
        if sys.argv[1] == "floor":
            rows = da.from_zarr(store)
            (rows.T @ rows).compute()
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                GaussianMixture(3, random_state=0).fit(store)
        print(imported, ready, time.perf_counter() - started)
"""


def cluster_fit(tree: Path, cache: str, job: str = "fit") -> tuple[float, float, float]:
    """Seconds the job's import took in the script (before the timed span), and
    from ``LocalCluster`` creation to the cluster and ``Client`` being ready and
    to the end of ``job`` on it: a 2-worker cluster fit (``"fit"``) or, for
    comparison, the least a Dask job on that store costs on fresh workers
    (``"floor"``: ``X^T X`` of the same Zarr store with ``dask.array``)."""
    environment = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=str(tree))
    environment.pop("STREAMGMM_KERNELS", None)
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "cluster_fit.py"
        script.write_text(CLUSTER_CHILD)
        output = subprocess.run([sys.executable, str(script), job], env=environment, cwd=tree,
                                capture_output=True, text=True, check=True)
    imported, ready, done = output.stdout.split()[-3:]
    return float(imported), float(ready), float(done)


COVERAGE_CHILD = r"""
import warnings
import numpy as np
from numba.core import event
from streamgmm import GaussianMixture
from streamgmm.datasets import make_mixture
from streamgmm.estep import statistics_from_responsibilities

recorder = event.RecordingListener()
event.register("numba:compile", recorder)
X = make_mixture(20_000, n_components=3, n_features=4, random_state=0)[0]
warnings.simplefilter("ignore")
for cov in ("full", "tied", "diag", "spherical"):
    for algorithm in ("batch", "online"):
        model = GaussianMixture(3, covariance_type=cov, algorithm=algorithm, max_iter=3,
                                random_state=0).fit(X)
        model.score_samples(X[:100])
        model.partial_fit(X[:1000])
GaussianMixture(3, float32_products=True, max_iter=3, random_state=0).fit(X.astype(np.float32))
GaussianMixture(3, max_iter=3, random_state=0).fit(X, sample_weight=np.ones(len(X)))
statistics_from_responsibilities(X, np.full((len(X), 3), 1 / 3), np.zeros((3, 4)), "full")
gappy = X.copy()
gappy[np.random.default_rng(0).random(X.shape) < 0.1] = np.nan
for cov in ("full", "tied", "diag", "spherical"):
    GaussianMixture(3, covariance_type=cov, missing="marginalize", max_iter=3,
                    random_state=0).fit(gappy)
print(" ".join(sorted({e.data["dispatcher"].py_func.__name__
                       for _, e in recorder.buffer if e.is_start})) or "none")
"""


def compiled_after_fill(tree: Path, cache: str) -> str:
    """The kernels a process compiles on a filled cache, running every kind of
    fit with the compiled tier ("none" when the fill covered them all)."""
    environment = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=str(tree),
                       STREAMGMM_KERNELS="compiled")
    output = subprocess.run([sys.executable, "-c", COVERAGE_CHILD], env=environment, cwd=tree,
                            capture_output=True, text=True, check=True)
    return output.stdout.split("\n")[-2]


def fill_cache(tree: Path, cache: str | None = None) -> float:
    """Seconds ``streamgmm compile`` takes on an empty cache (``cache``, or a
    temporary folder)."""
    with tempfile.TemporaryDirectory() as temporary:
        environment = dict(os.environ, NUMBA_CACHE_DIR=cache or temporary,
                           PYTHONPATH=str(tree))
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "from streamgmm.cli import main; main()",
                        "compile"], env=environment, cwd=tree, check=True,
                       capture_output=True)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tree", type=Path, default=ROOT)
    parser.add_argument("--cases", default=",".join(CASES), help="'' for none")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--warm", action="store_true")
    parser.add_argument("--fill", action="store_true")
    parser.add_argument("--cluster", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = {"tree": str(args.tree), "load": os.getloadavg()[0], "cases": {}}
    for case in filter(None, args.cases.split(",")):
        walls, imports, warm = [], [], []
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as cache:
                imported, wall = run_case(case, args.tree, cache)
                walls.append(wall)
                imports.append(imported)
                if args.warm:
                    warm.append(run_case(case, args.tree, cache)[1])
        results["cases"][case] = {"cold_s": walls, "import_s": imports, "warm_s": warm}
        print(f"{case:12s} cold {statistics.median(walls):6.2f} s (import "
              f"{statistics.median(imports):.2f} s)"
              + (f", warm {statistics.median(warm):6.2f} s" if warm else ""), flush=True)
    if args.cluster:
        with tempfile.TemporaryDirectory() as cache:
            results["cluster_floor_s"] = cluster_fit(args.tree, cache, "floor")
            print("2-worker LocalCluster, X^T X of the store with dask.array (the floor): "
                  "import {:.2f} s, ready {:.2f} s, done {:.2f} s".format(
                      *results["cluster_floor_s"]), flush=True)
            results["cluster_cold_s"] = cluster_fit(args.tree, cache)
            print("2-worker LocalCluster, 100,000 rows, empty cache: import {:.2f} s, "
                  "ready {:.2f} s, fitted {:.2f} s".format(*results["cluster_cold_s"]),
                  flush=True)
    if args.fill or args.cluster:
        with tempfile.TemporaryDirectory() as cache:
            results["fill_s"] = fill_cache(args.tree, cache)
            print(f"streamgmm compile on an empty cache: {results['fill_s']:.1f} s", flush=True)
            results["compiled_after_fill"] = compiled_after_fill(args.tree, cache)
            print("kernels a process then compiles for every kind of fit: "
                  f"{results['compiled_after_fill']}", flush=True)
            if args.cluster:
                results["cluster_filled_s"] = cluster_fit(args.tree, cache)
                print("2-worker LocalCluster, 100,000 rows, cache filled by streamgmm "
                      "compile: import {:.2f} s, ready {:.2f} s, fitted {:.2f} s".format(
                          *results["cluster_filled_s"]))
    results["load_after"] = os.getloadavg()[0]
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
