"""Fill numba's disk cache with every compiled kernel (``streamgmm compile``).

A process that finds the cache empty runs the kernels interpreted and compiles
those that get hot (:mod:`streamgmm.kernels.tiers`). Filling the cache ahead,
in a deployment image or a cluster's shared environment, makes every later
process start on the compiled kernels at once. The cache lives beside the
package (``streamgmm/kernels/__pycache__``) or in ``NUMBA_CACHE_DIR``; it is
valid for this machine's kind of CPU and this version of streamgmm and numba.

Each kernel is compiled once per products dtype: the fits below reach every
entry point, and both groups run in parallel processes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings

import numpy as np

GROUPS = ("float64", "float32")
"""The products dtypes; each is compiled by its own process."""


def _fit_everything(products_dtype: str) -> None:
    """Small fits through every entry point, with the kernels compiled."""
    from . import GaussianMixture
    from .datasets import make_mixture
    from .kernels import entries

    X, _, _ = make_mixture(2000, n_components=2, n_features=3, random_state=0)
    float32 = products_dtype == "float32"
    if float32:
        X = X.astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for algorithm in ("batch", "online"):
            model = GaussianMixture(2, covariance_type="full", algorithm=algorithm, max_iter=2,
                                    batch_size=256, float32_products=float32, random_state=0)
            model.fit(X, sample_weight=np.ones(len(X)) if algorithm == "batch" else None)
            model.score_samples(X)
        model.partial_fit(X[:300])
        if not float32:
            from .estep import statistics_from_responsibilities
            from .mstep import m_step

            stats = statistics_from_responsibilities(X, np.full((len(X), 2), 0.5),
                                                     np.zeros((2, 3)), "full")
            m_step(stats, 1e-6, "full")
            entries.burn_in_complete(np.ones(2), 10.0, 4, 100)
            gappy = X.copy()
            gappy[np.random.default_rng(0).random(X.shape) < 0.1] = np.nan
            for covariance_type in ("full", "tied"):
                GaussianMixture(2, covariance_type=covariance_type, max_iter=2,
                                missing="marginalize", random_state=0).fit(gappy)


def compile_kernels(jobs: int = 2) -> list[tuple[str, float, str]]:
    """Compile every kernel for both products dtypes into numba's disk cache,
    ``jobs`` groups at a time in child processes; returns (group, seconds,
    error output or "") per group."""
    environment = dict(os.environ, STREAMGMM_KERNELS="compiled")
    pending = list(GROUPS)
    running: list[tuple[str, float, subprocess.Popen]] = []
    results = []
    while pending or running:
        while pending and len(running) < max(1, jobs):
            group = pending.pop(0)
            process = subprocess.Popen(
                [sys.executable, "-m", "streamgmm.precompile", group], env=environment,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )
            running.append((group, time.perf_counter(), process))
        group, started, process = running.pop(0)
        output, _ = process.communicate()
        results.append((group, time.perf_counter() - started,
                        "" if process.returncode == 0 else output))
    return results


if __name__ == "__main__":
    _fit_everything(sys.argv[1])


__all__: list[str] = []
"""Nothing here is public API (docs/api.md lists what is)."""
