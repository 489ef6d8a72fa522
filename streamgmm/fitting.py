"""How ``GaussianMixture.fit`` and ``partial_fit`` turn the estimator's settings
into EM runs: starting points, ``n_init``, warm starts, checkpoints (one run at a
time) and the choice between batch EM (:func:`streamgmm.engine.run_em`) and
stepwise online EM (:func:`streamgmm.online.online_em`). Each function takes the
estimator for its hyper-parameters and returns runs; none sets a fitted
attribute (:func:`streamgmm.state.set_fitted` does, in the estimator)."""

from __future__ import annotations

import os
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
from .hyperparameters import PARTIAL_FIT_RECORD, make_rng, user_parameters
from .initialization import initialize_parameters
from .inputs import RowData, check_matrix, dask_view
from .missing import prepare_gaps
from .online import (
    START_POSITION,
    FoldCarry,
    NextParameters,
    OnlineConfig,
    current_parameters,
    finish_pass,
    fold_chunk,
    fold_pass,
    initial_state,
    online_em,
    reported_parameters,
    with_weight_column,
)
from .progress import HISTORY_KEYS, empty_history
from .state import fitted_dtype, fitted_scalar, online_state_of
from .threads import blas_threads_for_dask, single_threaded_blas
from .validation import check_n_features


def em_settings(model: Any) -> EMSettings:
    """The engine's settings from the estimator's hyper-parameters."""
    return EMSettings(
        model.tol, model.max_iter, model.reg_covar, model.float32_products,
        model.verbose, model.verbose_interval, model.missing,
    )


def em_step(model: Any) -> EMStep:
    """Plain EM's step, or the accelerated step of ``model.acceleration``."""
    return step_strategy(model.acceleration)


def online_config(model: Any, weighted: bool = False) -> OnlineConfig:
    """The hyper-parameters of one stepwise update (``weighted``: of rows that
    carry their weight as a last column)."""
    return OnlineConfig(
        model.covariance_type,
        model.reg_covar,
        model.learning_decay,
        model.learning_offset,
        model.averaging,
        model.float32_products,
        model.step_floor,
        weighted,
        model.missing,
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


def warn_if_unconverged(best: EMRun, max_iter: int) -> None:
    """scikit-learn's ``ConvergenceWarning`` when the kept run of a fit with
    ``max_iter > 0`` did not converge, pointing at the caller of ``fit``."""
    if max_iter > 0 and not best.converged:
        warnings.warn(
            "Best performing initialization did not converge. Try different init "
            "parameters, or increase max_iter, tol, or check for degenerate data.",
            ConvergenceWarning,
            stacklevel=3,
        )


def fit_runs(
    model: Any, X: Any, data: RowData, checkpoint: str | os.PathLike | None, every: int,
    start_data: RowData | None = None,
) -> EMRun:
    """The best run of a fit of ``model`` to ``data`` (from input ``X``): every
    initialisation's EM, from a checkpoint if one exists (module docs).
    ``start_data`` (default ``data``) are the rows the starts are drawn from
    (with missing values: ``data`` with its gaps filled)."""
    start = partial(start_run, start_data=start_data)
    rng = make_rng(model.random_state)
    do_init = not (model.warm_start and hasattr(model, "converged_"))
    n_runs = model.n_init if do_init else 1
    if checkpoint is not None and model.algorithm == "online" and n_runs > 1:
        raise ValueError("checkpoint= with algorithm='online' needs n_init=1")
    if isinstance(every, bool) or not isinstance(every, int):
        raise TypeError(f"checkpoint_every must be an integer, got {every!r}")
    if every < 1:
        raise ValueError(f"checkpoint_every must be >= 1, got {every}")
    resumed = None
    if checkpoint is not None:
        fingerprint = fit_fingerprint(model.get_params(), data)
        claim_checkpoint_path(checkpoint, [X])
        resumed = read_fit_checkpoint(
            checkpoint, fingerprint, model.algorithm, model.covariance_type
        )
        save = partial(_checkpoint_writer, model.algorithm, checkpoint, fingerprint)
    # One BLAS thread limit for the whole fit: letting OpenBLAS have two threads
    # again between passes left its second thread spinning on the other core
    # during the next pass (0.13 s instead of 0.093 s per 10^6-row iteration,
    # docs/benchmarks.md).
    with blas_threads_for_dask([data.array]):
        if model.max_iter == 0:
            starts = [start(model, data, rng, do_init, 0) for _ in range(n_runs)]
            return starts[-1].initialisation_only()
        if model.algorithm == "batch" and checkpoint is None:
            # The starts first (they draw from rng as they would one by one),
            # then the iterations of all runs in shared passes over the data.
            runs = [start(model, data, rng, do_init, index) for index in range(n_runs)]
            run_em(data.array, runs, em_settings(model), step=em_step(model),
                   sample_weight=data.weights)
            return best_run(runs)
        first, current, best = 0, None, None
        if resumed is not None:
            first, current, best, rng.bit_generator.state = resumed
        finished = [] if best is None else [best]
        for index in range(first, n_runs):
            if index != first or current is None:
                current = start(model, data, rng, do_init, index)
            writer = None if checkpoint is None else save(rng, index, best_of(finished))
            if model.algorithm == "online":
                finished.append(_online_run(model, data, rng, do_init, current, writer, every))
            else:
                current.label = f"batch EM, init {index}"
                if writer is not None:
                    writer(current)
                run_em(data.array, [current], em_settings(model), step=em_step(model),
                       on_iteration=writer, sample_weight=data.weights)
                finished.append(current)
    return best_of(finished)


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
    model: Any, data: RowData, rng: np.random.Generator, do_init: bool, index: int,
    start_data: RowData | None = None,
) -> EMRun:
    """Initialisation ``index`` of a fit: a run before its first iteration
    (for a warm start, the fitted parameters and lower bound), drawn from
    ``start_data`` (default ``data``)."""
    label = f"batch EM, init {index}"
    if do_init:
        params, covariances = initial_parameters(model, start_data or data, rng)
        return online_warm_start(model, data, rng, EMRun(params, covariances, label=label))
    params = model._fitted_parameters()
    covariances = np.asarray(model.covariances_, dtype=np.float64)
    online_state = online_state_of(model) if model.algorithm == "online" else None
    return EMRun(params, covariances, lower_bound=float(model.lower_bound_), label=label,
                 online_state=online_state)


def online_warm_start(model: Any, data: RowData, rng: np.random.Generator, run: EMRun) -> EMRun:
    """``run`` after ``model.n_online_passes`` passes of stepwise online EM
    (at most ``max_iter``; batch EM only), as a batch run that continues from
    them: its ``n_iter`` and history count the online passes, its lower bounds
    start empty (an online pass's score is prequential, not the mean
    log-likelihood of one set of parameters, so batch EM's convergence test
    and the monotone record start with batch EM's first pass)."""
    passes = min(model.n_online_passes, model.max_iter)
    if model.algorithm != "batch" or passes == 0:
        return run
    online = _online_run(model, data, rng, True, run, None, 0, max_iter=passes, tol=0.0)
    return EMRun(online.params, online.covariances, n_iter=online.n_iter,
                 history=online.full_history(), label=run.label)


def initial_parameters(
    model: Any, data: RowData, rng: np.random.Generator
) -> tuple[GaussianParameters, np.ndarray]:
    """Starting parameters and covariances: the ``*_init`` arrays where given,
    the rest from ``init_params`` on ``data``."""
    cov_type = model.covariance_type
    weights, means, prec_chol = user_parameters(model, data.n_features)
    if weights is not None and means is not None and prec_chol is not None:
        params = GaussianParameters(weights, means, prec_chol, cov_type)
        return params, covariances_from_precisions_cholesky(prec_chol, cov_type)
    params, covariances = initialize_parameters(
        data, model.n_components, cov_type, model.reg_covar, model.init_params, rng,
        model.init_sample_size,
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


def _online_state(model: Any, n_features: int):
    """The stepwise-EM state of a fitted model (a fresh one if it has none)."""
    state = online_state_of(model)
    if state is None:
        return initial_state(model.n_components, n_features, model.covariance_type)
    return state


def _online_run(
    model, data, rng, do_init, start, on_position, every, max_iter=None, tol=None
) -> EMRun:
    """Stepwise EM over ``max_iter`` passes (:func:`streamgmm.online.online_em`;
    by default the model's ``max_iter`` and ``tol``) from ``start``: a run, or
    ``(state, params, covariances, position)`` read from a checkpoint."""
    config = online_config(model, data.weights is not None)
    array, in_memory = online_rows(data)
    if isinstance(start, tuple):
        state, params, covariances, position = start
    else:
        params, covariances, position = start.params, start.covariances, START_POSITION
        if do_init:
            state = initial_state(model.n_components, data.n_features, model.covariance_type)
        else:
            state = _online_state(model, data.n_features)
            with single_threaded_blas():
                params = current_parameters(state, params, config)
    return online_em(
        array,
        params,
        covariances,
        state,
        config,
        batch_size=model.batch_size,
        max_iter=model.max_iter if max_iter is None else max_iter,
        tol=model.tol if tol is None else tol,
        rng=rng,
        verbose=model.verbose,
        verbose_interval=model.verbose_interval,
        position=position,
        on_position=on_position,
        every=every,
        shuffle=bool(model.shuffle),
        in_memory=in_memory,
    )


def partial_fit_rows(
    model: Any, X: Any, first_call: bool, sample_weight: Any = None
) -> tuple[np.ndarray | None, Any]:
    """``(rows, None)`` for a NumPy array without weights given to a fitted
    model without feature names, checked without wrapping it in Dask (a tenth
    of a millisecond per call), else ``(data.in_memory, data)`` from the
    model's ``_validate_data`` (with its checked ``sample_weight``)."""
    plain = not first_call and not hasattr(model, "feature_names_in_")
    if plain and sample_weight is None and type(X) is np.ndarray and X.dtype.kind in "fiub":
        check_matrix(X.shape, X.dtype)
        check_n_features(model, X.shape[1])
        return X, None
    data = model._validate_data(X, reset=first_call, sample_weight=sample_weight)
    return data.in_memory, data


def partial_fit_run(
    model: Any, rows: np.ndarray | None, data: RowData | None, first_row: int
) -> EMRun:
    """The run after stepwise-EM updates of ``model`` from ``rows`` (in memory)
    or ``data``; a first call initialises from ``data``. Its lower bound is the
    rows' prequential score; its record keeps the last ``PARTIAL_FIT_RECORD``.
    The parameters the steps ended with are kept as ``model._next_parameters``
    for the next call's first E-step (:func:`streamgmm.online.current_parameters`)."""
    first_call = not hasattr(model, "means_")
    weighted = data is not None and data.weights is not None
    config = online_config(model, weighted)
    n_features = rows.shape[1] if data is None else data.n_features
    if weighted:
        array, rows = online_rows(data)
    with single_threaded_blas():
        if first_call:
            if data.n_counted < model.n_components:
                rows_named = "rows of positive weight" if weighted else "n_samples"
                raise ValueError(
                    f"The first partial_fit needs n_samples >= n_components to initialise, "
                    f"got {rows_named}={data.n_counted} and n_components={model.n_components}"
                )
            start_data = None
            if model.missing == "marginalize":
                start_data, _ = prepare_gaps(data, model.n_components)
            params, covariances = initial_parameters(
                model, start_data or data, make_rng(model.random_state)
            )
            state = initial_state(model.n_components, n_features, model.covariance_type)
        else:
            state = _online_state(model, n_features)
            params = current_parameters(
                state, model._fitted_parameters(), config, model.__dict__.get("_next_parameters")
            )
            covariances = np.asarray(model.covariances_, dtype=np.float64)
        carry = FoldCarry(state, params, covariances)
        if rows is not None:
            carry = fold_chunk(carry, rows, config, model.batch_size, first_row=first_row)
            carry = finish_pass(carry, config)
        else:
            array = array if weighted else data.array
            order = range(array.numblocks[0])
            carry = fold_pass(carry, array, order, config, model.batch_size, first_row=first_row)
        shown, shown_covariances = reported_parameters(
            carry.state, carry.params, carry.covariances, config
        )
    score = carry.total / carry.count
    n_iter = 1 if first_call else model.n_iter_ + 1
    history = empty_history() if first_call else model.history_
    dtype = fitted_dtype(data.array.dtype if data is not None else rows.dtype)
    lower_bounds = [] if first_call else model.lower_bounds_[1 - PARTIAL_FIT_RECORD :]
    for key, value in zip(HISTORY_KEYS, (float(n_iter), score, float("nan")), strict=True):
        record = history.setdefault(key, [])
        record.append(value)
        del record[:-PARTIAL_FIT_RECORD]
    model._next_parameters = NextParameters(carry.state.statistics, config, carry.params)
    return EMRun(
        shown,
        shown_covariances,
        lower_bound=score,
        lower_bounds=[*lower_bounds, fitted_scalar(score, dtype)],
        n_iter=n_iter,
        online_state=carry.state,
        history=history,
    )

