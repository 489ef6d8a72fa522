"""Where the chunk kernel's time goes: milliseconds per 10^6 rows, one thread.

    python benchmarks/kernel_parts.py [--rows N] [--features D] [--components K]

Times the whole ``chunk_statistics`` call for float64 input and for float32
input with ``float32_products=True``, then each step of the compiled block loop
(``streamgmm.kernels``, compiled) on its own, repeated over the chunk's blocks: filling
the columns and product rows, the log-densities, the log-sum-exp and the
accumulation of the sums. Best of 7 runs each; BLAS limited to one thread.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from numba import njit
from threadpoolctl import threadpool_limits

from streamgmm import GaussianMixture, estep
from streamgmm.datasets import make_mixture
from streamgmm.kernels import estep as kernels
from streamgmm.kernels import mathfn
from streamgmm.kernels.records import rows_record

os.environ.setdefault("STREAMGMM_KERNELS", "compiled")
"""Time the compiled kernels (a fresh process would run them interpreted until hot)."""


def milliseconds_per_million(function, n_rows: int, repeats: int = 7) -> float:
    best = np.inf
    for _ in range(repeats):
        began = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - began)
    return best * 1e3 * 1e6 / n_rows


@njit(nogil=True)
def _fill(record, rows, n_blocks, shift, columns, kind, products):
    for block in range(n_blocks):
        kernels.fill_columns(record, block * rows, (block + 1) * rows, shift, columns)
        kernels.fill_products(columns, kind, products)


@njit(nogil=True)
def _densities(n_blocks, products, columns, factors, chosen):
    log_weighted = kernels.block_log_density(products, columns, factors, chosen)
    for _ in range(1, n_blocks):
        log_weighted = kernels.block_log_density(products, columns, factors, chosen)
    return log_weighted


@njit(nogil=True)
def _log_sum_exp(n_blocks, log_weighted, resp_t, no_weights):
    for _ in range(n_blocks):
        mathfn.normalise(log_weighted, resp_t, no_weights)


@njit(nogil=True)
def _accumulate(n_blocks, products, columns, resp_t, kind, factors, sums):
    for _ in range(n_blocks):
        kernels.accumulate(products, columns, resp_t, kind, factors.own_index,
                           factors.own_offsets, sums)


def step_times(X: np.ndarray, params, dtype) -> dict[str, float]:
    """Each step of the block loop of ``kernels.range_sums``, over all blocks of X,
    in a compiled loop (the steps are compiled for kernels only: Python cannot
    call them)."""
    n_components, d = params.means.shape
    factors = estep.density_factors(params, np.dtype(dtype))
    chosen = factors.single if np.dtype(dtype) == np.float32 else factors.double
    kind = estep.PRODUCT_KINDS[params.covariance_type]
    rows = min(estep.block_rows(n_components, d, params.covariance_type), X.shape[0])
    n_blocks = X.shape[0] // rows
    record = rows_record(X)
    columns = np.empty((d + 1, rows), dtype)
    products = np.empty((factors.n_products, rows), dtype)
    resp_t = np.empty((rows, n_components), dtype)
    no_weights = np.empty(0)
    sums = kernels.zero_sums(factors.n_products, kind, n_components, d)
    _fill(record, rows, 1, factors.shift, columns, kind, products)
    log_weighted = _densities(1, products, columns, factors, chosen)
    _log_sum_exp(1, log_weighted, resp_t, no_weights)
    covered = n_blocks * rows
    return {
        "fill": milliseconds_per_million(
            lambda: _fill(record, rows, n_blocks, factors.shift, columns, kind, products),
            covered),
        "log-densities": milliseconds_per_million(
            lambda: _densities(n_blocks, products, columns, factors, chosen), covered),
        "log-sum-exp": milliseconds_per_million(
            lambda: _log_sum_exp(n_blocks, log_weighted, resp_t, no_weights), covered),
        "accumulate": milliseconds_per_million(
            lambda: _accumulate(n_blocks, products, columns, resp_t, kind, factors, sums),
            covered),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=262_144)
    parser.add_argument("--features", type=int, default=16)
    parser.add_argument("--components", type=int, default=8)
    args = parser.parse_args(argv)
    threadpool_limits(1)
    X, _, _ = make_mixture(args.rows, n_components=args.components, n_features=args.features,
                           separation=3.0, random_state=0)
    fitted = GaussianMixture(args.components, max_iter=2, random_state=0).fit(X[:20_000])
    params = fitted._fitted_parameters()
    X32 = X.astype(np.float32)
    estep.chunk_statistics(X32, params, float32_products=True)
    whole64 = milliseconds_per_million(lambda: estep.chunk_statistics(X, params), args.rows)
    whole32 = milliseconds_per_million(
        lambda: estep.chunk_statistics(X32, params, float32_products=True), args.rows)
    print(f"chunk_statistics: float64 {whole64:.1f} ms, float32 products {whole32:.1f} ms "
          f"per 10^6 rows ({whole64 / whole32:.2f}x)")
    for label, data, dtype in (("float64", X, np.float64), ("float32", X32, np.float32)):
        parts = step_times(data, params, dtype)
        print(f"{label}: " + ", ".join(f"{name} {value:.1f}" for name, value in parts.items())
              + f" (sum {sum(parts.values()):.1f}) ms per 10^6 rows")


if __name__ == "__main__":
    main()
