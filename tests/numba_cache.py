"""Fill numba's on-disk cache before the test workers start.

On an empty cache every xdist worker, and every process a test starts (fresh
shells, killed fits, CLI runs, LocalCluster workers), compiled the same kernels
for itself. Instead the controller runs the fits below once, shared among a few
processes, and all later processes load the kernels from the cache.

A kernel that fails to compile here is reported and left uncached: the tests
that call it compile it again and fail on their own.

Run as ``python tests/numba_cache.py SHARE SHARES`` to fill the cache with every
SHARES-th fit, starting at SHARE.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")

KINDS_OF_ROWS = (
    ("float64", "em"),
    ("float32", "online"),
    ("float64", "online"),
    ("float64 weighted", "online"),
    ("float64 read-only", "online"),
    ("float32 products", "online"),
    ("float32", "em"),
    ("float32 products", "em"),
    ("float64 weighted", "em"),
)
"""The kinds of rows and algorithms whose kernels the tests compile, each a set of
numba signatures: float64 or float32 rows (``float32_products``: float32 rows
with float32 products), read-only rows (the data of a dask worker), and sample
weights (the online steps then read the rows from a wider array). Ordered so
that every other one makes two shares of about the same compiling time (the
online steps take 25-40 s each, the rest 5-30 s, on one core)."""


def rows(kind: str) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """Two clusters of 600 rows (600, 2) of ``kind``, their sample weights or
    None, and the estimator parameters the kind needs."""
    generator = np.random.default_rng(0)
    X = generator.normal(size=(600, 2))
    X[:300] += 6.0
    weights = generator.uniform(0.5, 2.0, X.shape[0]) if "weighted" in kind else None
    if "float32" in kind:
        X = X.astype(np.float32)
    if "read-only" in kind:
        X.flags.writeable = False
    return X, weights, {"float32_products": "products" in kind}


def compile_for(kind: str, algorithm: str) -> None:
    """Fit, predict and score rows of ``kind`` with ``algorithm`` for every
    covariance type and one or two components (online: with mini-batches a
    helper thread shares, and a ``partial_fit``), and predict with a model whose
    arrays are read-only (as a dask worker receives them)."""
    from streamgmm import GaussianMixture

    X, weights, parameters = rows(kind)
    if algorithm == "online":
        parameters |= {"algorithm": "online", "batch_size": 200}
    for covariance_type, n_components in itertools.product(COVARIANCE_TYPES, (1, 2)):
        model = GaussianMixture(
            n_components, covariance_type=covariance_type, max_iter=2, random_state=0,
            **parameters,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X, sample_weight=weights)
            if algorithm == "online":
                model.partial_fit(X, sample_weight=weights)
        model.score(X)
        for name in ("weights_", "means_", "precisions_cholesky_"):
            getattr(model, name).flags.writeable = False
        model.predict(X)


FILL_TIMEOUT = 900
"""Seconds a filling process may take (on an empty cache, under load, about
three minutes)."""


def fill(processes: int) -> list[str]:
    """Run the fits of :data:`KINDS_OF_ROWS` shared among ``processes`` Python
    processes (each importing this checkout), and return the output of those
    that failed or took longer than :data:`FILL_TIMEOUT`."""
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), *filter(None, [environment.get("PYTHONPATH")])]
    )
    running = [
        subprocess.Popen(
            [sys.executable, __file__, str(share), str(processes)],
            cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True,
        )
        for share in range(processes)
    ]
    failures = []
    for process in running:
        try:
            output = process.communicate(timeout=FILL_TIMEOUT)[0]
        except subprocess.TimeoutExpired:
            process.kill()
            output = process.communicate()[0] + f"\n(stopped after {FILL_TIMEOUT} s)"
        if process.returncode:
            failures.append(output)
    return failures


if __name__ == "__main__":
    share, shares = (int(argument) for argument in sys.argv[1:3])
    for kind, algorithm in KINDS_OF_ROWS[share::shares]:
        started = time.perf_counter()
        compile_for(kind, algorithm)
        print(f"{kind} {algorithm}: {time.perf_counter() - started:.1f} s", flush=True)
