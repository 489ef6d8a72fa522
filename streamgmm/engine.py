"""The EM engine: any number of EM runs advanced together in shared passes.

A run (:class:`EMRun`) is one EM trajectory: its current parameters, its lower
bounds, its iteration count, whether it converged, its history. The engine
(:func:`run_em`) reads the data once per iteration for every run still going,
with one Dask tree reduction of the E-step statistics per run
(:func:`~streamgmm.reduction.tree_reduce_each`), then asks a step strategy
(:class:`EMStep`, plain EM by default: the M-step of the statistics) what
each run becomes, and records the iteration (:meth:`EMRun.record`: one
convergence rule, :func:`has_converged`, one history). Alone or together, a run
takes the same steps, so ``n_init`` starts, a grid of candidates
(:func:`streamgmm.select`) and a resumed checkpoint all run this one loop. Stepwise
online EM (:mod:`streamgmm.online`) passes over the data differently but records
its passes through the same :meth:`EMRun.record`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import dask.array as da
import numpy as np

from . import estep, missing
from .estep import GaussianParameters
from .mstep import CholeskyError, parameters_from_statistics
from .progress import FitProgress, history_from_lower_bounds
from .reduction import sum_tuples, tree_reduce_each
from .statistics import SufficientStatistics, merge_all


def has_converged(previous_bound: float, lower_bound: float, tol: float) -> bool:
    """EM's stopping rule: the per-sample mean log-likelihood moved by less than
    ``tol`` in the last iteration (scikit-learn's rule)."""
    return abs(lower_bound - previous_bound) < tol


@dataclass
class EMRun:
    """The state of one EM run between two iterations.

    Attributes
    ----------
    params : GaussianParameters or None
        Parameters the next E-step uses (None: the start failed).
    covariances : ndarray or None
        Their covariances; shape by covariance type.
    lower_bound : float
        Per-sample mean log-likelihood at the last E-step (-inf before the
        first; a warm start's previous bound).
    lower_bounds : list of float
        ``lower_bound`` after every iteration.
    n_iter : int
        Iterations (passes) taken.
    converged : bool
        Whether the last iteration met :func:`has_converged`.
    history : dict of lists or None
        The run's :class:`~streamgmm.progress.FitProgress` record (None: one
        per lower bound, elapsed times unknown).
    online_state : OnlineState or None
        Stepwise-EM statistics and counters (online runs only).
    precisions : ndarray or None
        Precision matrices as stored in a model file (None: computed from
        ``params``).
    error : Exception or None
        Why the run stopped early (its start or an M-step failed), for engines
        told to go on without it.
    final_terms : tuple or None
        ``(total log-likelihood, rows, classification log-likelihood)`` of the
        final parameters (:func:`~streamgmm.estep.chunk_likelihood_terms`), when
        the engine was asked to score runs at their end.
    step_state : object
        What the run's step strategy keeps between passes (None for plain EM).
    label : str
        What progress displays call the run.
    """

    params: GaussianParameters | None
    covariances: np.ndarray | None
    lower_bound: float = -np.inf
    lower_bounds: list = field(default_factory=list)
    n_iter: int = 0
    converged: bool = False
    history: dict | None = None
    online_state: Any = None
    precisions: np.ndarray | None = None
    error: Exception | None = None
    final_terms: tuple | None = None
    step_state: Any = None
    label: str = "EM"

    def stopped(self, max_iter: int) -> bool:
        """Whether the run takes no further iteration."""
        return self.error is not None or self.converged or self.n_iter >= max_iter

    def full_history(self) -> dict:
        """:attr:`history`, or one record per lower bound when there is none."""
        return self.history or history_from_lower_bounds(self.lower_bounds)

    def record(
        self,
        params: GaussianParameters,
        covariances: np.ndarray,
        lower_bound: float,
        tol: float,
        progress: FitProgress,
        measures_convergence: bool = True,
    ) -> None:
        """One iteration done: ``lower_bound`` was the mean log-likelihood at
        the point the pass evaluated, ``params`` are the run's next."""
        previous = self.lower_bound
        self.params, self.covariances, self.lower_bound = params, covariances, lower_bound
        self.lower_bounds.append(lower_bound)
        self.n_iter += 1
        progress.record(lower_bound, passes=self.n_iter)
        self.history = progress.history
        self.converged = measures_convergence and has_converged(previous, lower_bound, tol)

    def initialisation_only(self) -> EMRun:
        """The run's start as the result of a fit with ``max_iter=0``:
        scikit-learn's ``n_iter_`` 0, ``converged_`` False, ``lower_bound_`` -inf."""
        return EMRun(self.params, self.covariances, online_state=self.online_state)


@dataclass(frozen=True)
class EMSettings:
    """What every run of one engine call shares."""

    tol: float
    max_iter: int
    reg_covar: float
    float32_products: bool = False
    verbose: int = 0
    verbose_interval: int = 10
    missing: str = "raise"


def chunk_functions(missing_values: str) -> tuple[Callable, Callable]:
    """The E-step's chunk functions ``(statistics, likelihood terms)``: of
    :mod:`streamgmm.estep` for ``"raise"``, of :mod:`streamgmm.missing`
    (rows with NaN through their observed coordinates) for ``"marginalize"``."""
    module = missing if missing_values == "marginalize" else estep
    return module.chunk_statistics, module.chunk_likelihood_terms


@dataclass(frozen=True)
class StepResult:
    """What a step strategy makes of one pass's statistics.

    Attributes
    ----------
    params, covariances
        The run's parameters from now on (ignored unless ``accepted``).
    lower_bound : float
        Per-sample mean log-likelihood at the evaluated point.
    accepted : bool
        False for a rejected proposal: the run keeps its parameters and
        records nothing for this pass (which still counts in ``n_iter``).
    measures_convergence : bool
        Whether the change of lower bound counts for :func:`has_converged`
        (False, for example, right after an extrapolation).
    """

    params: GaussianParameters | None
    covariances: np.ndarray | None
    lower_bound: float
    accepted: bool = True
    measures_convergence: bool = True


class EMStep(Protocol):
    """A step strategy: where a run's next pass evaluates the E-step, and what
    the run becomes from the statistics reduced there. Plain EM (:data:`PLAIN_EM`)
    evaluates ``run.params`` and takes the M-step; an accelerated EM may
    evaluate an extrapolated point, keeping its own state in ``run.step_state``."""

    def evaluation_point(self, run: EMRun) -> GaussianParameters: ...

    def __call__(
        self, run: EMRun, statistics: SufficientStatistics, settings: EMSettings
    ) -> StepResult: ...


class PlainEM:
    """Plain EM's step: evaluate the run's parameters, take the M-step."""

    def __repr__(self) -> str:
        return "PLAIN_EM"

    def evaluation_point(self, run: EMRun) -> GaussianParameters:
        return run.params

    def __call__(
        self, run: EMRun, statistics: SufficientStatistics, settings: EMSettings
    ) -> StepResult:
        params, covariances = parameters_from_statistics(
            statistics, settings.reg_covar, run.params.covariance_type
        )
        return StepResult(params, covariances, statistics.log_likelihood / statistics.n_samples)


PLAIN_EM = PlainEM()


def run_progress(run: EMRun, settings: EMSettings) -> FitProgress:
    """A progress display for ``run``, continuing its history."""
    progress = FitProgress(
        settings.verbose, settings.max_iter, run.label, verbose_interval=settings.verbose_interval
    )
    if run.history or run.lower_bounds:
        progress.resume(run.full_history())
    return progress


def run_em(
    array: da.Array,
    runs: Sequence[EMRun],
    settings: EMSettings,
    *,
    step: EMStep = PLAIN_EM,
    on_iteration: Callable[[EMRun], None] | None = None,
    keep_going: bool = False,
    score_at_end: bool = False,
    sample_weight: da.Array | None = None,
    on_pass: Callable[[int, int], None] | None = None,
) -> int:
    """Advance every run of ``runs`` (in place) until each converges or reaches
    ``settings.max_iter``; returns the passes over ``array`` taken.

    Each pass is one Dask reduction serving every run still going; ``step``
    says where each run's pass evaluates and what the run becomes (default
    :data:`PLAIN_EM`).
    ``on_iteration(run)`` is called after each of a run's iterations (for
    checkpoints). With ``keep_going`` a run whose step raises ``CholeskyError``
    stops with that ``error`` while the others go on (else the error
    propagates). With ``score_at_end`` a run that stops is scored in the next
    pass (:attr:`EMRun.final_terms`). ``sample_weight`` (n,), chunked like the
    rows of ``array``, weighs the rows in every pass (lower bounds are then
    weighted means). ``on_pass(passes, running)`` is called after every pass
    with the passes so far and the runs still going.
    """
    chunk_statistics, chunk_likelihood_terms = chunk_functions(settings.missing)
    statistics = partial(chunk_statistics, float32_products=settings.float32_products)
    n_passes = 0
    with ExitStack() as stack:
        progress = [stack.enter_context(run_progress(run, settings)) for run in runs]
        while due := [
            (index, run, kind)
            for index, run in enumerate(runs)
            if (kind := _due(run, settings.max_iter, score_at_end)) is not None
        ]:
            reductions = [
                (statistics, partial(merge_all, covariance_type=run.params.covariance_type),
                 step.evaluation_point(run))
                if kind == "step"
                else (chunk_likelihood_terms, sum_tuples, run.params)
                for _, run, kind in due
            ]
            results = tree_reduce_each(array, reductions, sample_weight=sample_weight)
            n_passes += 1
            for (index, run, kind), result in zip(due, results, strict=True):
                if kind == "score":
                    run.final_terms = result
                    continue
                try:
                    outcome = step(run, result, settings)
                except CholeskyError as error:
                    if not keep_going:
                        raise
                    run.n_iter += 1
                    run.error = error
                    continue
                if not outcome.accepted:
                    run.n_iter += 1
                    continue
                run.record(
                    outcome.params, outcome.covariances, outcome.lower_bound, settings.tol,
                    progress[index], outcome.measures_convergence,
                )
                if on_iteration is not None:
                    on_iteration(run)
            if on_pass is not None:
                running = sum(_due(run, settings.max_iter, False) is not None for run in runs)
                on_pass(n_passes, running)
    return n_passes


def _due(run: EMRun, max_iter: int, score_at_end: bool) -> str | None:
    """What the next pass computes for ``run``: ``"step"`` (its E-step
    statistics), ``"score"`` (its final likelihood terms) or nothing."""
    if run.params is None or run.error is not None:
        return None
    if not run.stopped(max_iter):
        return "step"
    if score_at_end and run.final_terms is None:
        return "score"
    return None


def best_run(runs: Sequence[EMRun]) -> EMRun:
    """The run with the best final lower bound, the first of equals; runs that
    failed only if every run failed."""
    usable = [run for run in runs if run.error is None]
    if not usable:
        return runs[0]
    return max(usable, key=lambda run: run.lower_bound)


__all__ = [
    "EMRun",
    "EMSettings",
    "EMStep",
    "PLAIN_EM",
    "StepResult",
    "run_em",
    "has_converged",
]
