"""What compiling the kernels for rows with missing values costs: the process
CPU of :func:`streamgmm.precompile._fit_with_gaps` once the rest of a group has
compiled, and numba's compile seconds per function inside it (exclusive of
the functions it compiled in turn; wall clock).

Usage (empty numba's cache first, e.g. ``rm streamgmm/kernels/__pycache__/*.nb?``)::

    PYTHONPATH=. python benchmarks/gap_compile.py batch   # precompile's batch group: masked_sums
    PYTHONPATH=. python benchmarks/gap_compile.py tied    # a complete tied fit, then gappy_sums

(``tied`` stands for the online group, whose process waits for the batch
group's E-step.)
"""

from __future__ import annotations

import os
import sys
import time
import warnings

os.environ["STREAMGMM_KERNELS"] = "compiled"

from numba.core import event  # noqa: E402

import streamgmm.precompile as precompile  # noqa: E402


def main(group: str, shown: int = 25) -> None:
    recording = event.RecordingListener()
    event.register("numba:compile", recording)
    original = precompile._fit_with_gaps
    spent: dict[str, float] = {}

    def measured(X, covariance_type: str) -> None:
        spent["mark"] = len(recording.buffer)
        cpu, wall = time.process_time(), time.perf_counter()
        original(X, covariance_type)
        spent["cpu"], spent["wall"] = time.process_time() - cpu, time.perf_counter() - wall

    precompile._fit_with_gaps = measured
    began = time.process_time()
    if group == "tied":
        from streamgmm import GaussianMixture
        from streamgmm.datasets import make_mixture

        warnings.simplefilter("ignore")
        X, _, _ = make_mixture(2000, n_components=2, n_features=3, random_state=0)
        GaussianMixture(2, covariance_type="tied", max_iter=2, random_state=0).fit(X)
        measured(X, "tied")
    else:
        precompile._fit_everything(group)
    total = time.process_time() - began
    stack: list[list[float]] = []
    exclusive: dict[str, float] = {}
    count: dict[str, int] = {}
    for stamp, happened in recording.buffer[spent["mark"]:]:
        if happened.is_start:
            stack.append([stamp, 0.0])
            continue
        start, inner = stack.pop()
        function = happened.data["dispatcher"].py_func
        name = f"{function.__module__.split('.')[-1]}.{function.__qualname__}"
        exclusive[name] = exclusive.get(name, 0.0) + stamp - start - inner
        count[name] = count.get(name, 0) + 1
        if stack:
            stack[-1][1] += stamp - start
    print(f"{group}: gap fit CPU {spent['cpu']:.1f} s (wall {spent['wall']:.1f} s); "
          f"whole process CPU {total:.1f} s; load {os.getloadavg()[0]:.2f}")
    for name, seconds in sorted(exclusive.items(), key=lambda item: -item[1])[:shown]:
        print(f"  {seconds:6.2f} x{count[name]} {name}")


if __name__ == "__main__":
    main(sys.argv[1], *(int(value) for value in sys.argv[2:3]))
