"""``BayesianGaussianMixture``: a variational Bayesian mixture, out of core and online.

scikit-learn's ``BayesianGaussianMixture`` (its parameters, their meanings and
its fitted attributes) over streamgmm's passes: every iteration of batch
variational EM is one Dask tree reduction of EM's chunk statistics
(:func:`streamgmm.estep.chunk_statistics`) at the parameters of
:func:`streamgmm.variational.estep_parameters`, followed by the pure update and
lower bound of :mod:`streamgmm.variational`. Online, stochastic variational
inference (Hoffman et al. 2013) steps the posterior's natural parameters
towards each mini-batch's statistics scaled to the data's size; since the
natural parameters are the prior's plus the statistics, this is the stepwise
merge of statistics that online EM uses, followed by the same update.

Passes over the data for ``fit`` (batch): one for the priors that default to
the data's mean and covariance (shared with the start's pass when
``labels_init`` is given), the start's passes (:mod:`streamgmm.initialization`;
one for ``labels_init``), then one per iteration.
"""

from __future__ import annotations

import json
import os
import warnings
from functools import partial
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
from sklearn.exceptions import ConvergenceWarning

from . import variational as vb
from .checkpoint import (
    check_fingerprint,
    claim_checkpoint_path,
    fit_fingerprint,
    read_checkpoint,
    write_checkpoint,
)
from .covariance import precisions_from_cholesky
from .engine import has_converged
from .estep import (
    GaussianParameters,
    check_finite,
    chunk_statistics,
    e_step,
    statistics_from_responsibilities,
)
from .fitting import check_enough_rows
from .hyperparameters import BAYESIAN_SETTINGS, estimator_init, make_rng, parameters_doc
from .initialization import Start, initial_statistics_grid, start_seeds
from .inputs import RowData, persisted_rows
from .mixture import GaussianMixture
from .reduction import tree_reduce_each
from .state import MODEL_FORMAT_VERSION
from .statistics import SufficientStatistics, merge_all, rescale
from .validation import (
    check_hyperparameters,
)

HYPERPARAMETER_RULES = {setting.name: setting.rule for setting in BAYESIAN_SETTINGS}
"""What every constructor parameter must be, checked when fitting starts."""

PRIOR_NAMES = ("weight_concentration_prior", "mean_precision_prior", "mean_prior",
               "degrees_of_freedom_prior", "covariance_prior")
ARRAY_HYPERPARAMETERS = ("mean_prior", "covariance_prior")
MODEL_KIND = "BayesianGaussianMixture"

MOVE_START = 5
"""Passes before the first merge proposals (``moves=True``)."""

MOVE_EVERY = 5
"""Passes between two rounds of merge proposals (and whenever the bound stops rising)."""

MOVE_PAIRS = (1, 2, 4, 8)
"""How many of the most redundant pairs each proposal of a round merges: a round
costs as many extra E-steps in its pass (here at most 4)."""


# ---------------------------------------------------------------- chunk work
def _data_moments_chunk(block, argument, row_offset, sample_weight=None):
    """The chunk's weight, mean and scatter (``argument``: "full" or "diag"), as
    one-component statistics."""
    scatter_type, with_labels = argument
    X = np.asarray(block[:, :-1] if with_labels else block)
    check_finite(X, row_offset)
    if X.shape[0] == 0:
        return None
    shift = X.mean(axis=0, dtype=np.float64)[None]
    return statistics_from_responsibilities(
        X, np.ones((X.shape[0], 1)), shift, scatter_type, sample_weight=sample_weight)


def _merge_present(parts, covariance_type):
    parts = [part for part in parts if part is not None]
    return merge_all(parts, covariance_type) if parts else None


def _label_statistics_chunk(block, argument, row_offset, sample_weight=None):
    """Statistics of a chunk whose last column holds every row's component."""
    n_components, covariance_type = argument
    X, labels = np.asarray(block[:, :-1]), block[:, -1]
    check_finite(X, row_offset)
    if X.shape[0] == 0:
        return None
    check_labels(labels, n_components, row_offset)
    resp = np.zeros((X.shape[0], n_components))
    resp[np.arange(X.shape[0]), labels.astype(np.int64)] = 1.0
    shift = np.repeat(X.mean(axis=0, dtype=np.float64)[None], n_components, axis=0)
    return statistics_from_responsibilities(X, resp, shift, covariance_type,
                                            sample_weight=sample_weight)


def check_labels(labels: np.ndarray, n_components: int, row_offset: int = 0) -> None:
    """Raise ``ValueError`` unless every label is an integer in [0, K)."""
    labels = np.asarray(labels)
    good = np.isfinite(labels) & (labels == np.round(labels)) & (labels >= 0) & (
        labels < n_components) if labels.dtype.kind == "f" else (labels >= 0) & (
        labels < n_components)
    if not np.all(good):
        bad = np.flatnonzero(~good)
        raise ValueError(
            f"labels_init must hold integers in [0, {n_components}); row "
            f"{bad[0] + row_offset} has {labels[bad[0]]!r}")


def _estep_chunk(block, params, row_offset, sample_weight=None):
    return chunk_statistics(block, params, row_offset, sample_weight=sample_weight)


def _variational_pass(data: RowData, params_list: list[GaussianParameters],
                      covariance_type: str) -> list[SufficientStatistics]:
    """One pass: the E-step statistics at every parameter set."""
    combine = partial(merge_all, covariance_type=covariance_type)
    return tree_reduce_each(
        data.array, [(_estep_chunk, combine, params) for params in params_list],
        sample_weight=data.weights)


# ------------------------------------------------------------------ the run
class VariationalRun:
    """One start of a fit between two passes.

    Attributes
    ----------
    vp : VariationalParameters
    statistics : SufficientStatistics
        The statistics ``vp`` was updated from (online: the running ones).
    lower_bounds : list of float
    n_iter : int
    converged : bool
    """

    def __init__(self, vp, statistics, lower_bounds=None, n_iter=0, converged=False,
                 moved_at=0, n_moves=0, move_due=False):
        self.vp = vp
        self.statistics = statistics
        self.lower_bounds = [] if lower_bounds is None else list(lower_bounds)
        self.n_iter = n_iter
        self.converged = converged
        self.moved_at = moved_at
        self.n_moves = n_moves
        self.move_due = move_due

    @property
    def lower_bound(self) -> float:
        return self.lower_bounds[-1] if self.lower_bounds else -np.inf


def _run_arrays(run: VariationalRun, prefix: str) -> dict[str, np.ndarray]:
    arrays = {f"{prefix}vp/{name}": np.asarray(value) for name, value in run.vp._asdict().items()}
    arrays.update({f"{prefix}stats/{name}": np.asarray(value)
                   for name, value in run.statistics._asdict().items()})
    arrays[f"{prefix}lower_bounds"] = np.asarray(run.lower_bounds, dtype=np.float64)
    arrays[f"{prefix}counters"] = np.array(
        [run.n_iter, int(run.converged), run.moved_at, run.n_moves, int(run.move_due)],
        dtype=np.int64)
    return arrays


def _run_from_arrays(arrays: dict, prefix: str) -> VariationalRun:
    vp = vb.VariationalParameters(**{
        name: arrays[f"{prefix}vp/{name}"] for name in vb.VariationalParameters._fields})
    stats = SufficientStatistics(**{
        name: arrays[f"{prefix}stats/{name}"] for name in SufficientStatistics._fields})
    stats = stats._replace(log_likelihood=float(stats.log_likelihood),
                           n_samples=float(stats.n_samples))
    n_iter, converged, moved_at, n_moves, move_due = arrays[f"{prefix}counters"].tolist()
    return VariationalRun(vp, stats, arrays[f"{prefix}lower_bounds"].tolist(), n_iter,
                          bool(converged), moved_at, n_moves, bool(move_due))


def _priors_arrays(priors: vb.Priors) -> dict[str, np.ndarray]:
    return {f"priors/{name}": np.asarray(value) for name, value in priors._asdict().items()}


def _priors_from_arrays(arrays: dict, covariance_type: str) -> vb.Priors:
    values = {name: arrays[f"priors/{name}"] for name in vb.Priors._fields}
    for name in ("weight_concentration", "mean_precision", "degrees_of_freedom"):
        values[name] = float(values[name])
    if covariance_type == "spherical":
        values["covariance"] = float(values["covariance"])
    return vb.Priors(**values)


class BayesianGaussianMixture(GaussianMixture):
    """Variational Bayesian Gaussian mixture over data that need not fit in memory.

    scikit-learn's ``BayesianGaussianMixture`` (same parameters, defaults but
    ``init_params``, meanings and fitted attributes; it equals scikit-learn's
    to 1e-8 from the same start) fitted by passes over chunks: NumPy, Dask,
    Zarr, xarray and tables, with ``sample_weight``, on any Dask scheduler,
    with checkpoints, online (``algorithm="online"``, ``partial_fit``), and
    model files (:func:`streamgmm.save`).

    Parameters
    ----------
{parameters}

    Attributes
    ----------
    weight_concentration_ : ndarray or tuple of two ndarrays
    mean_precision_, degrees_of_freedom_, means_, covariances_,
    precisions_cholesky_, precisions_, weights_
        scikit-learn's meanings.
    weight_concentration_prior_, mean_precision_prior_, mean_prior_,
    degrees_of_freedom_prior_, covariance_prior_
        The priors used.
    lower_bound_, lower_bounds_, n_iter_, converged_
        Batch: scikit-learn's lower bound after every iteration. Online fits
        compute no bound (it would cost a pass): ``lower_bounds_`` is empty,
        ``lower_bound_`` -inf, ``converged_`` False, ``n_iter_`` the passes;
        only the first of ``n_init`` starts is used.
    n_moves_ : int
        Merge proposals kept (``moves``).
    n_components_effective_ : int
    n_steps_, n_samples_seen_ : online counters
    """

    __doc__ = __doc__.replace("{parameters}", parameters_doc(BAYESIAN_SETTINGS))
    __init__ = estimator_init(BAYESIAN_SETTINGS)

    # ------------------------------------------------------------- checks
    def _check_hyperparameters(self) -> None:
        check_hyperparameters(self, HYPERPARAMETER_RULES)

    def _checked_priors(self, n_features: int) -> dict:
        return vb.check_priors({name: getattr(self, name) for name in PRIOR_NAMES},
                               self.covariance_type, n_features)

    def _checked_labels(self, data: RowData):
        """``labels_init`` as a Dask array chunked like the rows (checked now if
        in memory, else chunk by chunk in the start's pass), or None."""
        labels = self.labels_init
        if labels is None:
            return None
        if isinstance(labels, da.Array):
            if labels.shape != (data.n_samples,):
                raise ValueError(f"labels_init must have shape ({data.n_samples},), got "
                                 f"{labels.shape}")
            return labels.rechunk((data.array.chunks[0],))
        labels = np.asarray(labels)
        if labels.shape != (data.n_samples,):
            raise ValueError(f"labels_init must have shape ({data.n_samples},), got "
                             f"{labels.shape}")
        if labels.dtype.kind not in "iuf":
            raise ValueError(f"labels_init must hold integers, got dtype {labels.dtype}")
        check_labels(labels, self.n_components)
        return da.from_array(labels, chunks=(data.array.chunks[0],))

    # ------------------------------------------------------------ fitting
    def fit(self, X: Any, y: Any = None, sample_weight: Any = None, *,
            checkpoint: str | os.PathLike | None = None) -> BayesianGaussianMixture:
        """Fit the variational posterior (batch or online, by ``algorithm``).

        Bad input, parameters or priors raise ``ValueError`` or ``TypeError``
        before any pass over the data and the model keeps its previous state.
        ``checkpoint``: a file replaced atomically after the start and every
        pass (batch); if it exists, the fit resumes from it and ends where the
        uninterrupted fit would have ended.
        """
        self._check_hyperparameters()
        data = self._validate_data(X, reset=True, sample_weight=sample_weight)
        check_enough_rows(data, self.n_components)
        user_priors = self._checked_priors(data.n_features)
        labels = self._checked_labels(data)
        warm = self.warm_start and hasattr(self, "weight_concentration_")
        if warm and self.means_.shape[1] != data.n_features:
            raise ValueError(f"X has {data.n_features} features, but the warm start has "
                             f"{self.means_.shape[1]}")
        if checkpoint is not None:
            claim_checkpoint_path(checkpoint, [X, sample_weight])
        data = persisted_rows(data, self.persist)
        fingerprint = None
        resumed = None
        if checkpoint is not None:
            params = {k: v for k, v in self.get_params().items() if k != "labels_init"}
            fingerprint = fit_fingerprint(params, data)
            if self.labels_init is not None:
                fingerprint["labels_init"] = fit_fingerprint(
                    {"labels": np.asarray(self.labels_init)}, data)["labels"]
            stored = read_checkpoint(checkpoint)
            if stored is not None:
                arrays, meta = stored
                if meta.get("estimator") != MODEL_KIND:
                    raise ValueError(f"{os.fspath(checkpoint)!r} is not a checkpoint of a "
                                     f"{MODEL_KIND} fit")
                check_fingerprint(checkpoint, meta["fingerprint"], fingerprint)
                priors = _priors_from_arrays(arrays, self.covariance_type)
                resumed = [_run_from_arrays(arrays, f"run{i}/")
                           for i in range(meta["n_runs"])]
                online_position = meta.get("online")
        if resumed is None:
            priors, starts = self._starts(data, user_priors, labels, warm)
            runs = [vb_run(start) for start in starts]
            online_position = None
        else:
            runs = resumed

        def save_checkpoint(runs, online=None):
            if checkpoint is None:
                return
            arrays = _priors_arrays(priors)
            for i, run in enumerate(runs):
                arrays.update(_run_arrays(run, f"run{i}/"))
            write_checkpoint(checkpoint, arrays, {
                "estimator": MODEL_KIND, "fingerprint": fingerprint, "n_runs": len(runs),
                "online": online})

        if resumed is None:
            save_checkpoint(runs)
        if self.algorithm == "batch":
            self._batch_passes(data, runs, priors, save_checkpoint)
            best = max(runs, key=lambda run: run.lower_bound)
            if not best.converged and self.max_iter > 0:
                warnings.warn(
                    f"Best of the {len(runs)} start(s) did not converge in {self.max_iter} "
                    "iterations; try a larger max_iter or tol, or check the data.",
                    ConvergenceWarning, stacklevel=2)
            # partial_fit continues with the batch statistics as those of this many rows
            n_steps, seen = 0, float(best.statistics.n_samples)
        else:
            best = runs[0]
            n_steps, seen = self._online_passes(data, best, priors, save_checkpoint,
                                                online_position)
        self._set_variational(best, priors, data, n_steps, seen)
        return self

    def _starts(self, data, user_priors, labels, warm):
        """The priors and the starting statistics of every start."""
        K, cov_type = self.n_components, self.covariance_type
        reductions = []
        need_moments = user_priors["mean_prior"] is None or user_priors["covariance_prior"] is None
        scatter_type = "full" if cov_type in ("full", "tied") else "diag"
        array = data.array
        if labels is not None:
            array = da.concatenate(
                [array.astype(np.float64), labels.astype(np.float64)[:, None]], axis=1
            ).rechunk({1: -1})
        with_labels = labels is not None
        if need_moments:
            reductions.append((_data_moments_chunk,
                               partial(_merge_present, covariance_type=scatter_type),
                               (scatter_type, with_labels)))
        if with_labels and not warm:
            reductions.append((_label_statistics_chunk,
                               partial(_merge_present, covariance_type=cov_type),
                               (K, cov_type)))
        results = tree_reduce_each(array, reductions, sample_weight=data.weights) if (
            reductions) else []
        if need_moments:
            moments = results.pop(0)
            mean, scatter, n = moments.mean[0], moments.scatter[0], moments.n_samples
        else:
            mean, scatter, n = user_priors["mean_prior"], None, float(data.n_samples)
        priors = vb.data_priors(
            n, mean, scatter, cov_type, K, user_priors["weight_concentration_prior"],
            user_priors["mean_precision_prior"], user_priors["mean_prior"],
            user_priors["degrees_of_freedom_prior"], user_priors["covariance_prior"])
        if warm:
            stats = SufficientStatistics(
                np.asarray(self.statistics_weight_), np.asarray(self.statistics_mean_),
                np.asarray(self.statistics_scatter_), 0.0, float(self.n_samples_seen_ or 0))
            vp = self._variational_parameters()
            return priors, [(vp, stats)]
        if with_labels:
            stats_list = [results.pop(0)] * self.n_init
        else:
            seeds = start_seeds(make_rng(self.random_state), self.n_init)
            stats_list = initial_statistics_grid(
                data, [Start(K, cov_type, seed) for seed in seeds], self.init_params,
                self.init_sample_size)
        starts = [(vb.update(stats, priors, self.reg_covar, cov_type,
                             self.weight_concentration_prior_type), stats)
                  for stats in stats_list]
        return priors, starts

    def _batch_passes(self, data, runs, priors, save_checkpoint):
        """Variational EM: one pass per iteration for every run still going; with
        ``moves``, some passes also evaluate merge proposals (:meth:`_proposals`)."""
        cov_type, prior_type = self.covariance_type, self.weight_concentration_prior_type
        while True:
            going = [run for run in runs if run.n_iter < self.max_iter and not run.converged]
            if not going:
                return
            plans = [[run.vp, *self._proposals(run, priors)] for run in going]
            params = [vb.estep_parameters(vp, cov_type, prior_type)
                      for plan in plans for vp in plan]
            results = iter(_variational_pass(data, params, cov_type))
            points = iter(params)
            for run, plan in zip(going, plans, strict=True):
                outcomes = []
                for _ in plan:
                    point, stats = next(points), next(results)
                    entropy = vb.responsibility_entropy(stats, point)
                    vp = vb.update(stats, priors, self.reg_covar, cov_type, prior_type)
                    outcomes.append((vb.lower_bound(entropy, vp, cov_type, prior_type), vp,
                                     stats))
                best = max(range(len(outcomes)), key=lambda i: outcomes[i][0])
                if len(plan) > 1:
                    run.moved_at = run.n_iter + 1
                bound, vp, stats = outcomes[best]
                small_change = has_converged(run.lower_bound, bound, self.tol)
                if best > 0:
                    run.n_moves += 1
                tried = len(plan) > 1 or run.move_due  # due, but no pair to propose
                run.converged = small_change and best == 0 and (not self.moves or tried)
                run.move_due = self.moves and small_change and not tried
                run.vp, run.statistics, run.n_iter = vp, stats, run.n_iter + 1
                run.lower_bounds.append(bound)
                if self.verbose and run.n_iter % self.verbose_interval == 0:
                    print(f"  Iteration {run.n_iter}\t lower bound {bound:.6f}")
            save_checkpoint(runs)

    def _proposals(self, run, priors) -> list:
        """Merge proposals to evaluate in the next pass (``moves``): every
        :data:`MOVE_EVERY` passes from :data:`MOVE_START`, and when the bound
        stops rising; the 1, 2, 4, ... most redundant disjoint pairs
        (:func:`streamgmm.variational.merge_candidates`) merged at once, each
        proposal updated to variational parameters. The pass keeps whichever
        candidate (plain iteration or proposal) reaches the highest lower bound."""
        if not self.moves or not (run.move_due or (
                run.n_iter >= MOVE_START and run.n_iter - run.moved_at >= MOVE_EVERY)):
            return []
        stats = run.statistics
        min_weight = 0.5 * self.weight_threshold * float(np.sum(stats.weight))
        pairs = vb.merge_candidates(stats, self.covariance_type, min_weight, MOVE_PAIRS[-1])
        return [
            vb.update(vb.merge_components(stats, pairs[:count], self.covariance_type), priors,
                      self.reg_covar, self.covariance_type, self.weight_concentration_prior_type)
            for count in MOVE_PAIRS if count <= len(pairs)
        ]

    # ------------------------------------------------------------- online
    def _step(self, t: int) -> float:
        return float((t + self.learning_offset) ** -self.learning_decay)

    def _svi_rows(self, run, X, weights, priors, n_total, n_steps, rng):
        """Stochastic variational steps over rows X (in memory), in mini-batches
        of ``batch_size`` (a random order if ``shuffle``). Returns the steps taken."""
        cov_type, prior_type = self.covariance_type, self.weight_concentration_prior_type
        order = rng.permutation(X.shape[0]) if self.shuffle else np.arange(X.shape[0])
        for start in range(0, X.shape[0], self.batch_size):
            rows = order[start:start + self.batch_size]
            if self.shuffle:
                rows = np.sort(rows)
            batch = X[rows]
            batch_weight = None if weights is None else weights[rows]
            size = batch.shape[0] if batch_weight is None else float(batch_weight.sum())
            if size <= 0:
                continue
            point = vb.estep_parameters(run.vp, cov_type, prior_type)
            stats = chunk_statistics(batch, point, int(rows[0]), sample_weight=batch_weight)
            n_steps += 1
            rho = self._step(n_steps)
            run.statistics = merge_all(
                [rescale(run.statistics, 1.0 - rho), rescale(stats, rho * n_total / size)],
                cov_type)
            run.vp = vb.update(run.statistics, priors, self.reg_covar, cov_type, prior_type)
        return n_steps

    def _online_passes(self, data, run, priors, save_checkpoint, position):
        """``max_iter`` passes of stochastic variational inference over the chunks."""
        n_total = float(self.total_samples) if self.total_samples is not None else float(
            data.n_samples if data.weights is None else data.weights.sum().compute())
        rng = make_rng(self.random_state)
        n_steps = 0 if position is None else position["n_steps"]
        first_pass = 0 if position is None else position["passes"]
        seeds = rng.integers(2**63, size=max(self.max_iter, 1))
        for index in range(first_pass, self.max_iter):
            pass_rng = np.random.default_rng(seeds[index])
            n_chunks = data.array.numblocks[0]
            chunks = pass_rng.permutation(n_chunks) if self.shuffle else range(n_chunks)
            for chunk in chunks:
                X = np.asarray(data.array.blocks[chunk].compute())
                offset = sum(data.array.chunks[0][:chunk])
                check_finite(X, offset)
                weights = None if data.weights is None else np.asarray(
                    data.weights.blocks[chunk].compute())
                n_steps = self._svi_rows(run, X, weights, priors, n_total, n_steps, pass_rng)
            run.n_iter += 1
            save_checkpoint([run], {"n_steps": n_steps, "passes": index + 1})
        return n_steps, n_total

    def partial_fit(self, X: Any, y: Any = None,
                    sample_weight: Any = None) -> BayesianGaussianMixture:
        """Stochastic variational steps from the rows of X, in mini-batches of
        ``batch_size``; continues the step schedule of the last call, ``fit``
        or a loaded model. The first call on an unfitted model takes its priors
        and start from X. All or nothing: bad rows raise before any step."""
        first_call = not hasattr(self, "weight_concentration_")
        self._check_hyperparameters()
        data = self._validate_data(X, reset=first_call, sample_weight=sample_weight)
        rows = np.asarray(data.array.compute())
        check_finite(rows)
        weights = None if data.weights is None else np.asarray(data.weights.compute())
        if first_call:
            check_enough_rows(data, self.n_components)
            user_priors = self._checked_priors(data.n_features)
            labels = self._checked_labels(data)
            priors, starts = self._starts(data, user_priors, labels, False)
            run = vb_run(starts[0])
            n_steps, seen = 0, 0.0
        else:
            priors = self._priors()
            run = VariationalRun(self._variational_parameters(), self._statistics(),
                                 self.lower_bounds_, self.n_iter_, self.converged_)
            n_steps, seen = int(self.n_steps_), float(self.n_samples_seen_)
        seen += rows.shape[0] if weights is None else float(weights.sum())
        n_total = float(self.total_samples) if self.total_samples is not None else seen
        rng = make_rng(self.random_state if first_call else [n_steps, int(seen)])
        n_steps = self._svi_rows(run, rows, weights, priors, n_total, n_steps, rng)
        self._set_variational(run, priors, data, n_steps, seen)
        return self

    # ------------------------------------------------------------- state
    def _set_variational(self, run: VariationalRun, priors: vb.Priors, data: RowData | None,
                         n_steps: int, seen: float) -> None:
        vp, prior_type = run.vp, self.weight_concentration_prior_type
        self.weight_concentration_prior_ = priors.weight_concentration
        self.mean_precision_prior_ = priors.mean_precision
        self.mean_prior_ = priors.mean
        self.degrees_of_freedom_prior_ = priors.degrees_of_freedom
        self.covariance_prior_ = priors.covariance
        concentration = np.asarray(vp.weight_concentration, dtype=np.float64)
        self.weight_concentration_ = (
            (concentration[0], concentration[1]) if prior_type == "dirichlet_process"
            else concentration)
        self.mean_precision_ = np.asarray(vp.mean_precision, dtype=np.float64)
        self.means_ = np.asarray(vp.means, dtype=np.float64)
        self.degrees_of_freedom_ = (float(vp.degrees_of_freedom) if self.covariance_type == "tied"
                                    else np.asarray(vp.degrees_of_freedom, dtype=np.float64))
        self.covariances_ = np.asarray(vp.covariances, dtype=np.float64)
        self.precisions_cholesky_ = np.asarray(vp.precisions_cholesky, dtype=np.float64)
        self.precisions_ = precisions_from_cholesky(self.precisions_cholesky_,
                                                    self.covariance_type)
        self.weights_ = vb.mean_weights(concentration, prior_type)
        self.statistics_weight_ = np.asarray(run.statistics.weight, dtype=np.float64)
        self.statistics_mean_ = np.asarray(run.statistics.mean, dtype=np.float64)
        self.statistics_scatter_ = np.asarray(run.statistics.scatter, dtype=np.float64)
        self.lower_bounds_ = list(run.lower_bounds)
        self.lower_bound_ = run.lower_bound
        self.n_iter_ = run.n_iter
        self.converged_ = run.converged
        self.n_steps_ = n_steps
        self.n_samples_seen_ = seen
        self.n_components_effective_ = int(np.sum(self.weights_ >= self.weight_threshold))
        self.n_moves_ = run.n_moves
        self.n_features_in_ = int(self.means_.shape[1])
        if data is not None:
            if data.feature_names is None:
                self.__dict__.pop("feature_names_in_", None)
            else:
                self.feature_names_in_ = data.feature_names

    def _check_is_fitted(self) -> None:
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "weight_concentration_")

    def _variational_parameters(self) -> vb.VariationalParameters:
        return vb.VariationalParameters(
            weight_concentration=np.asarray(self.weight_concentration_, dtype=np.float64),
            mean_precision=np.asarray(self.mean_precision_, dtype=np.float64),
            means=np.asarray(self.means_, dtype=np.float64),
            degrees_of_freedom=np.asarray(self.degrees_of_freedom_, dtype=np.float64),
            covariances=np.asarray(self.covariances_, dtype=np.float64),
            precisions_cholesky=np.asarray(self.precisions_cholesky_, dtype=np.float64),
        )

    def _priors(self) -> vb.Priors:
        return vb.Priors(self.weight_concentration_prior_, self.mean_precision_prior_,
                         np.asarray(self.mean_prior_, dtype=np.float64),
                         self.degrees_of_freedom_prior_, self.covariance_prior_)

    def _statistics(self) -> SufficientStatistics:
        return SufficientStatistics(self.statistics_weight_, self.statistics_mean_,
                                    self.statistics_scatter_, 0.0, float(self.n_samples_seen_))

    def _fitted_parameters(self) -> GaussianParameters:
        """The parameters with which EM's kernel computes the variational
        E-step (:func:`streamgmm.variational.estep_parameters`): what
        ``predict``, ``predict_proba``, ``score_samples`` and ``score`` use, as
        scikit-learn's do (``score_samples`` is then the log of the
        normaliser of the E-step's ``rho``, scikit-learn's value)."""
        params = vb.estep_parameters(self._variational_parameters(), self.covariance_type,
                                     self.weight_concentration_prior_type)
        offsets = vb.log_weight_offsets(self._variational_parameters(),
                                        self.weight_concentration_prior_type)
        # undo estep_parameters' shift: score_samples gives scikit-learn's values
        return params._replace(
            weights=np.exp(np.maximum(offsets, offsets.max() + vb.LOG_WEIGHT_FLOOR)))

    def _used(self) -> np.ndarray:
        return np.flatnonzero(self.weights_ >= self.weight_threshold) if self.drop_unused else (
            np.arange(self.weights_.shape[0]))

    def predict(self, X: Any):
        """Most likely component of every row (among the used ones with
        ``drop_unused``), shape (n,), in the kind of X."""
        used = self._used() if hasattr(self, "weights_") else None
        return self._map_rows(
            X, lambda b, p: used[e_step(b, _subset(p, used))[1].argmax(axis=1)], None, np.int64)

    def predict_proba(self, X: Any):
        """Responsibilities (n, K) in the kind of X; with ``drop_unused``, over
        the used components only (the others' columns are 0)."""
        used = self._used() if hasattr(self, "weights_") else None
        K = getattr(self, "n_components", None)

        def proba(block, params):
            result = np.zeros((block.shape[0], K))
            result[:, used] = np.exp(e_step(block, _subset(params, used))[1])
            return result

        return self._map_rows(X, proba, K, extra_dim="component")

    def to_xarray(self) -> xr.Dataset:
        """The fitted model as an ``xarray.Dataset`` (the model file's content):
        parameters, priors and statistics with named dimensions,
        hyper-parameters and scalars as attributes."""
        self._check_is_fitted()
        cov_type = self.covariance_type
        dims = {"full": ("component", "feature", "feature_"), "tied": ("feature", "feature_"),
                "diag": ("component", "feature"), "spherical": ("component",)}[cov_type]
        prior_dims = {"full": ("feature", "feature_"), "tied": ("feature", "feature_"),
                      "diag": ("feature",), "spherical": ()}[cov_type]
        concentration = np.asarray(self.weight_concentration_, dtype=np.float64)
        data_vars = {
            "weights": (("component",), self.weights_),
            "means": (("component", "feature"), self.means_),
            "covariances": (dims, self.covariances_),
            "precisions": (dims, self.precisions_),
            "precisions_cholesky": (dims, self.precisions_cholesky_),
            "weight_concentration": (
                ("stick", "component") if concentration.ndim == 2 else ("component",),
                concentration),
            "mean_precision": (("component",), self.mean_precision_),
            "degrees_of_freedom": (() if cov_type == "tied" else ("component",),
                                   np.asarray(self.degrees_of_freedom_)),
            "mean_prior_": (("feature",), np.asarray(self.mean_prior_)),
            "covariance_prior_": (prior_dims, np.asarray(self.covariance_prior_)),
            "statistics_weight": (("component",), self.statistics_weight_),
            "statistics_mean": (("component", "feature"), self.statistics_mean_),
            "statistics_scatter": (dims, self.statistics_scatter_),
            "lower_bounds": (("iteration",), np.asarray(self.lower_bounds_, dtype=np.float64)),
        }
        hyper = self.get_params()
        for name in ARRAY_HYPERPARAMETERS:
            if hyper[name] is not None:
                data_vars[name] = (prior_dims if name == "covariance_prior" else ("feature",),
                                   np.asarray(hyper[name], dtype=np.float64))
            hyper[name] = None
        hyper["labels_init"] = None
        if not isinstance(hyper["random_state"], int | type(None)):
            hyper["random_state"] = None
        scalars = {
            "weight_concentration_prior_": self.weight_concentration_prior_,
            "mean_precision_prior_": self.mean_precision_prior_,
            "degrees_of_freedom_prior_": self.degrees_of_freedom_prior_,
            "lower_bound": float(self.lower_bound_), "n_iter": int(self.n_iter_),
            "converged": bool(self.converged_), "n_steps": int(self.n_steps_),
            "n_samples_seen": float(self.n_samples_seen_),
        }
        attrs = {
            "estimator": MODEL_KIND,
            "format_version": MODEL_FORMAT_VERSION,
            "covariance_type": cov_type,
            "hyperparameters": json.dumps(hyper),
            "scalars": json.dumps(scalars),
            "n_features_in": int(self.n_features_in_),
        }
        if hasattr(self, "feature_names_in_"):
            attrs["feature_names_in"] = json.dumps([str(n) for n in self.feature_names_in_])
        return xr.Dataset(data_vars, attrs=attrs)

    @classmethod
    def from_xarray(cls, dataset: xr.Dataset) -> BayesianGaussianMixture:
        """The model :meth:`to_xarray` described (``ValueError`` if it is not one)."""
        attrs = dataset.attrs
        if attrs.get("estimator") != MODEL_KIND:
            raise ValueError(f"The dataset does not describe a {MODEL_KIND}")
        hyper = json.loads(attrs["hyperparameters"])
        for name in ARRAY_HYPERPARAMETERS:
            if name in dataset:
                value = dataset[name].values
                hyper[name] = float(value) if value.ndim == 0 else value
        model = cls(**hyper)
        scalars = json.loads(attrs["scalars"])
        values = {name: np.asarray(dataset[name].values, dtype=np.float64)
                  for name in dataset.data_vars}
        for name, value in values.items():
            if name in ("lower_bounds",):
                continue
            if not np.all(np.isfinite(value)):
                raise ValueError(f"The model's variable {name!r} holds NaN or infinity")
        covariance_prior = values["covariance_prior_"]
        priors = vb.Priors(
            scalars["weight_concentration_prior_"], scalars["mean_precision_prior_"],
            values["mean_prior_"], scalars["degrees_of_freedom_prior_"],
            float(covariance_prior) if covariance_prior.ndim == 0 else covariance_prior)
        vp = vb.VariationalParameters(
            values["weight_concentration"], values["mean_precision"], values["means"],
            values["degrees_of_freedom"], values["covariances"], values["precisions_cholesky"])
        stats = SufficientStatistics(values["statistics_weight"], values["statistics_mean"],
                                     values["statistics_scatter"], 0.0,
                                     scalars["n_samples_seen"])
        run = VariationalRun(vp, stats, values["lower_bounds"].tolist(), scalars["n_iter"],
                             scalars["converged"])
        model._set_variational(run, priors, None, scalars["n_steps"], scalars["n_samples_seen"])
        model.lower_bound_ = scalars["lower_bound"]
        if "feature_names_in" in attrs:
            model.feature_names_in_ = np.asarray(json.loads(attrs["feature_names_in"]),
                                                 dtype=object)
        return model

    # scikit-learn's BayesianGaussianMixture has no information criteria: the
    # variational parameters are not maximum-likelihood estimates
    @property
    def bic(self):
        raise AttributeError("BayesianGaussianMixture has no bic (use lower_bound_)")

    @property
    def aic(self):
        raise AttributeError("BayesianGaussianMixture has no aic (use lower_bound_)")

    @property
    def icl(self):
        raise AttributeError("BayesianGaussianMixture has no icl (use lower_bound_)")


def vb_run(start) -> VariationalRun:
    vp, stats = start
    return VariationalRun(vp, stats)


def _subset(params: GaussianParameters, used: np.ndarray) -> GaussianParameters:
    """The parameters of the components ``used`` (tied: the shared factor)."""
    if used is None or len(used) == params.weights.shape[0]:
        return params
    factors = params.precisions_cholesky
    return GaussianParameters(params.weights[used], params.means[used],
                              factors if params.covariance_type == "tied" else factors[used],
                              params.covariance_type)


__all__ = ["BayesianGaussianMixture"]
