"""Fit a Gaussian mixture to a Zarr store out of core, then label every row.

The store is read one chunk at a time in every pass: memory holds a few chunks
and the mixture's sufficient statistics, never the whole array. Labels are
written to a second Zarr store chunk by chunk.

    python examples/fit_zarr_out_of_core.py                 # 2 million rows
    python examples/fit_zarr_out_of_core.py --rows 50000    # a quick run
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import zarr

import streamgmm
from streamgmm.cli import recovery_errors
from streamgmm.datasets import random_mixture, sample_mixture, write_mixture_zarr


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--chunk-rows", type=int, default=200_000)
    parser.add_argument("--components", type=int, default=4)
    parser.add_argument("--features", type=int, default=3)
    parser.add_argument("--folder", type=Path, default=None, help="default: a temporary folder")
    args = parser.parse_args(argv)
    if args.folder is None:
        scratch = tempfile.TemporaryDirectory(prefix="streamgmm-example-")
        folder = Path(scratch.name)
    else:
        folder = args.folder
        folder.mkdir(parents=True, exist_ok=True)

    # 1. Data on disk: a compressed Zarr array of shape (rows, features).
    truth = random_mixture(args.components, args.features, random_state=7)
    data_path = folder / "rows.zarr"
    write_mixture_zarr(data_path, args.rows, truth, chunk_rows=args.chunk_rows, random_state=7)
    array = zarr.open_array(data_path, mode="r")
    print(f"data: {data_path}, shape {array.shape}, {array.dtype}, "
          f"chunks of {array.chunks[0]:,} rows")

    # 2. Fit: every EM iteration is one pass over the chunks on the local Dask scheduler.
    model = streamgmm.GaussianMixture(args.components, random_state=0, tol=1e-4)
    started = time.perf_counter()
    model.fit(data_path)
    print(
        f"fitted in {time.perf_counter() - started:.1f} s: {model.n_iter_} iterations, "
        f"mean log-likelihood {model.lower_bound_:.5f}"
    )
    errors = recovery_errors(model, truth)
    print("distance from the true parameters:", {k: round(v, 4) for k, v in errors.items()})

    # 3. Labels: predict is lazy for Zarr input; save_predictions computes and writes
    #    them chunk by chunk (a store with a 'labels' array, like `streamgmm predict`).
    labels = model.predict(data_path)
    labels_path = folder / "labels.zarr"
    streamgmm.save_predictions(model, data_path, labels_path)
    print(f"labels written to {labels_path}: {labels.numblocks[0]} chunks")

    # 4. The model itself is a small Zarr store (no pickle).
    model_path = folder / "model.zarr"
    streamgmm.save(model, model_path)
    reloaded = streamgmm.load(model_path)
    held_out, _ = sample_mixture(truth, 10_000, random_state=99)
    print(f"reloaded model, score on 10,000 new rows: {reloaded.score(held_out):.5f}")
    return {
        "model": model,
        "truth": truth,
        "errors": errors,
        "labels_path": labels_path,
        "data_path": data_path,
        "folder": folder,
    }


if __name__ == "__main__":
    main()
