"""Fill numba's disk cache with every compiled kernel (``streamgmm compile``).

A process that finds the cache empty runs the kernels interpreted and compiles
those that get hot (:mod:`streamgmm.kernels.tiers`). Filling the cache ahead,
in a deployment image or a cluster's shared environment, makes every later
process start on the compiled kernels at once. The cache lives beside the
package (``streamgmm/kernels/__pycache__``) or in ``NUMBA_CACHE_DIR``; it is
valid for this machine's kind of CPU and this version of streamgmm and numba.

Each kernel has one compiled version, for both products dtypes. The kernels
fall into two groups of about equal compile time, each compiled by its own
process: the batch E-step and M-step, and the online fold with its helper.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings
from typing import Any

import numpy as np

GROUPS = ("batch", "online")
"""The groups of kernels; each is compiled by its own process. The online fold
calls the batch E-step and its operands, so the batch process compiles the
float64 E-step before anything else, then its operands, its log-densities and
the pattern table of rows with gaps, while the online process compiles the
E-step's float32 sums, the M-step's kernels and the sums under given
responsibilities (each process loads what the other cached). The online
process then waits for the E-step and its operands, compiles the fold (the
helper thread's part included) and ends with the float32 log-densities; it
compiles from example arguments and imports neither scikit-learn nor Dask
(about 2 s of a process's start). The batch process, once the M-step's
kernels are in the cache, runs its fits, which reach the kernels for rows
with missing values (the masked one for full, diag and spherical, the
component-by-component one for tied). In that order neither process waits
long, no kernel is compiled by both, and the two take about the same time
(docs/benchmarks.md, "Session 18")."""

WAIT_SECONDS = 600.0
"""How long the online group waits for the batch group's E-step before
compiling it itself."""


def _fit_everything(group: str) -> None:
    """Compile every kernel of ``group``: the online group's from example
    arguments (its process imports neither scikit-learn nor Dask), the batch
    group's through small fits."""
    from .kernels import entries

    if group == "online":
        _compile_outside_the_batch_fit()
        _wait_for_e_step()
        _compile(entries.online_steps.compiled, _online_fold_examples())
        rows, single, plan32 = _e_step_examples(np.float32)
        _compile(entries.log_densities_float32.compiled, (rows, single, single.single, plan32))
        return
    from . import GaussianMixture
    from .datasets import make_mixture
    from .estep import statistics_from_responsibilities
    from .mstep import m_step

    X, _, _ = make_mixture(2000, n_components=2, n_features=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _compile_e_step_first()
        model = GaussianMixture(2, covariance_type="full", max_iter=2, random_state=0)
        model.fit(X, sample_weight=np.ones(len(X)))
        model.score_samples(X)
        stats = statistics_from_responsibilities(X, np.full((len(X), 2), 0.5),
                                                 np.zeros((2, 3)), "full")
        m_step(stats, 1e-6, "full")
        entries.burn_in_complete(np.ones(2), 10.0, 4, 100)
        _fit_with_gaps(X, "full")
        _fit_with_gaps(X, "tied")


def _e_step_examples(dtype: type = np.float64) -> tuple:
    """``(rows, operands, plan)`` of the E-step with products in ``dtype``
    (two components, three features), of the types every caller passes; made
    by the interpreted kernels (nothing is compiled)."""
    from .kernels import entries
    from .kernels.records import rows_record

    arguments = _density_operand_examples(dtype)
    operands = entries.density_operands.interpreted(*arguments)
    return rows_record(np.zeros((2, 3))), operands, arguments[-1]


def _density_operand_examples(dtype: type = np.float64) -> tuple:
    """Arguments of ``density_operands`` (two components, three features)
    with products in ``dtype``."""
    from .estep import kernel_plan

    plan = kernel_plan("full", 2, 3, dtype)
    factors = np.repeat(np.eye(3)[None], 2, axis=0)
    return np.full(2, 0.5), np.zeros((2, 3)), factors, np.ones((2, 3)), plan


def _fit_with_gaps(X: np.ndarray, covariance_type: str) -> None:
    """A small fit of X with a tenth of its values missing: the gap kernels of
    ``covariance_type`` ("full" reaches the masked kernel of the full, diag and
    spherical types, "tied" the component-by-component one)."""
    from . import GaussianMixture

    gappy = X.copy()
    gappy[np.random.default_rng(0).random(X.shape) < 0.1] = np.nan
    GaussianMixture(2, covariance_type=covariance_type, max_iter=2, missing="marginalize",
                    random_state=0).fit(gappy)


def _compile_outside_the_batch_fit() -> None:
    """The E-step's float32 sums, the M-step's kernels (centred statistics,
    merge, parameters) and the sums under given responsibilities, compiled
    while the batch process compiles the float64 E-step and its operands."""
    from .covariance import KINDS
    from .kernels import entries
    from .mstep import parameters_from_statistics
    from .statistics import SufficientStatistics, merge

    rows, single, plan32 = _e_step_examples(np.float32)
    _compile(entries.range_sums_float32.compiled, (rows, 0, 0, single, single.single, plan32))
    sums = entries.zero_sums.interpreted(single.n_products, plan32.kind, 2, 3)
    _compile(entries.centred_statistics.compiled,
             (sums, np.zeros(3), np.zeros((2, 3)), np.ones(2, dtype=bool), KINDS["full"]))
    statistics = SufficientStatistics(np.ones(2), np.zeros((2, 3)), np.stack([np.eye(3)] * 2),
                                      0.0, 2.0)
    parameters_from_statistics(merge(statistics, statistics, "full"), 1e-6, "full")
    rows, operands, plan = _e_step_examples(np.float64)
    _compile(entries.responsibility_sums.compiled, (rows, np.zeros((2, 2)), operands, plan))


def _online_fold_examples() -> tuple:
    """Arguments of ``online_steps`` (two components, three features, full) of
    the types every caller passes, paired or not."""
    from .kernels.records import Mixture, OnlineSettings, Running, Statistics, unpaired

    rows, _, plan = _e_step_examples(np.float64)
    identities = np.repeat(np.eye(3)[None], 2, axis=0)
    mixture = Mixture(np.full(2, 0.5), np.zeros((2, 3)), identities, identities.copy())
    statistics = Statistics(np.ones(2), np.zeros((2, 3)), identities.copy())
    running = Running(mixture, statistics, np.zeros(2), 0, 0.0, statistics, np.zeros(2), 0)
    settings = OnlineSettings(256, 1e-6, 0.6, 0.0, 0.0, False, 40, 1e100)
    return rows, running, settings, plan, unpaired()


def _compile_e_step_first() -> None:
    """The float64 E-step, its operands, the log-densities and the pattern
    table of rows with gaps, before anything else of the batch group: the
    online group waits for the E-step. The batch fit needs the M-step's
    kernels, which the online group compiles meanwhile: they are waited for
    and loaded, not compiled twice (by then they are in the cache)."""

    from .kernels import entries

    rows, operands, plan = _e_step_examples(np.float64)
    _compile(entries.range_sums.compiled, (rows, 0, 0, operands, operands.double, plan))
    _compile(entries.density_operands.compiled, _density_operand_examples())
    _compile(entries.log_densities.compiled, (rows, operands, operands.double, plan))
    _compile(entries.pattern_table.compiled, (rows.X, 0, np.zeros((3, 3, 2)), 2))
    _wait_for_m_step()


def _compile(dispatcher: Any, arguments: tuple) -> None:
    """Compile ``dispatcher`` for the numba types of ``arguments``."""
    import numba

    dispatcher.compile(tuple(numba.typeof(argument) for argument in arguments))


def _wait_for_m_step() -> None:
    """Wait until the online group has cached the M-step's kernels, the last of
    them the parameters' (it compiles them while the batch group compiles the
    E-step), so that the batch fit loads them rather than compiling them too."""
    from .covariance import KINDS
    from .kernels import entries
    from .statistics import empty_statistics, statistics_blocks

    blocks = statistics_blocks(empty_statistics(2, 3, "full"), "full")
    _wait_for(entries.parameters_blocks.compiled, (blocks, 1e-6, KINDS["full"]))


def _wait_for_e_step() -> None:
    """Wait until the batch group has put the E-step and the density operands
    (which it compiles next) in the disk cache: the fold calls both, and would
    otherwise compile them a second time."""
    from .kernels import entries

    rows, operands, plan = _e_step_examples(np.float64)
    _wait_for(entries.range_sums.compiled, (rows, 0, 0, operands, operands.double, plan))
    _wait_for(entries.density_operands.compiled, _density_operand_examples())


def _wait_for(dispatcher: Any, arguments: tuple) -> None:
    """Wait until another process has put ``dispatcher``'s version for
    ``arguments`` in the disk cache (at most :data:`WAIT_SECONDS`)."""
    from .kernels.tiers import load_cached

    deadline = time.monotonic() + WAIT_SECONDS
    while not load_cached(dispatcher, arguments) and time.monotonic() < deadline:
        time.sleep(0.25)


def compile_kernels(jobs: int = 2) -> list[tuple[str, float, str]]:
    """Compile every kernel into numba's disk cache, ``jobs`` groups at a time
    in child processes; returns (group, seconds, error output or "") per group."""
    environment = dict(os.environ, STREAMGMM_KERNELS="compiled")
    pending = list(GROUPS)
    running: list[tuple[str, float, subprocess.Popen]] = []
    results = []
    while pending or running:
        while pending and len(running) < max(1, jobs):
            group = pending.pop(0)
            process = subprocess.Popen(
                [sys.executable, "-m", "streamgmm.precompile", group], env=environment,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )
            running.append((group, time.perf_counter(), process))
        group, started, process = running.pop(0)
        output, _ = process.communicate()
        results.append((group, time.perf_counter() - started,
                        "" if process.returncode == 0 else output))
    return results


if __name__ == "__main__":
    _fit_everything(sys.argv[1])


__all__: list[str] = []
"""Nothing here is public API (docs/api.md lists what is)."""
