"""Stepwise (online) EM: the parameters move after every mini-batch.

Stepwise EM (Cappé & Moulines 2009; Liang & Klein 2009) keeps running sufficient
statistics ``s``, normalised per sample. For mini-batch ``t`` it computes the
batch's statistics ``s_hat`` under the current parameters (the E-step and
centring batch EM runs on a chunk), divides them by the batch's row count, and
moves

    s <- (1 - rho_t) s + rho_t s_hat,        rho_t = max((t + t0) ** -alpha, floor),

then runs the M-step on ``s``. Rescaling a set of statistics by ``c`` and
merging two sets (Chan et al.) are linear in the raw moments, so the move above
is exactly ``merge(rescale(s, 1 - rho), rescale(s_hat, rho))`` and the
statistics stay in centred form (weight, mean, scatter about the mean): no
``E[xx^T] - mu mu^T`` cancellation, even for float32 data far from the origin.
A ``step_floor`` above 0 keeps the steps from vanishing: the statistics then
forget old batches at that rate, and the model tracks data that drift.

All the steps over a chunk's rows run in one compiled call without the GIL
(:func:`online_steps`, :func:`streamgmm.kernels.online.online_steps`), on the compiled
E-step, merge and M-step that batch EM calls too; a pass is a fold of that call
over chunks (:func:`fold_chunk`).

Burn-in. Until the statistics define every covariance no M-step runs: the
parameters stay at their starting values and the batches' statistics are merged
with equal weight per row (an exact accumulation, because the parameters do not
change). The burn-in ends after the first batch at which every component holds a
responsibility mass of at least ``d + 1`` rows (full and tied covariances, so the
scatter can have full rank) or ``2`` rows (diag and spherical), or at the latest
once ``BURN_IN_ROWS_PER_PARAMETER_BLOCK * K * (d + 1)`` rows have been seen (a
component still below that mass is starved by its starting parameters and waiting
longer cannot help it; ``reg_covar`` keeps its covariance positive definite). The
burn-in is step 1, so the first step is 1: the starting (empty) statistics are
replaced entirely. Step ``t >= 2`` uses ``rho_t``; with ``alpha = 1``, ``t0 = 0``
and no floor the statistics are the plain average over all batches.

Polyak–Ruppert averaging (optional) keeps, from the end of the burn-in on, the
equal-weight average of the running statistics (again by merge and rescale); the
reported parameters are the M-step of that average, while the E-steps keep using
the parameters of the running statistics.

Every function here is pure: it returns a new :class:`OnlineState`, so a caller
can drop a half-processed call (a batch with NaN) and keep its previous model.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Container, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, NamedTuple

import dask
import dask.array as da
import numpy as np
import zarr

from . import missing
from .cluster import client_in_use
from .covariance import writeable
from .engine import EMRun, EMSettings, run_progress
from .estep import (
    GaussianParameters,
    check_finite,
    compute_dtype,
    kernel_plan,
    usable_limit,
)
from .inputs import row_store_compressor
from .kernels import codes
from .kernels import entries as kernels
from .kernels.records import (
    Mixture,
    OnlineSettings,
    Outcome,
    Pairing,
    Plan,
    PostedBatch,
    Rows,
    Running,
    Statistics,
    Sums,
    rows_record,
    unpaired,
)
from .kernels.tiers import constant
from .mstep import OVERFLOW_MESSAGE, cholesky_error, parameters_from_statistics
from .outputs import STREAM_ROWS_FORMAT, write_output
from .reduction import row_offsets
from .statistics import (
    KINDS,
    SufficientStatistics,
    as_blocks,
    empty_statistics,
    from_blocks,
    merge,
    rescale,
    statistics_blocks,
)
from .threads import single_threaded_blas

BURN_IN_ROWS_PER_PARAMETER_BLOCK = 10
"""The burn-in ends at the latest after ``10 * K * (d + 1)`` rows."""

COMMITTED_ROWS_ATTRIBUTE = "streamgmm_committed_rows"
"""Attribute of an appendable Zarr array: rows completely written so far."""


class OnlineConfig(NamedTuple):
    """The hyper-parameters one stepwise update needs."""

    covariance_type: str
    reg_covar: float
    learning_decay: float
    learning_offset: float
    averaging: bool
    float32_products: bool = False
    step_floor: float = 0.0
    weighted: bool = False
    """Whether the rows carry their weight as a last column (:func:`with_weight_column`)."""
    missing: str = "raise"
    """``"marginalize"``: rows with NaN step through their observed coordinates,
    driven from Python per mini-batch (:func:`streamgmm.missing.stepwise_steps`)."""


class OnlineState(NamedTuple):
    """Everything stepwise EM carries from one mini-batch to the next.

    Attributes
    ----------
    statistics : SufficientStatistics
        Running statistics, normalised per sample (``n_samples`` is 1 after the
        first batch).
    n_steps : int
        Steps of the schedule taken; 0 during the burn-in, 1 once it ends.
    n_samples_seen : int or float
        Rows absorbed so far (over all passes and calls); with weighted rows,
        the sum of their weights (a float).
    averaged : SufficientStatistics or None
        Equal-weight average of ``statistics`` since the burn-in ended (only
        with averaging).
    n_averaged : int
        Number of running statistics in ``averaged``.
    """

    statistics: SufficientStatistics
    n_steps: int
    n_samples_seen: int | float
    averaged: SufficientStatistics | None
    n_averaged: int


def initial_state(n_components: int, n_features: int, covariance_type: str) -> OnlineState:
    """The state before any row: empty statistics, no step taken."""
    empty = empty_statistics(n_components, n_features, covariance_type)
    return OnlineState(empty, 0, 0, None, 0)


def step_size(
    step: int, learning_decay: float, learning_offset: float, step_floor: float = 0.0
) -> float:
    """``rho_t`` for step ``t >= 1``: 1 for the first, ``max((t + t0) ** -alpha,
    floor)`` after (:func:`streamgmm.kernels.online.step_size`)."""
    return float(kernels.step_size(step, learning_decay, learning_offset, step_floor))


def stepwise_update(
    running: SufficientStatistics,
    batch: SufficientStatistics,
    step: float,
    covariance_type: str,
) -> SufficientStatistics:
    """``(1 - step) running + step batch``, as a merge of rescaled statistics."""
    return merge(rescale(running, 1.0 - step), rescale(batch, step), covariance_type)


def burn_in_cap(n_components: int, n_features: int) -> int:
    """Rows after which the burn-in ends whatever the components hold."""
    return BURN_IN_ROWS_PER_PARAMETER_BLOCK * n_components * (n_features + 1)


def burn_in_complete(statistics: SufficientStatistics, n_rows: int, covariance_type: str) -> bool:
    """Whether burn-in statistics over ``n_rows`` rows (exact per-row averages)
    define every covariance; see the module docs for the rule."""
    n_components, n_features = statistics.mean.shape
    return bool(kernels.burn_in_complete(
        writeable(statistics.weight), float(n_rows),
        kernels.burn_in_mass(KINDS[covariance_type], n_features),
        burn_in_cap(n_components, n_features),
    ))


class NextParameters(NamedTuple):
    """The parameters a run of steps ended with: the M-step of ``statistics``
    (the object the state holds) under ``config``, which the next call's first
    E-step uses (:func:`current_parameters`); ``running``, the kernels' record
    the steps ended with, and ``averaged``, the state's averaged statistics
    object (:func:`remembered_running`)."""

    statistics: SufficientStatistics
    config: OnlineConfig
    params: GaussianParameters
    running: Running | None = None
    averaged: SufficientStatistics | None = None


def current_parameters(
    state: OnlineState,
    starting: GaussianParameters,
    config: OnlineConfig,
    remembered: NextParameters | None = None,
) -> GaussianParameters:
    """The parameters the next E-step uses: the starting ones during the burn-in,
    else the M-step of the running statistics, which ``remembered`` already
    holds if it was made from the very statistics object of ``state`` under the
    same ``config`` (the M-step is then not run again: ``partial_fit``)."""
    if state.n_steps == 0:
        return starting
    if (remembered is not None and remembered.statistics is state.statistics
            and remembered.config == config):
        return remembered.params
    params, _ = parameters_from_statistics(
        state.statistics, config.reg_covar, config.covariance_type
    )
    return params


def remembered_running(
    state: OnlineState, covariances: np.ndarray, config: OnlineConfig,
    remembered: NextParameters | None,
) -> Running | None:
    """The kernels' record of ``state``, the parameters :func:`current_parameters`
    takes from ``remembered`` and ``covariances``: the record the steps ended
    with, its covariances replaced by ``covariances`` and its counters by the
    state's, if ``remembered`` holds one made from the very statistics objects
    of ``state`` under the same ``config`` after the burn-in (its parameters
    are then ``remembered.params``, which :func:`current_parameters` gives);
    else None."""
    if (remembered is None or remembered.running is None or state.n_steps == 0
            or remembered.statistics is not state.statistics
            or remembered.averaged is not state.averaged or remembered.config != config):
        return None
    running, mixture = remembered.running, remembered.running.mixture
    return Running(
        Mixture(mixture.weights, mixture.means, as_blocks(covariances, config.covariance_type),
                mixture.factors),
        running.statistics, running.totals, int(state.n_steps), float(state.n_samples_seen),
        running.averaged, running.averaged_totals, int(state.n_averaged))


def reported_parameters(
    state: OnlineState, params: GaussianParameters, covariances: np.ndarray, config: OnlineConfig
) -> tuple[GaussianParameters, np.ndarray]:
    """The parameters a model shows: those of the averaged statistics with
    averaging (after the burn-in), else ``params`` and ``covariances``."""
    if config.averaging and state.averaged is not None:
        return parameters_from_statistics(state.averaged, config.reg_covar, config.covariance_type)
    return params, covariances


def _statistics_record(stats: SufficientStatistics | None, n_components: int,
                       n_features: int, covariance_type: str) -> tuple[Statistics, np.ndarray]:
    """The kernels' statistics and their totals [log_likelihood, n_samples];
    zeros for missing statistics."""
    if stats is None:
        stats = empty_statistics(n_components, n_features, covariance_type)
    return (statistics_blocks(stats, covariance_type),
            np.array([stats.log_likelihood, stats.n_samples], dtype=np.float64))


def _statistics_result(statistics: Statistics, totals: np.ndarray,
                       covariance_type: str) -> SufficientStatistics:
    log_likelihood, n_samples = totals.tolist()
    return SufficientStatistics(statistics.weight, statistics.mean,
                                from_blocks(statistics.scatter, covariance_type),
                                log_likelihood, n_samples)


def running_record(state: OnlineState, params: GaussianParameters, covariances: np.ndarray,
                   config: OnlineConfig) -> Running:
    """The kernels' :class:`~streamgmm.kernels.records.Running` record of
    ``state``, the parameters of the next E-step and their covariances."""
    cov_type = config.covariance_type
    n_components, n_features = params.means.shape
    mixture = Mixture(writeable(params.weights), writeable(params.means),
                      as_blocks(covariances, cov_type),
                      as_blocks(params.precisions_cholesky, cov_type))
    statistics, totals = _statistics_record(state.statistics, n_components, n_features, cov_type)
    averaged, averaged_totals = _statistics_record(state.averaged, n_components, n_features,
                                                   cov_type)
    return Running(mixture, statistics, totals, int(state.n_steps),
                   float(state.n_samples_seen), averaged, averaged_totals,
                   int(state.n_averaged))


def online_steps(
    state: OnlineState, params: GaussianParameters, covariances: np.ndarray, rows: np.ndarray,
    config: OnlineConfig, batch_size: int, **where: Any,
) -> tuple[OnlineState, GaussianParameters, np.ndarray, np.ndarray]:
    """Stepwise-EM updates from ``rows`` (n, d), ``batch_size`` rows per step (the
    last batch may be shorter), in one compiled call without the GIL
    (:func:`kernel_steps`, whose keywords ``where`` takes: ``row_offset``,
    ``row_numbers``, ``order``, ``helper``).

    Returns the new state, the parameters and covariances for the next E-step,
    and each batch's summed log-likelihood under the parameters it met (n_batches,).
    Raises as :func:`kernel_steps`; nothing is changed then.
    """
    outcome = kernel_steps(running_record(state, params, covariances, config), rows, config,
                           batch_size, **where)
    return (*stepped_state(outcome.running, state, config), outcome.batch_log_likelihoods)


def kernel_steps(
    running: Running,
    rows: np.ndarray,
    config: OnlineConfig,
    batch_size: int,
    *,
    row_offset: int = 0,
    row_numbers: np.ndarray | None = None,
    order: np.ndarray | None = None,
    helper: bool = True,
) -> Outcome:
    """The :class:`~streamgmm.kernels.records.Outcome` of the compiled steps
    (:func:`streamgmm.kernels.online.online_steps`) from the kernels' record
    ``running`` over ``rows`` (n, d), ``batch_size`` rows per step (the last
    batch may be shorter); with a non-empty ``order`` (int), the rows
    ``rows[order]`` in that order, without copying them. With ``helper`` (and
    more than one core), a second thread shares the pieces of each batch
    (:mod:`streamgmm.kernels.pairing`); the results are the same to the last
    bit either way.

    Raises ``ValueError`` naming the rows if a row it visits is NaN, infinite or
    too large (the compiled steps check every row they read; rows are named as
    in :func:`~streamgmm.estep.check_finite`: ``row_offset`` plus their index in
    ``rows``, or ``row_numbers[index]``), and ``ValueError`` or
    :class:`~streamgmm.mstep.CholeskyError` if a step's statistics give no valid
    parameters.
    """
    cov_type = config.covariance_type
    mixture = running.mixture
    n_components, n_features = mixture.means.shape
    values, weights = (rows[:, :-1], rows[:, -1]) if config.weighted else (rows, None)
    kernel_rows = rows_record(values, order, weights)
    n_rows = kernel_rows.X.shape[0] if kernel_rows.order.shape[0] == 0 else len(order)
    plan = kernel_plan(cov_type, n_components, n_features,
                       compute_dtype(values, cov_type, config.float32_products))
    settings = _settings(config, int(batch_size), n_components, n_features,
                         values.dtype == np.float32)
    steps = None
    if helper and _worth_a_helper(n_rows, batch_size):
        steps = _paired_steps
    elif helper and _worth_a_standing_helper(n_rows, batch_size):
        steps = _standing_steps
    if steps is not None and kernels.online_steps.tier(
            kernel_rows, running, settings, plan, _unpaired()) is kernels.online_steps.compiled:
        outcome = steps(kernel_rows, running, settings, plan)
    else:
        outcome = kernels.online_steps(kernel_rows, running, settings, plan, _unpaired())
    if outcome.status == codes.STEPS_UNUSABLE_ROWS:
        check_visited(rows, order, row_offset, row_numbers)
        raise ValueError("Input contains NaN, infinity or values too large before fitting.")
    if outcome.status == codes.STEPS_OVERFLOWED:
        raise ValueError(OVERFLOW_MESSAGE)
    if outcome.status == codes.STEPS_NOT_POSITIVE_DEFINITE:
        raise cholesky_error(from_blocks(outcome.running.mixture.covariances, cov_type),
                             cov_type, outcome.failed_component)
    return outcome


def _paired_steps(rows: Rows, running: Running, settings: OnlineSettings, plan: Plan) -> Outcome:
    """The compiled steps with a helper thread sharing the pieces of each batch
    (only the compiled tier pairs: :func:`kernel_steps` checks it is due)."""
    fold = kernels.online_steps.compiled
    pairing = _pairing(running.mixture, plan, settings.batch_size)
    helping = _helper_thread().submit(fold, rows, running, settings, plan,
                                      pairing._replace(helping=True))
    try:
        return fold(rows, running, settings, plan, pairing)
    finally:
        pairing.sync[codes.SYNC_STOP] = 1
        helping.result()


class _Standing:
    """A pairing that outlives the fold calls using it, for folds of a single
    batch (a ``partial_fit``): its helper thread, once started, waits
    :data:`STANDING_PATIENCE` processor cycles for the next batch before it leaves, so
    that calls in quick succession find it waiting instead of paying for its start.

    Both of its pairings (the folding thread's and the helper's) are registered
    kernel constants (:func:`~streamgmm.kernels.tiers.constant`: their arrays
    change, never their types), so that a call takes the kernels' fast call
    without fingerprinting their 33 arrays each time, about 10 us of a 512-row
    ``partial_fit``; being kept alive by the registry, a standing pairing is
    never dropped (one per kind of batch a process folds)."""

    def __init__(self, pairing: Pairing, capacity: int) -> None:
        self.pairing = constant(pairing)
        self.helper_pairing = constant(pairing._replace(helping=True))
        self.capacity = capacity
        self.lock = threading.Lock()
        self.helping: Future | None = None


STANDING_PATIENCE = 5_000_000
"""Processor cycles a standing helper waits without a batch posted before it
leaves (about 2 ms; it yields its core between reads after the first few)."""

_standing: dict[tuple, _Standing] = {}
_standing_lock = threading.Lock()


def _standing_steps(rows: Rows, running: Running, settings: OnlineSettings,
                    plan: Plan) -> Outcome:
    """The compiled steps of a single batch with a standing helper (:class:`_Standing`)
    sharing its pieces; alone if the pairing is in use by another thread. The
    pieces are the same either way, so is every result. Compiled tier only
    (:func:`kernel_steps` checks it is due)."""
    weighted = rows.weights.shape[0] > 0
    key = (plan, settings.limit, running.mixture.means.shape, weighted)
    capacity = max(settings.batch_size, 1024)
    with _standing_lock:
        if key not in _standing or _standing[key].capacity < settings.batch_size:
            _standing[key] = _Standing(_pairing(running.mixture, plan, capacity,
                                                STANDING_PATIENCE, weighted), capacity)
        standing = _standing[key]
    if not standing.lock.acquire(blocking=False):
        return kernels.online_steps(rows, running, settings, plan, _unpaired())
    try:
        if standing.helping is None or standing.helping.done():
            standing.helping = _standing_thread().submit(
                kernels.online_steps, rows, running, settings, plan, standing.helper_pairing)
        return kernels.online_steps(rows, running, settings, plan, standing.pairing)
    finally:
        standing.lock.release()


@functools.cache
def _unpaired() -> Pairing:
    """The pairing of steps without a helper thread, made once: its flags and
    buffers are never read nor written (every step's ``posted`` is 0)."""
    return constant(unpaired())


@functools.cache
def _settings(config: OnlineConfig, batch_size: int, n_components: int, n_features: int,
              float32: bool) -> OnlineSettings:
    """The kernels' :class:`~streamgmm.kernels.records.OnlineSettings` (made
    once per set of arguments)."""
    return constant(OnlineSettings(
        batch_size, float(config.reg_covar), float(config.learning_decay),
        float(config.learning_offset), float(config.step_floor), bool(config.averaging),
        burn_in_cap(n_components, n_features),
        usable_limit(np.dtype(np.float32 if float32 else np.float64)),
    ))


def stepped_state(
    result: Running, state: OnlineState, config: OnlineConfig
) -> tuple[OnlineState, GaussianParameters, np.ndarray]:
    """The state after steps that started from ``state`` and ended with the
    kernels' record ``result``, the parameters of the next E-step and their
    covariances."""
    cov_type = config.covariance_type
    new_state = OnlineState(
        _statistics_result(result.statistics, result.totals, cov_type),
        int(result.n_steps),
        seen_count(result.n_seen if config.weighted or isinstance(
            state.n_samples_seen, _FLOATS) else int(result.n_seen)),
        (_statistics_result(result.averaged, result.averaged_totals, cov_type)
         if result.n_averaged else None),
        int(result.n_averaged),
    )
    new_params = GaussianParameters(result.mixture.weights, result.mixture.means,
                                    from_blocks(result.mixture.factors, cov_type), cov_type)
    return new_state, new_params, from_blocks(result.mixture.covariances, cov_type)


_FLOATS = (float, np.floating)
"""What a sum of weights is (a tuple: ``float | np.floating`` builds a union at
every call)."""


def seen_count(n_seen: float, weighted: bool = False) -> int | float:
    """``n_samples_seen`` as a state keeps it: a float for a sum of weights
    (``weighted``, or a state that summed weights before), else an int."""
    if weighted or isinstance(n_seen, _FLOATS):
        return float(n_seen)
    return int(n_seen)


def with_weight_column(rows: Any, weights: Any) -> Any:
    """Rows (n, d) and their weights (n,) as one float64 array (n, d + 1), the
    weights last, so that they travel with their rows through every fold
    (shuffles, leftovers, checkpoints) to the compiled steps
    (``OnlineConfig.weighted``). NumPy in, NumPy out; Dask arrays keep their row
    chunks."""
    if isinstance(rows, da.Array):
        return rows.map_blocks(
            _weight_column_block, weights[:, None], dtype=np.float64,
            chunks=(rows.chunks[0], (rows.shape[1] + 1,)),
        )
    return _weight_column_block(rows, np.asarray(weights)[:, None])


def _weight_column_block(rows: np.ndarray, weights: np.ndarray) -> np.ndarray:
    out = np.empty((rows.shape[0], rows.shape[1] + 1))
    out[:, :-1] = rows
    out[:, -1:] = weights
    return out


def check_visited(
    rows: np.ndarray, order: np.ndarray | None, row_offset: int = 0,
    row_numbers: np.ndarray | None = None, check: Callable = check_finite,
) -> None:
    """``check`` (:func:`~streamgmm.estep.check_finite`) of the rows ``rows[order]``
    (all of ``rows`` if ``order`` is None or empty), named as in :func:`online_steps`."""
    if order is None or len(order) == 0:
        check(rows, row_offset, row_numbers)
        return
    names = row_offset + order if row_numbers is None else np.asarray(row_numbers)[order]
    check(rows[order], row_numbers=names)


def row_check(config: OnlineConfig) -> Callable:
    """What checks the rows: :func:`~streamgmm.estep.check_finite`, or with
    missing values :func:`streamgmm.missing.check_observed` (NaN allowed)."""
    return check_finite if config.missing == "raise" else missing.check_observed


def _pairing(mixture: Mixture, plan, batch_size: int, patience: int = 0,
             weighted: bool = False) -> Pairing:
    """A :class:`~streamgmm.kernels.records.Pairing` with a helper thread, its two
    buffers shaped for ``mixture`` under ``plan`` and batches of up to
    ``batch_size`` rows; its helper leaves after ``patience`` processor cycles
    without a batch posted (0: only when stopped). A standing helper's
    (positive ``patience``) buffers also hold the rows of a batch after its
    first piece (``weighted`` or not); a pass's helper reads the pass's rows in
    place."""
    n_components, d = mixture.means.shape
    m = kernels.n_product_rows(plan.kind, d, plan.shared_products_max_features)
    pieces = batch_size // plan.block + 2
    capacity = batch_size if patience > 0 else 0

    def buffer() -> PostedBatch:
        values, weights = np.zeros((capacity, d)), np.zeros(capacity if weighted else 0)
        sums = kernels.zero_sums(m, plan.kind, n_components, d)
        return PostedBatch(Mixture(*(array.copy() for array in mixture)),
                           Sums(*(np.zeros((pieces,) + array.shape) for array in sums[:-1]),
                                0.0),
                           np.zeros((pieces, 2)), np.zeros(pieces, dtype=np.int64),
                           values, weights, rows_record(values, None,
                                                        weights if weighted else None))

    sync = np.zeros(codes.SYNC_SLOTS, dtype=np.int64)
    sync[codes.SYNC_PATIENCE] = patience
    return Pairing(True, False, sync, (buffer(), buffer()))


def _worth_a_standing_helper(n_rows: int, batch_size: int) -> bool:
    """Whether a single batch (a ``partial_fit``'s) should share its pieces with
    a standing helper: when it is split and there is more than one core."""
    return codes.SPLIT_MIN_ROWS <= n_rows <= batch_size and _CORES > 1


def _worth_a_helper(n_rows: int, batch_size: int) -> bool:
    """Whether a second thread should share the pieces of the batches of
    :func:`online_steps`: when there are batches to split and more than one
    core."""
    return (min(batch_size, n_rows) >= codes.SPLIT_MIN_ROWS and n_rows > batch_size
            and _CORES > 1)


_CORES = os.cpu_count() or 1


@functools.cache
def _helper_thread() -> ThreadPoolExecutor:
    """The thread that helps the fold (:func:`streamgmm.kernels.pairing.help_online_steps`)."""
    return ThreadPoolExecutor(1, thread_name_prefix="streamgmm-online-helper")


@functools.cache
def _standing_thread() -> ThreadPoolExecutor:
    """The thread of the standing helpers (:class:`_Standing`), apart from that
    of the passes' helpers, which a pass waits for at its end."""
    return ThreadPoolExecutor(1, thread_name_prefix="streamgmm-standing-helper")


@functools.cache
def _order_thread() -> ThreadPoolExecutor:
    """The thread that draws the next in-memory pass's order while this pass
    folds (:func:`online_em`)."""
    return ThreadPoolExecutor(1, thread_name_prefix="streamgmm-pass-order")


def _after_fork() -> None:
    _helper_thread.cache_clear()
    _standing_thread.cache_clear()
    _order_thread.cache_clear()
    _standing.clear()


os.register_at_fork(after_in_child=_after_fork)


class FoldCarry(NamedTuple):
    """What an online pass carries from one chunk to the next: a few kilobytes,
    the only thing that travels between the tasks of a pass.

    Attributes
    ----------
    state : OnlineState
    params : GaussianParameters
        The parameters of the next E-step.
    covariances : ndarray
        Their covariances (the shape of ``covariances_``).
    leftover : ndarray of shape (r, d) with r < batch_size, or None
        Rows at the end of the chunks folded so far that do not fill a batch;
        they start the next batch (:func:`finish_pass` steps on them at the end
        of a pass).
    total : float
        Summed log-likelihood of the pass's batches so far, each under the
        parameters it met.
    count : int
        Rows in those batches.
    batches_done : int
        Batches of the pass applied so far.
    running : Running or None
        See below.
    """

    state: OnlineState
    params: GaussianParameters
    covariances: np.ndarray
    leftover: np.ndarray | None = None
    total: float = 0.0
    count: int = 0
    batches_done: int = 0
    running: Running | None = None
    """The kernels' record of ``state``, ``params`` and ``covariances`` when the
    last fold made them (the next fold then passes it on as it is), else None."""


def visiting_order(n_rows: int, shuffle_seed: tuple[int, int]) -> np.ndarray:
    """The order (n_rows,) in which a pass visits the rows of a chunk, drawn from
    ``shuffle_seed`` (the pass's seed and the chunk's index)."""
    return np.random.default_rng(shuffle_seed).permutation(n_rows)


def fold_chunk(
    carry: FoldCarry,
    chunk: np.ndarray,
    config: OnlineConfig,
    batch_size: int,
    *,
    first_row: int = 0,
    row_numbers: np.ndarray | None = None,
    shuffle_seed: tuple[int, int] | None = None,
    order: np.ndarray | None = None,
) -> FoldCarry:
    """``carry`` after every mini-batch step of one chunk (n, d) of a pass.

    The chunk's rows follow the rows left over in ``carry``; with a
    ``shuffle_seed`` (the pass's seed and the chunk's index) they are visited
    in a random order drawn from it, so that a resumed pass draws the same
    order; with ``order`` (int) only the rows ``chunk[order]``, in that order,
    are visited (read in place, not gathered). Rows that do not fill a batch are
    left over for the next chunk.

    Rows are named in errors as ``first_row`` plus their index in the chunk, or
    by ``row_numbers`` (n,). If a visited row is NaN, infinite or too large
    (every row is checked as the compiled steps read it; the rows left over, as
    they are taken), ``ValueError`` names all such rows of the chunk; the
    function is pure, so a caller that catches the error still holds the
    ``carry`` it had. In a Dask pass this is the task that runs where the chunk
    is (:func:`fold_pass`).
    """
    chunk = np.asarray(chunk)
    if order is None and shuffle_seed is not None:
        order = visiting_order(chunk.shape[0], shuffle_seed)
    try:
        return _fold_visited(carry, chunk, order, config, batch_size)
    except ValueError:
        check_visited(chunk, order, first_row, row_numbers, row_check(config))
        raise


def _fold_visited(
    carry: FoldCarry, chunk: np.ndarray, order: np.ndarray | None, config: OnlineConfig,
    batch_size: int,
) -> FoldCarry:
    """:func:`fold_chunk` of the rows ``chunk[order]`` (all of ``chunk`` if
    ``order`` is None), raising ``ValueError`` without naming rows."""

    def take(begin: int, end: int) -> np.ndarray:
        taken = chunk[begin:end] if order is None else chunk[order[begin:end]]
        row_check(config)(taken)
        return taken

    n_rows = chunk.shape[0] if order is None else len(order)
    position = 0
    if carry.leftover is not None and carry.leftover.shape[0]:
        position = min(batch_size - carry.leftover.shape[0], n_rows)
        pending = np.concatenate([carry.leftover, take(0, position)])
        if pending.shape[0] < batch_size:
            return carry._replace(leftover=pending)
        carry = _fold_steps(carry, pending, config, batch_size)
    n_whole = (n_rows - position) // batch_size * batch_size
    if n_whole and order is None:
        carry = _fold_steps(carry, chunk[position : position + n_whole], config, batch_size)
    elif n_whole:
        whole = order[position : position + n_whole]
        carry = _fold_steps(carry, chunk, config, batch_size, order=whole)
    rest = np.array(take(position + n_whole, n_rows))
    return carry._replace(leftover=rest if rest.shape[0] else None)


def fold_rows(carry: FoldCarry, rows: np.ndarray, config: OnlineConfig, batch_size: int,
              *, first_row: int = 0) -> FoldCarry:
    """``carry`` (with nothing left over) after stepwise EM on all of ``rows``
    (n, d) in memory, ``batch_size`` rows per step and the last step shorter:
    the steps of :func:`fold_chunk` then :func:`finish_pass`, in one compiled
    call (``partial_fit``). Rows are named in errors from ``first_row``."""
    try:
        return _fold_steps(carry, rows, config, batch_size)
    except ValueError:
        check_visited(rows, None, first_row, None, row_check(config))
        raise


def _fold_steps(
    carry: FoldCarry,
    rows: np.ndarray,
    config: OnlineConfig,
    batch_size: int,
    order: np.ndarray | None = None,
) -> FoldCarry:
    """``carry`` after the steps of :func:`online_steps` on ``rows``
    (``rows[order]``), its batches' log-likelihoods added to the total one by
    one; the kernels' record of the carry is made only if it holds none."""
    running = None
    with single_threaded_blas():
        if config.missing == "marginalize":
            fields, params, covariances, log_likelihoods, n_rows = missing.stepwise_steps(
                carry.state, carry.params, carry.covariances, rows, config, batch_size, order,
                update=stepwise_update, step_size=step_size, burn_in_complete=burn_in_complete)
            state = OnlineState(*fields)
        else:
            running = carry.running
            if running is None:
                running = running_record(carry.state, carry.params, carry.covariances, config)
            outcome = kernel_steps(running, rows, config, batch_size, order=order)
            running, log_likelihoods = outcome.running, outcome.batch_log_likelihoods
            state, params, covariances = stepped_state(running, carry.state, config)
            n_rows = rows.shape[0] if order is None else order.shape[0]
            if config.weighted:
                n_rows = float(rows[:, -1].sum() if order is None else rows[order, -1].sum())
    total = carry.total
    for log_likelihood in log_likelihoods.tolist():
        total += log_likelihood
    return FoldCarry(state, params, covariances, carry.leftover, total, carry.count + n_rows,
                     carry.batches_done + log_likelihoods.shape[0], running)


def finish_pass(carry: FoldCarry, config: OnlineConfig) -> FoldCarry:
    """``carry`` after a last, short step on its leftover rows (if any)."""
    if carry.leftover is None:
        return carry
    leftover = carry.leftover
    finished = _fold_steps(carry, leftover, config, leftover.shape[0])
    return finished._replace(leftover=None)


Report = Callable[[int, FoldCarry], None]
"""``report(chunks_done, carry)``: a pass's carry after some of its chunks."""


def fold_pass(
    carry: FoldCarry,
    array: da.Array,
    order: Sequence[int],
    config: OnlineConfig,
    batch_size: int,
    *,
    pass_seed: int | None = None,
    first_row: int = 0,
    report_at: Container[int] = (),
    report: Report | None = None,
) -> FoldCarry:
    """``carry`` after folding the row-chunks of ``array`` in ``order`` and
    finishing the pass (:func:`finish_pass`).

    The pass is a chain ``carry_i = fold_chunk(carry_{i-1}, chunk_i)`` in which
    chunk ``i + 1`` is read while chunk ``i`` is folded, and at most those two
    chunks are held. Under a ``dask.distributed`` client the folds are tasks on
    the workers: each runs where its chunk was read (the chunk is megabytes,
    the carry kilobytes), and only the final carry comes to the client.
    Otherwise the chunks are read by the active Dask scheduler in a background
    thread, which also puts their rows in visiting order, and folded in this
    one. ``pass_seed`` shuffles each chunk's rows
    (seeded by the pass seed and the chunk index); rows are numbered from
    ``first_row`` in errors. ``report(k, carry)`` is called for every ``k`` in
    ``report_at`` after the first ``k`` chunks of ``order`` (that carry comes to
    the client).
    """
    blocks = array.to_delayed().ravel()
    offsets = row_offsets(array)

    def arguments(index: int) -> dict:
        seed = None if pass_seed is None else (pass_seed, int(index))
        return {"first_row": first_row + offsets[index], "shuffle_seed": seed}

    def read(index: int) -> tuple[np.ndarray, dict]:
        return _in_visiting_order(_compute_block(blocks[index]), **arguments(index))

    client = client_in_use([array])
    if client is None:
        carry = _fold_read_ahead(carry, read, order, config, batch_size, report_at, report)
        return finish_pass(carry, config)
    return _fold_on_cluster(
        client, carry, blocks, order, arguments, config, batch_size, report_at, report
    )


def _fold_read_ahead(
    carry: FoldCarry,
    read: Callable[[Any], tuple[np.ndarray, dict]],
    items: Sequence[Any],
    config: OnlineConfig,
    batch_size: int,
    report_at: Container[int],
    report: Report | None,
) -> FoldCarry:
    """Fold the chunks ``read(item)`` gives for ``items`` in turn (a chunk and
    the keywords of :func:`fold_chunk` for it), with one reader thread a chunk
    ahead of the folds: reading, decoding and gathering rows run on the other
    core while this thread folds."""
    if not len(items):
        return carry
    with ThreadPoolExecutor(1, thread_name_prefix="streamgmm-read") as reader:
        upcoming = reader.submit(read, items[0])
        for position in range(len(items)):
            chunk, where = upcoming.result()
            if position + 1 < len(items):
                upcoming = reader.submit(read, items[position + 1])
            carry = fold_chunk(carry, chunk, config, batch_size, **where)
            del chunk
            if report is not None and position + 1 in report_at:
                report(position + 1, carry)
    return carry


def _compute_block(block) -> np.ndarray:
    (chunk,) = dask.compute(block)
    return np.asarray(chunk)


def _in_visiting_order(
    chunk: np.ndarray, first_row: int, shuffle_seed: tuple[int, int] | None
) -> tuple[np.ndarray, dict]:
    """``chunk`` with its rows in the order :func:`fold_chunk` visits them, and
    the keywords that make ``fold_chunk`` name them right in errors: the reader
    thread gathers the rows, so the fold reads them in place (at
    ``batch_size=512`` a gather inside the fold cost 20 ms of a 131,072-row
    chunk's 40 to 60; the reader does it on the other core). ``np.take`` gathers
    whole rows about three times as fast as indexing with an array (1.8 against
    5-6 ms for 131,072 rows of 16 float64)."""
    if shuffle_seed is None:
        return chunk, {"first_row": first_row}
    rows = visiting_order(chunk.shape[0], shuffle_seed)
    return np.take(chunk, rows, axis=0), {"row_numbers": first_row + rows}


def _fold_on_cluster(
    client, carry, blocks, order, arguments, config, batch_size, report_at, report
):
    """:func:`fold_pass` as tasks of a ``dask.distributed`` client: the reads of
    chunks ``i`` and ``i + 1`` are submitted once fold ``i - 1`` is done, so the
    cluster holds about two chunks of the pass at a time. Every fold keeps its
    inputs' lineage, so a lost worker's chunks and carries are recomputed."""
    folds = []
    for position, index in enumerate(order):
        chunk = client.compute(blocks[index])
        carry = client.submit(
            fold_chunk, carry, chunk, config, batch_size, pure=False, **arguments(index)
        )
        folds.append(carry)
        if position >= 1:
            _settle(folds, position - 1, report_at, report)
    if folds:
        _settle(folds, len(folds) - 1, report_at, report)
    return client.submit(finish_pass, carry, config, pure=False).result()


def _settle(folds, position, report_at, report) -> None:
    """Wait for fold ``position``; raise its error, report its carry if asked,
    and drop the client's reference to it (its dependents keep its lineage)."""
    from distributed import wait

    future = folds[position]
    wait(future)
    if future.status == "error" or (report is not None and position + 1 in report_at):
        carry = future.result()
        if report is not None and position + 1 in report_at:
            report(position + 1, carry)
    folds[position] = None


SHUFFLED_GATHER_ROWS = 2**15
"""In-memory rows are folded this many at a time, in whole batches (the
chunks of a pass over NumPy rows, and the points a checkpoint can resume at)."""


def pass_order(n_rows: int, seed: int) -> np.ndarray:
    """The order (n_rows,) in which an in-memory pass drawn from ``seed`` visits
    the rows (:func:`fold_in_memory`)."""
    return np.random.default_rng(seed).permutation(n_rows)


def pass_draws(rng: np.random.Generator, n_chunks: int,
               shuffle: bool) -> tuple[np.ndarray, int | None]:
    """What a pass of :func:`online_em` draws from ``rng`` before it folds: the
    order of its ``n_chunks`` chunks and, with ``shuffle``, the seed of its
    rows' order."""
    order = rng.permutation(n_chunks)
    return order, int(rng.integers(2**63)) if shuffle else None


def next_pass_seed(rng: np.random.Generator, n_chunks: int, shuffle: bool) -> int | None:
    """The rows' seed the next pass will draw from ``rng`` (:func:`pass_draws`),
    leaving ``rng`` as it is."""
    ahead = np.random.Generator(type(rng.bit_generator)())
    ahead.bit_generator.state = rng.bit_generator.state
    return pass_draws(ahead, n_chunks, shuffle)[1]


def shuffled_block_rows(n_rows: int, batch_size: int) -> int:
    """Rows per block of :func:`fold_in_memory`: whole batches, about
    ``SHUFFLED_GATHER_ROWS``."""
    return max(1, SHUFFLED_GATHER_ROWS // batch_size) * batch_size


def fold_in_memory(
    carry: FoldCarry,
    rows: np.ndarray,
    seed: int,
    config: OnlineConfig,
    batch_size: int,
    *,
    blocks_done: int = 0,
    report_at: Container[int] = (),
    report: Report | None = None,
    order: np.ndarray | None = None,
) -> FoldCarry:
    """``carry`` after a pass over in-memory ``rows`` (n, d) in one random
    order drawn from ``seed`` (every row once, each batch a sample of the whole
    data whatever their stored order: :func:`pass_order`, or ``order`` if
    given, which must be that order), finished by :func:`finish_pass`.

    Each block of :func:`shuffled_block_rows` rows of that order is a chunk of
    the fold; the first ``blocks_done`` blocks are skipped (a resumed pass).
    The compiled steps read the rows in place, in that order, when ``rows`` are
    C-contiguous float32 or float64 (in both threads of a step; a gather by
    NumPy first cost as much CPU time again), all the blocks up to the next
    point in ``report_at`` in one call (one call per pass when nothing is
    reported: each call costs Python work and a start of the helper thread);
    other rows are gathered a block at a time. The batches, and so the result,
    are the same either way. Rows are named by their index in errors.
    ``report`` as in :func:`fold_pass`, with blocks for chunks (counted from
    ``blocks_done``).
    """
    if order is None:
        order = pass_order(rows.shape[0], seed)
    step = shuffled_block_rows(rows.shape[0], batch_size)
    n_blocks = -(-rows.shape[0] // step) - blocks_done
    in_place = rows.dtype in (np.float32, np.float64) and rows.flags.c_contiguous
    if in_place:
        ends = sorted({point for point in report_at if 0 < point < n_blocks} | {n_blocks})
    else:
        ends = range(1, n_blocks + 1)
    begin = 0
    for end in ends:
        picked = order[(blocks_done + begin) * step : (blocks_done + end) * step]
        if in_place:
            carry = fold_chunk(carry, rows, config, batch_size, order=picked)
        else:
            carry = fold_chunk(carry, rows[picked], config, batch_size, row_numbers=picked)
        if report is not None and end in report_at:
            report(end, carry)
        begin = end
    return finish_pass(carry, config)


def report_points(chunk_rows: Sequence[int], batch_size: int, every: int) -> set[int]:
    """Chunk counts after which a pass over chunks of ``chunk_rows`` rows (in
    visiting order) reports its position: the first chunk end after each
    further ``every`` batches, except the pass's end (reported anyway)."""
    points, rows, last = set(), 0, 0
    for count, n_rows in enumerate(chunk_rows[:-1], 1):
        rows += n_rows
        if every > 0 and rows // batch_size - last >= every:
            points.add(count)
            last = rows // batch_size
    return points


class OnlinePosition(NamedTuple):
    """Where a stepwise-EM fit stands among its passes, for checkpoints.

    Attributes
    ----------
    passes_done : int
        Complete passes.
    lower_bounds : list of float
        Mean log-likelihood of every complete pass.
    converged : bool
        Whether the last complete pass met ``tol``.
    pass_rng_state : dict or None
        The generator's state before the pass in progress (or, at a pass
        boundary, the next pass) drew its chunk order; None before the first.
    batches_done, total, count : int, float, int
        Batches of the pass in progress already applied, and their summed
        log-likelihood and rows.
    chunks_done : int
        Chunks of the pass in progress folded (in its order; for in-memory
        rows, blocks of :func:`fold_in_memory`).
    leftover : ndarray or None
        Rows of those chunks waiting for the next batch.
    """

    passes_done: int
    lower_bounds: list
    converged: bool
    pass_rng_state: dict | None
    batches_done: int
    total: float
    count: int
    chunks_done: int = 0
    leftover: np.ndarray | None = None


START_POSITION = OnlinePosition(0, [], False, None, 0, 0.0, 0)


def online_em(
    array: da.Array,
    params: GaussianParameters,
    covariances: np.ndarray,
    state: OnlineState,
    config: OnlineConfig,
    *,
    batch_size: int,
    max_iter: int,
    tol: float,
    rng: np.random.Generator,
    verbose: int = 0,
    verbose_interval: int = 1,
    position: OnlinePosition = START_POSITION,
    on_position: Callable[..., None] | None = None,
    every: int = 0,
    shuffle: bool = True,
    in_memory: np.ndarray | None = None,
) -> EMRun:
    """Stepwise EM over passes through ``array``; each pass visits the row-chunks
    in a fresh random order, and with ``shuffle`` the rows of each chunk too, or,
    when the rows are ``in_memory`` (the NumPy array behind ``array``), all rows
    in one random order. Each pass is a fold over chunks (:func:`fold_pass`,
    :func:`fold_in_memory`).
    Stops after ``max_iter`` passes or when a pass's mean log-likelihood (of
    each batch under the parameters it met) changes by less than ``tol``.
    Returns the run (:class:`~streamgmm.engine.EMRun`), recorded pass by pass
    by :meth:`~streamgmm.engine.EMRun.record` (the convergence rule of batch EM).

    ``on_position(state, params, covariances, position)`` is called after every
    pass and, if ``every > 0``, inside a pass at the first chunk end after each
    further ``every`` mini-batches; passing such a ``position`` back (with the
    state and parameters of that call and ``rng`` in any state) continues the
    fit exactly where it stood, without reading the chunks already folded.
    """
    lower_bounds = list(position.lower_bounds)
    run = EMRun(
        params, covariances, lower_bound=lower_bounds[-1] if lower_bounds else -np.inf,
        lower_bounds=lower_bounds, n_iter=position.passes_done,
        converged=position.converged, label="online EM",
    )
    settings = EMSettings(tol, max_iter, config.reg_covar, verbose=verbose,
                          verbose_interval=verbose_interval)
    ahead: tuple[int, Future] | None = None
    with run_progress(run, settings) as progress:
        while not run.stopped(max_iter):
            carry, chunks_done = FoldCarry(state, params, covariances), 0
            if position.pass_rng_state is not None and position.passes_done == run.n_iter:
                rng.bit_generator.state = position.pass_rng_state
                carry = FoldCarry(
                    state,
                    params,
                    covariances,
                    position.leftover,
                    position.total,
                    position.count,
                    position.batches_done,
                )
                chunks_done = position.chunks_done
            pass_rng_state = rng.bit_generator.state
            order, seed = pass_draws(rng, array.numblocks[0], shuffle)
            pass_position = OnlinePosition(
                run.n_iter, list(run.lower_bounds), False, pass_rng_state, 0, 0.0, 0
            )

            def report_from(chunks_before: int, pass_position=pass_position) -> Report | None:
                if on_position is None or every <= 0:
                    return None
                return functools.partial(
                    _report_position, on_position, pass_position, chunks_before
                )

            in_memory_pass = seed is not None and in_memory is not None
            if in_memory_pass:
                step = shuffled_block_rows(in_memory.shape[0], batch_size)
                sizes = [step] * (-(-in_memory.shape[0] // step))
            else:
                sizes = [array.chunks[0][index] for index in order]
            report = report_from(chunks_done)
            points = report_points(sizes, batch_size, every) if report is not None else set()
            reports = {
                "report_at": {point - chunks_done for point in points if point > chunks_done},
                "report": report,
            }
            if in_memory_pass:
                drawn = ahead[1].result() if ahead is not None and ahead[0] == seed else None
                ahead = None
                if run.n_iter + 1 < max_iter:
                    following = next_pass_seed(rng, array.numblocks[0], shuffle)
                    ahead = following, _order_thread().submit(
                        pass_order, in_memory.shape[0], following)
                carry = fold_in_memory(
                    carry, in_memory, seed, config, batch_size, blocks_done=chunks_done,
                    order=drawn, **reports
                )
            else:
                remaining = order[chunks_done:]
                carry = fold_pass(
                    carry, array, remaining, config, batch_size, pass_seed=seed, **reports
                )
            state, params, covariances = carry.state, carry.params, carry.covariances
            run.record(params, covariances, carry.total / carry.count, tol, progress)
            if on_position is not None:
                boundary = OnlinePosition(
                    run.n_iter, list(run.lower_bounds), run.converged,
                    rng.bit_generator.state, 0, 0.0, 0,
                )
                on_position(state, params, covariances, boundary)
    with single_threaded_blas():
        run.params, run.covariances = reported_parameters(state, params, covariances, config)
    run.online_state = state
    return run


def _report_position(on_position, pass_position, chunks_before, chunks_done, carry):
    """``report`` of :func:`online_em`'s passes: the carry as an ``on_position``
    call (``chunks_done`` counted from ``chunks_before``, where the fold started)."""
    here = pass_position._replace(
        batches_done=carry.batches_done,
        total=carry.total,
        count=carry.count,
        chunks_done=chunks_before + chunks_done,
        leftover=carry.leftover,
    )
    on_position(carry.state, carry.params, carry.covariances, here)


# ------------------------------------------------------- data that keeps arriving
def create_stream_array(
    path: str | os.PathLike,
    n_features: int,
    *,
    chunk_rows: int = 65_536,
    dtype: str = "float64",
    overwrite: bool = False,
) -> zarr.Array:
    """Create an empty Zarr array of shape (0, n_features) for :func:`append_rows`.

    Rows appended to a stream cannot be written again, so anything already at
    ``path`` (an empty folder aside), a stream included, is refused unless
    ``overwrite=True`` (see :mod:`streamgmm.outputs`).
    """

    def write(temporary):
        zarr.create_array(
            store=os.fspath(temporary),
            shape=(0, n_features),
            chunks=(chunk_rows, n_features),
            dtype=dtype,
            compressors=row_store_compressor(),
            attributes={"format": STREAM_ROWS_FORMAT, COMMITTED_ROWS_ATTRIBUTE: 0},
        )

    written = write_output(path, STREAM_ROWS_FORMAT, write, overwrite=overwrite)
    return zarr.open_array(store=os.fspath(written), mode="r+")


def committed_rows(array: zarr.Array) -> int:
    """Rows of ``array`` completely written: the committed count if the array has
    one (see :func:`append_rows`), else its length."""
    return int(array.attrs.get(COMMITTED_ROWS_ATTRIBUTE, array.shape[0]))


def append_rows(path: str | os.PathLike, rows: np.ndarray) -> int:
    """Append ``rows`` (n, d) to the Zarr array at ``path``; returns the new
    committed row count.

    The array is resized and the rows written first; only then is the committed
    count (an attribute) raised. Zarr writes each metadata document and chunk
    file whole, so a reader in another process never sees a committed row that
    is not fully written.
    """
    array = zarr.open_array(store=os.fspath(path), mode="r+")
    rows = np.asarray(rows)
    if rows.ndim != 2 or rows.shape[1] != array.shape[1]:
        raise ValueError(f"rows must have shape (n, {array.shape[1]}), got {rows.shape}")
    start = committed_rows(array)
    stop = start + rows.shape[0]
    array.resize((stop, array.shape[1]))
    array[start:stop] = rows
    array.attrs[COMMITTED_ROWS_ATTRIBUTE] = stop
    return stop


def update_from_zarr(
    model: Any, path: str | os.PathLike, *, include_partial_batch: bool = False
) -> int:
    """Learn from the rows appended to the Zarr array at ``path`` since the last
    call, by ``model.partial_fit``; returns the number of rows learnt from.

    The model's ``stream_position_`` (0 if absent) is the first row not learnt
    yet; it is saved with the model. Only whole mini-batches of
    ``model.batch_size`` rows are used unless ``include_partial_batch``, so the
    result does not depend on how the appends were timed. A failing update (for
    example a row with NaN) leaves the model and its position unchanged.
    """
    from .inputs import open_zarr_array
    from .zarr_reading import from_zarr

    array = open_zarr_array(path)
    start = int(getattr(model, "stream_position_", 0))
    available = committed_rows(array)
    if available < start:
        raise ValueError(
            f"The array at {os.fspath(path)!r} has {available} rows but the model has "
            f"already learnt from {start}; was it rewritten?"
        )
    stop = available
    if not include_partial_batch:
        stop = start + (available - start) // model.batch_size * model.batch_size
    if stop == start:
        return 0
    rows = from_zarr(array)[start:stop]
    model._partial_fit(rows, first_row=start)
    model.stream_position_ = stop
    return stop - start


__all__ = [
    "create_stream_array",
    "append_rows",
    "update_from_zarr",
    "step_size",
]
