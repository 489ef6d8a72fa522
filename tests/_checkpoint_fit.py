"""Run one checkpointed fit in its own process (used by test_checkpoint.py).

Usage: python _checkpoint_fit.py DATA_ZARR CHECKPOINT OUTPUT_MODEL COUNTER DELAY SETTINGS_JSON

SETTINGS_JSON holds the estimator's parameters and optionally ``checkpoint_every``.

Every non-empty block read appends a byte to COUNTER and sleeps DELAY seconds,
so the test can kill the process in the middle of the fit and count the passes.
"""

import json
import sys
import time

import dask
import dask.array as da
import zarr

from streamgmm import GaussianMixture, save


def counted_blocks(data_path: str, counter_path: str, delay: float) -> da.Array:
    def count(block):
        if block.size:
            with open(counter_path, "ab") as counter:
                counter.write(b"x")
            time.sleep(delay)
        return block

    source = da.from_zarr(zarr.open_array(data_path, mode="r"))
    return source.map_blocks(count, dtype=source.dtype)


def main() -> None:
    data_path, checkpoint, output, counter, delay, settings = sys.argv[1:]
    X = counted_blocks(data_path, counter, float(delay))
    settings = json.loads(settings)
    every = (
        {"checkpoint_every": settings.pop("checkpoint_every")}
        if "checkpoint_every" in settings
        else {}
    )
    with dask.config.set(scheduler="threads"):
        model = GaussianMixture(**settings).fit(X, checkpoint=checkpoint, **every)
    save(model, output)


if __name__ == "__main__":
    main()
