"""Fitting a Zarr store streams it: peak memory does not grow with the number of rows."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np

from streamgmm.datasets import random_mixture, write_mixture_zarr

CHUNK_ROWS = 131_072
N_FEATURES = 8

FIT_AND_REPORT = textwrap.dedent(
    """
    import json, resource, sys
    import numpy as np
    from streamgmm import GaussianMixture

    start = json.loads(sys.argv[2])
    model = GaussianMixture(
        3, weights_init=start["weights"], means_init=start["means"],
        precisions_init=start["precisions"], max_iter=2, tol=0.0,
    ).fit(sys.argv[1])
    assert np.all(np.isfinite(model.covariances_))
    print(json.dumps({"peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      "lower_bound": model.lower_bound_}))
    """
)


def _peak_rss_of_fit(path, start):
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    result = subprocess.run(
        [sys.executable, "-c", FIT_AND_REPORT, str(path), json.dumps(start)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=300,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_peak_memory_does_not_grow_with_rows(tmp_path):
    truth = random_mixture(3, N_FEATURES, random_state=0)
    small, large = tmp_path / "small.zarr", tmp_path / "large.zarr"
    write_mixture_zarr(small, 3 * CHUNK_ROWS, truth, chunk_rows=CHUNK_ROWS)
    write_mixture_zarr(large, 30 * CHUNK_ROWS, truth, chunk_rows=CHUNK_ROWS, random_state=1)
    start = {
        "weights": truth.weights.tolist(),
        "means": truth.means.tolist(),
        "precisions": np.linalg.inv(truth.covariances).tolist(),
    }
    small_run = _peak_rss_of_fit(small, start)
    large_run = _peak_rss_of_fit(large, start)
    large_bytes = 30 * CHUNK_ROWS * N_FEATURES * 8
    growth = (large_run["peak_rss_kib"] - small_run["peak_rss_kib"]) * 1024
    print(
        f"peak RSS small {small_run['peak_rss_kib'] / 1024:.0f} MiB, "
        f"large {large_run['peak_rss_kib'] / 1024:.0f} MiB, "
        f"data of the large store {large_bytes / 2**20:.0f} MiB"
    )
    assert growth < 0.25 * large_bytes, growth
    assert abs(large_run["lower_bound"] - small_run["lower_bound"]) < 0.05
