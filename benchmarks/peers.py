"""Peers at their best: Spark ML's and pomegranate's Gaussian mixtures against
streamgmm and scikit-learn, per EM iteration and to convergence, in one process.

    python benchmarks/peers.py [--rows N] [--extra M] [--tol T] [--max-iter I]
                               [--peers spark,pomegranate] [--json out.json]

Install the peers with ``pip install torch==2.13.0`` (the CPU build; before
pomegranate, or pip pulls a CUDA build) and ``pip install -e '.[peers]'``;
Spark needs Java 17. Each peer runs as its documentation recommends:

* Spark: ``pyspark.ml.clustering.GaussianMixture`` on a cached DataFrame with
  one vector column, ``local[cores]``, Spark's own BLAS (its Java BLAS unless a
  native ``libblas.so.3`` is installed, which it would then prefer). Spark ML
  takes no initial model: it starts from means of 5 random rows and diagonal
  covariances, so its start differs from everyone else's. Per iteration:
  ``(time(maxIter = 1 + M) - time(maxIter = 1)) / M`` with ``tol = 0``.
* pomegranate 1.x: ``GeneralMixtureModel`` of K full-covariance ``Normal``
  components ``.fit(tensor)`` on CPU torch with ``cores`` threads, the data handed
  over once as a tensor, in float32 (torch's default) and in float64.

streamgmm, scikit-learn and pomegranate start from ``run.py``'s common start.
"To convergence" stops every library when the per-sample mean log-likelihood
changes by less than ``--tol`` (scikit-learn's rule and default, 1e-3); Spark
and pomegranate test the change of the total, so they get ``tol * N``.
This module imports without the peers: each imports its library inside its
functions, and ``run.py --peers`` calls the per-iteration functions.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

os.environ.setdefault("STREAMGMM_KERNELS", "compiled")
"""Time the compiled kernels (a fresh process would run them interpreted until hot)."""

PEERS = ("spark", "pomegranate")


class Clocks:
    """Wall seconds and CPU seconds (this process, plus ``processes`` and their
    children, e.g. Spark's JVM) of one timed call: on a machine shared with other
    jobs the CPU seconds stay comparable when wall times do not."""

    def __init__(self, processes=()):
        self.processes = list(processes)

    def cpu(self) -> float:
        total = time.process_time()
        for process in self.processes:
            for member in (process, *process.children(recursive=True)):
                times = member.cpu_times()
                total += times.user + times.system
        return total

    def time(self, call):
        """``(wall, cpu, result)`` of ``call()``."""
        wall, cpu = time.perf_counter(), self.cpu()
        result = call()
        return time.perf_counter() - wall, self.cpu() - cpu, result


def per_iteration(clocks: Clocks, fit, extra: int, repeats: int = 1) -> dict:
    """Wall and CPU seconds per iteration, ``(time(1 + extra) - time(1)) / extra``
    with ``fit(iterations)``, each time the best of ``repeats``, after one
    untimed ``fit(1)``."""
    fit(1)
    best = {1: [np.inf, np.inf], 1 + extra: [np.inf, np.inf]}
    for _ in range(repeats):
        for iterations, kept in best.items():
            wall, cpu, _ = clocks.time(lambda iterations=iterations: fit(iterations))
            kept[0], kept[1] = min(kept[0], wall), min(kept[1], cpu)
    return {
        "seconds_per_iteration": max(best[1 + extra][0] - best[1][0], 1e-9) / extra,
        "cpu_seconds_per_iteration": max(best[1 + extra][1] - best[1][1], 1e-9) / extra,
    }


# --------------------------------------------------------------------- Spark
def spark_session(cores: int):
    """A local Spark session on ``cores`` task threads, its UI off."""
    from pyspark.sql import SparkSession

    # Spark's advice for a native BLAS: one BLAS thread per task (read when the
    # JVM starts; NumPy's OpenBLAS in this process has already read its own).
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    spark = (
        SparkSession.builder.master(f"local[{cores}]")
        .config("spark.driver.memory", "6g")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def spark_blas(spark) -> str:
    """The class of the BLAS that Spark ML's linear algebra uses."""
    blas = spark.sparkContext._jvm.dev.ludovic.netlib.blas.BLAS.getInstance()
    return str(blas.getClass().getName())


def cached_frame(spark, X: np.ndarray, directory: Path):
    """X as a cached DataFrame with one vector column ``features`` (written as
    Parquet and assembled by Spark: far faster than sending 10^6 Python rows)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyspark.ml.feature import VectorAssembler

    names = [f"x{j}" for j in range(X.shape[1])]
    path = directory / "rows.parquet"
    pq.write_table(pa.table({name: X[:, j] for j, name in enumerate(names)}), path)
    columns = spark.read.parquet(str(path)).repartition(spark.sparkContext.defaultParallelism)
    frame = VectorAssembler(inputCols=names, outputCol="features").transform(columns)
    frame = frame.select("features").cache()
    frame.count()
    return frame


def spark_fit(frame, n_components: int, max_iter: int, tol: float, seed: int = 0):
    """Iterations and total log-likelihood of one Spark ML fit."""
    from pyspark.ml.clustering import GaussianMixture

    estimator = GaussianMixture(k=n_components, maxIter=max_iter, tol=tol, seed=seed)
    summary = estimator.fit(frame).summary
    return int(summary.numIter), float(summary.logLikelihood)


def spark_measurements(X, n_components: int, extra: int, tol: float, max_iter: int,
                       cores: int = 2) -> dict:
    """Spark ML per iteration (two ``maxIter`` values, ``tol = 0``) and to
    convergence (``tol * N`` on the total log-likelihood), on one cached DataFrame."""
    import psutil

    spark = spark_session(cores)
    try:
        clocks = Clocks([psutil.Process(spark.sparkContext._gateway.proc.pid)])
        with tempfile.TemporaryDirectory(prefix="streamgmm-spark-") as directory:
            frame = cached_frame(spark, X, Path(directory))

            def fit(iterations):
                ran, _ = spark_fit(frame, n_components, iterations, 0.0)
                if ran != iterations:
                    raise RuntimeError(f"Spark ran {ran} iterations, not {iterations}")

            timing = per_iteration(clocks, fit, extra)
            wall, cpu, (n_iter, total) = clocks.time(
                lambda: spark_fit(frame, n_components, max_iter, tol * len(X)))
            return {
                "api": "pyspark.ml.clustering.GaussianMixture, cached DataFrame",
                "dtype": "float64", "blas": spark_blas(spark), "threads": f"local[{cores}]",
                **timing, "converged_seconds": wall, "converged_cpu_seconds": cpu,
                "n_iter": n_iter, "mean_log_likelihood": total / len(X),
                "start": "Spark's own (means of 5 random rows, seed 0)",
            }
    finally:
        spark.stop()


def spark_seconds_per_iteration(X, start, extra: int, cores: int = 2) -> float:
    """Time per iteration of Spark ML's GaussianMixture (see
    :func:`spark_measurements`; only ``start``'s K is used: Spark ML takes no
    initial model)."""
    return spark_measurements(X, start["n_components"], extra, 0.0, 1, cores)[
        "seconds_per_iteration"]


# --------------------------------------------------------------- pomegranate
def pomegranate_mixture(start, max_iter: int, tol: float, dtype=np.float64):
    """A pomegranate ``GeneralMixtureModel`` of K full-covariance ``Normal``
    components set to ``start`` (priors, means, covariances = inverse precisions)
    in ``dtype``, so that ``fit`` runs no initialisation of its own;
    ``inertia=0`` applies each M-step in full. Build and fit it while torch's
    default dtype is ``dtype``: the mixture allocates its buffers in it."""
    import torch
    from pomegranate.distributions import Normal
    from pomegranate.gmm import GeneralMixtureModel

    if start["covariance_type"] != "full":
        raise ValueError("the pomegranate peer is measured for full covariances only")
    torch_dtype = torch.float32 if np.dtype(dtype) == np.float32 else torch.float64
    covariances = np.linalg.inv(np.asarray(start["precisions_init"], dtype=np.float64))
    covariances = (covariances + np.swapaxes(covariances, 1, 2)) / 2
    components = [
        Normal(means=torch.tensor(mean, dtype=torch_dtype),
               covs=torch.tensor(cov, dtype=torch_dtype), covariance_type="full")
        for mean, cov in zip(np.asarray(start["means_init"]), covariances, strict=True)
    ]
    weights = np.asarray(start["weights_init"], dtype=np.float64)
    return GeneralMixtureModel(
        components, priors=torch.tensor(weights / weights.sum(), dtype=torch_dtype),
        max_iter=max_iter, tol=tol, inertia=0.0,
    )


class _Torch:
    """torch set to ``cores`` threads and ``dtype`` as the default dtype, restored
    on exit."""

    def __init__(self, cores: int, dtype):
        self.cores, self.dtype = cores, dtype

    def __enter__(self):
        import torch

        self.saved = torch.get_num_threads(), torch.get_default_dtype()
        torch.set_num_threads(self.cores)
        torch.set_default_dtype(
            torch.float32 if np.dtype(self.dtype) == np.float32 else torch.float64)
        return torch

    def __exit__(self, *exc):
        import torch

        torch.set_num_threads(self.saved[0])
        torch.set_default_dtype(self.saved[1])


def pomegranate_fit(data, start, max_iter: int, tol: float, dtype):
    """E-steps and the last E-step's total log-likelihood of one fit of a fresh
    model (counted by wrapping ``summarize``; pomegranate stops after the E-step
    whose improvement is below ``tol``, as scikit-learn counts its ``n_iter_``).
    Building the model takes microseconds; it is timed with the fit."""
    model = pomegranate_mixture(start, max_iter, tol, dtype)
    totals = []
    summarize = model.summarize

    def counted(X, *args, **kwargs):
        totals.append(float(summarize(X, *args, **kwargs)))
        return totals[-1]

    model.summarize = counted
    model.fit(data)
    return len(totals), totals[-1]


def pomegranate_measurements(X, start, extra: int, tol: float, max_iter: int,
                             cores: int = 2, dtype=np.float64) -> dict:
    """pomegranate per iteration (``tol = -inf``) and to convergence (``tol * N``
    on the total log-likelihood), the data one tensor sharing a ``dtype`` copy of X."""
    clocks = Clocks()
    with _Torch(cores, dtype) as torch:
        data = torch.from_numpy(np.ascontiguousarray(X, dtype=dtype))
        timing = per_iteration(
            clocks, lambda iterations: pomegranate_fit(data, start, iterations, -np.inf, dtype),
            extra)
        wall, cpu, (n_iter, total) = clocks.time(
            lambda: pomegranate_fit(data, start, max_iter, tol * len(X), dtype))
        return {
            "api": "pomegranate.gmm.GeneralMixtureModel(...).fit(tensor)",
            "dtype": np.dtype(dtype).name, "blas": f"torch {torch.__version__} CPU",
            "threads": f"torch.set_num_threads({cores})", **timing,
            "converged_seconds": wall, "converged_cpu_seconds": cpu, "n_iter": n_iter,
            "mean_log_likelihood": total / len(X), "start": "common",
        }


def pomegranate_seconds_per_iteration(X, start, extra: int, cores: int = 2,
                                      dtype=np.float64) -> float:
    """Time per iteration of pomegranate (see :func:`pomegranate_measurements`)."""
    return pomegranate_measurements(X, start, extra, 0.0, 1, cores, dtype)[
        "seconds_per_iteration"]


# ------------------------------------------------- streamgmm and scikit-learn
def estimator_measurements(estimator_class, X, start, extra: int, tol: float, max_iter: int,
                           repeats: int = 1) -> dict:
    """A scikit-learn-style estimator per iteration (warm-started fits of 1 and
    ``1 + extra`` iterations from ``start``, ``tol = 0``, as ``run.py`` times it)
    and to convergence (one fit from ``start`` with ``tol``)."""
    clocks = Clocks()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = estimator_class(warm_start=True, **dict(start, max_iter=1))

        def fit(iterations):
            model.max_iter = iterations
            model.fit(X)

        timing = per_iteration(clocks, fit, extra, repeats)
        wall, cpu, model = clocks.time(
            lambda: estimator_class(**dict(start, tol=tol, max_iter=max_iter)).fit(X))
    return {"api": f"{estimator_class.__module__}.GaussianMixture", "dtype": "float64",
            **timing, "converged_seconds": wall, "converged_cpu_seconds": cpu,
            "n_iter": int(model.n_iter_), "mean_log_likelihood": float(model.lower_bound_),
            "start": "common"}


def main(argv=None) -> int:
    from run import machine_description, starting_point
    from sklearn.mixture import GaussianMixture as SklearnMixture

    from streamgmm import GaussianMixture
    from streamgmm.datasets import make_mixture

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--extra", type=int, default=3, help="M of the per-iteration time")
    parser.add_argument("--tol", type=float, default=1e-3)
    parser.add_argument("--max-iter", type=int, default=300)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--peers", default="spark,pomegranate")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    began = time.perf_counter()
    machine = machine_description()
    X, _, _ = make_mixture(args.rows, n_components=8, n_features=16, separation=3.0,
                           random_state=0)
    start = starting_point(X, 8, "full")
    results = {}
    for name, estimator_class, repeats in (("streamgmm", GaussianMixture, 3),
                                           ("scikit-learn", SklearnMixture, 1)):
        results[name] = estimator_measurements(
            estimator_class, X, start, args.extra, args.tol, args.max_iter, repeats)
        print(name, json.dumps(results[name]), flush=True)
    peers = [peer for peer in args.peers.split(",") if peer]
    if "pomegranate" in peers:
        for dtype in (np.float32, np.float64):
            name = f"pomegranate {np.dtype(dtype).name}"
            results[name] = pomegranate_measurements(
                X, start, args.extra, args.tol, args.max_iter, args.cores, dtype)
            print(name, json.dumps(results[name]), flush=True)
    if "spark" in peers:
        results["Spark ML"] = spark_measurements(
            X, 8, args.extra, args.tol, args.max_iter, args.cores)
        print("Spark ML", json.dumps(results["Spark ML"]), flush=True)
    ours = results["streamgmm"]
    print(f"\n{'library':<22} {'s/it':>7} {'x ours':>7} {'CPU s/it':>8} {'x ours':>7} "
          f"{'to conv. s':>10} {'x ours':>7} {'CPU s':>7} {'x ours':>7} {'iters':>6} "
          f"{'mean LL':>10}")
    for name, result in results.items():
        cells = []
        for key, width in (("seconds_per_iteration", 7), ("cpu_seconds_per_iteration", 8),
                           ("converged_seconds", 10), ("converged_cpu_seconds", 7)):
            cells.append(f"{result[key]:{width}.3f} {result[key] / ours[key]:7.1f}")
        print(f"{name:<22} {' '.join(cells)} {result['n_iter']:6d} "
              f"{result['mean_log_likelihood']:10.5f}")
    elapsed = time.perf_counter() - began
    load = os.getloadavg()
    print(f"\nload average at start {machine['load_average_at_start']}, at end {load}; "
          f"total {elapsed:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({
            "command": "peers.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "rows": args.rows, "tol": args.tol, "machine": machine, "load_average_at_end": load,
            "results": results, "elapsed_seconds": elapsed,
        }, indent=2, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
