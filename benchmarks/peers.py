"""Optional peers for ``run.py``: Spark MLlib's GaussianMixture (pyspark, Java 17).

Not needed in CI; ``run.py --peers spark`` uses it when pyspark imports.
"""

from __future__ import annotations

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
