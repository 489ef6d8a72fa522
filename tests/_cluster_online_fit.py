"""Run one online fit as a ``dask.distributed`` client in its own process (used
by test_cluster.py), counting every byte this process receives over TCP.

Usage: python _cluster_online_fit.py SCHEDULER DATA_ZARR SETTINGS_JSON OUTPUT_JSON [CHECKPOINT]

SETTINGS_JSON holds the estimator's parameters, and optionally
``checkpoint_every`` and ``read_delay`` (seconds each chunk read sleeps, on the
worker).
OUTPUT_JSON receives the fitted parameters, the bytes received during ``fit``,
and a control: the bytes received while one chunk of the data is brought to
the client, which shows that the count sees rows when they come.
"""

import json
import sys
import time

import distributed
import distributed.comm.tcp as tcp
import numpy as np

from streamgmm import GaussianMixture
from streamgmm.inputs import as_rows

RECEIVED = [0]


def _counting(read_bytes):
    """``distributed.comm.tcp.read_bytes_rw``, which reads every frame a TCP comm
    of this process receives, adding its size to ``RECEIVED``."""

    async def read(stream, n):
        RECEIVED[0] += n
        return await read_bytes(stream, n)

    return read


tcp.read_bytes_rw = _counting(tcp.read_bytes_rw)


def _slow(block, delay):
    if block.size:
        time.sleep(delay)
    return block


def main() -> None:
    address, data_path, settings, output, *checkpoint = sys.argv[1:]
    settings = json.loads(settings)
    extra = {"checkpoint": checkpoint[0]} if checkpoint else {}
    if "checkpoint_every" in settings:
        extra["checkpoint_every"] = settings.pop("checkpoint_every")
    delay = settings.pop("read_delay", 0.0)
    X = data_path
    if delay:
        source = as_rows(data_path).array
        X = source.map_blocks(_slow, delay, dtype=source.dtype)
    with distributed.Client(address) as client:
        before = RECEIVED[0]
        model = GaussianMixture(**settings).fit(X, **extra)
        fit_bytes = RECEIVED[0] - before
        chunk = as_rows(data_path).array.blocks[0]
        before = RECEIVED[0]
        np.asarray(client.compute(chunk).result())
        control_bytes = RECEIVED[0] - before
        chunk_bytes = chunk.nbytes
    names = ("weights_", "means_", "covariances_", "precisions_cholesky_")
    result = {name: getattr(model, name).tolist() for name in names}
    result.update(
        received_bytes=fit_bytes,
        control_bytes=control_bytes,
        chunk_bytes=int(chunk_bytes),
        n_iter_=int(model.n_iter_),
        n_steps_=int(model.n_steps_),
        lower_bounds_=list(model.lower_bounds_),
    )
    with open(output, "w") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    main()
