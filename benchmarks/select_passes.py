"""Model selection over a grid: streamgmm.select against fitting and scoring each
candidate on its own, on a Zarr store, counting passes and wall time.

Usage: python benchmarks/select_passes.py [--rows 500000] [--features 8]
       [--components 4] [--grid 2 3 4 5 6] [--types full diag] [--max-iter 100]

Writes a mixture of ``--components`` components to a temporary Zarr store
(chunks of 50,000 rows), then runs ``select`` once and, for every candidate,
``GaussianMixture(...).fit(store)`` followed by ``.bic(store)``. Chunk reads are
counted by a wrapper around the Zarr store; passes = reads / number of chunks.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from chunk_counting import n_chunks, open_counting  # noqa: E402

from streamgmm import GaussianMixture, select  # noqa: E402
from streamgmm.datasets import random_mixture, write_mixture_zarr  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--features", type=int, default=8)
    parser.add_argument("--components", type=int, default=4)
    parser.add_argument("--grid", type=int, nargs="+", default=[2, 3, 4, 5, 6])
    parser.add_argument("--types", nargs="+", default=["full", "diag"])
    parser.add_argument("--max-iter", type=int, default=100)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "data.zarr"
        truth = random_mixture(args.components, args.features, separation=4.0, random_state=0)
        write_mixture_zarr(path, args.rows, truth, chunk_rows=50_000)
        array, store = open_counting(path)
        chunks = n_chunks(array)

        store.reset()
        started = time.perf_counter()
        # the one-by-one fits' settings, so that both fit the same candidates
        best, table = select(
            array, args.grid, args.types, max_iter=args.max_iter, tol=1e-3,
            init_params="k-means||", random_state=0,
        )
        grid_time = time.perf_counter() - started
        grid_passes = store.n_reads / chunks

        store.reset()
        started = time.perf_counter()
        bics = {}
        for K in args.grid:
            for covariance_type in args.types:
                model = GaussianMixture(
                    K, covariance_type=covariance_type, max_iter=args.max_iter, random_state=0
                )
                bics[(K, covariance_type)] = model.fit(array).bic(array)
        alone_time = time.perf_counter() - started
        alone_passes = store.n_reads / chunks
    alone_best = min(bics, key=bics.get)
    print(
        f"rows={args.rows} d={args.features} true K={args.components} grid={args.grid} "
        f"x {args.types} ({len(bics)} candidates), chunks={chunks}"
    )
    print(f"{'':<14}{'passes':>8}{'time s':>9}  best")
    print(
        f"{'select':<14}{grid_passes:>8.1f}{grid_time:>9.1f}  "
        f"K={best.n_components} {best.covariance_type}"
    )
    print(
        f"{'one by one':<14}{alone_passes:>8.1f}{alone_time:>9.1f}  "
        f"K={alone_best[0]} {alone_best[1]}"
    )
    print(
        f"select table n_passes={table.attrs['n_passes']} "
        f"n_passes_one_by_one={table.attrs['n_passes_one_by_one']} "
        f"max n_iter={int(table['n_iter'].max())}"
    )
    print("bic:", np.round(table["bic"].values, 1).tolist())


if __name__ == "__main__":
    main()
