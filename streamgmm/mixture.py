"""The ``GaussianMixture`` estimator: scikit-learn's surface over the EM engine.

Fitting is planned in :mod:`streamgmm.fitting` and run by :mod:`streamgmm.engine`
(batch EM) or :mod:`streamgmm.online` (stepwise EM); the fitted attributes are
written by :mod:`streamgmm.state`. What stays here is the estimator: its
parameters, input checks, prediction, scoring and sampling.
"""

from __future__ import annotations

import operator
import os
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from . import estep
from . import missing as missing_values
from .covariance import draw_mixture, n_parameters
from .criteria import information_criterion
from .engine import EMRun
from .estep import GaussianParameters
from .fitting import (
    check_enough_rows,
    fit_runs,
    partial_fit_run,
    plain_rows,
    warn_if_unconverged,
)
from .hyperparameters import (
    HYPERPARAMETER_RULES,
    ONLINE_CHECKPOINT_BATCHES,
    PARTIAL_FIT_RULES,
    SETTING_NAMES,
    SETTINGS,
    FitConfig,
    estimator_init,
    parameters_doc,
    user_parameters,
)
from .inputs import (
    RowData,
    check_matrix,
    model_columns,
    named_input,
    persisted_rows,
    weighted_rows,
    wrap_like_input,
    wrap_rows,
)
from .reduction import sum_tuples, tree_reduce
from .state import (
    deferred_attribute,
    fitted_dtype,
    model_to_dataset,
    run_from_model,
    set_fitted,
)
from .threads import local_threads
from .validation import (
    check_changed_hyperparameters,
    check_hyperparameters,
    check_n_features,
    check_n_samples,
)

_settings_of = operator.attrgetter(*SETTING_NAMES)
"""The values of the settings of an estimator, in their order."""


class GaussianMixture(DensityMixin, BaseEstimator):
    """Gaussian mixture fitted by exact EM over data that need not fit in memory.

    A scikit-learn estimator: it passes ``check_estimator`` and works in
    pipelines, ``GridSearchCV`` (scored by :meth:`score`) and ``clone``.
    Parameters mean what they mean in ``sklearn.mixture.GaussianMixture``; the
    additions are listed last. They are checked when fitting starts: a bad value
    raises :class:`~streamgmm.validation.InvalidParameterError` (a ``ValueError``
    and a ``TypeError``, as scikit-learn's) naming it.

    Parameters
    ----------
{parameters}

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
    n_empty_rows_ : int
        Rows of the last ``fit`` with nothing observed, which it skipped (0
        unless ``missing="marginalize"``; not kept in model files).
    feature_names_in_ : ndarray of str, shape (d,)
        Set only when fitted on a data frame whose column names are all
        strings: those names; later inputs are checked against them as
        scikit-learn checks them.
    """

    __doc__ = __doc__.replace("{parameters}", parameters_doc(SETTINGS))
    __init__ = estimator_init(SETTINGS)
    DEFERS_PRECISIONS = True
    """``precisions_`` is computed when first read (:func:`streamgmm.state.set_fitted`)."""

    def __getattr__(self, name: str) -> Any:
        """Attributes not set: ``precisions_`` computed on its first reading
        after a fit (:func:`streamgmm.state.deferred_attribute`), else none."""
        return deferred_attribute(self, name)

    def __sklearn_tags__(self):
        """scikit-learn's tags: a density estimator (``DensityMixin``) of dense 2-D
        numeric rows; no NaN, infinity, sparse matrices or array API inputs."""
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
        user_parameters(self._config(), n_features)

    # --------------------------------------------------------------- fitting
    def fit(
        self,
        X: Any,
        y: Any = None,
        sample_weight: Any = None,
        *,
        checkpoint: str | os.PathLike | None = None,
        checkpoint_every: int = ONLINE_CHECKPOINT_BATCHES,
    ) -> GaussianMixture:
        """Fit by EM; X is any supported input (see :mod:`streamgmm.inputs`).

        ``sample_weight`` (n,) weighs the rows: a row of weight w counts as w
        rows (:func:`streamgmm.inputs.weighted_rows` lists the kinds: arrays,
        Zarr, DataArrays, a column name for tables). The lower bound is then the
        weighted mean log-likelihood.

        ``checkpoint``: a file (:mod:`streamgmm.checkpoint`) replaced atomically
        with the whole fitting state after the start and every batch iteration,
        or every ``checkpoint_every`` mini-batches and pass (online, ``n_init=1``);
        if it exists, the fit resumes from it and ends where the uninterrupted
        fit would have ended.

        Bad input or parameters raise ``ValueError`` or ``TypeError`` naming the
        problem, and the model keeps its previous state.
        """
        self._check_hyperparameters()
        data = self._validate_data(X, reset=True, sample_weight=sample_weight)
        check_enough_rows(data, self.n_components)
        config = self._config()
        user_parameters(config, data.n_features)
        start_data, n_empty = self._gaps_of(data)
        data = persisted_rows(data, config.persist)
        fitted = run_from_model(self) if config.warm_start and self._is_fitted() else None
        with local_threads(config.n_jobs):
            best = fit_runs(config, X, data, checkpoint, checkpoint_every, fitted, start_data)
        warn_if_unconverged(best, config)
        self._set_fitted(best, data)
        self.n_empty_rows_ = n_empty
        return self

    def _gaps_of(self, data: RowData) -> tuple[RowData | None, int]:
        """With ``missing="marginalize"``: one pass checking X's values and
        missing values (:func:`streamgmm.missing.check_missing_summary`), then
        the rows starts are drawn from (the gaps filled with the column means)
        and the number of rows with nothing observed. ``(None, 0)`` otherwise."""
        if self.missing != "marginalize":
            return None, 0
        return missing_values.prepare_gaps(data, self.n_components)

    def _config(self):
        """The hyper-parameters as a frozen :data:`~streamgmm.hyperparameters.FitConfig`:
        the values ``get_params()`` gives, read as it reads them (attributes of
        the settings' names) without its signature inspection (0.1 to 0.4 ms,
        more than a 512-row ``partial_fit``)."""
        return FitConfig(*_settings_of(self))

    def _is_fitted(self) -> bool:
        return hasattr(self, "converged_")

    def fit_predict(self, X: Any, y: Any = None):
        """Fit, then return the label of every row under the fitted model."""
        return self.fit(X).predict(X)

    def _validate_data(
        self, X: Any, reset: bool, sample_weight: Any = None, gaps: bool | None = None
    ) -> RowData:
        """X as a :class:`RowData` with its checked ``sample_weight``; unless
        ``reset``, after checking that the model is fitted and that X has its
        number of features and feature names (scikit-learn's errors and
        warnings). Nothing of the model changes here: ``fit`` records the
        features of X only when it succeeds. ``gaps``: whether a table's empty
        cells are NaN rather than an error (default: ``missing="marginalize"``)."""
        if not reset:
            self._check_is_fitted()
        if gaps is None:
            gaps = self._rows_module() is missing_values
        names = None if reset else getattr(self, "feature_names_in_", None)
        columns = model_columns(X, names, sample_weight)
        data = weighted_rows(X, sample_weight, self.sample_dim, check_missing=not gaps,
                             columns=columns)
        if not reset:
            validate_data(
                self, named_input(X, data), reset=False, skip_check_array=True, ensure_2d=False
            )
            check_n_features(self, data.n_features)
        return data

    def partial_fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> GaussianMixture:
        """Stepwise-EM updates from the rows of X, in mini-batches of ``batch_size``.

        The first call on an unfitted model starts from ``*_init`` or an
        initialisation on X; later calls continue the step-size schedule where
        the last call, ``fit`` or a saved model stopped. All or nothing: a NaN or
        infinite row raises a ``ValueError`` naming it and leaves the model as it
        was. ``history_["log_likelihood"]`` receives the call's prequential score
        (rows scored before the model learns from them). With ``sample_weight`` a
        batch's step, the burn-in, ``n_samples_seen_`` and the score count weight.
        """
        return self._partial_fit(X, sample_weight=sample_weight)

    def _partial_fit(
        self, X: Any, first_row: int = 0, sample_weight: Any = None
    ) -> GaussianMixture:
        first_call = not hasattr(self, "means_")
        # feature names are only ever an instance attribute: no __getattr__ call
        plain = not first_call and "feature_names_in_" not in self.__dict__
        if plain and sample_weight is None and plain_rows(X):
            check_matrix(X.shape, X.dtype)
            check_n_features(self, X.shape[1])
            rows, data = X, None
        else:
            data = self._validate_data(X, reset=first_call, sample_weight=sample_weight)
            rows = data.in_memory
        if first_call:
            self._check_parameters(data.n_features)
        accepted = None if first_call else check_changed_hyperparameters(
            self, PARTIAL_FIT_RULES, self.__dict__.get("_accepted_hyperparameters"))
        run, self._next_parameters = partial_fit_run(
            self._config(), rows, data, first_row,
            None if first_call else run_from_model(self, precisions=False),
            self.__dict__.get("_next_parameters"),
        )
        if data is None:
            set_fitted(self, run, rows.shape[1], fitted_dtype(rows.dtype))
        else:
            self._set_fitted(run, data)
        self._accepted_hyperparameters = accepted
        return self

    def _set_fitted(self, run: EMRun, data: RowData) -> None:
        """Expose a finished run as the fitted attributes, in the float dtype
        scikit-learn gives them for X (float32 for float32 X, else float64),
        with the features of X."""
        set_fitted(self, run, data.n_features, fitted_dtype(data.array.dtype))
        if data.feature_names is None:
            self.__dict__.pop("feature_names_in_", None)
        else:
            self.feature_names_in_ = data.feature_names

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
    def _rows_module(self):
        """The E-step functions for X: :mod:`streamgmm.missing` (NaN as missing
        values) with ``missing="marginalize"``, else :mod:`streamgmm.estep`."""
        return missing_values if getattr(self, "missing", "raise") == "marginalize" else estep

    def _blocks_of(self, X: Any, function, n_columns: int | str | None = "same", dtype=None,
                   gaps: bool | None = None):
        """X as :class:`RowData` and ``function(block, params)`` on its every
        row-chunk, lazily, checked for bad values (NaN too, unless ``gaps``,
        by default ``missing="marginalize"``); the result has ``n_columns``
        columns (None: a vector; ``"same"``: X's) and ``dtype`` (default:
        :meth:`_output_dtype`)."""
        if gaps is None:
            gaps = self._rows_module() is missing_values
        data = self._validate_data(X, reset=False, gaps=gaps)
        params = self._fitted_parameters()
        dtype = self._output_dtype(data) if dtype is None else np.dtype(dtype)
        check = missing_values.check_observed if gaps else estep.check_finite

        def apply(block, block_info=None):
            offset = block_info[0]["array-location"][0][0] if block_info else 0
            check(block, offset)
            return function(block, params).astype(dtype, copy=False)

        array = data.array
        if n_columns is None:
            return data, array.map_blocks(apply, drop_axis=1, dtype=dtype)
        if n_columns == "same":
            return data, array.map_blocks(apply, dtype=dtype)
        return data, array.map_blocks(apply, chunks=(array.chunks[0], (n_columns,)), dtype=dtype)

    def _map_rows(self, X: Any, function, n_columns: int | None, dtype=None, extra_dim=None):
        """``function(block, params)`` on every row-chunk of X (:meth:`_blocks_of`),
        as a per-row result in the kind of X."""
        data, result = self._blocks_of(X, function, n_columns, dtype)
        return wrap_rows(data, result, extra_dim)

    def score_samples(self, X: Any):
        """Log-likelihood of every row, shape (n,), in the kind of X. With
        ``missing="marginalize"`` the log-density of each row's observed
        coordinates, NaN for a row with nothing observed."""
        e_step = self._rows_module().e_step
        return self._map_rows(X, lambda b, p: e_step(b, p)[0], None)

    def predict_proba(self, X: Any):
        """Responsibilities, shape (n, K), in the kind of X (DataArray: dim "component").
        With ``missing="marginalize"`` given the observed coordinates; the
        weights ``weights_`` for a row with nothing observed."""
        e_step = self._rows_module().e_step
        return self._map_rows(
            X, lambda b, p: np.exp(e_step(b, p)[1]), self.n_components, extra_dim="component"
        )

    def predict(self, X: Any):
        """Most likely component of every row, shape (n,), in the kind of X
        (with ``missing="marginalize"``: given the observed coordinates; the
        heaviest component for a row with nothing observed)."""
        e_step = self._rows_module().e_step
        return self._map_rows(X, lambda b, p: e_step(b, p)[1].argmax(axis=1), None, np.int64)

    def impute(self, X: Any):
        """X with every NaN replaced by its conditional mean under the fitted
        mixture, ``sum_k P(k | x_O) E[x_M | x_O, k]`` (a row with nothing
        observed: ``sum_k pi_k mu_k``), in the kind of X: NumPy for NumPy, a
        lazy Dask array for Dask and Zarr, a DataArray with X's dims and
        coordinates (lazy if X is), a frame with X's columns and index.
        Observed values are returned unchanged. Infinities raise ``ValueError``.
        Works whatever ``missing`` the model was fitted with."""
        data, result = self._blocks_of(X, missing_values.impute, gaps=True)
        return wrap_like_input(X, data, result)

    def score(self, X: Any, y: Any = None, sample_weight: Any = None) -> float:
        """Per-sample mean log-likelihood of X, computed in one pass; with
        ``sample_weight``, the weighted mean. With ``missing="marginalize"``,
        of the rows' observed coordinates, over the rows with something
        observed."""
        data = self._validate_data(X, reset=False, sample_weight=sample_weight)
        total, count = self._total_log_likelihood(data)
        return total / count

    def _total_log_likelihood(self, data: RowData) -> tuple[float, float]:
        with local_threads(getattr(self, "n_jobs", None)):
            return tree_reduce(data.array, self._rows_module().chunk_log_likelihood,
                               sum_tuples, self._fitted_parameters(), sample_weight=data.weights)

    def _n_parameters(self) -> int:
        return n_parameters(*self.means_.shape, self.covariance_type)

    def bic(self, X: Any, sample_weight: Any = None) -> float:
        """Bayesian information criterion on X (lower is better), in one pass;
        with ``sample_weight``, n is the sum of the weights. With
        ``missing="marginalize"`` the likelihood is that of the observed
        coordinates and n counts the rows with something observed."""
        return self._criterion("bic", X, sample_weight)

    def aic(self, X: Any, sample_weight: Any = None) -> float:
        """Akaike information criterion on X (lower is better), in one pass."""
        return self._criterion("aic", X, sample_weight)

    def _criterion(self, name: str, X: Any, sample_weight: Any = None) -> float:
        data = self._validate_data(X, reset=False, sample_weight=sample_weight)
        total, count = self._total_log_likelihood(data)
        return information_criterion(name, total, count, self._n_parameters())

    def icl(self, X: Any, sample_weight: Any = None) -> float:
        """mclust's ICL on X: the BIC plus twice the entropy of the most likely
        classification (lower is better), in one pass."""
        data = self._validate_data(X, reset=False, sample_weight=sample_weight)
        with local_threads(getattr(self, "n_jobs", None)):
            total, count, classification = tree_reduce(
                data.array, self._rows_module().chunk_likelihood_terms, sum_tuples,
                self._fitted_parameters(), sample_weight=data.weights,
            )
        return information_criterion("icl", total, count, self._n_parameters(), classification)

    def sample(self, n_samples: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n_samples`` rows from the fitted mixture: (X (n, d) float64,
        labels (n,) int64), component by component.

        An int or ``RandomState`` ``random_state`` draws what scikit-learn's
        ``GaussianMixture.sample`` draws for the same parameters (the same
        generator calls in the same order); a ``Generator`` is used as given."""
        self._check_is_fitted()
        check_n_samples(n_samples)
        rng = self.random_state
        if not isinstance(rng, np.random.Generator):
            rng = check_random_state(rng)
        return draw_mixture(
            rng, n_samples, self.weights_, self.means_, self.covariances_, self.covariance_type
        )

    def to_xarray(self):
        """The fitted parameters as an ``xarray.Dataset`` with dims (component,
        feature); the feature coordinate holds ``feature_names_in_`` when the
        model has them."""
        dataset = model_to_dataset(self)
        names = getattr(self, "feature_names_in_", None)
        if names is None:
            return dataset
        labels = np.asarray([str(name) for name in names])
        coords = {"feature": labels}
        if "feature_j" in dataset.coords:
            coords["feature_j"] = labels
        return dataset.assign_coords(coords)


__all__ = ["GaussianMixture", "ConvergenceWarning", "NotFittedError"]
