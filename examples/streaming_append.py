"""Keep a Gaussian mixture current while another process appends rows to a Zarr array.

A writer process appends rows to a Zarr array with ``streamgmm.online.append_rows``;
this process polls ``streamgmm.online.update_from_zarr``, which learns from the
rows appended since the last poll (whole mini-batches only) and moves the model's
``stream_position_``. The model is saved after every update, so a restarted
reader continues where it stopped.

Run:  python examples/streaming_append.py [--rows-per-append 1500 --appends 20]
Finishes in a few seconds. Rerun with the same --directory, it refuses to start a
new stream over the rows of the old one unless given --overwrite.
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from pathlib import Path

import numpy as np

from streamgmm import GaussianMixture
from streamgmm.datasets import match_components, random_mixture, sample_mixture
from streamgmm.io import load, save
from streamgmm.online import append_rows, create_stream_array, update_from_zarr

N_COMPONENTS, N_FEATURES = 3, 2


def writer(path: str, n_appends: int, rows_per_append: int, pause: float) -> None:
    """Append ``n_appends`` blocks of rows drawn from a fixed mixture."""
    truth = random_mixture(N_COMPONENTS, N_FEATURES, random_state=0)
    for index in range(n_appends):
        rows, _ = sample_mixture(truth, rows_per_append, random_state=index)
        append_rows(path, rows)
        time.sleep(pause)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appends", type=int, default=20)
    parser.add_argument("--rows-per-append", type=int, default=1500)
    parser.add_argument("--pause", type=float, default=0.1, help="seconds between appends")
    parser.add_argument(
        "--directory", default=None, help="where to put the stores (default: a temporary "
        "folder, removed at the end)"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="start a new stream even if DIRECTORY/rows.zarr holds rows (they are lost)",
    )
    args = parser.parse_args()

    if args.directory is not None:
        follow_stream(Path(args.directory), args)
        return
    with tempfile.TemporaryDirectory(prefix="streamgmm-stream-") as scratch:
        follow_stream(Path(scratch), args)


def follow_stream(directory: Path, args: argparse.Namespace) -> None:
    """Start the writer, learn from its rows as they arrive, check the result."""
    data_path, model_path = directory / "rows.zarr", directory / "model.zarr"
    create_stream_array(data_path, N_FEATURES, chunk_rows=4096, overwrite=args.overwrite)
    process = multiprocessing.get_context("spawn").Process(
        target=writer, args=(str(data_path), args.appends, args.rows_per_append, args.pause)
    )
    process.start()

    model = GaussianMixture(N_COMPONENTS, algorithm="online", batch_size=500, random_state=0)
    total = args.appends * args.rows_per_append
    while True:
        writer_done = not process.is_alive()
        learnt = update_from_zarr(model, data_path, include_partial_batch=writer_done)
        if learnt:
            save(model, model_path)
            print(
                f"learnt from {learnt:5d} new rows; position {model.stream_position_:6d}, "
                f"steps {model.n_steps_:3d}, mean log-likelihood {model.lower_bound_:.4f}"
            )
        if writer_done:
            break
        time.sleep(0.05)
    process.join()

    reloaded = load(model_path)
    assert reloaded.stream_position_ == total
    truth = random_mixture(N_COMPONENTS, N_FEATURES, random_state=0)
    order = match_components(truth.means, reloaded.means_)
    error = np.abs(reloaded.means_[order] - truth.means).max()
    print(f"rows learnt {reloaded.stream_position_}; largest error of a mean {error:.3f}")


if __name__ == "__main__":
    main()
