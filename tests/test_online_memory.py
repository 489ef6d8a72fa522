"""Must show 3 of issue 3: an online pass over a Zarr store holds about one chunk
and the model in memory, whatever the number of rows."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np

from streamgmm.datasets import random_mixture, write_mixture_zarr

CHUNK_ROWS = 131_072
"""Large enough that the input adapter keeps the store's chunks as they are."""

N_FEATURES = 8

ONLINE_PASS_AND_REPORT = textwrap.dedent(
    """
    import json, resource, sys
    import numpy as np
    from streamgmm import GaussianMixture

    start = json.loads(sys.argv[2])
    model = GaussianMixture(
        3, algorithm="online", batch_size=4096, max_iter=1, tol=0.0, random_state=0,
        weights_init=start["weights"], means_init=start["means"],
        precisions_init=start["precisions"],
    ).fit(sys.argv[1])
    assert np.all(np.isfinite(model.covariances_))
    print(json.dumps({"peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      "rows": model.n_samples_seen_, "lower_bound": model.lower_bound_}))
    """
)


def _online_pass(path, start):
    result = subprocess.run(
        [sys.executable, "-c", ONLINE_PASS_AND_REPORT, str(path), json.dumps(start)],
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ, PYTHONPATH=os.getcwd()),
        timeout=300,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_online_pass_peak_memory_does_not_grow_with_rows(tmp_path):
    truth = random_mixture(3, N_FEATURES, random_state=0)
    small, large = tmp_path / "small.zarr", tmp_path / "large.zarr"
    write_mixture_zarr(small, 1 * CHUNK_ROWS, truth, chunk_rows=CHUNK_ROWS)
    write_mixture_zarr(large, 10 * CHUNK_ROWS, truth, chunk_rows=CHUNK_ROWS, random_state=1)
    start = {
        "weights": truth.weights.tolist(),
        "means": truth.means.tolist(),
        "precisions": np.linalg.inv(truth.covariances).tolist(),
    }
    small_run = _online_pass(small, start)
    large_run = _online_pass(large, start)
    assert small_run["rows"] == 1 * CHUNK_ROWS and large_run["rows"] == 10 * CHUNK_ROWS
    large_bytes = 10 * CHUNK_ROWS * N_FEATURES * 8
    growth = (large_run["peak_rss_kib"] - small_run["peak_rss_kib"]) * 1024
    print(
        f"peak RSS small {small_run['peak_rss_kib'] / 1024:.0f} MiB, "
        f"large {large_run['peak_rss_kib'] / 1024:.0f} MiB, "
        f"data of the large store {large_bytes / 2**20:.0f} MiB"
    )
    assert growth < 0.1 * large_bytes, growth
    assert abs(large_run["lower_bound"] - small_run["lower_bound"]) < 0.05
