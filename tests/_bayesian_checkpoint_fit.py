"""Run one checkpointed BayesianGaussianMixture fit in its own process (used by
test_bayesian.py).

Usage: python _bayesian_checkpoint_fit.py DATA CHECKPOINT MODEL COUNTER DELAY SETTINGS_JSON

Every non-empty block read appends a byte to COUNTER and sleeps DELAY seconds
(``_checkpoint_fit.counted_blocks``), so the test can kill the process mid-fit.
"""

import json
import sys

import dask
from _checkpoint_fit import counted_blocks

from streamgmm import BayesianGaussianMixture, save


def main() -> None:
    data_path, checkpoint, output, counter, delay, settings = sys.argv[1:]
    X = counted_blocks(data_path, counter, float(delay))
    with dask.config.set(scheduler="threads"):
        model = BayesianGaussianMixture(**json.loads(settings)).fit(X, checkpoint=checkpoint)
    save(model, output)


if __name__ == "__main__":
    main()
