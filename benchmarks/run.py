"""Time per EM iteration: streamgmm against scikit-learn, in one process.

Usage::

    python benchmarks/run.py [--quick | --size default|large] [--json out.json]
                             [--skip-large-store] [--repeats R]

Every case fits both libraries on the same data from the same start
(``weights_init``, ``means_init``, ``precisions_init``, ``tol=0``) and times
``m`` extra warm-started iterations, ``(time(1 + m) - time(1)) / m``, so that
set-up, initialisation and any final E-step cancel out. The achieved GFLOP/s
count the ``4 N K d^2`` operations of a full-covariance iteration (``~10 N K d``
for diag) against the float64 matrix-multiply rate measured in the same run.
The out-of-core cases read a compressed Zarr store; peak memory of a fit over a
store of at least 4 GB is measured in a subprocess.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SklearnMixture
from threadpoolctl import threadpool_info

from streamgmm import GaussianMixture
from streamgmm.covariance import precision_cholesky_from_precisions
from streamgmm.datasets import make_mixture, random_mixture, write_mixture_zarr
from streamgmm.engine import EMRun, EMSettings, run_em
from streamgmm.estep import GaussianParameters
from streamgmm.inputs import as_rows, row_store_compressor
from streamgmm.threads import blas_threads_for_dask

os.environ.setdefault("STREAMGMM_KERNELS", "compiled")
"""Time the compiled kernels (a fresh process would run them interpreted until hot)."""

SIZES = {
    # name: (rows for d=16, rows for d=64, extra iterations, rows of the large store)
    "quick": (20_000, 5_000, 1, 0),
    "default": (1_000_000, 250_000, 3, 32_000_000),
    "large": (1_000_000, 1_000_000, 3, 64_000_000),
}
TARGETS = {
    "full d=16 K=8 float64": 8.0,
    "diag d=16 K=8 float64": 5.0,
    "full d=64 K=16 float64": 5.0,
}


@dataclass
class Case:
    name: str
    n_samples: int
    n_features: int
    n_components: int
    covariance_type: str
    dtype: str
    gflop: float
    seconds: dict = field(default_factory=dict)
    notes: str = ""


def matmul_rate(dtype, size: int, repeats: int = 3) -> float:
    """Best GFLOP/s of a square product of ``size`` in ``dtype``."""
    a = np.random.default_rng(0).standard_normal((size, size)).astype(dtype)
    a @ a
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def iteration_flop(n, d, k, covariance_type) -> float:
    """Floating-point operations of one EM iteration (products only)."""
    if covariance_type == "full":
        return 4.0 * n * k * d * d
    return 10.0 * n * k * d


def starting_point(X, n_components, covariance_type):
    """Parameters from two scikit-learn iterations on the first 20,000 rows."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = SklearnMixture(
            n_components, covariance_type=covariance_type, max_iter=2, random_state=0
        ).fit(np.asarray(X[:20_000], dtype=np.float64))
    return dict(
        n_components=n_components,
        covariance_type=covariance_type,
        weights_init=start.weights_,
        means_init=start.means_,
        precisions_init=start.precisions_,
        tol=0.0,
    )


def seconds_per_iteration(estimator_class, data, start, extra, repeats) -> float:
    """``(time(1 + extra) - time(1)) / extra`` of warm-started fits, each time the
    best of ``repeats`` (the best of the differences would favour a slow ``time(1)``)."""
    one, more = np.inf, np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = estimator_class(max_iter=1, warm_start=True, **start).fit(data)
        for _ in range(repeats):
            model.max_iter = 1
            began = time.perf_counter()
            model.fit(data)
            one = min(one, time.perf_counter() - began)
            model.max_iter = 1 + extra
            began = time.perf_counter()
            model.fit(data)
            more = min(more, time.perf_counter() - began)
    return max(more - one, 1e-9) / extra


def kernel_seconds_per_iteration(X, start, extra, repeats, float32_products=False) -> float:
    """Time per iteration of the estimator's own EM engine (:func:`streamgmm.engine.run_em`:
    one shared pass of ``chunk_statistics`` and one M-step per iteration) with options the
    estimator does not expose yet, e.g. ``float32_products``."""
    cov = start["covariance_type"]
    params = GaussianParameters(
        start["weights_init"], start["means_init"],
        precision_cholesky_from_precisions(start["precisions_init"], cov), cov,
    )
    array = as_rows(X).array
    settings = EMSettings(tol=0.0, max_iter=extra, reg_covar=1e-6,
                          float32_products=float32_products)
    best = np.inf
    with blas_threads_for_dask([array]):
        for _ in range(repeats):
            run = EMRun(params, None)
            began = time.perf_counter()
            run_em(array, [run], settings)
            best = min(best, (time.perf_counter() - began) / extra)
    return best


def in_memory_case(name, n, d, k, cov, dtype, extra, repeats, peers=("sklearn",)):
    X, _, _ = make_mixture(n, n_components=k, n_features=d, separation=3.0, random_state=0)
    X = X.astype(dtype)
    start = starting_point(X, k, cov)
    case = Case(name, n, d, k, cov, np.dtype(dtype).name, iteration_flop(n, d, k, cov) / 1e9)
    case.seconds["streamgmm"] = seconds_per_iteration(GaussianMixture, X, start, extra, repeats)
    if "sklearn" in peers:
        case.seconds["sklearn"] = seconds_per_iteration(SklearnMixture, X, start, extra, 1)
    return case, X, start


ZARR_CASES = [
    # (codec, rows per chunk): "zstd" is Zarr's default compressor (level 0).
    # Chunks of 32 MiB (262,144 rows of 16 float64) read 2 to 5 times slower than
    # 16 MiB ones: glibc serves buffers of 32 MiB by fresh mmap, so every chunk's
    # buffers page-fault anew (docs/benchmarks.md).
    ("zstd", 262_144),
    ("zstd", 131_072),
    ("Blosc-LZ4", 131_072),
]


def zarr_case(X, start, path, extra, repeats, in_memory_seconds, codec="zstd",
              chunk_rows=131_072):
    """The in-memory data written as a compressed Zarr store and fitted from disk."""
    import zarr

    compressors = "auto"
    if codec == "Blosc-LZ4":
        compressors = row_store_compressor()
    store = zarr.create_array(
        store=str(path), shape=X.shape, chunks=(chunk_rows, X.shape[1]), dtype=X.dtype,
        overwrite=True, compressors=compressors,
    )
    store[:] = X
    n, d = X.shape
    k = start["n_components"]
    chunk_mib = chunk_rows * d * X.dtype.itemsize / 2**20
    case = Case(
        f"full d=16 K=8 float64, Zarr on disk ({codec}, {chunk_mib:g} MiB chunks)", n, d, k,
        "full", X.dtype.name, iteration_flop(n, d, k, "full") / 1e9,
    )
    case.seconds["streamgmm"] = seconds_per_iteration(
        GaussianMixture, str(path), start, extra, repeats
    )
    case.seconds["streamgmm in memory"] = min(
        in_memory_seconds, seconds_per_iteration(GaussianMixture, X, start, extra, repeats)
    )
    stored = sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())
    case.notes = f"store {stored / 2**20:.0f} MiB compressed, {X.nbytes / 2**20:.0f} MiB raw"
    return case


LARGE_STORE_FIT = """
import json, sys, time, warnings
import numpy as np
from streamgmm import GaussianMixture
path, start_file = sys.argv[1], sys.argv[2]
start = {k: (np.asarray(v) if isinstance(v, list) else v)
         for k, v in json.load(open(start_file)).items()}
warnings.simplefilter("ignore")
began = time.perf_counter()
model = GaussianMixture(max_iter=2, **start).fit(path)
seconds = time.perf_counter() - began
# VmHWM starts afresh at exec; ru_maxrss would carry over the parent's peak
peak = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status")
            if line.startswith("VmHWM"))
print(json.dumps({"seconds": seconds, "n_iter": int(model.n_iter_), "peak_rss_bytes": peak}))
"""


def large_store_case(n, start, directory):
    """Peak resident memory of a subprocess fitting 2 iterations over a large store."""
    d, k = start["means_init"].shape[1], start["n_components"]
    truth = random_mixture(k, d, separation=3.0, random_state=0)
    path = Path(directory) / "large.zarr"
    began = time.perf_counter()
    write_mixture_zarr(path, n, truth, chunk_rows=131_072)
    written = time.perf_counter() - began
    start_file = Path(directory) / "start.json"
    start_file.write_text(json.dumps({
        key: value.tolist() if isinstance(value, np.ndarray) else value
        for key, value in start.items()
    }))
    result = subprocess.run(
        [sys.executable, "-c", LARGE_STORE_FIT, str(path), str(start_file)],
        check=True, capture_output=True, text=True, env=dict(os.environ),
    )
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    stored = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    case = Case(
        "full d=16 K=8 float64, large Zarr store (subprocess)", n, d, k, "full", "float64",
        iteration_flop(n, d, k, "full") / 1e9,
    )
    case.seconds["streamgmm"] = measured["seconds"] / measured["n_iter"]
    case.notes = (
        f"raw {n * d * 8 / 1e9:.1f} GB, stored {stored / 1e9:.1f} GB, written in "
        f"{written:.0f} s; peak RSS {measured['peak_rss_bytes'] / 2**20:.0f} MiB "
        "(seconds include initial set-up: 2 iterations)"
    )
    case.seconds["peak_rss_mib"] = measured["peak_rss_bytes"] / 2**20
    return case


def machine_description() -> dict:
    model = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    blas = [
        {key: info.get(key) for key in ("internal_api", "version", "architecture", "num_threads",
                                         "filepath")}
        for info in threadpool_info()
        if info.get("user_api") == "blas"
    ]
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas,
        "load_average_at_start": os.getloadavg(),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
        "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE"),
    }


def table(cases, rates) -> str:
    """The cases as text; "% of matmul" is against the float32 rate for cases that
    compute in float32 (``float32_products``), else the float64 rate."""
    lines = [
        f"{'case':<52} {'N':>10} {'streamgmm s/it':>15} {'sklearn s/it':>13} "
        f"{'speed-up':>9} {'GFLOP/s':>8} {'% of matmul':>11}  notes"
    ]
    for case in cases:
        ours = case.seconds.get("streamgmm")
        theirs = case.seconds.get("sklearn")
        ratio = f"{theirs / ours:9.1f}" if theirs else " " * 9
        if "streamgmm in memory" in case.seconds:
            ratio = f"{ours / case.seconds['streamgmm in memory']:8.2f}m"
        rate = case.gflop / ours
        peak = rates["float32" if "float32_products" in case.name else "float64"]
        lines.append(
            f"{case.name:<52} {case.n_samples:>10,} {ours:>15.3f} "
            f"{theirs if theirs else float('nan'):>13.3f} {ratio} {rate:>8.1f} "
            f"{100 * rate / peak:>10.0f}%  {case.notes}"
        )
    lines.append("speed-up: sklearn / streamgmm; 'm' marks Zarr / in-memory time per iteration.")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for CI")
    parser.add_argument("--size", choices=["default", "large"], default="default")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument(
        "--skip-large-store", action="store_true",
        help="skip the >= 4 GB store (writing it takes minutes)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="best of R for streamgmm")
    parser.add_argument(
        "--peers", default="",
        help="comma-separated optional peers: spark (pyspark, Java), pomegranate (torch); "
        "benchmarks/peers.py measures them in full (float32 too, and to convergence)",
    )
    args = parser.parse_args(argv)
    size = "quick" if args.quick else args.size
    n16, n64, extra, n_large = SIZES[size]
    repeats = 1 if args.quick else args.repeats
    began = time.perf_counter()
    machine = machine_description()
    rate64 = matmul_rate(np.float64, 500 if args.quick else 2000)
    rate32 = matmul_rate(np.float32, 500 if args.quick else 2000)
    print(f"float64 matmul {rate64:.0f} GFLOP/s, float32 {rate32:.0f} GFLOP/s", flush=True)
    rates = {"float64": rate64, "float32": rate32}

    cases = []
    full64, X, start = in_memory_case(
        "full d=16 K=8 float64", n16, 16, 8, "full", np.float64, extra, repeats
    )
    cases.append(full64)
    if "spark" in args.peers.split(","):
        from peers import spark_seconds_per_iteration

        spark = spark_seconds_per_iteration(X, start, extra)
        full64.seconds["spark"] = spark
        ratio = spark / full64.seconds["streamgmm"]
        full64.notes = f"Spark ML (DataFrame) local[2] {spark:.2f} s/it: {ratio:.1f}x"
    if "pomegranate" in args.peers.split(","):
        from peers import pomegranate_seconds_per_iteration

        pomegranate = pomegranate_seconds_per_iteration(X, start, extra)
        full64.seconds["pomegranate"] = pomegranate
        ratio = pomegranate / full64.seconds["streamgmm"]
        note = f"pomegranate float64 (torch, 2 threads) {pomegranate:.2f} s/it: {ratio:.1f}x"
        full64.notes = f"{full64.notes}; {note}" if full64.notes else note
    print(table(cases[-1:], rates).splitlines()[1], flush=True)
    full32, X32, _ = in_memory_case(
        "full d=16 K=8 float32", n16, 16, 8, "full", np.float32, extra, repeats
    )
    full32.notes = f"{full64.seconds['streamgmm'] / full32.seconds['streamgmm']:.2f}x our float64"
    cases.append(full32)
    print(table(cases[-1:], rates).splitlines()[1], flush=True)
    fast32 = Case(
        "full d=16 K=8 float32, float32_products=True", n16, 16, 8, "full", "float32",
        full32.gflop,
    )
    float32_loop, float64_loop = np.inf, np.inf
    for _ in range(repeats + 1):
        float32_loop = min(float32_loop, kernel_seconds_per_iteration(
            X32, start, extra, 1, float32_products=True))
        float64_loop = min(float64_loop, kernel_seconds_per_iteration(X, start, extra, 1))
    fast32.seconds["streamgmm"] = float32_loop
    fast32.seconds["streamgmm float64 loop"] = float64_loop
    fast32.notes = (
        f"{float64_loop / float32_loop:.2f}x the same loop on the float64 data "
        f"({float64_loop:.3f} s), measured alternately"
    )
    cases.append(fast32)
    print(table(cases[-1:], rates).splitlines()[1], flush=True)
    for spec in (
        ("diag d=16 K=8 float64", n16, 16, 8, "diag", np.float64),
        ("full d=64 K=16 float64", n64, 64, 16, "full", np.float64),
        ("tied d=16 K=8 float64", n16, 16, 8, "tied", np.float64),
    ):
        case, _, _ = in_memory_case(*spec, extra, repeats)
        cases.append(case)
        print(table(cases[-1:], rates).splitlines()[1], flush=True)
    with tempfile.TemporaryDirectory(prefix="streamgmm-bench-") as directory:
        for codec, chunk_rows in ZARR_CASES:
            cases.append(
                zarr_case(X, start, Path(directory) / "data.zarr", extra, repeats,
                          full64.seconds["streamgmm"], codec,
                          max(1, chunk_rows * n16 // 1_000_000))
            )
            print(table(cases[-1:], rates).splitlines()[1], flush=True)
        if n_large and not args.skip_large_store:
            cases.append(large_store_case(n_large, start, directory))
            print(table(cases[-1:], rates).splitlines()[1], flush=True)

    print()
    print(table(cases, rates))
    checks = {}
    for case in cases:
        if case.name in TARGETS and "sklearn" in case.seconds:
            speedup = case.seconds["sklearn"] / case.seconds["streamgmm"]
            checks[case.name] = {"speed_up": speedup, "target": TARGETS[case.name],
                                 "met": speedup >= TARGETS[case.name]}
    if "spark" in full64.seconds:
        speedup = full64.seconds["spark"] / full64.seconds["streamgmm"]
        checks["Spark ML full d=16 K=8 float64"] = {"speed_up": speedup, "target": 4.0,
                                                       "met": speedup >= 4.0}
    if "pomegranate" in full64.seconds:
        speedup = full64.seconds["pomegranate"] / full64.seconds["streamgmm"]
        checks["pomegranate full d=16 K=8 float64"] = {"speed_up": speedup, "target": 6.0,
                                                       "met": speedup >= 6.0}
    float32_gain = fast32.seconds["streamgmm float64 loop"] / fast32.seconds["streamgmm"]
    checks["float32_products vs float64 (streamgmm)"] = {"speed_up": float32_gain, "target": 1.5,
                                                "met": float32_gain >= 1.5}
    for zarr in (c for c in cases if "Zarr on disk" in c.name):
        zarr_ratio = zarr.seconds["streamgmm"] / zarr.seconds["streamgmm in memory"]
        store = zarr.name[zarr.name.index("(") + 1 : -1]
        checks[f"Zarr / in-memory ({store})"] = {
            "ratio": zarr_ratio, "target": 1.5, "met": zarr_ratio <= 1.5,
        }
    large = next((c for c in cases if "large Zarr" in c.name), None)
    if large is not None:
        checks["large store peak RSS (MiB)"] = {
            "value": large.seconds["peak_rss_mib"], "target": 1024,
            "met": large.seconds["peak_rss_mib"] < 1024,
        }
    print()
    for what, check in checks.items():
        print(f"{what:<40} {'met' if check['met'] else 'NOT met'}  {check}")
    elapsed = time.perf_counter() - began
    print(f"\ntotal {elapsed:.0f} s; peak RSS of this process "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    if args.json:
        args.json.write_text(json.dumps({
            "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
            "size": size,
            "machine": machine,
            "matmul_gflops": rates,
            "cases": [asdict(case) for case in cases],
            "targets": checks,
            "elapsed_seconds": elapsed,
        }, indent=2, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
