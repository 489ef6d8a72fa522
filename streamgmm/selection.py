"""Model selection: fit a grid of candidate mixtures together and rank them by
BIC, AIC or ICL.

Every pass over the data serves every candidate still running: one chunk
function computes each running candidate's E-step statistics (and the final
log-likelihood of candidates that have just stopped), and one tree reduction
per iteration merges them. So the grid reads the data

    init passes + (largest n_iter) + 1

times, where the init passes are those of one start (3 for ``"k-means||"``, 2
for ``"kmeans"``, 1 for ``"hierarchical"``, see :mod:`streamgmm.initialization`),
against ``sum over candidates (init passes + n_iter + 1)`` when each candidate
is fitted and scored on its own. With ``n_init = k`` every candidate gets the k
starts ``GaussianMixture(..., n_init=k).fit`` would draw, all computed in the
same init passes.
"""

from __future__ import annotations

import inspect
import numbers
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from .acceleration import step_strategy
from .criteria import CRITERIA, information_criterion
from .engine import EMRun, EMSettings, best_run, run_em
from .hyperparameters import (
    fit_config,
    make_rng,
    select_default,
    select_settings,
)
from .initialization import KMEANS_PARALLEL_ROUNDS, Start, initial_statistics_grid, start_seeds
from .inputs import persisted_rows, weighted_rows
from .missing import prepare_gaps
from .mixture import ConvergenceWarning, GaussianMixture
from .mstep import CholeskyError, parameters_from_statistics
from .progress import FitProgress, say
from .threads import blas_threads_for_dask, local_threads


@dataclass
class GridRun:
    """One start of one candidate of the grid."""

    key: tuple[int, str]
    method: str
    run: EMRun


def run_grid_em(data, runs: list[GridRun], config: Any) -> int:
    """Exact EM (plain or accelerated, :mod:`streamgmm.acceleration`) for every
    run in ``runs`` together (:func:`streamgmm.engine.run_em`, each run scored
    in the pass after it stops, an M-step that fails stopping only its run),
    with the settings of ``config`` (a :data:`~streamgmm.hyperparameters.FitConfig`);
    returns the passes taken. ``config.verbose`` shows one progress display for
    the whole grid (passes, candidates still running)."""
    settings = EMSettings(config.tol, config.max_iter, config.reg_covar,
                          config.float32_products, missing=config.missing)
    progress = GridProgress(config.verbose, config.max_iter, len(runs))
    with local_threads(config.n_jobs), blas_threads_for_dask([data.array]), progress:
        return run_em(
            data.array, [grid.run for grid in runs], settings,
            step=step_strategy(config.acceleration), keep_going=True, score_at_end=True,
            sample_weight=data.weights, on_pass=progress.record,
        )


class GridProgress:
    """One progress display for a grid's passes: a bar on a terminal
    (``verbose >= 1``), else a line per pass (``verbose >= 2``)."""

    def __init__(self, verbose: int, max_iter: int, n_runs: int) -> None:
        self.progress = FitProgress(verbose, max_iter + 1, f"select: {n_runs} runs",
                                    verbose_interval=1)
        self.n_runs = n_runs

    def record(self, passes: int, running: int) -> None:
        self.progress.note(f"pass {passes}: {running} of {self.n_runs} runs still going")

    def __enter__(self) -> GridProgress:
        return self

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        self.progress.close(finished=exc_type is None)


def select(
    X: Any,
    n_components: Iterable[int] = range(2, 11),
    covariance_types: Sequence[str] = ("full", "diag"),
    criterion: str = "bic",
    *,
    sample_weight: Any = None,
    **settings: Any,
) -> tuple[GaussianMixture, xr.Dataset]:
    """Fit every (n_components, covariance_type) candidate together and keep the
    one with the lowest ``criterion`` (``"bic"``, ``"aic"`` or mclust's ``"icl"``).

    The data are read ``init passes + largest n_iter + 1`` times in all (module
    docs), not once per candidate per iteration. The keyword ``settings`` are
    ``GaussianMixture``'s that apply to every candidate ({names}), with the same
    meaning, but the defaults of ``tol`` and ``init_params`` differ
    (:data:`~streamgmm.hyperparameters.SELECT_TOL`,
    :data:`~streamgmm.hyperparameters.SELECT_INIT_PARAMS`). ``init_params`` is
    one start method or several: every candidate is started ``n_init`` times
    with each method, from the starts ``GaussianMixture(n_components,
    covariance_type=..., init_params=method, n_init=n_init,
    random_state=random_state).fit`` would draw (for an integer
    ``random_state`` exactly those, so with one method the kept candidate is
    the model that ``fit`` returns), and its run with the best final lower
    bound is kept. A candidate whose covariances fail (for example more
    components than the data support) is reported with a NaN criterion and a
    warning instead of stopping the grid. ``float32_products`` applies to every
    full-covariance candidate's EM passes (the final scoring pass stays in
    float64). ``sample_weight`` weighs the rows as in ``GaussianMixture.fit``
    (BIC's n is then the sum of the weights); ``acceleration`` (``"daarem"``
    or ``"squarem"``) runs every candidate's batch EM accelerated, as ``fit``
    does, in the same shared passes (``max_iter`` then counts passes);
    ``missing="marginalize"`` fits rows with NaN through their observed
    coordinates, as ``fit`` does (one more pass first; starts from the gaps
    filled by column means; BIC's n counts the rows with something observed);
    ``verbose`` shows the grid's progress.

    Returns
    -------
    model : GaussianMixture
        The best candidate, fitted (its parameters as if ``fit`` had been called;
        its ``init_params`` the method of its kept run).
    table : xarray.Dataset
        Dims ``(n_components, covariance_type)``; variables ``bic``, ``aic``,
        ``icl``, ``lower_bound``, ``n_iter``, ``converged`` of every candidate's
        kept run, ``init_method`` (the kept run's start method), and
        ``run_lower_bound`` (dims ``(n_components, covariance_type, start)``:
        the final lower bound of every start, NaN if it failed; coordinate
        ``start_method`` along ``start``); attrs ``criterion``, ``init_params``,
        ``n_passes`` (passes this call made) and ``n_passes_one_by_one`` (what
        fitting and scoring each candidate separately would have made).
    """
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
    options = select_options(settings)
    init_params = options.pop("init_params")
    methods = (init_params,) if isinstance(init_params, str) else tuple(init_params)
    if not methods or len(set(methods)) != len(methods):
        raise ValueError(f"init_params must name distinct start methods, got {init_params!r}")
    sizes = [int(K) for K in n_components]
    types = list(dict.fromkeys(covariance_types))
    if not sizes or not types:
        raise ValueError("n_components and covariance_types must not be empty")
    if len(set(sizes)) != len(sizes):
        raise ValueError(f"n_components holds repeated values: {sizes}")
    # NumPy input goes to a cluster's workers once, not with every pass (as in fit).
    data = persisted_rows(weighted_rows(
        X, sample_weight, options["sample_dim"],
        check_missing=options["missing"] != "marginalize"), "auto")
    models = {
        (K, t): GaussianMixture(K, covariance_type=t, init_params=methods[0], **options)
        for K in sizes
        for t in types
    }
    for model in models.values():
        for method in methods:
            model.set_params(init_params=method)._check_parameters(data.n_features)
    start_data, n_empty = None, 0
    if options["missing"] == "marginalize":
        start_data, n_empty = prepare_gaps(data, max(sizes))
    if max(sizes) > data.n_counted:
        rows = "n_samples" if data.weights is None else "rows of positive weight"
        raise ValueError(
            f"Expected n_samples >= n_components, got {rows}={data.n_counted} "
            f"and n_components={max(sizes)}"
        )
    config = fit_config(next(iter(models.values())).get_params())
    seed_source = _seed_source(config.random_state)
    runs = []
    for method in methods:
        keys, starts = [], []
        for K, t in models:
            for seed in start_seeds(make_rng(seed_source), config.n_init):
                keys.append((K, t))
                starts.append(Start(K, t, seed))
        say(f"select: starting {len(starts)} runs by {method} "
            f"({_init_passes(method)} passes over the data)", config.verbose)
        with local_threads(config.n_jobs):
            initial = initial_statistics_grid(start_data or data, starts, method,
                                              config.init_sample_size)
        for key, stats in zip(keys, initial, strict=True):
            run = EMRun(None, None, label=f"select n_components={key[0]} {key[1]!r}")
            try:
                run.params, _ = parameters_from_statistics(stats, config.reg_covar, key[1])
            except CholeskyError as error:
                run.error = error
            runs.append(GridRun(key, method, run))
    init_passes = sum(_init_passes(method) for method in methods)
    em_passes = run_grid_em(data, runs, config)
    table = _table(sizes, types, runs, models, data)
    for model in models.values():
        model.n_empty_rows_ = n_empty
    table.attrs.update(
        criterion=criterion,
        init_params=list(methods),
        n_passes=init_passes + em_passes + (options["missing"] == "marginalize"),
        n_passes_one_by_one=sum(_init_passes(grid.method) + grid.run.n_iter for grid in runs)
        + len(models),
    )
    scores = table[criterion].values
    if np.all(np.isnan(scores)):
        raise ValueError(
            "Every candidate failed; increase reg_covar or use fewer components "
            f"(first error: {runs[0].run.error})"
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


def select_options(settings: dict[str, Any]) -> dict[str, Any]:
    """Every setting :func:`select` takes, from the given ones and the
    defaults (``TypeError`` for a keyword it does not take)."""
    known = {setting.name: setting for setting in select_settings()}
    for name in settings:
        if name not in known:
            raise TypeError(f"select() got an unexpected keyword argument {name!r}")
    return {name: settings.get(name, select_default(setting)) for name, setting in known.items()}


def _select_signature() -> inspect.Signature:
    """:func:`select`'s signature with the settings it takes, for ``help`` and the docs."""
    head = [
        parameter for parameter in inspect.signature(select).parameters.values()
        if parameter.kind != inspect.Parameter.VAR_KEYWORD
    ]
    tail = [
        inspect.Parameter(setting.name, inspect.Parameter.KEYWORD_ONLY,
                          default=select_default(setting), annotation=setting.annotation)
        for setting in select_settings()
    ]
    return inspect.signature(select).replace(parameters=[*head, *tail])


select.__signature__ = _select_signature()
select.__doc__ = select.__doc__.replace(
    "{names}", ", ".join(f"``{setting.name}``" for setting in select_settings())
)


def _seed_source(random_state: Any) -> Any:
    """What every candidate's random stream starts from: an integer
    ``random_state`` itself (so each candidate draws the starts ``fit`` with that
    seed draws), else one integer drawn from it."""
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return int(random_state)
    return int(make_rng(random_state).integers(2**63))


def _init_passes(init_params: str) -> int:
    """Passes of one initialisation, as in :mod:`streamgmm.initialization` (an upper
    bound: the sample and random-row reads touch only the chunks they need)."""
    if init_params == "k-means||":
        return KMEANS_PARALLEL_ROUNDS + 1
    return 1 if init_params in ("random", "hierarchical") else 2


def _table(sizes, types, runs, models, data) -> xr.Dataset:
    """Fit each candidate's model from its best run and tabulate the criteria."""
    shape = (len(sizes), len(types))
    columns = {name: np.full(shape, np.nan) for name in (*CRITERIA, "lower_bound")}
    start_methods = [grid.method for grid in runs if grid.key == runs[0].key]
    run_lower_bound = np.full((*shape, len(start_methods)), np.nan)
    init_method = np.full(shape, "", dtype=object)
    n_iter = np.zeros(shape, dtype=int)
    converged = np.zeros(shape, dtype=bool)
    for (row, K), (column, t) in ((r, c) for r in enumerate(sizes) for c in enumerate(types)):
        own = [grid for grid in runs if grid.key == (K, t)]
        for start, grid in enumerate(own):
            if grid.run.error is None:
                run_lower_bound[row, column, start] = grid.run.lower_bound
        run = best_run([grid.run for grid in own])
        method = next(grid.method for grid in own if grid.run is run)
        n_iter[row, column] = run.n_iter
        init_method[row, column] = method
        if run.error is not None:
            warnings.warn(
                f"candidate n_components={K}, covariance_type={t!r} failed: {run.error}",
                UserWarning,
                stacklevel=3,
            )
            continue
        model = models[(K, t)].set_params(init_params=method)
        model._set_fitted(run, data)
        n_parameters = model._n_parameters()
        for name in CRITERIA:
            columns[name][row, column] = information_criterion(
                name, run.final_terms[0], run.final_terms[1], n_parameters, run.final_terms[2]
            )
        columns["lower_bound"][row, column] = run.lower_bound
        converged[row, column] = run.converged
    dims = ("n_components", "covariance_type")
    return xr.Dataset(
        {
            **{name: (dims, values) for name, values in columns.items()},
            "run_lower_bound": ((*dims, "start"), run_lower_bound),
            "init_method": (dims, init_method.astype(str)),
            "n_iter": (dims, n_iter),
            "converged": (dims, converged),
        },
        coords={
            "n_components": sizes,
            "covariance_type": types,
            "start_method": ("start", start_methods),
        },
    )


__all__ = [
    "select",
]
