"""Save two models over one path, alternately, until killed (used by test_outputs.py).

Usage: python _save_repeatedly.py MODEL_A MODEL_B TARGET EXCHANGE

EXCHANGE is 1 to swap with renameat2(RENAME_EXCHANGE), 0 for the rename-aside
fallback. Prints "ready" once the first save has finished.
"""

import sys

import streamgmm
from streamgmm import outputs


def main(first: str, second: str, target: str, exchange: str) -> None:
    outputs.USE_RENAME_EXCHANGE = exchange == "1"
    models = [streamgmm.load(first), streamgmm.load(second)]
    streamgmm.save(models[0], target)
    print("ready", flush=True)
    saves = 1
    while True:
        streamgmm.save(models[saves % 2], target)
        saves += 1


if __name__ == "__main__":
    main(*sys.argv[1:])
