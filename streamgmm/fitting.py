"""How ``GaussianMixture.fit`` and ``partial_fit`` turn the estimator's settings
into EM runs: starting points, ``n_init``, warm starts, checkpoints (one run at a
time) and the choice between batch EM (:func:`streamgmm.engine.run_em`) and
stepwise online EM (:func:`streamgmm.online.online_em`). Each function takes the
fit's hyper-parameters as a frozen :data:`~streamgmm.hyperparameters.FitConfig`
(and a fitted model's state as an :class:`~streamgmm.engine.EMRun`), never the
estimator, and returns runs; none sets a fitted attribute
(:func:`streamgmm.state.set_fitted` does, in the estimator)."""

from __future__ import annotations

import os
import sys
import warnings
from functools import partial
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from .acceleration import step_strategy
from .checkpoint import (
    claim_checkpoint_path,
    fit_fingerprint,
    read_fit_checkpoint,
    write_batch_checkpoint,
    write_online_checkpoint,
)
from .covariance import covariances_from_precisions_cholesky
from .engine import EMRun, EMSettings, EMStep, best_run, run_em
from .estep import GaussianParameters
from .hyperparameters import PARTIAL_FIT_RECORD, FitConfig, make_rng, user_parameters
from .initialization import initialize_parameters
from .inputs import RowData, dask_view
from .missing import prepare_gaps
from .online import (
    START_POSITION,
    FoldCarry,
    NextParameters,
    OnlineConfig,
    current_parameters,
    fold_pass,
    fold_rows,
    initial_state,
    online_em,
    remembered_running,
    reported_parameters,
    with_weight_column,
)
from .progress import HISTORY_KEYS, empty_history, say
from .state import fitted_dtype, fitted_scalar
from .threads import blas_threads_for_dask, single_threaded_blas


def em_settings(config: FitConfig) -> EMSettings:
    """The engine's settings from a fit's hyper-parameters."""
    return EMSettings(
        config.tol, config.max_iter, config.reg_covar, config.float32_products,
        config.verbose, config.verbose_interval, config.missing,
    )


def em_step(config: FitConfig) -> EMStep:
    """Plain EM's step, or the accelerated step of ``config.acceleration``."""
    return step_strategy(config.acceleration)


def online_config(config: FitConfig, weighted: bool = False) -> OnlineConfig:
    """The hyper-parameters of one stepwise update (``weighted``: of rows that
    carry their weight as a last column)."""
    return OnlineConfig(
        config.covariance_type,
        config.reg_covar,
        config.learning_decay,
        config.learning_offset,
        config.averaging,
        config.float32_products,
        config.step_floor,
        weighted,
        config.missing,
    )


def online_rows(data: RowData) -> tuple[Any, np.ndarray | None]:
    """The rows online EM folds over: ``(data.array, data.in_memory)``, with the
    weights as a last column when ``data`` has weights
    (:func:`streamgmm.online.with_weight_column`)."""
    if data.weights is None:
        return data.array, data.in_memory
    array = with_weight_column(data.array, data.weights)
    if data.in_memory is None:
        return array, None
    in_memory = with_weight_column(data.in_memory, data.weights.compute())
    return dask_view(in_memory, (data.array.chunks[0], -1)), in_memory


def check_enough_rows(data: RowData, n_components: int) -> None:
    """Raise scikit-learn's ``ValueError`` unless X has at least 2 and at least
    ``n_components`` rows (of positive weight, when weighted)."""
    if data.n_counted < max(2, n_components):
        rows = "rows of positive weight" if data.weights is not None else "n_samples"
        raise ValueError(
            f"Expected n_samples >= 2 and n_samples >= n_components, got "
            f"{rows}={data.n_counted} and n_components={n_components}"
        )


def warn_if_unconverged(best: EMRun, config: FitConfig) -> None:
    """scikit-learn's ``ConvergenceWarning`` when the kept run of a batch fit
    with ``max_iter > 0`` did not converge, pointing at the caller of ``fit``.
    Online EM is not warned about: it runs a budget of passes (docs/online.md
    uses ``max_iter=2``), and ``converged_`` still says whether the change of
    its prequential score fell below ``tol``."""
    if config.algorithm == "batch" and config.max_iter > 0 and not best.converged:
        warnings.warn(
            "Best performing initialization did not converge. Try different init "
            "parameters, or increase max_iter, tol, or check for degenerate data.",
            ConvergenceWarning,
            stacklevel=3,
        )


def fit_runs(
    config: FitConfig,
    X: Any,
    data: RowData,
    checkpoint: str | os.PathLike | None,
    every: int,
    fitted: EMRun | None = None,
    start_data: RowData | None = None,
) -> EMRun:
    """The best run of a fit with ``config`` to ``data`` (from input ``X``):
    every initialisation's EM, from a checkpoint if one exists (module docs).
    ``fitted``: the model's fitted state, to continue from (a warm start).
    ``start_data`` (default ``data``) are the rows the starts are drawn from
    (with missing values: ``data`` with its gaps filled)."""
    start = partial(start_run, start_data=start_data)
    rng = make_rng(config.random_state)
    n_runs = config.n_init if fitted is None else 1
    if checkpoint is not None and config.algorithm == "online" and n_runs > 1:
        raise ValueError("checkpoint= with algorithm='online' needs n_init=1")
    if isinstance(every, bool) or not isinstance(every, int):
        raise TypeError(f"checkpoint_every must be an integer, got {every!r}")
    if every < 1:
        raise ValueError(f"checkpoint_every must be >= 1, got {every}")
    resumed = None
    if checkpoint is not None:
        fingerprint = fit_fingerprint(config._asdict(), data)
        claim_checkpoint_path(checkpoint, [X])
        resumed = read_fit_checkpoint(
            checkpoint, fingerprint, config.algorithm, config.covariance_type
        )
        if resumed is not None and config.verbose:
            say_resumed(checkpoint, resumed)
        save = partial(_checkpoint_writer, config.algorithm, checkpoint, fingerprint)
    # One BLAS thread limit for the whole fit: letting OpenBLAS have two threads
    # again between passes left its second thread spinning on the other core
    # during the next pass (0.13 s instead of 0.093 s per 10^6-row iteration,
    # docs/benchmarks.md).
    with blas_threads_for_dask([data.array]):
        if config.max_iter == 0:
            starts = [start(config, data, rng, fitted, 0) for _ in range(n_runs)]
            return starts[-1].initialisation_only()
        if config.algorithm == "batch" and checkpoint is None:
            # The starts first (they draw from rng as they would one by one),
            # then the iterations of all runs in shared passes over the data.
            runs = [start(config, data, rng, fitted, index) for index in range(n_runs)]
            run_em(data.array, runs, em_settings(config), step=em_step(config),
                   sample_weight=data.weights)
            return best_run(runs)
        first, current, best = 0, None, None
        if resumed is not None:
            first, current, best, rng.bit_generator.state = resumed
        finished = [] if best is None else [best]
        for index in range(first, n_runs):
            if index != first or current is None:
                current = start(config, data, rng, fitted, index)
            writer = None if checkpoint is None else save(rng, index, best_of(finished))
            if config.algorithm == "online":
                finished.append(
                    _online_run(config, data, rng, fitted, current, writer, every)
                )
            else:
                current.label = f"batch EM, init {index}"
                if writer is not None:
                    writer(current)
                run_em(data.array, [current], em_settings(config), step=em_step(config),
                       on_iteration=writer, sample_weight=data.weights)
                finished.append(current)
    return best_of(finished)


def say_resumed(checkpoint: str | os.PathLike, resumed: tuple) -> None:
    """Tell the user (on standard error) that a fit continues from a checkpoint."""
    first, current, _, _ = resumed
    if isinstance(current, tuple):
        where = "online EM, at its saved pass position"
    elif current is None:
        where = f"after init {first - 1}"
    else:
        where = f"init {first}, after {current.n_iter} iterations"
    print(f"resumed from checkpoint {os.fspath(checkpoint)} ({where})", file=sys.stderr)


def best_of(runs: list[EMRun]) -> EMRun | None:
    """:func:`streamgmm.engine.best_run`, or None for no runs."""
    return best_run(runs) if runs else None


def _checkpoint_writer(algorithm, path, fingerprint, rng, index, best):
    """What a run calls to checkpoint itself: ``writer(run)`` for batch EM,
    ``writer(state, params, covariances, position)`` for online EM."""
    if algorithm == "online":
        return partial(write_online_checkpoint, path, fingerprint, rng)
    return partial(write_batch_checkpoint, path, fingerprint, index, rng, best)


def start_run(
    config: FitConfig, data: RowData, rng: np.random.Generator, fitted: EMRun | None,
    index: int, start_data: RowData | None = None,
) -> EMRun:
    """Initialisation ``index`` of a fit: a run before its first iteration
    (for a warm start from ``fitted``, its parameters and lower bound), drawn
    from ``start_data`` (default ``data``)."""
    label = f"batch EM, init {index}"
    if fitted is None:
        if config.means_init is None:
            say(f"start {index + 1} of {config.n_init}: {config.init_params} on the data",
                config.verbose)
        params, covariances = initial_parameters(config, start_data or data, rng)
        return online_warm_start(config, data, rng, EMRun(params, covariances, label=label))
    online_state = fitted.online_state if config.algorithm == "online" else None
    return EMRun(float64_parameters(fitted.params),
                 np.asarray(fitted.covariances, dtype=np.float64),
                 lower_bound=float(fitted.lower_bound), label=label, online_state=online_state)


def float64_parameters(params: GaussianParameters) -> GaussianParameters:
    """Fitted parameters in float64, as every computation takes them."""
    return GaussianParameters(
        np.asarray(params.weights, dtype=np.float64),
        np.asarray(params.means, dtype=np.float64),
        np.asarray(params.precisions_cholesky, dtype=np.float64),
        params.covariance_type,
    )


def online_warm_start(
    config: FitConfig, data: RowData, rng: np.random.Generator, run: EMRun
) -> EMRun:
    """``run`` after ``config.n_online_passes`` passes of stepwise online EM
    (at most ``max_iter``; batch EM only), as a batch run that continues from
    them: its ``n_iter`` and history count the online passes, its lower bounds
    start empty (an online pass's score is prequential, not the mean
    log-likelihood of one set of parameters, so batch EM's convergence test
    and the monotone record start with batch EM's first pass)."""
    passes = min(config.n_online_passes, config.max_iter)
    if config.algorithm != "batch" or passes == 0:
        return run
    online = _online_run(config, data, rng, None, run, None, 0, max_iter=passes, tol=0.0)
    return EMRun(online.params, online.covariances, n_iter=online.n_iter,
                 history=online.full_history(), label=run.label)


def initial_parameters(
    config: FitConfig, data: RowData, rng: np.random.Generator
) -> tuple[GaussianParameters, np.ndarray]:
    """Starting parameters and covariances: the ``*_init`` arrays where given,
    the rest from ``init_params`` on ``data``."""
    cov_type = config.covariance_type
    weights, means, prec_chol = user_parameters(config, data.n_features)
    if weights is not None and means is not None and prec_chol is not None:
        params = GaussianParameters(weights, means, prec_chol, cov_type)
        return params, covariances_from_precisions_cholesky(prec_chol, cov_type)
    params, covariances = initialize_parameters(
        data, config.n_components, cov_type, config.reg_covar, config.init_params, rng,
        config.init_sample_size,
    )
    if prec_chol is not None:
        covariances = covariances_from_precisions_cholesky(prec_chol, cov_type)
    params = GaussianParameters(
        params.weights if weights is None else weights,
        params.means if means is None else means,
        params.precisions_cholesky if prec_chol is None else prec_chol,
        cov_type,
    )
    return params, covariances


def _online_state(config: FitConfig, fitted: EMRun | None, n_features: int):
    """The stepwise-EM state of a fitted run (a fresh one if it has none)."""
    state = None if fitted is None else fitted.online_state
    if state is None:
        return initial_state(config.n_components, n_features, config.covariance_type)
    return state


def _online_run(
    config, data, rng, fitted, start, on_position, every, max_iter=None, tol=None
) -> EMRun:
    """Stepwise EM over ``max_iter`` passes (:func:`streamgmm.online.online_em`;
    by default the config's ``max_iter`` and ``tol``) from ``start``: a run, or
    ``(state, params, covariances, position)`` read from a checkpoint;
    ``fitted``: the model's fitted run for a warm start (else None)."""
    online = online_config(config, data.weights is not None)
    array, in_memory = online_rows(data)
    if isinstance(start, tuple):
        state, params, covariances, position = start
    else:
        params, covariances, position = start.params, start.covariances, START_POSITION
        if fitted is None:
            state = initial_state(config.n_components, data.n_features, config.covariance_type)
        else:
            state = _online_state(config, fitted, data.n_features)
            with single_threaded_blas():
                params = current_parameters(state, params, online)
    return online_em(
        array,
        params,
        covariances,
        state,
        online,
        batch_size=config.batch_size,
        max_iter=config.max_iter if max_iter is None else max_iter,
        tol=config.tol if tol is None else tol,
        rng=rng,
        verbose=config.verbose,
        verbose_interval=config.verbose_interval,
        position=position,
        on_position=on_position,
        every=every,
        shuffle=bool(config.shuffle),
        in_memory=in_memory,
    )


def plain_rows(X: Any) -> bool:
    """Whether X is a NumPy array of numbers that ``partial_fit`` of a fitted
    model can take without wrapping it in Dask (a tenth of a millisecond per call)."""
    return type(X) is np.ndarray and X.dtype.kind in "fiub"


def partial_fit_run(
    config: FitConfig,
    rows: np.ndarray | None,
    data: RowData | None,
    first_row: int,
    fitted: EMRun | None,
    next_parameters: NextParameters | None,
) -> tuple[EMRun, NextParameters]:
    """The run after stepwise-EM updates from ``rows`` (in memory) or ``data``,
    continuing ``fitted`` (the model's fitted run, float64 parameters; None
    for a first call, which initialises from ``data``). Its lower bound is the
    rows' prequential score; its record keeps the last ``PARTIAL_FIT_RECORD``.
    Also returns the parameters the steps ended with, for the next call's first
    E-step (:func:`streamgmm.online.current_parameters`)."""
    first_call = fitted is None
    weighted = data is not None and data.weights is not None
    online = online_config(config, weighted)
    n_features = rows.shape[1] if data is None else data.n_features
    if weighted:
        array, rows = online_rows(data)
    with single_threaded_blas():
        if first_call:
            if data.n_counted < config.n_components:
                rows_named = "rows of positive weight" if weighted else "n_samples"
                raise ValueError(
                    f"The first partial_fit needs n_samples >= n_components to initialise, "
                    f"got {rows_named}={data.n_counted} and n_components={config.n_components}"
                )
            start_data = None
            if config.missing == "marginalize":
                start_data, _ = prepare_gaps(data, config.n_components)
            params, covariances = initial_parameters(
                config, start_data or data, make_rng(config.random_state)
            )
            state = initial_state(config.n_components, n_features, config.covariance_type)
        else:
            state = _online_state(config, fitted, n_features)
            covariances = np.asarray(fitted.covariances, dtype=np.float64)
            running = remembered_running(state, covariances, online, next_parameters)
            # a remembered record implies the remembered parameters (current_parameters)
            params = next_parameters.params if running is not None else current_parameters(
                state, float64_parameters(fitted.params), online, next_parameters
            )
        carry = FoldCarry(state, params, covariances, running=None if first_call else running)
        if rows is not None:
            carry = fold_rows(carry, rows, online, config.batch_size, first_row=first_row)
        else:
            array = array if weighted else data.array
            order = range(array.numblocks[0])
            carry = fold_pass(carry, array, order, online, config.batch_size,
                              first_row=first_row)
        shown, shown_covariances = reported_parameters(
            carry.state, carry.params, carry.covariances, online
        )
    score = carry.total / carry.count
    n_iter = 1 if first_call else fitted.n_iter + 1
    history = empty_history() if first_call else fitted.history
    dtype = fitted_dtype(data.array.dtype if data is not None else rows.dtype)
    lower_bounds = [] if first_call else fitted.lower_bounds[1 - PARTIAL_FIT_RECORD :]
    lower_bounds.append(fitted_scalar(score, dtype))
    for key, value in zip(HISTORY_KEYS, (float(n_iter), score, float("nan")), strict=True):
        record = history.setdefault(key, [])
        record.append(value)
        del record[:-PARTIAL_FIT_RECORD]
    run = EMRun(
        shown,
        shown_covariances,
        lower_bound=score,
        lower_bounds=lower_bounds,
        n_iter=n_iter,
        online_state=carry.state,
        history=history,
    )
    return run, NextParameters(carry.state.statistics, online, carry.params, carry.running,
                               carry.state.averaged)


__all__: list[str] = []
"""Nothing here is public API (docs/api.md lists what is)."""
