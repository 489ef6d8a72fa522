"""Stepwise (online) EM: the parameters move after every mini-batch.

Stepwise EM (Cappé & Moulines 2009; Liang & Klein 2009) keeps running sufficient
statistics ``s``, normalised per sample. For mini-batch ``t`` it computes the
batch's statistics ``s_hat`` under the current parameters (the same
:func:`~streamgmm.estep.chunk_statistics` batch EM maps over chunks), divides
them by the batch's row count, and moves

    s <- (1 - rho_t) s + rho_t s_hat,        rho_t = (t + t0) ** -alpha,

then runs the M-step (:func:`~streamgmm.mstep.parameters_from_statistics`) on
``s``. Rescaling a set of statistics by ``c`` and merging two sets (Chan et al.)
are linear in the raw moments, so the move above is exactly
``merge(rescale(s, 1 - rho), rescale(s_hat, rho))`` and the statistics stay in
centred form (weight, mean, scatter about the mean): no ``E[xx^T] - mu mu^T``
cancellation, even for float32 data far from the origin.

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
replaced entirely. Step ``t >= 2`` uses ``rho_t = (t + t0) ** -alpha``; with
``alpha = 1`` and ``t0 = 0`` the statistics are the plain average over all batches.

Polyak–Ruppert averaging (optional) keeps, from the end of the burn-in on, the
equal-weight average of the running statistics (again by merge and rescale); the
reported parameters are the M-step of that average, while the E-steps keep using
the parameters of the running statistics.

Every function here is pure: it returns a new :class:`OnlineState`, so a caller
can drop a half-processed call (a batch with NaN) and keep its previous model.
"""

from __future__ import annotations

import functools
import itertools
import os
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import dask
import dask.array as da
import numpy as np
import zarr

from .estep import GaussianParameters, check_finite, chunk_statistics
from .inputs import row_store_compressor
from .mstep import parameters_from_statistics
from .progress import FitProgress, history_from_lower_bounds
from .reduction import row_offsets
from .statistics import SufficientStatistics, empty_statistics, merge, rescale
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


class OnlineState(NamedTuple):
    """Everything stepwise EM carries from one mini-batch to the next.

    Attributes
    ----------
    statistics : SufficientStatistics
        Running statistics, normalised per sample (``n_samples`` is 1 after the
        first batch).
    n_steps : int
        Steps of the schedule taken; 0 during the burn-in, 1 once it ends.
    n_samples_seen : int
        Rows absorbed so far (over all passes and calls).
    averaged : SufficientStatistics or None
        Equal-weight average of ``statistics`` since the burn-in ended (only
        with averaging).
    n_averaged : int
        Number of running statistics in ``averaged``.
    """

    statistics: SufficientStatistics
    n_steps: int
    n_samples_seen: int
    averaged: SufficientStatistics | None
    n_averaged: int


def initial_state(n_components: int, n_features: int, covariance_type: str) -> OnlineState:
    """The state before any row: empty statistics, no step taken."""
    empty = empty_statistics(n_components, n_features, covariance_type)
    return OnlineState(empty, 0, 0, None, 0)


def step_size(step: int, learning_decay: float, learning_offset: float) -> float:
    """``rho_t`` for step ``t >= 1``: 1 for the first, ``(t + t0) ** -alpha`` after."""
    if step <= 1:
        return 1.0
    return float((step + learning_offset) ** -learning_decay)


def stepwise_update(
    running: SufficientStatistics,
    batch: SufficientStatistics,
    step: float,
    covariance_type: str,
) -> SufficientStatistics:
    """``(1 - step) running + step batch``, as a merge of rescaled statistics."""
    return merge(rescale(running, 1.0 - step), rescale(batch, step), covariance_type)


def burn_in_complete(statistics: SufficientStatistics, n_rows: int, covariance_type: str) -> bool:
    """Whether burn-in statistics over ``n_rows`` rows (exact per-row averages)
    define every covariance; see the module docs for the rule."""
    n_components, n_features = statistics.mean.shape
    needed = n_features + 1 if covariance_type in ("full", "tied") else 2
    mass = statistics.weight * n_rows
    cap = BURN_IN_ROWS_PER_PARAMETER_BLOCK * n_components * (n_features + 1)
    return bool(np.all(mass >= needed) or n_rows >= cap)


def current_parameters(
    state: OnlineState, starting: GaussianParameters, config: OnlineConfig
) -> GaussianParameters:
    """The parameters the next E-step uses: the starting ones during the burn-in,
    else the M-step of the running statistics."""
    if state.n_steps == 0:
        return starting
    params, _ = parameters_from_statistics(
        state.statistics, config.reg_covar, config.covariance_type
    )
    return params


def reported_parameters(
    state: OnlineState, params: GaussianParameters, covariances: np.ndarray, config: OnlineConfig
) -> tuple[GaussianParameters, np.ndarray]:
    """The parameters a model shows: those of the averaged statistics with
    averaging (after the burn-in), else ``params`` and ``covariances``."""
    if config.averaging and state.averaged is not None:
        return parameters_from_statistics(state.averaged, config.reg_covar, config.covariance_type)
    return params, covariances


def online_step(
    state: OnlineState,
    params: GaussianParameters,
    covariances: np.ndarray,
    batch: np.ndarray,
    config: OnlineConfig,
    row_offset: int = 0,
) -> tuple[OnlineState, GaussianParameters, np.ndarray, float]:
    """One stepwise-EM update from the rows ``batch`` (n, d).

    Returns the new state, the parameters and covariances for the next E-step,
    and the batch's summed log-likelihood under ``params``. Raises ``ValueError``
    for NaN or infinite rows (numbered from ``row_offset``) before changing
    anything.
    """
    n_rows = batch.shape[0]
    raw = chunk_statistics(batch, params, row_offset, float32_products=config.float32_products)
    normalised = rescale(raw, 1.0 / n_rows)
    n_seen = state.n_samples_seen + n_rows
    cov_type = config.covariance_type
    if state.n_steps == 0:
        statistics = stepwise_update(state.statistics, normalised, n_rows / n_seen, cov_type)
        if not burn_in_complete(statistics, n_seen, cov_type):
            waiting = state._replace(statistics=statistics, n_samples_seen=n_seen)
            return waiting, params, covariances, raw.log_likelihood
        step = 1
    else:
        step = state.n_steps + 1
        rho = step_size(step, config.learning_decay, config.learning_offset)
        statistics = stepwise_update(state.statistics, normalised, rho, cov_type)
    params, covariances = parameters_from_statistics(statistics, config.reg_covar, cov_type)
    averaged, n_averaged = state.averaged, state.n_averaged
    if config.averaging:
        n_averaged += 1
        averaged = (
            statistics
            if averaged is None
            else stepwise_update(averaged, statistics, 1.0 / n_averaged, cov_type)
        )
    new_state = OnlineState(statistics, step, n_seen, averaged, n_averaged)
    return new_state, params, covariances, raw.log_likelihood


def iterate_batches(
    array: da.Array,
    batch_size: int,
    chunk_order: Any = None,
    first_row: int = 0,
    shuffle_seed: int | None = None,
) -> Iterator[tuple[np.ndarray, int]]:
    """Mini-batches of ``batch_size`` rows (the last one may be shorter) and the
    index of their first row, reading one row-chunk of ``array`` at a time in
    ``chunk_order`` (default: stored order).

    With a ``shuffle_seed`` the rows of each chunk are visited in a random order
    drawn from ``(shuffle_seed, chunk index)``, so that a resumed pass draws the
    same orders; a batch's "first row" is then that of its chunk.

    Rows left over at the end of a chunk start the next batch, so only the last
    batch is short; batches are views into the chunk (only a batch that spans
    two chunks is copied), so memory holds about one chunk. Every chunk is
    checked for NaN and infinity as it is read, so errors name the true rows
    (counted from ``first_row``).
    """
    blocks = array.to_delayed().ravel()
    offsets = row_offsets(array)
    order = range(len(blocks)) if chunk_order is None else chunk_order
    pending, pending_start = np.empty((0, array.shape[1]), array.dtype), first_row
    for index in order:
        (chunk,) = dask.compute(blocks[index])
        chunk = np.asarray(chunk)
        chunk_start = first_row + offsets[index]
        check_finite(chunk, chunk_start)
        if shuffle_seed is not None:
            rows = np.random.default_rng((shuffle_seed, int(index))).permutation(chunk.shape[0])
            chunk = chunk[rows]
        position = 0
        if pending.shape[0]:
            position = min(batch_size - pending.shape[0], chunk.shape[0])
            pending = np.concatenate([pending, chunk[:position]])
            if pending.shape[0] < batch_size:
                continue
            yield pending, pending_start
        n_whole = (chunk.shape[0] - position) // batch_size * batch_size
        for start in range(position, position + n_whole, batch_size):
            yield chunk[start : start + batch_size], chunk_start + start
        pending = chunk[position + n_whole :].copy()
        pending_start = chunk_start + position + n_whole
    if pending.shape[0]:
        yield pending, pending_start


SHUFFLED_GATHER_ROWS = 2**15
"""In-memory rows are gathered (and checked) this many at a time, in whole
batches: one fancy index per 2^15 rows instead of one per batch."""


def iterate_shuffled_batches(
    rows: np.ndarray, batch_size: int, seed: int
) -> Iterator[tuple[np.ndarray, int]]:
    """Mini-batches of ``batch_size`` rows of in-memory ``rows`` (the last may be
    shorter) in a random order drawn from ``seed``: every row once per pass, and
    each batch a sample of the whole data whatever their stored order. Rows are
    checked for NaN and infinity as they are gathered, naming the rows; the index
    yielded with a batch is that of its first row."""
    order = np.random.default_rng(seed).permutation(rows.shape[0])
    step = max(1, SHUFFLED_GATHER_ROWS // batch_size) * batch_size
    for begin in range(0, rows.shape[0], step):
        picked = order[begin : begin + step]
        gathered = rows[picked]
        check_finite(gathered, row_numbers=picked)
        for start in range(0, picked.shape[0], batch_size):
            yield gathered[start : start + batch_size], int(picked[start])


def run_batches(
    state: OnlineState,
    params: GaussianParameters,
    covariances: np.ndarray,
    batches: Iterator[tuple[np.ndarray, int]],
    config: OnlineConfig,
    *,
    done: int = 0,
    total: float = 0.0,
    count: int = 0,
    on_batch: Callable[..., None] | None = None,
) -> tuple[OnlineState, GaussianParameters, np.ndarray, float, int]:
    """Apply :func:`online_step` to every batch; returns the final state and
    parameters, and the summed log-likelihood and row count of the batches
    (added to ``total`` and ``count`` of ``done`` batches already applied).
    ``on_batch(state, params, covariances, done, total, count)`` is called after
    every batch."""
    with single_threaded_blas():
        for batch, first_row in batches:
            state, params, covariances, log_likelihood = online_step(
                state, params, covariances, batch, config, first_row
            )
            total += log_likelihood
            count += batch.shape[0]
            done += 1
            if on_batch is not None:
                on_batch(state, params, covariances, done, total, count)
    return state, params, covariances, total, count


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
    """

    passes_done: int
    lower_bounds: list
    converged: bool
    pass_rng_state: dict | None
    batches_done: int
    total: float
    count: int


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
) -> dict:
    """Stepwise EM over passes through ``array``; each pass visits the row-chunks
    in a fresh random order, and with ``shuffle`` the rows of each chunk too, or,
    when the rows are ``in_memory`` (the NumPy array behind ``array``), all rows
    in one random order.
    Stops after ``max_iter`` passes or when a pass's mean log-likelihood (of
    each batch under the parameters it met) changes by less than ``tol``.
    Returns the run in the form the estimator stores.

    ``on_position(state, params, covariances, position)`` is called every
    ``every`` mini-batches (if ``every > 0``) and after every pass; passing such
    a ``position`` back (with the state and parameters of that call and ``rng``
    in any state) continues the fit exactly where it stood. The batches of a
    pass already applied are read again but skipped.
    """
    lower_bounds, converged = list(position.lower_bounds), position.converged
    lower_bound = lower_bounds[-1] if lower_bounds else -np.inf
    n_iter = position.passes_done
    progress = FitProgress(verbose, max_iter, "online EM", verbose_interval=verbose_interval)
    if lower_bounds:
        progress.resume(history_from_lower_bounds(lower_bounds))
    with progress:
        while not converged and n_iter < max_iter:
            resume = position.pass_rng_state is not None and position.passes_done == n_iter
            if resume:
                rng.bit_generator.state = position.pass_rng_state
                done, total, count = position.batches_done, position.total, position.count
            else:
                done, total, count = 0, 0.0, 0
            pass_rng_state = rng.bit_generator.state
            order = rng.permutation(array.numblocks[0])
            seed = int(rng.integers(2**63)) if shuffle else None
            if seed is not None and in_memory is not None:
                batches = iterate_shuffled_batches(in_memory, batch_size, seed)
            else:
                batches = iterate_batches(array, batch_size, order, shuffle_seed=seed)
            batches = itertools.islice(batches, done, None)

            report = None
            if on_position is not None and every > 0:
                report = functools.partial(
                    _report_position,
                    on_position,
                    every,
                    n_iter,
                    list(lower_bounds),
                    pass_rng_state,
                )
            state, params, covariances, total, count = run_batches(
                state,
                params,
                covariances,
                batches,
                config,
                done=done,
                total=total,
                count=count,
                on_batch=report,
            )
            n_iter += 1
            previous, lower_bound = lower_bound, total / count
            lower_bounds.append(lower_bound)
            progress.record(lower_bound, passes=n_iter)
            converged = abs(lower_bound - previous) < tol
            if on_position is not None:
                boundary = OnlinePosition(
                    n_iter, list(lower_bounds), converged, rng.bit_generator.state, 0, 0.0, 0
                )
                on_position(state, params, covariances, boundary)
    with single_threaded_blas():
        shown, shown_covariances = reported_parameters(state, params, covariances, config)
    return {
        "params": shown,
        "covariances": shown_covariances,
        "lower_bound": lower_bound,
        "lower_bounds": lower_bounds,
        "n_iter": n_iter,
        "converged": converged,
        "online_state": state,
        "history": progress.history,
    }


def _report_position(
    on_position,
    every,
    passes_done,
    lower_bounds,
    pass_rng_state,
    state,
    params,
    covariances,
    done,
    total,
    count,
):
    """``on_batch`` callback of :func:`online_em`: reports every ``every`` batches."""
    if done % every == 0:
        here = OnlinePosition(passes_done, lower_bounds, False, pass_rng_state, done, total, count)
        on_position(state, params, covariances, here)


# ------------------------------------------------------- data that keeps arriving
def create_stream_array(
    path: str | os.PathLike, n_features: int, *, chunk_rows: int = 65_536, dtype: str = "float64"
) -> zarr.Array:
    """Create an empty Zarr array of shape (0, n_features) for :func:`append_rows`."""
    array = zarr.create_array(
        store=os.fspath(path),
        shape=(0, n_features),
        chunks=(chunk_rows, n_features),
        dtype=dtype,
        overwrite=True,
        compressors=row_store_compressor(),
    )
    array.attrs[COMMITTED_ROWS_ATTRIBUTE] = 0
    return array


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
