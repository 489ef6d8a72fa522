"""Fit a Zarr store on a ``dask.distributed`` cluster.

streamgmm never starts a cluster by itself: it computes on whatever Dask
scheduler is active. Here a LocalCluster with two worker processes stands in for
a real cluster; with a remote one, connect with ``Client("tcp://host:8786")``
(or ``streamgmm fit ... --scheduler tcp://host:8786``) and keep the data on
storage that every worker can read.

    python examples/fit_on_local_cluster.py                # 1 million rows
    python examples/fit_on_local_cluster.py --rows 50000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from pathlib import Path

from distributed import Client, LocalCluster, get_task_stream

import streamgmm
from streamgmm.cli import recovery_errors
from streamgmm.datasets import random_mixture, write_mixture_zarr


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="streamgmm-cluster-") as folder:
        truth = random_mixture(3, 5, random_state=11)
        data_path = Path(folder) / "rows.zarr"
        write_mixture_zarr(data_path, args.rows, truth, chunk_rows=args.chunk_rows)

        with (
            LocalCluster(
                n_workers=args.workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",
            ) as cluster,
            Client(cluster) as client,
        ):
            print(f"cluster: {args.workers} worker processes at {cluster.scheduler_address}")
            model = streamgmm.GaussianMixture(3, covariance_type="full", random_state=0)
            started = time.perf_counter()
            with get_task_stream(client) as stream:
                model.fit(data_path)
            elapsed = time.perf_counter() - started
            tasks_per_worker = Counter(task["worker"] for task in stream.data)

    print(f"fitted in {elapsed:.1f} s, {model.n_iter_} iterations")
    for worker, count in sorted(tasks_per_worker.items()):
        print(f"  {worker}: {count} tasks")
    errors = recovery_errors(model, truth)
    print("distance from the true parameters:", {k: round(v, 4) for k, v in errors.items()})
    return {"model": model, "truth": truth, "errors": errors, "tasks": tasks_per_worker}


if __name__ == "__main__":
    main()
