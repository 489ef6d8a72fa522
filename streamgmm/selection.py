"""Model selection: fit a grid of candidate mixtures together and rank them by BIC or AIC.

Every pass over the data serves every candidate still running: one chunk
function computes each running candidate's E-step statistics (and the final
log-likelihood of candidates that have just stopped), and one tree reduction
per iteration merges them. So the grid reads the data

    init passes + (largest n_iter) + 1

times, where the init passes are those of one model (3 for the default
``"k-means||"``, 2 for ``"kmeans"``, see :mod:`streamgmm.initialization`), against
``sum over candidates (init passes + n_iter + 1)`` when each candidate is fitted
and scored on its own.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from functools import partial
from typing import Any

import numpy as np
import xarray as xr

from .estep import chunk_log_likelihood, chunk_statistics
from .initialization import initial_statistics_grid
from .inputs import as_rows
from .mixture import (
    ConvergenceWarning,
    GaussianMixture,
    _sum_pairs,
    information_criterion,
    make_rng,
)
from .mstep import CholeskyError, parameters_from_statistics
from .reduction import tree_reduce_each
from .statistics import merge_all
from .threads import blas_threads_for_dask

CRITERIA = ("bic", "aic")


def run_grid_em(
    data,
    runs: list[dict],
    tol: float,
    max_iter: int,
    reg_covar: float,
    float32_products: bool = False,
) -> int:
    """Exact EM for every run in ``runs`` together; returns the passes taken.

    Each run is a dict holding ``params``; on return it also holds
    ``covariances``, ``lower_bound``, ``lower_bounds``, ``n_iter``, ``converged``,
    ``total_log_likelihood`` of its final parameters, and ``error`` (None unless
    its M-step failed, which stops that run only).
    """
    for run in runs:
        run.update(
            lower_bound=-np.inf,
            lower_bounds=[],
            n_iter=0,
            converged=False,
            total_log_likelihood=np.nan,
            state="running" if run.get("error") is None else "failed",
        )
    with blas_threads_for_dask([data.array]):
        return _grid_passes(data, runs, tol, max_iter, reg_covar, float32_products)


def _grid_passes(data, runs, tol, max_iter, reg_covar, float32_products) -> int:
    """The passes of :func:`run_grid_em`, under one BLAS thread limit (see
    ``GaussianMixture.fit``)."""
    statistics = partial(chunk_statistics, float32_products=float32_products)
    n_passes = 0
    while True:
        active = [run for run in runs if run["state"] in ("running", "finishing")]
        if not active:
            return n_passes
        # E-step statistics of a running candidate, the (log-likelihood, rows)
        # pair of one that has just stopped.
        reductions = [
            (
                statistics,
                partial(merge_all, covariance_type=run["params"].covariance_type),
                run["params"],
            )
            if run["state"] == "running"
            else (chunk_log_likelihood, _sum_pairs, run["params"])
            for run in active
        ]
        results = tree_reduce_each(data.array, reductions)
        n_passes += 1
        for run, result in zip(active, results, strict=True):
            if run["state"] == "finishing":
                run["total_log_likelihood"], run["state"] = result[0], "done"
                continue
            _advance(run, result, tol, max_iter, reg_covar)


def _advance(run: dict, stats, tol: float, max_iter: int, reg_covar: float) -> None:
    """One M-step of a run, as ``GaussianMixture._batch_em`` takes it."""
    run["n_iter"] += 1
    try:
        run["params"], run["covariances"] = parameters_from_statistics(
            stats, reg_covar, run["params"].covariance_type
        )
    except CholeskyError as error:
        run["error"], run["state"] = error, "failed"
        return
    previous, run["lower_bound"] = run["lower_bound"], stats.log_likelihood / stats.n_samples
    run["lower_bounds"].append(run["lower_bound"])
    if abs(run["lower_bound"] - previous) < tol:
        run["converged"] = True
    if run["converged"] or run["n_iter"] >= max_iter:
        run["state"] = "finishing"


def select(
    X: Any,
    n_components: Iterable[int] = range(2, 11),
    covariance_types: Sequence[str] = ("full", "diag"),
    criterion: str = "bic",
    *,
    tol: float = 1e-3,
    reg_covar: float = 1e-6,
    max_iter: int = 100,
    n_init: int = 1,
    init_params: str = "k-means||",
    random_state: Any = None,
    init_sample_size: int = 100_000,
    sample_dim: str | None = None,
    float32_products: bool = False,
) -> tuple[GaussianMixture, xr.Dataset]:
    """Fit every (n_components, covariance_type) candidate together and keep the
    one with the lowest ``criterion``.

    The data are read ``init passes + largest n_iter + 1`` times in all (module
    docs), not once per candidate per iteration. With ``n_init > 1`` every
    candidate is started ``n_init`` times (in the same passes) and its run with
    the best final lower bound is kept, as in ``GaussianMixture``. A candidate
    whose covariances fail (for example more components than the data support)
    is reported with a NaN criterion and a warning instead of stopping the grid.
    The keyword parameters mean what they mean in ``GaussianMixture``;
    ``float32_products`` applies to every full-covariance candidate's EM passes
    (the final scoring pass stays in float64).

    Returns
    -------
    model : GaussianMixture
        The best candidate, fitted (its parameters as if ``fit`` had been called).
    table : xarray.Dataset
        Dims ``(n_components, covariance_type)``; variables ``bic``, ``aic``,
        ``lower_bound``, ``n_iter``, ``converged``; attrs ``criterion``,
        ``n_passes`` (passes this call made) and ``n_passes_one_by_one`` (what
        fitting and scoring each candidate separately would have made).
    """
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
    sizes = [int(K) for K in n_components]
    types = list(dict.fromkeys(covariance_types))
    if not sizes or not types:
        raise ValueError("n_components and covariance_types must not be empty")
    if len(set(sizes)) != len(sizes):
        raise ValueError(f"n_components holds repeated values: {sizes}")
    data = as_rows(X, sample_dim)
    settings = dict(
        tol=tol,
        reg_covar=reg_covar,
        max_iter=max_iter,
        n_init=n_init,
        init_params=init_params,
        random_state=random_state,
        init_sample_size=init_sample_size,
        sample_dim=sample_dim,
        float32_products=float32_products,
    )
    models = {
        (K, t): GaussianMixture(K, covariance_type=t, **settings) for K in sizes for t in types
    }
    for model in models.values():
        model._check_parameters(data.n_features)
    if max(sizes) > data.n_samples:
        raise ValueError(
            f"Expected n_samples >= n_components, got n_samples={data.n_samples} "
            f"and n_components={max(sizes)}"
        )
    keys = [key for key in models for _ in range(n_init)]
    rng = make_rng(random_state)
    starts = initial_statistics_grid(data, keys, init_params, rng, init_sample_size)
    init_passes = _init_passes(init_params)
    runs = []
    for (K, t), stats in zip(keys, starts, strict=True):
        run = {"key": (K, t), "error": None}
        try:
            run["params"], _ = parameters_from_statistics(stats, reg_covar, t)
        except CholeskyError as error:
            run["error"], run["params"] = error, None
        runs.append(run)
    em_passes = run_grid_em(data, runs, tol, max_iter, reg_covar, float32_products)
    best_runs = _best_per_candidate(runs)
    table = _table(sizes, types, best_runs, models, data)
    table.attrs.update(
        criterion=criterion,
        init_params=init_params,
        n_passes=init_passes + em_passes,
        n_passes_one_by_one=sum(init_passes + run["n_iter"] for run in runs) + len(models),
    )
    scores = table[criterion].values
    if np.all(np.isnan(scores)):
        raise ValueError(
            "Every candidate failed; increase reg_covar or use fewer components "
            f"(first error: {runs[0]['error']})"
        )
    row, column = np.unravel_index(np.nanargmin(scores), scores.shape)
    best = models[(sizes[row], types[column])]
    if not best.converged_:
        warnings.warn(
            f"The selected candidate (n_components={best.n_components}, covariance_type="
            f"{best.covariance_type!r}) did not converge; increase max_iter or tol.",
            ConvergenceWarning,
            stacklevel=2,
        )
    return best, table


def _init_passes(init_params: str) -> int:
    """Passes of one initialisation, as in :mod:`streamgmm.initialization` (an upper
    bound: the sample and random-row reads touch only the chunks they need)."""
    from . import initialization

    if init_params == "k-means||":
        return initialization.KMEANS_PARALLEL_ROUNDS + 1
    return 1 if init_params == "random" else 2


def _best_per_candidate(runs: list[dict]) -> dict:
    """The run with the best final lower bound per candidate (failed runs last)."""
    best: dict = {}
    for run in runs:
        current = best.get(run["key"])
        if run["error"] is not None:
            if current is None:
                best[run["key"]] = run
            continue
        if current is None or current["error"] is not None:
            best[run["key"]] = run
        elif run["lower_bound"] > current["lower_bound"]:
            best[run["key"]] = run
    return best


def _table(sizes, types, best_runs, models, data) -> xr.Dataset:
    """Fit each candidate's model from its best run and tabulate the criteria."""
    shape = (len(sizes), len(types))
    columns = {name: np.full(shape, np.nan) for name in ("bic", "aic", "lower_bound")}
    n_iter = np.zeros(shape, dtype=int)
    converged = np.zeros(shape, dtype=bool)
    for (row, K), (column, t) in ((r, c) for r in enumerate(sizes) for c in enumerate(types)):
        run = best_runs[(K, t)]
        n_iter[row, column] = run.get("n_iter", 0)
        if run["error"] is not None:
            warnings.warn(
                f"candidate n_components={K}, covariance_type={t!r} failed: {run['error']}",
                UserWarning,
                stacklevel=3,
            )
            continue
        model = models[(K, t)]
        model._set_fitted(run, data.n_features)
        n_parameters = model._n_parameters()
        for name in ("bic", "aic"):
            columns[name][row, column] = information_criterion(
                name, run["total_log_likelihood"], data.n_samples, n_parameters
            )
        columns["lower_bound"][row, column] = run["lower_bound"]
        converged[row, column] = run["converged"]
    dims = ("n_components", "covariance_type")
    return xr.Dataset(
        {
            "bic": (dims, columns["bic"]),
            "aic": (dims, columns["aic"]),
            "lower_bound": (dims, columns["lower_bound"]),
            "n_iter": (dims, n_iter),
            "converged": (dims, converged),
        },
        coords={"n_components": sizes, "covariance_type": types},
    )
