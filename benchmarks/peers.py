"""Optional peers for ``run.py``: Spark MLlib's GaussianMixture (pyspark, Java 17)
and pomegranate's GeneralMixtureModel (pomegranate 1.x on CPU PyTorch).

Not needed in CI; ``run.py --peers spark,pomegranate`` uses them when they import.
Each peer imports its library inside its function, so this module imports without them.
"""

from __future__ import annotations

import os
import time
from types import SimpleNamespace

import numpy as np


def spark_seconds_per_iteration(X, start, extra: int, cores: int = 2) -> float:
    """Time per iteration of ``pyspark.mllib.clustering.GaussianMixture`` in
    ``local[cores]`` mode on cached data, from the same start (``initialModel``,
    which ``train`` reads through ``k``, ``weights`` and ``gaussians``)
    with ``convergenceTol=0``: ``(time(1 + extra) - time(1)) / extra``."""
    from pyspark.mllib.clustering import GaussianMixture
    from pyspark.mllib.linalg import DenseMatrix, DenseVector
    from pyspark.mllib.stat.distribution import MultivariateGaussian
    from pyspark.sql import SparkSession

    # Spark's advice for native BLAS: one BLAS thread per task (read when the JVM
    # starts; NumPy's OpenBLAS in this process has already read its own setting).
    blas_threads = os.environ.get("OPENBLAS_NUM_THREADS")
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    spark = (
        SparkSession.builder.master(f"local[{cores}]")
        .config("spark.driver.memory", "6g")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    try:
        context = spark.sparkContext
        context.setLogLevel("ERROR")
        rdd = context.parallelize([DenseVector(row) for row in X], numSlices=4 * cores).cache()
        rdd.count()
        covariances = np.linalg.inv(start["precisions_init"])
        gaussians = [
            MultivariateGaussian(DenseVector(mean), DenseMatrix(len(mean), len(mean),
                                                                cov.T.ravel().tolist()))
            for mean, cov in zip(start["means_init"], covariances, strict=True)
        ]
        initial = SimpleNamespace(
            k=len(gaussians), weights=[float(w) for w in start["weights_init"]],
            gaussians=gaussians,
        )

        def timed(iterations):
            began = time.perf_counter()
            GaussianMixture.train(rdd, len(gaussians), convergenceTol=0.0,
                                  maxIterations=iterations, initialModel=initial)
            return time.perf_counter() - began

        timed(1)
        one = timed(1)
        more = timed(1 + extra)
        return max(more - one, 1e-9) / extra
    finally:
        spark.stop()
        if blas_threads is None:
            os.environ.pop("OPENBLAS_NUM_THREADS", None)
        else:
            os.environ["OPENBLAS_NUM_THREADS"] = blas_threads


def pomegranate_mixture(start, max_iter: int):
    """A pomegranate ``GeneralMixtureModel`` of K full-covariance ``Normal`` components
    set to ``start`` (priors, means, covariances = inverse precisions), float64 tensors,
    so that ``fit`` runs no k-means initialisation of its own; ``tol=-inf`` never stops
    early, ``inertia=0`` applies each M-step in full. Call it while torch's default
    dtype is float64: the mixture's buffer of summed responsibilities is created with
    the default dtype (float32 otherwise, which would round the updated priors)."""
    import torch
    from pomegranate.distributions import Normal
    from pomegranate.gmm import GeneralMixtureModel

    if start["covariance_type"] != "full":
        raise ValueError("the pomegranate peer is measured for full covariances only")
    covariances = np.linalg.inv(np.asarray(start["precisions_init"], dtype=np.float64))
    covariances = (covariances + np.swapaxes(covariances, 1, 2)) / 2
    components = [
        Normal(
            means=torch.tensor(mean, dtype=torch.float64),
            covs=torch.tensor(cov, dtype=torch.float64),
            covariance_type="full",
        )
        for mean, cov in zip(np.asarray(start["means_init"], dtype=np.float64), covariances,
                             strict=True)
    ]
    weights = np.asarray(start["weights_init"], dtype=np.float64)
    return GeneralMixtureModel(
        components, priors=torch.tensor(weights / weights.sum(), dtype=torch.float64),
        max_iter=max_iter, tol=float("-inf"), inertia=0.0,
    )


def pomegranate_seconds_per_iteration(X, start, extra: int, cores: int = 2) -> float:
    """Time per iteration of pomegranate's ``GeneralMixtureModel`` of K full-covariance
    ``Normal`` components on CPU PyTorch with ``cores`` intra-op threads, in float64,
    from the same start (see ``pomegranate_mixture``): a fresh model per timing,
    ``(time(1 + extra) - time(1)) / extra``. The data is handed over once as a float64
    tensor sharing the array's memory (a NumPy array would be copied by every
    iteration's ``summarize``)."""
    import torch

    threads, default_dtype = torch.get_num_threads(), torch.get_default_dtype()
    torch.set_num_threads(cores)
    torch.set_default_dtype(torch.float64)
    try:
        data = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float64))

        def timed(iterations):
            model = pomegranate_mixture(start, iterations)
            began = time.perf_counter()
            model.fit(data)
            return time.perf_counter() - began

        timed(1)
        one = timed(1)
        more = timed(1 + extra)
        return max(more - one, 1e-9) / extra
    finally:
        torch.set_default_dtype(default_dtype)
        torch.set_num_threads(threads)
