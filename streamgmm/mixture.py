"""The ``GaussianMixture`` estimator: a thin driver around the E-step, the M-step
and the Dask reduction, with scikit-learn's names and meanings."""

from __future__ import annotations

import hashlib
import json
import numbers
import os
import warnings
from contextlib import ExitStack
from functools import partial
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from .checkpoint import (
    check_fingerprint,
    claim_checkpoint_path,
    online_from_arrays,
    online_to_arrays,
    read_checkpoint,
    run_from_arrays,
    run_to_arrays,
    write_checkpoint,
)
from .cluster import persisted_rows
from .estep import (
    GaussianParameters,
    check_finite,
    chunk_likelihood_terms,
    chunk_log_likelihood,
    chunk_statistics,
    e_step,
)
from .initialization import INIT_METHODS, initialize_parameters
from .inputs import RowData, as_rows, check_matrix, named_input, wrap_rows
from .mstep import (
    covariances_from_precisions_cholesky,
    parameters_from_statistics,
    precision_cholesky_from_precisions,
    precisions_from_cholesky,
)
from .online import (
    START_POSITION,
    FoldCarry,
    OnlineConfig,
    OnlineState,
    current_parameters,
    finish_pass,
    fold_chunk,
    fold_pass,
    initial_state,
    online_em,
    reported_parameters,
)
from .progress import HISTORY_KEYS, FitProgress, empty_history, history_from_lower_bounds
from .reduction import tree_reduce, tree_reduce_each
from .statistics import COVARIANCE_TYPES, merge_all
from .threads import blas_threads_for_dask, single_threaded_blas
from .validation import (
    BOOLEAN,
    OPTIONAL_ARRAY,
    OPTIONAL_STRING,
    RANDOM_STATE,
    VERBOSE,
    check_hyperparameters,
    integer_in,
    one_of,
    real_in,
)

ALGORITHMS = ("batch", "online")
PERSIST_OPTIONS = ("auto", True, False)

BATCH_SIZE = 512
LEARNING_DECAY = 0.6
LEARNING_OFFSET = 0.0
"""Defaults of online EM, chosen by ``benchmarks/online_vs_batch.py`` (docs/online.md)."""

ONLINE_CHECKPOINT_BATCHES = 100
"""Mini-batches between two checkpoints of an online fit (``fit(checkpoint_every=)``),
which are written at chunk ends."""

PARTIAL_FIT_RECORD = 1000
"""``partial_fit`` keeps the last this many entries of ``lower_bounds_`` and
``history_``: a model kept current for a long time must not grow, nor copy an
ever longer record on every call (at 10^5 entries that copy took 9 ms, 3.6 times
a 512-row ``partial_fit``)."""


HYPERPARAMETER_RULES = {
    "n_components": integer_in(1),
    "covariance_type": one_of(*COVARIANCE_TYPES),
    "tol": real_in(0.0),
    "reg_covar": real_in(0.0),
    "max_iter": integer_in(0),
    "n_init": integer_in(1),
    "init_params": one_of(*INIT_METHODS),
    "weights_init": OPTIONAL_ARRAY,
    "means_init": OPTIONAL_ARRAY,
    "precisions_init": OPTIONAL_ARRAY,
    "random_state": RANDOM_STATE,
    "warm_start": BOOLEAN,
    "verbose": VERBOSE,
    "verbose_interval": integer_in(1),
    "algorithm": one_of(*ALGORITHMS),
    "batch_size": integer_in(1),
    # (0.5, 1]: the online steps then sum to infinity and their squares do not
    "learning_decay": real_in(0.5, 1.0, low_open=True),
    "learning_offset": real_in(0.0),
    "step_floor": real_in(0.0, 1.0, high_open=True),
    "averaging": BOOLEAN,
    "shuffle": BOOLEAN,
    "init_sample_size": integer_in(1),
    "sample_dim": OPTIONAL_STRING,
    "persist": one_of(*PERSIST_OPTIONS),
    "float32_products": BOOLEAN,
}
"""What every constructor parameter must be, checked when fitting starts."""

PARTIAL_FIT_RULES = {
    name: HYPERPARAMETER_RULES[name]
    for name in ("covariance_type", "reg_covar", "batch_size", "learning_decay",
                 "learning_offset", "step_floor", "averaging", "float32_products")
}
"""The parameters a ``partial_fit`` of a fitted model uses, checked on every call
(all of them, and the ``*_init`` arrays, are checked by the first)."""


def make_rng(random_state: Any) -> np.random.Generator:
    """A NumPy Generator from None, an int, a Generator or a legacy RandomState."""
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(2**31 - 1))
    return np.random.default_rng(random_state)


def _sum_pairs(parts):
    return tuple(map(sum, zip(*parts, strict=True)))


class GaussianMixture(DensityMixin, BaseEstimator):
    """Gaussian mixture fitted by exact EM over data that need not fit in memory.

    A scikit-learn estimator (``BaseEstimator``, ``DensityMixin``): it passes
    ``check_estimator`` and works in pipelines, ``GridSearchCV`` (scored by
    :meth:`score`) and ``clone``. Parameters mean what they mean in
    ``sklearn.mixture.GaussianMixture``; the additions are listed last. They
    are checked when fitting starts, not in ``__init__``: a bad value raises
    :class:`~streamgmm.validation.InvalidParameterError` (a ``ValueError`` and
    a ``TypeError``, as scikit-learn's) naming it.

    Parameters
    ----------
    n_components : int, default=1
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
    tol : float, default=1e-3
        Stop when the per-sample mean log-likelihood changes by less than this.
    reg_covar : float, default=1e-6
        Added to the diagonal of every covariance.
    max_iter : int, default=100
        EM iterations (passes over the data) per initialisation. 0 fits the
        initialisation only, as scikit-learn: ``n_iter_`` 0, ``converged_``
        False, ``lower_bound_`` -inf, no ``ConvergenceWarning``, the parameters
        of the last initialisation.
    n_init : int, default=1
        Initialisations; the one with the best final lower bound is kept.
    init_params : {"k-means||", "kmeans", "k-means++", "hierarchical", "random", \
"random_from_data"}
        How starting parameters are found, and in how many passes (see
        :mod:`streamgmm.initialization` and docs/initialization.md). The default
        differs from scikit-learn's ``"kmeans"``: measured on well-separated
        mixtures of 20 and 50 components, ``"k-means||"`` found every mean in every
        seed where ``"kmeans"`` found them in 43% and 0% of seeds.
        ``"hierarchical"`` is mclust's start (:mod:`streamgmm.agglomeration`).
    weights_init, means_init, precisions_init : array-like, optional
        User-given starting parameters.
    random_state : int, Generator, RandomState or None
    warm_start : bool, default=False
        Continue from the fitted parameters on the next ``fit``.
    verbose : int, default=0
        1 shows a progress bar per iteration on a terminal; 2 also prints a line
        every ``verbose_interval`` iterations when not on a terminal.
    verbose_interval : int, default=10
    algorithm : {"batch", "online"}, default="batch"
        ``"batch"`` runs exact EM, one pass over the data per iteration.
        ``"online"`` runs stepwise EM (:mod:`streamgmm.online`): the parameters
        move after every mini-batch, and ``max_iter`` counts passes.
    batch_size : int, default=BATCH_SIZE
        Rows per mini-batch of online EM (``fit`` and ``partial_fit``).
    learning_decay : float in (0.5, 1], default=LEARNING_DECAY
        ``alpha`` of the online step size ``rho_t = (t + t0) ** -alpha``.
    learning_offset : float >= 0, default=LEARNING_OFFSET
        ``t0`` of the online step size.
    step_floor : float in [0, 1), default=0.0
        Smallest online step size: ``rho_t = max((t + t0) ** -alpha, step_floor)``.
        A positive floor makes stepwise EM forget old rows at the rate
        ``step_floor`` per mini-batch (a memory of about ``1 / step_floor``
        batches), so that a model kept current by ``partial_fit`` tracks a
        distribution that drifts; 0 lets the steps decrease for ever.
    averaging : bool, default=False
        Report the parameters of the Polyak–Ruppert average of the online
        statistics (from the end of the burn-in on).
    shuffle : bool, default=True
        Online ``fit``: every pass draws its mini-batches in a fresh random
        order (seeded by ``random_state``): from all rows for NumPy input, else
        from the rows of each chunk, the chunks in random order. ``False`` keeps
        the stored order inside chunks, which for data sorted by time or class
        makes mini-batches unrepresentative. ``partial_fit`` always takes rows
        as given.
    init_sample_size : int, default=100_000
        Rows sampled (in one pass) for the k-means-based initialisations.
    sample_dim : str, optional
        For DataArray inputs, the dimension that indexes samples (default: the
        first dimension).
    persist : {"auto", True, False}, default="auto"
        Keep the row-chunked input in (cluster) memory for the whole fit with
        ``dask.persist`` instead of reading it again on every pass. ``True``
        persists any input (use it when the data fit in the workers' memory);
        ``False`` streams every pass from the source (Zarr store, Dask graph);
        ``"auto"`` persists only in-memory NumPy input and only under a
        ``dask.distributed`` client, so that it is shipped to the workers once
        per fit rather than once per pass. See ``docs/cluster.md``.
    float32_products : bool, default=False
        For float32 input and the full covariance type, compute the E-step's
        and the statistics' products in float32 (sums still add up in float64):
        about 1.6 to 1.8 times faster per iteration (docs/benchmarks.md), but
        parameters accurate to about 1e-6 relative instead of 1e-13. Off by
        default because float32 data far from the origin then no longer fit like
        the same data centred. Other inputs and covariance types ignore it.

    Attributes
    ----------
    Arrays and lower bounds have the float dtype scikit-learn gives them:
    float32 for float32 input, float64 for any other (EM runs in float64 either
    way, so they are the float64 results rounded).

    weights_ : ndarray of shape (K,)
    means_ : ndarray of shape (K, d)
    covariances_, precisions_, precisions_cholesky_ : ndarray
        Shape (K, d, d) full, (d, d) tied, (K, d) diag, (K,) spherical.
    converged_ : bool
    n_iter_ : int
    lower_bound_ : float
        Per-sample mean log-likelihood of the best run at its last E-step
        (a NumPy scalar; the Python float -inf after ``max_iter=0``).
    lower_bounds_ : list of float
        ``lower_bound_`` after every iteration of the best run; ``partial_fit``
        appends one per call and keeps the last ``PARTIAL_FIT_RECORD`` (1000).
    history_ : dict of lists
        The best run's record per iteration: ``"passes"`` over the data,
        ``"log_likelihood"`` (per-sample mean) and ``"elapsed"`` seconds
        (see :mod:`streamgmm.progress`). ``partial_fit`` appends a record per
        call (``"passes"`` is then ``n_iter_``, ``"elapsed"`` NaN) and keeps the
        last ``PARTIAL_FIT_RECORD``; its ``"log_likelihood"`` is the call's
        prequential score: the mean log-likelihood of the call's rows, each
        mini-batch scored by the model before it learns from that batch (the
        E-step's parameters), which drops when the data drift.
    n_features_in_ : int
    feature_names_in_ : ndarray of str, shape (d,)
        Set only when fitted on a data frame whose column names are all
        strings: those names; later inputs are checked against them as
        scikit-learn checks them.
    """

    def __init__(
        self,
        n_components: int = 1,
        *,
        covariance_type: str = "full",
        tol: float = 1e-3,
        reg_covar: float = 1e-6,
        max_iter: int = 100,
        n_init: int = 1,
        init_params: str = "k-means||",
        weights_init: Any = None,
        means_init: Any = None,
        precisions_init: Any = None,
        random_state: Any = None,
        warm_start: bool = False,
        verbose: int = 0,
        verbose_interval: int = 10,
        algorithm: str = "batch",
        batch_size: int = BATCH_SIZE,
        learning_decay: float = LEARNING_DECAY,
        learning_offset: float = LEARNING_OFFSET,
        step_floor: float = 0.0,
        averaging: bool = False,
        shuffle: bool = True,
        init_sample_size: int = 100_000,
        sample_dim: str | None = None,
        persist: bool | str = "auto",
        float32_products: bool = False,
    ) -> None:
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.algorithm = algorithm
        self.batch_size = batch_size
        self.learning_decay = learning_decay
        self.learning_offset = learning_offset
        self.step_floor = step_floor
        self.averaging = averaging
        self.shuffle = shuffle
        self.init_sample_size = init_sample_size
        self.sample_dim = sample_dim
        self.persist = persist
        self.float32_products = float32_products

    # ------------------------------------------------------------------ params
    def __sklearn_tags__(self):
        """scikit-learn's tags: a density estimator (from ``DensityMixin``) of
        dense 2-D numeric rows; NaN, infinity and sparse matrices are refused,
        and array API inputs are not supported."""
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        tags.array_api_support = False
        return tags

    def _check_hyperparameters(self) -> None:
        """Raise ``InvalidParameterError`` (a ``ValueError`` and a ``TypeError``)
        naming the first constructor parameter outside its allowed values."""
        check_hyperparameters(self, HYPERPARAMETER_RULES)

    def _check_parameters(self, n_features: int) -> None:
        self._check_hyperparameters()
        self._user_parameters(n_features)

    def _user_parameters(self, n_features: int):
        """Validated ``weights_init``, ``means_init`` and precision factors (or None)."""
        K, cov_type = self.n_components, self.covariance_type
        weights = means = prec_chol = None
        if self.weights_init is not None:
            weights = np.array(self.weights_init, dtype=np.float64)
            if weights.shape != (K,):
                raise ValueError(f"weights_init must have shape ({K},), got {weights.shape}")
            if not np.all(np.isfinite(weights)) or np.any(weights < 0) or np.any(weights > 1):
                raise ValueError("weights_init must hold finite values in [0, 1]")
            if not np.allclose(weights.sum(), 1.0):
                raise ValueError(f"weights_init must sum to 1, got {weights.sum()}")
        if self.means_init is not None:
            means = np.array(self.means_init, dtype=np.float64)
            if means.shape != (K, n_features):
                raise ValueError(
                    f"means_init must have shape ({K}, {n_features}), got {means.shape}"
                )
            if not np.all(np.isfinite(means)):
                raise ValueError("means_init must be finite")
        if self.precisions_init is not None:
            precisions = np.array(self.precisions_init, dtype=np.float64)
            expected = {
                "full": (K, n_features, n_features),
                "tied": (n_features, n_features),
                "diag": (K, n_features),
                "spherical": (K,),
            }[cov_type]
            if precisions.shape != expected:
                raise ValueError(
                    f"precisions_init must have shape {expected} for covariance_type "
                    f"{cov_type!r}, got {precisions.shape}"
                )
            if not np.all(np.isfinite(precisions)):
                raise ValueError("precisions_init must be finite")
            prec_chol = precision_cholesky_from_precisions(precisions, cov_type)
        return weights, means, prec_chol

    # --------------------------------------------------------------- fitting
    def fit(
        self,
        X: Any,
        y: Any = None,
        *,
        checkpoint: str | os.PathLike | None = None,
        checkpoint_every: int = ONLINE_CHECKPOINT_BATCHES,
    ) -> GaussianMixture:
        """Fit by EM; X is any supported input (see :mod:`streamgmm.inputs`).

        ``checkpoint`` is the path of a file (see :mod:`streamgmm.checkpoint`)
        that receives the whole fitting state after the initialisation and after
        every EM iteration (batch), or at the first chunk end after every
        ``checkpoint_every`` mini-batches and after every pass (online, which
        then needs ``n_init=1``), atomically.
        If the file exists when ``fit`` starts,
        the fit resumes from it (it must come from a fit with the same
        hyper-parameters and data of the same shape and dtype) and ends with the
        parameters the uninterrupted fit would have reached.

        Raises ``ValueError`` or ``TypeError`` naming the problem for bad input or
        parameters, at any point of the fit; the model's previous state is kept
        in that case.
        """
        self._check_hyperparameters()
        data = self._validate_data(X, reset=True)
        if data.n_samples < max(2, self.n_components):
            raise ValueError(
                f"Expected n_samples >= 2 and n_samples >= n_components, got "
                f"n_samples={data.n_samples} and n_components={self.n_components}"
            )
        self._user_parameters(data.n_features)
        data = persisted_rows(data, self.persist)
        rng = make_rng(self.random_state)
        do_init = not (self.warm_start and hasattr(self, "converged_"))
        n_runs = self.n_init if do_init else 1
        if checkpoint is not None and self.algorithm == "online" and n_runs > 1:
            raise ValueError("checkpoint= with algorithm='online' needs n_init=1")
        if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, int):
            raise TypeError(f"checkpoint_every must be an integer, got {checkpoint_every!r}")
        if checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
        fingerprint = self._checkpoint_fingerprint(data) if checkpoint is not None else None
        first, resumed, best = 0, None, None
        if checkpoint is not None:
            claim_checkpoint_path(checkpoint, [X])
            state = self._read_checkpoint(checkpoint, fingerprint)
            if state is not None:
                first, resumed, best, rng_state = state
                rng.bit_generator.state = rng_state
        # One BLAS thread limit for the whole fit: letting OpenBLAS have two threads
        # again between passes left its second thread spinning on the other core
        # during the next pass (0.13 s instead of 0.093 s per 10^6-row iteration,
        # docs/benchmarks.md).
        with blas_threads_for_dask([data.array]):
            if self.max_iter == 0:
                starts = [self._start_run(data, rng, do_init) for _ in range(n_runs)]
                self._set_fitted(initialisation_only(starts[-1]), data)
                return self
            if self.algorithm == "batch" and checkpoint is None:
                # The starts first (they draw from rng as they would one by one),
                # then the iterations of all runs in shared passes over the data.
                starts = [self._start_run(data, rng, do_init) for _ in range(n_runs)]
                finished = self._batch_em(data, starts)
            else:
                finished = self._runs_one_by_one(
                    data,
                    rng,
                    do_init,
                    n_runs,
                    checkpoint,
                    fingerprint,
                    checkpoint_every,
                    first,
                    resumed,
                    best,
                )
        best = max(finished, key=lambda run: run["lower_bound"])
        if not best["converged"]:
            warnings.warn(
                "Best performing initialization did not converge. Try different init "
                "parameters, or increase max_iter, tol, or check for degenerate data.",
                ConvergenceWarning,
                stacklevel=2,
            )
        self._set_fitted(best, data)
        return self

    def _runs_one_by_one(
        self, data, rng, do_init, n_runs, checkpoint, fingerprint, every, first, resumed, best
    ) -> list[dict]:
        """The runs of ``fit`` for online EM and for checkpointed fits, whose
        checkpoints hold one run at a time: each initialisation, then its EM,
        from ``first`` (and its ``resumed`` state) on; returns the finished runs,
        ``best`` (the best before ``first``) among them."""
        finished = [] if best is None else [best]
        for init in range(first, n_runs):
            run = resumed if resumed is not None and init == first else None
            if run is None:
                run = self._start_run(data, rng, do_init)
            save = None
            if self.algorithm == "online":
                if checkpoint is not None:
                    save = partial(self._write_online_checkpoint, checkpoint, fingerprint, rng)
                run = self._online_em(
                    data,
                    run["params"],
                    run["covariances"],
                    rng,
                    continue_=not do_init,
                    resume=run.get("online_resume"),
                    on_position=save,
                    every=every,
                )
            else:
                if checkpoint is not None:
                    best = max(finished, key=lambda done: done["lower_bound"], default=None)
                    save = partial(
                        self._write_checkpoint, checkpoint, fingerprint, init, rng, best
                    )
                    save(run)
                (run,) = self._batch_em(data, [run], init, on_iteration=save)
            finished.append(run)
        return finished

    def _start_run(self, data: RowData, rng: np.random.Generator, do_init: bool) -> dict:
        """The state of an EM run before its first iteration."""
        if do_init:
            params, covariances = self._initial_parameters(data, rng)
            start_bound = -np.inf
        else:
            params = self._fitted_parameters()
            covariances = np.asarray(self.covariances_, dtype=np.float64)
            start_bound = float(self.lower_bound_)
        return {
            "params": params,
            "covariances": covariances,
            "lower_bound": start_bound,
            "lower_bounds": [],
            "n_iter": 0,
            "converged": False,
        }

    def _checkpoint_fingerprint(self, data: RowData) -> dict:
        """What a checkpoint must match to be resumed by this fit: the
        hyper-parameters that change the result (arrays by their SHA-256) and the
        data's shape and dtype (not its contents)."""
        ignored = {"verbose", "verbose_interval", "persist"}
        hyper = {}
        for name, value in self.get_params().items():
            if name in ignored:
                continue
            if isinstance(value, np.ndarray | list | tuple):
                array = np.ascontiguousarray(value, dtype=np.float64)
                value = f"sha256:{hashlib.sha256(array.tobytes()).hexdigest()}{array.shape}"
            elif isinstance(value, np.random.Generator | np.random.RandomState):
                value = f"{type(value).__name__} (its state is not compared)"
            hyper[name] = value
        fingerprint = {
            **hyper,
            "n_samples": data.n_samples,
            "n_features": data.n_features,
            "dtype": str(data.array.dtype),
        }
        return json.loads(json.dumps(fingerprint))

    def _write_checkpoint(self, path, fingerprint, init_index, rng, best, run) -> None:
        arrays, run_scalars = run_to_arrays(run, "run")
        meta = {
            "algorithm": "batch",
            "fit": fingerprint,
            "init_index": init_index,
            "rng_state": rng.bit_generator.state,
            "run": run_scalars,
        }
        if best is not None:
            best_arrays, meta["best"] = run_to_arrays(best, "best")
            arrays.update(best_arrays)
        write_checkpoint(path, arrays, meta)

    def _write_online_checkpoint(self, path, fingerprint, rng, state, params, covariances, here):
        arrays, scalars = online_to_arrays(state, params, covariances, here)
        meta = {"algorithm": "online", "fit": fingerprint, "init_index": 0, "online": scalars}
        meta["rng_state"] = rng.bit_generator.state
        write_checkpoint(path, arrays, meta)

    def _read_checkpoint(self, path, fingerprint):
        """``(init_index, run, best, rng_state)`` from a checkpoint, or None.
        For online EM ``run`` carries ``online_resume``, the state to continue."""
        contents = read_checkpoint(path)
        if contents is None:
            return None
        arrays, meta = contents
        if meta.get("algorithm") != self.algorithm:
            raise ValueError(
                f"The checkpoint {os.fspath(path)!r} was written by algorithm "
                f"{meta.get('algorithm')!r}, not {self.algorithm!r}"
            )
        check_fingerprint(path, meta["fit"], fingerprint)
        cov_type = self.covariance_type
        if self.algorithm == "online":
            resume = online_from_arrays(arrays, meta["online"], cov_type)
            run = {"params": resume[1], "covariances": resume[2], "online_resume": resume}
            return 0, run, None, meta["rng_state"]
        run = run_from_arrays(arrays, meta["run"], "run", cov_type)
        best = run_from_arrays(arrays, meta["best"], "best", cov_type) if "best" in meta else None
        return meta["init_index"], run, best, meta["rng_state"]

    def fit_predict(self, X: Any, y: Any = None):
        """Fit, then return the label of every row under the fitted model."""
        return self.fit(X).predict(X)

    def _validate_data(self, X: Any, reset: bool) -> RowData:
        """X as a :class:`RowData`; unless ``reset``, after checking that the model
        is fitted and that X has its number of features and feature names
        (scikit-learn's errors and warnings). Nothing of the model changes here:
        ``fit`` records the features of X only when it succeeds."""
        if not reset:
            self._check_is_fitted()
        data = as_rows(X, self.sample_dim)
        if not reset:
            validate_data(
                self, named_input(X, data), reset=False, skip_check_array=True, ensure_2d=False
            )
            self._check_n_features(data.n_features)
        return data

    def _check_n_features(self, n_features: int) -> None:
        if n_features != self.n_features_in_:
            raise ValueError(
                f"X has {n_features} features, but {type(self).__name__} "
                f"is expecting {self.n_features_in_} features as input."
            )

    def _initial_parameters(self, data: RowData, rng: np.random.Generator):
        weights, means, prec_chol = self._user_parameters(data.n_features)
        if weights is not None and means is not None and prec_chol is not None:
            params = GaussianParameters(weights, means, prec_chol, self.covariance_type)
            return params, covariances_from_precisions_cholesky(prec_chol, self.covariance_type)
        params, covariances = initialize_parameters(
            data,
            self.n_components,
            self.covariance_type,
            self.reg_covar,
            self.init_params,
            rng,
            self.init_sample_size,
        )
        if prec_chol is not None:
            covariances = covariances_from_precisions_cholesky(prec_chol, self.covariance_type)
        params = GaussianParameters(
            params.weights if weights is None else weights,
            params.means if means is None else means,
            params.precisions_cholesky if prec_chol is None else prec_chol,
            self.covariance_type,
        )
        return params, covariances

    def _batch_em(self, data, runs, first_index=0, on_iteration=None):
        """Exact EM continuing every run of ``runs`` (initialisations
        ``first_index``, ``first_index + 1``, ...) until each converges or
        reaches ``max_iter``; returns the runs' final states.

        Each iteration is one Dask reduction that reads the data once for all
        runs still going (``tree_reduce_each``), then one M-step per run; alone
        or together, a run takes the same steps. ``on_iteration(run)`` is called
        with a run's new state after each of its iterations."""
        combine = partial(merge_all, covariance_type=self.covariance_type)
        statistics = partial(chunk_statistics, float32_products=self.float32_products)
        runs = list(runs)
        with ExitStack() as stack:
            progress = []
            for offset, run in enumerate(runs):
                bar = stack.enter_context(
                    FitProgress(
                        self.verbose,
                        self.max_iter,
                        f"batch EM, init {first_index + offset}",
                        verbose_interval=self.verbose_interval,
                    )
                )
                bar.resume(run.get("history") or history_from_lower_bounds(run["lower_bounds"]))
                progress.append(bar)
            while active := [
                index
                for index, run in enumerate(runs)
                if not run["converged"] and run["n_iter"] < self.max_iter
            ]:
                all_stats = tree_reduce_each(
                    data.array, [(statistics, combine, runs[index]["params"]) for index in active]
                )
                for index, stats in zip(active, all_stats, strict=True):
                    previous = runs[index]
                    params, covariances = parameters_from_statistics(
                        stats, self.reg_covar, self.covariance_type
                    )
                    lower_bound = stats.log_likelihood / stats.n_samples
                    n_iter = previous["n_iter"] + 1
                    progress[index].record(lower_bound, passes=n_iter)
                    runs[index] = {
                        "params": params,
                        "covariances": covariances,
                        "lower_bound": lower_bound,
                        "lower_bounds": [*previous["lower_bounds"], lower_bound],
                        "n_iter": n_iter,
                        "converged": abs(lower_bound - previous["lower_bound"]) < self.tol,
                        "history": progress[index].history,
                    }
                    if on_iteration is not None:
                        on_iteration(runs[index])
        return runs

    def _online_config(self) -> OnlineConfig:
        return OnlineConfig(
            self.covariance_type,
            self.reg_covar,
            self.learning_decay,
            self.learning_offset,
            self.averaging,
            self.float32_products,
            self.step_floor,
        )

    def _online_state(self):
        """The stepwise-EM state of a fitted model (a fresh one if it has none)."""
        if hasattr(self, "running_statistics_"):
            return self._online_state_from_attributes()
        return initial_state(self.n_components, self.n_features_in_, self.covariance_type)

    def _online_em(
        self,
        data,
        params,
        covariances,
        rng,
        continue_: bool,
        resume=None,
        on_position=None,
        every: int = 0,
    ):
        """Stepwise EM over ``max_iter`` passes (see :func:`streamgmm.online.online_em`),
        from ``resume = (state, params, covariances, position)`` if given."""
        config = self._online_config()
        position = START_POSITION
        if resume is not None:
            state, params, covariances, position = resume
        elif continue_:
            state = self._online_state()
            with single_threaded_blas():
                params = current_parameters(state, params, config)
        else:
            state = initial_state(self.n_components, data.n_features, self.covariance_type)
        return online_em(
            data.array,
            params,
            covariances,
            state,
            config,
            batch_size=self.batch_size,
            max_iter=self.max_iter,
            tol=self.tol,
            rng=rng,
            verbose=self.verbose,
            verbose_interval=self.verbose_interval,
            position=position,
            on_position=on_position,
            every=every,
            shuffle=bool(self.shuffle),
            in_memory=data.in_memory,
        )

    def partial_fit(self, X: Any, y: Any = None) -> GaussianMixture:
        """Stepwise-EM updates from the rows of X, in mini-batches of ``batch_size``.

        The first call (on an unfitted model) starts from ``*_init`` or from
        initialisation on X; later calls continue the step-size schedule where the
        previous call (or ``fit``, or a saved model) stopped. X is any supported
        input. The call is all or nothing: if any row is NaN or infinite, a
        ``ValueError`` naming the rows is raised and the model stays exactly as
        it was. ``history_["log_likelihood"]`` receives the call's prequential
        score (the rows scored before the model learns from them); with a
        ``step_floor`` the model keeps tracking data that drift.
        """
        return self._partial_fit(X)

    def _partial_fit(self, X: Any, first_row: int = 0) -> GaussianMixture:
        first_call = not hasattr(self, "means_")
        rows, data = self._partial_fit_rows(X, first_call)
        n_features = rows.shape[1] if data is None else data.n_features
        if first_call:
            self._check_parameters(n_features)
        else:
            check_hyperparameters(self, PARTIAL_FIT_RULES)
        config = self._online_config()
        with single_threaded_blas():
            if first_call:
                if data.n_samples < self.n_components:
                    raise ValueError(
                        f"The first partial_fit needs n_samples >= n_components to initialise, "
                        f"got n_samples={data.n_samples} and n_components={self.n_components}"
                    )
                params, covariances = self._initial_parameters(data, make_rng(self.random_state))
                state = initial_state(self.n_components, n_features, self.covariance_type)
            else:
                state = self._online_state()
                params = current_parameters(state, self._fitted_parameters(), config)
                covariances = np.asarray(self.covariances_, dtype=np.float64)
            carry = FoldCarry(state, params, covariances)
            if rows is not None:
                carry = fold_chunk(carry, rows, config, self.batch_size, first_row=first_row)
                carry = finish_pass(carry, config)
            else:
                order = range(data.array.numblocks[0])
                carry = fold_pass(
                    carry, data.array, order, config, self.batch_size, first_row=first_row
                )
            state, params, covariances = carry.state, carry.params, carry.covariances
            shown, shown_covariances = reported_parameters(state, params, covariances, config)
        score = carry.total / carry.count
        n_iter = 1 if first_call else self.n_iter_ + 1
        history = empty_history() if first_call else self.history_
        dtype = fitted_dtype(rows.dtype if data is None else data.array.dtype)
        lower_bounds = [] if first_call else self.lower_bounds_[1 - PARTIAL_FIT_RECORD :]
        for key, value in zip(HISTORY_KEYS, (float(n_iter), score, float("nan")), strict=True):
            record = history.setdefault(key, [])
            record.append(value)
            del record[:-PARTIAL_FIT_RECORD]
        run = {
            "params": shown,
            "covariances": shown_covariances,
            "lower_bound": score,
            "lower_bounds": [*lower_bounds, fitted_scalar(score, dtype)],
            "n_iter": n_iter,
            "converged": False,
            "online_state": state,
            "history": history,
        }
        if data is None:
            self._set_run(run, n_features, dtype)
        else:
            self._set_fitted(run, data)
        return self

    def _partial_fit_rows(self, X: Any, first_call: bool) -> tuple[np.ndarray | None, Any]:
        """``(rows, None)`` for a NumPy array given to a fitted model without
        feature names, checked without wrapping it in Dask (a tenth of a
        millisecond per call), else ``(data.in_memory, data)`` from
        :meth:`_validate_data`."""
        plain = not first_call and not hasattr(self, "feature_names_in_")
        if plain and type(X) is np.ndarray and X.dtype.kind in "fiub":
            check_matrix(X.shape, X.dtype)
            self._check_n_features(X.shape[1])
            return X, None
        data = self._validate_data(X, reset=first_call)
        return data.in_memory, data

    def _set_online_attributes(self, state) -> None:
        """Store (or, for ``None``, remove) the stepwise-EM state as attributes."""
        names = (
            "running_statistics_",
            "averaged_statistics_",
            "n_steps_",
            "n_samples_seen_",
            "n_averaged_",
        )
        if state is None:
            for name in names:
                self.__dict__.pop(name, None)
            return
        self.running_statistics_ = state.statistics
        self.averaged_statistics_ = state.averaged
        self.n_steps_ = state.n_steps
        self.n_samples_seen_ = state.n_samples_seen
        self.n_averaged_ = state.n_averaged

    def _online_state_from_attributes(self) -> OnlineState:
        return OnlineState(
            self.running_statistics_,
            self.n_steps_,
            self.n_samples_seen_,
            self.averaged_statistics_,
            self.n_averaged_,
        )

    def _set_fitted(self, run: dict, data: RowData) -> None:
        """Expose a finished run as the fitted attributes, in the float dtype
        scikit-learn gives them for X (float32 for float32 X, else float64),
        with the features of X."""
        self._set_run(run, data.n_features, fitted_dtype(data.array.dtype))
        if data.feature_names is None:
            self.__dict__.pop("feature_names_in_", None)
        else:
            self.feature_names_in_ = data.feature_names

    def _set_run(self, run: dict, n_features: int, dtype: np.dtype) -> None:
        """:meth:`_set_fitted` without the feature names, which stay as they are."""
        params = run["params"]
        self.weights_ = params.weights.astype(dtype)
        self.means_ = params.means.astype(dtype)
        self.precisions_cholesky_ = params.precisions_cholesky.astype(dtype)
        self.covariances_ = np.asarray(run["covariances"]).astype(dtype)
        self.precisions_ = precisions_from_cholesky(
            params.precisions_cholesky, params.covariance_type
        ).astype(dtype)
        self.converged_ = run["converged"]
        self.n_iter_ = run["n_iter"]
        self.lower_bound_ = fitted_scalar(run["lower_bound"], dtype)
        bounds = run["lower_bounds"]
        if not all(type(value) is dtype.type for value in bounds[-1:] + bounds[:1]):
            bounds = [fitted_scalar(value, dtype) for value in bounds]
        self.lower_bounds_ = bounds
        self._set_online_attributes(run.get("online_state"))
        self.history_ = run.get("history") or history_from_lower_bounds(run["lower_bounds"])
        self.n_features_in_ = n_features

    def _check_is_fitted(self) -> None:
        """Raise scikit-learn's ``NotFittedError`` unless the model is fitted."""
        check_is_fitted(self)

    def _fitted_parameters(self) -> GaussianParameters:
        """The fitted parameters in float64, as every computation takes them."""
        return GaussianParameters(
            np.asarray(self.weights_, dtype=np.float64),
            np.asarray(self.means_, dtype=np.float64),
            np.asarray(self.precisions_cholesky_, dtype=np.float64),
            self.covariance_type,
        )

    def _output_dtype(self, data: RowData) -> np.dtype:
        """The float dtype of per-row results: scikit-learn's promotion of X's
        float dtype with the model's."""
        return np.result_type(fitted_dtype(data.array.dtype), self.means_.dtype)

    # ------------------------------------------------------------ prediction
    def _map_rows(self, X: Any, function, n_columns: int | None, dtype=None, extra_dim=None):
        """``function(block, params)`` on every row-chunk of X, checked for NaN and
        infinity; the result has ``dtype`` (default: :meth:`_output_dtype`)."""
        data = self._validate_data(X, reset=False)
        params = self._fitted_parameters()
        dtype = self._output_dtype(data) if dtype is None else np.dtype(dtype)

        def apply(block, block_info=None):
            offset = block_info[0]["array-location"][0][0] if block_info else 0
            check_finite(block, offset)
            return function(block, params).astype(dtype, copy=False)

        array = data.array
        if n_columns is None:
            result = array.map_blocks(apply, drop_axis=1, dtype=dtype)
        else:
            result = array.map_blocks(apply, chunks=(array.chunks[0], (n_columns,)), dtype=dtype)
        return wrap_rows(data, result, extra_dim)

    def score_samples(self, X: Any):
        """Log-likelihood of every row, shape (n,), in the kind of X."""
        return self._map_rows(X, lambda b, p: e_step(b, p)[0], None)

    def predict_proba(self, X: Any):
        """Responsibilities, shape (n, K), in the kind of X (DataArray: dim "component")."""
        return self._map_rows(
            X, lambda b, p: np.exp(e_step(b, p)[1]), self.n_components, extra_dim="component"
        )

    def predict(self, X: Any):
        """Most likely component of every row, shape (n,), in the kind of X."""
        return self._map_rows(X, lambda b, p: e_step(b, p)[1].argmax(axis=1), None, np.int64)

    def score(self, X: Any, y: Any = None) -> float:
        """Per-sample mean log-likelihood of X, computed in one pass."""
        total, count = self._total_log_likelihood(self._validate_data(X, reset=False))
        return total / count

    def _total_log_likelihood(self, data: RowData) -> tuple[float, int]:
        return tree_reduce(data.array, chunk_log_likelihood, _sum_pairs, self._fitted_parameters())

    def _n_parameters(self) -> int:
        K, d = self.means_.shape
        covariance_parameters = {
            "full": K * d * (d + 1) / 2,
            "diag": K * d,
            "tied": d * (d + 1) / 2,
            "spherical": K,
        }[self.covariance_type]
        return int(covariance_parameters + K * d + K - 1)

    def bic(self, X: Any) -> float:
        """Bayesian information criterion on X (lower is better), in one pass."""
        total, count = self._total_log_likelihood(self._validate_data(X, reset=False))
        return information_criterion("bic", total, count, self._n_parameters())

    def aic(self, X: Any) -> float:
        """Akaike information criterion on X (lower is better), in one pass."""
        total, count = self._total_log_likelihood(self._validate_data(X, reset=False))
        return information_criterion("aic", total, count, self._n_parameters())

    def icl(self, X: Any) -> float:
        """mclust's integrated complete-data likelihood criterion on X: the BIC
        plus twice the entropy of the most likely classification (lower is
        better), in one pass."""
        data = self._validate_data(X, reset=False)
        total, count, classification = tree_reduce(
            data.array, chunk_likelihood_terms, _sum_pairs, self._fitted_parameters()
        )
        return information_criterion(
            "icl", total, count, self._n_parameters(), classification
        )

    def sample(self, n_samples: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n_samples`` rows from the fitted mixture: (X (n, d) float64,
        labels (n,) int64), component by component.

        An int or ``RandomState`` ``random_state`` draws what scikit-learn's
        ``GaussianMixture.sample`` draws for the same parameters (the same
        generator calls in the same order); a ``Generator`` is used as given."""
        self._check_is_fitted()
        if isinstance(n_samples, bool) or not isinstance(n_samples, numbers.Integral):
            raise TypeError(f"n_samples must be an integer, got {n_samples!r}")
        if n_samples < 1:
            raise ValueError(f"n_samples must be >= 1, got {n_samples}")
        rng = self.random_state
        if not isinstance(rng, np.random.Generator):
            rng = check_random_state(rng)
        counts = rng.multinomial(n_samples, np.asarray(self.weights_, dtype=np.float64))
        means = np.asarray(self.means_, dtype=np.float64)
        covariances = np.asarray(self.covariances_, dtype=np.float64)
        parts = []
        for k, count in enumerate(counts):
            if self.covariance_type in ("full", "tied"):
                cov = covariances[k] if self.covariance_type == "full" else covariances
                parts.append(rng.multivariate_normal(means[k], cov, int(count)))
            else:
                scale = np.sqrt(covariances[k])
                parts.append(means[k] + rng.standard_normal((int(count), means.shape[1])) * scale)
        labels = np.repeat(np.arange(self.n_components, dtype=np.int64), counts)
        return np.vstack(parts), labels

    def to_xarray(self):
        """The fitted parameters as an ``xarray.Dataset`` with dims (component, feature)."""
        from .io import model_to_dataset

        return model_to_dataset(self)


CRITERIA = ("bic", "aic", "icl")


def information_criterion(
    name: str,
    total_log_likelihood: float,
    n_samples: int,
    n_parameters: int,
    classification_log_likelihood: float = 0.0,
) -> float:
    """BIC ``-2 log L + p log n``, AIC ``-2 log L + 2 p`` or ICL ``BIC - 2 sum_i
    log z_i,map(i)`` (mclust's ICL; ``classification_log_likelihood`` is that sum,
    from :func:`~streamgmm.estep.chunk_likelihood_terms`), in scikit-learn's
    signs: lower is better."""
    if name == "bic":
        return -2 * total_log_likelihood + n_parameters * np.log(n_samples)
    if name == "aic":
        return -2 * total_log_likelihood + 2 * n_parameters
    if name == "icl":
        bic = information_criterion("bic", total_log_likelihood, n_samples, n_parameters)
        return bic - 2 * classification_log_likelihood
    raise ValueError(f"criterion must be one of {CRITERIA}, got {name!r}")


def fitted_dtype(input_dtype: np.dtype) -> np.dtype:
    """The dtype of fitted attributes for input of ``input_dtype``: float32
    stays float32, everything else (float64, integers, booleans) gives float64,
    as scikit-learn converts it."""
    return np.dtype(np.float32 if np.dtype(input_dtype) == np.float32 else np.float64)


def fitted_scalar(value: float, dtype: np.dtype) -> float:
    """A lower bound as scikit-learn exposes it: a NumPy scalar of ``dtype``,
    except ``-inf`` (no EM iteration ran), which stays a Python float."""
    return float(value) if value == -np.inf else np.dtype(dtype).type(value)


def initialisation_only(run: dict) -> dict:
    """A run's start as the result of a fit with ``max_iter=0``: scikit-learn's
    ``n_iter_`` 0, ``converged_`` False, ``lower_bound_`` -inf, no lower bounds."""
    return {**run, "lower_bound": -np.inf, "lower_bounds": [], "n_iter": 0, "converged": False}


__all__ = ["GaussianMixture", "ConvergenceWarning", "NotFittedError"]
