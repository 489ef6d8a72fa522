"""The E-step: log-densities, responsibilities and a chunk's sufficient statistics.

These are pure functions of a block of rows and the current parameters. The batch
loop, the Dask reduction and stepwise online EM all call :func:`chunk_statistics`;
nothing else computes responsibilities or statistics. This module prepares every
operand's inputs; :mod:`streamgmm.kernels` runs the loop over a chunk's blocks in
one compiled call that releases the GIL.

How the work is laid out (measured with ``benchmarks/run.py``, written up in
``docs/benchmarks.md`` and ``docs/theory.md``):

* A chunk is processed in blocks of :func:`block_rows` rows, sized so that a
  block stays in the 1 MiB L2 cache. Each block is shifted by ``c``, the mean of
  the component means, and laid out as columns: ``columns = [(x - c)^T; 1]``
  (d + 1, n) and ``m`` product rows that the covariance type's statistics need:
  the upper triangle of ``(x - c)(x - c)^T`` (full), ``(x - c)^2`` (diag),
  ``|x - c|^2`` (spherical) or none (tied, whose one scatter is a product of
  the columns with themselves, weighted by each row's total responsibility).
* Log-densities of all components come from one product: the quadratic form
  expanded over the product rows (full, diag, spherical), or, for the full type
  when the expansion would lose more than about 1e-12 (:data:`EXPANSION_LIMIT`),
  the stacked precision factors ``[P_k^T | -P_k^T (mu_k - c)]`` applied to
  ``columns`` and squared; tied whitens once and expands in the whitened space.
  Responsibilities come by log-sum-exp per row.
* The statistics of a block are one more product, ``[products; columns] @
  resp``: weight, first and second sums about ``c`` of every component at once.
* Sums about ``c`` lose about ``log10(A_k)`` digits when they are moved to the
  component's own mean, where ``A_k = max_j (mu_kj - c_j)^2 / Sigma_k,jj``.
  Components with ``A_k`` above :data:`SHARED_SHIFT_LIMIT` (tight clusters far
  from the others, as in the digits data, where it reaches 1e7) are also summed
  about their own current mean, exactly as the centred formulas read. The tied
  type pools such a component's scatter about its own mean with the others'
  scatter about ``c`` (so one pooled d x d sum remains, exact at any separation).
* Sums add up in float64 from block to block and become
  centred statistics once per chunk.
* All work is float64 by default, also for float32 input (float32 input then
  fits as exactly as float64, which ``tests/test_em.py`` holds to 1e-9).
  ``float32_products=True`` computes the full type's products of float32 input
  in float32 (with :data:`EXPANSION_LIMIT_FLOAT32` for the expanded form),
  adding the block sums up in float64: about 1e-6 relative accuracy
  (``tests/test_estep_kernel.py``).
* BLAS runs single-threaded inside chunks when Dask's threads run chunks in
  parallel (:mod:`streamgmm.threads`).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import numpy as np

from .covariance import (
    KINDS,
    as_blocks,
    feature_variances,
    from_blocks,
    product_rows,
    writeable,
)
from .kernels import codes
from .kernels import entries as kernels
from .kernels.records import Operands, Plan, Products, rows_record
from .kernels.tiers import constant
from .statistics import SufficientStatistics

_NOTHING32 = np.empty((0, 0), dtype=np.float32)
_NO_SINGLE_PRODUCTS = Products(_NOTHING32, _NOTHING32, _NOTHING32, _NOTHING32)
"""Float32 product operands of responsibilities given from outside (none: their
sums are taken in float64)."""

BLOCK_ROWS = 8192
"""The most rows processed at once inside a chunk (see :func:`block_rows`)."""

BLOCK_BYTES = 2**19
"""Target size of a block's largest temporary (module docs): 428 rows for the
full type with d = 16, which measured fastest (half and twice as many rows were
10 to 20 % slower; the product with the responsibilities slows down 2.5x once
the block leaves the 1 MiB L2 cache)."""

MIN_BLOCK_ROWS = 128

MAX_BLOCK_BYTES = 2**25
"""Cap on a block's largest temporary: with many features (d(d + 1)/2 product
rows) blocks get fewer rows than ``MIN_BLOCK_ROWS`` rather than more memory."""

EXPANSION_LIMIT = 1e4
"""Largest expansion error factor ``max_k u_k^T |Lambda_k| u_k``, with
``u_k = |mu_k - c| + sqrt(Sigma_k,jj)`` (how large the terms of the expanded
quadratic form get near a component, relative to its value), for which the full
type's log-densities come from the expanded quadratic form (an error of about
1e-12 in the log-density); beyond it, from the whitened rows."""

EXPANSION_LIMIT_FLOAT32 = 1e3
"""The same limit for ``float32_products``: about 6e-5 in a log-density at worst
(float32's eps times the limit); on the benchmark data (factor 670) the
statistics of a pass came out within 5e-7 of float64's, as with the whitened
form, and 1.8 times faster."""

SHARED_PRODUCTS_MAX_FEATURES = 64
"""Most features for which the full type forms the ``d (d + 1) / 2`` product rows
of a block: beyond, they no longer fit the cache with enough rows to be worth
it, and each component's scatter is one product of its own shifted rows."""

SHARED_SHIFT_LIMIT = 1e3
"""Largest cancellation factor ``A_k`` (module docs) for which a component's sums
are taken about the common shift: at most 3 of float64's 16 digits."""

LOG_2PI = codes.LOG_2PI


class GaussianParameters(NamedTuple):
    """Parameters of a mixture, as the E-step needs them.

    Attributes
    ----------
    weights : ndarray of shape (K,)
    means : ndarray of shape (K, d)
    precisions_cholesky : ndarray
        Cholesky factors ``P`` of the precisions (``Sigma^-1 = P P^T``):
        (K, d, d) full, (d, d) tied, (K, d) diag, (K,) spherical.
    covariance_type : str
    """

    weights: np.ndarray
    means: np.ndarray
    precisions_cholesky: np.ndarray
    covariance_type: str


def compute_dtype(X: np.ndarray, covariance_type: str, float32_products: bool = False):
    """Float32 for float32 input of the full type when ``float32_products`` is
    asked for, float64 otherwise."""
    if float32_products and covariance_type == "full" and np.asarray(X[:0]).dtype == np.float32:
        return np.dtype(np.float32)
    return np.dtype(np.float64)


PRODUCT_KINDS = KINDS


def block_rows(n_components: int, n_features: int, covariance_type: str = "full") -> int:
    """Rows per block so that the block's largest float64 temporary stays near
    ``BLOCK_BYTES``, and under ``MAX_BLOCK_BYTES`` whatever the width.

    Float32 products use the same rows: measured fastest too (twice as many rows
    ran 1.6 times slower), since the log-densities and responsibilities stay
    float64.
    """
    width = max(
        product_rows(n_features, covariance_type) + n_features + 1,
        n_components * n_features if covariance_type == "full" else n_components,
    )
    rows = min(max(BLOCK_BYTES // (8 * width), MIN_BLOCK_ROWS), BLOCK_ROWS)
    return int(max(1, min(rows, MAX_BLOCK_BYTES // (8 * width))))


def kernel_plan(covariance_type: str, n_components: int, n_features: int,
                dtype: Any = "float64") -> Plan:
    """The :class:`~streamgmm.kernels.records.Plan` of chunks of a mixture:
    rows per block (:func:`block_rows`), products in ``dtype`` and the limits
    of this module (read at each call)."""
    dtype = np.dtype(dtype)
    return _plan(covariance_type, n_components, n_features, dtype,
                 EXPANSION_LIMIT if dtype == np.float64 else EXPANSION_LIMIT_FLOAT32,
                 SHARED_SHIFT_LIMIT, SHARED_PRODUCTS_MAX_FEATURES)


@functools.cache
def _plan(covariance_type: str, n_components: int, n_features: int, dtype: np.dtype,
          expansion_limit: float, shared_shift_limit: float, max_features: int) -> Plan:
    return constant(Plan(
        KINDS[covariance_type], block_rows(n_components, n_features, covariance_type),
        dtype == np.float32, expansion_limit, shared_shift_limit, max_features))


def density_factors(params: GaussianParameters, dtype=np.float64) -> Operands:
    """The kernels' :class:`~streamgmm.kernels.records.Operands` for ``params``
    (products in ``dtype``; :func:`streamgmm.kernels.operands.density_operands`);
    the variances that choose the forms are read off the precision factors."""
    means, cov_type = params.means, params.covariance_type
    n_components, d = means.shape
    variances = feature_variances(params.precisions_cholesky, cov_type, n_components, d)
    return kernels.density_operands(
        writeable(params.weights), writeable(means),
        as_blocks(params.precisions_cholesky, cov_type), writeable(variances),
        kernel_plan(cov_type, n_components, d, dtype),
    )


def _weighted_log_densities(X: np.ndarray, params: GaussianParameters) -> np.ndarray:
    """``log pi_k + log N(x_i | k)`` of shape (K, n) for rows X (n, d)."""
    cov_type = params.covariance_type
    dtype = compute_dtype(X, cov_type)
    n_components, d = params.means.shape
    operands = density_factors(params, dtype)
    rows, plan = rows_record(X), kernel_plan(cov_type, n_components, d, dtype)
    if plan.float32:
        return kernels.log_densities_float32(rows, operands, operands.single, plan)
    return kernels.log_densities(rows, operands, operands.double, plan)


def _centred_statistics(sums, covariance_type: str, common: np.ndarray,
                        own_centres: np.ndarray, own_shift: np.ndarray,
                        n_samples: float) -> SufficientStatistics:
    """Centred statistics (about each component's weighted mean) from the
    kernels' :class:`~streamgmm.kernels.records.Sums`: about ``common``, and
    about ``own_centres`` for the components in ``own_shift``
    (:func:`streamgmm.kernels.mstep.centred_statistics`)."""
    centred = kernels.centred_statistics(
        sums, common, writeable(own_centres), np.asarray(own_shift, dtype=bool),
        KINDS[covariance_type],
    )
    return SufficientStatistics(
        weight=centred.weight,
        mean=centred.mean,
        scatter=from_blocks(centred.scatter, covariance_type),
        log_likelihood=float(sums.log_likelihood),
        n_samples=float(n_samples),
    )


def shifted_log_sum_exp(log_terms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Log-sum-exp over the K rows of ``log_terms`` (K, n), column by column:
    subtracts each column's largest term in place and returns ``(largest,
    log of the shifted sum)``, whose sum is the log-sum-exp. The compiled
    kernels do the same inside their loops (:func:`streamgmm.kernels.mathfn.normalise`)."""
    largest = log_terms.max(axis=0)
    log_terms -= largest
    return largest, np.log(np.exp(log_terms).sum(axis=0))


def e_step(X: np.ndarray, params: GaussianParameters) -> tuple[np.ndarray, np.ndarray]:
    """Log-likelihood per row (n,) and log-responsibilities (n, K) by log-sum-exp.

    The log-responsibilities are formed from the differences to each row's
    largest term, so they stay normalised even for rows whose log-densities are
    far larger in magnitude than 1/eps (rows far from every component).
    """
    log_weighted = _weighted_log_densities(X, params)
    log_prob_norm = np.empty(X.shape[0])
    for start in range(0, X.shape[0], BLOCK_ROWS):
        block = log_weighted[:, start : start + BLOCK_ROWS]
        largest, log_norm_shifted = shifted_log_sum_exp(block)
        block -= log_norm_shifted
        log_prob_norm[start : start + BLOCK_ROWS] = largest + log_norm_shifted
    return log_prob_norm, log_weighted.T


def statistics_from_responsibilities(
    X: np.ndarray,
    resp: np.ndarray,
    shift: np.ndarray,
    covariance_type: str,
    log_likelihood: float = 0.0,
    sample_weight: np.ndarray | None = None,
) -> SufficientStatistics:
    """Centred statistics of rows X (n, d) with responsibilities ``resp`` (n, K),
    each row counted ``sample_weight`` (n,) times if given.

    Sums are taken about ``shift`` (K, d), one component at a time, and then
    moved to each component's own weighted mean. Accumulates in float64.
    """
    n_samples = X.shape[0]
    if sample_weight is not None:
        row_weights = kernel_weights(sample_weight)
        resp, n_samples = np.asarray(resp) * row_weights[:, None], row_weights.sum()
    shift = np.asarray(shift, dtype=np.float64)
    n_components, d = shift.shape
    common = shift.mean(axis=0)
    own_shift = np.ones(n_components, dtype=bool)
    nothing = np.empty((0, 0))
    operands = Operands(
        common, codes.LINEAR, 0 if covariance_type == "full" else product_rows(d, covariance_type),
        Products(nothing, nothing, nothing, nothing), _NO_SINGLE_PRODUCTS, np.empty(0), own_shift,
        np.arange(n_components, dtype=np.int64), writeable(shift - common),
    )
    sums = kernels.responsibility_sums(
        rows_record(X), np.require(resp, np.float64, ["C", "W"]), operands,
        kernel_plan(covariance_type, n_components, d),
    )
    return _centred_statistics(sums._replace(log_likelihood=log_likelihood), covariance_type,
                               common, shift, own_shift, n_samples)


MAX_ABS_VALUE = 1e100
"""Largest accepted magnitude of an input value: squares and products of such
values (distances, scatters) stay far from float64 overflow."""


def usable_rows(X: np.ndarray) -> np.ndarray:
    """Boolean mask (n,) of rows whose values are all finite and at most
    ``MAX_ABS_VALUE`` in magnitude (one comparison; NaN compares false). X has a
    real or integer dtype; integer and boolean rows are always usable."""
    if X.dtype.kind in "iub":
        return np.ones(X.shape[0], dtype=bool)
    limit = X.dtype.type(min(MAX_ABS_VALUE, float(np.finfo(X.dtype).max)))
    return (np.abs(X) <= limit).all(axis=1)


def _all_usable(X: np.ndarray) -> bool:
    """Whether every value of X passes :func:`usable_rows`, by two reductions
    without temporaries (NaN makes both comparisons false)."""
    if X.dtype.kind in "iub" or X.size == 0:
        return True
    limit = usable_limit(X.dtype)
    return bool(X.min() >= -limit) and bool(X.max() <= limit)


@functools.cache
def usable_limit(dtype: np.dtype) -> float:
    """``MAX_ABS_VALUE``, or the largest finite value of ``dtype`` if smaller."""
    return min(MAX_ABS_VALUE, float(np.finfo(dtype).max))


def check_finite(
    X: np.ndarray, row_offset: int = 0, row_numbers: np.ndarray | None = None
) -> None:
    """Raise ``ValueError`` naming the rows if X holds NaN, infinity or values
    too large to square in float64 (above ``MAX_ABS_VALUE``).

    Rows are named as ``row_offset`` plus their position in X, or by
    ``row_numbers`` (n,) when X gathers rows from all over the data.
    """
    if _all_usable(X):
        return
    usable = usable_rows(X)
    if not usable.all():
        if row_numbers is None:
            bad_rows = np.flatnonzero(~usable) + row_offset
        else:
            bad_rows = np.asarray(row_numbers)[~usable]
        advice = ""
        if np.isfinite(X[~usable]).all():
            problem = f"values larger than {MAX_ABS_VALUE:g} in magnitude (rescale the data)"
        else:
            problem = "NaN or infinity (remove or impute them)"
            if np.isnan(X[~usable]).any():
                advice = (
                    " To use rows with NaN as missing values, through their observed "
                    "coordinates, pass missing='marginalize' (GaussianMixture, select; "
                    "--missing marginalize on the command line)."
                )
        raise ValueError(
            f"Input contains {problem} in {bad_rows.size} row(s) between rows "
            f"{bad_rows[0]} and {bad_rows[-1]} (first bad row {bad_rows[0]})."
            + advice
        )


def chunk_statistics(
    X: np.ndarray,
    params: GaussianParameters,
    row_offset: int = 0,
    *,
    float32_products: bool = False,
    sample_weight: np.ndarray | None = None,
) -> SufficientStatistics:
    """E-step statistics and log-likelihood of one chunk of rows under ``params``.

    This is the map step of every EM driver. X has shape (n, d), any real dtype;
    statistics are centred on each component's weighted mean once per chunk,
    after adding up shifted sums block by block in float64 (module docs).
    ``float32_products`` computes the full type's products of float32 input in
    float32 (about 1e-6 relative accuracy instead of 1e-13; off by default).
    ``sample_weight`` (n,) weighs the rows: a row of weight w counts as w rows in
    every sum, the log-likelihood and ``n_samples``.
    """
    check_finite(X, row_offset)
    cov_type = params.covariance_type
    n_components, d = params.means.shape
    dtype = compute_dtype(X, cov_type, float32_products)
    operands = density_factors(params, dtype)
    rows = rows_record(X, weights=None if sample_weight is None else kernel_weights(sample_weight))
    plan = kernel_plan(cov_type, n_components, d, dtype)
    if plan.float32:
        sums = kernels.range_sums_float32(rows, 0, X.shape[0], operands, operands.single, plan)
    else:
        sums = kernels.range_sums(rows, 0, X.shape[0], operands, operands.double, plan)
    n_samples = X.shape[0] if sample_weight is None else rows.weights.sum()
    return _centred_statistics(sums, cov_type, operands.shift, params.means, operands.own_shift,
                               n_samples)


def kernel_weights(sample_weight: np.ndarray) -> np.ndarray:
    """Row weights (n,) as the contiguous float64 vector the kernels take."""
    return np.ascontiguousarray(np.ravel(sample_weight), dtype=np.float64)


def chunk_likelihood_terms(
    X: np.ndarray,
    params: GaussianParameters,
    row_offset: int = 0,
    sample_weight: np.ndarray | None = None,
) -> tuple[float, float, float]:
    """Summed log-likelihood, row count and summed ``log z_i,map(i)`` of one chunk,
    where ``z_i,map(i)`` is row i's responsibility of its most likely component
    (the classification term of mclust's ICL); with ``sample_weight`` (n,), each
    row counts its weight times in all three."""
    check_finite(X, row_offset)
    largest, log_norm = shifted_log_sum_exp(_weighted_log_densities(X, params))
    log_likelihoods = log_norm + largest
    if sample_weight is None:
        return (float(log_likelihoods.sum(dtype=np.float64)), X.shape[0],
                float(-log_norm.sum(dtype=np.float64)))
    row_weights = kernel_weights(sample_weight)
    return (float(row_weights @ log_likelihoods), float(row_weights.sum()),
            float(-(row_weights @ log_norm)))


def chunk_log_likelihood(
    X: np.ndarray,
    params: GaussianParameters,
    row_offset: int = 0,
    sample_weight: np.ndarray | None = None,
) -> tuple[float, float]:
    """Summed log-likelihood and row count (weight) of one chunk, for ``score``
    and ``bic``."""
    total, n_rows, _ = chunk_likelihood_terms(X, params, row_offset, sample_weight)
    return total, n_rows


__all__: list[str] = []
"""Nothing here is public API (docs/api.md lists what is)."""
