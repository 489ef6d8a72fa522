"""The E-step: log-densities, responsibilities and a chunk's sufficient statistics.

These are pure functions of a block of rows and the current parameters. The batch
loop, the Dask reduction and stepwise online EM all call :func:`chunk_statistics`;
nothing else computes responsibilities or statistics.

How the work is laid out (measured with ``benchmarks/run.py``, written up in
``docs/benchmarks.md``):

* A chunk is processed in blocks of :func:`block_rows` rows, sized so that the
  block's temporaries stay in cache. Every block is shifted by ``c``, the mean of
  the component means, and laid out as columns: the block's *design* holds
  ``[products; (x - c)^T; 1]`` of shape (m + d + 1, n), where the ``m`` product
  rows are what the covariance type's statistics need: the upper triangle of
  ``(x - c)(x - c)^T`` (full), ``(x - c)^2`` (diag), ``|x - c|^2`` (spherical)
  or nothing (tied).
* Log-densities of all components come from one product with the design: the
  full type multiplies all precision factors stacked, with the offsets
  ``-(mu_k - c) P_k`` as one extra column, and sums the squares per component
  (:mod:`streamgmm.compiled`); diag and spherical expand the squared distance
  into the design's own rows; tied expands it in the whitened space. They are
  kept as (K, n), so that the log-sum-exp runs over contiguous rows.
* The statistics of a block are one more product, ``resp @ design^T``: weight,
  first and second sums about ``c`` of every component at once.
* Sums about ``c`` lose about ``log10(A_k)`` digits to cancellation when they are
  moved to the component's own mean, where ``A_k = max_j (mu_kj - c_j)^2 /
  Sigma_k,jj``. Components with ``A_k`` above :data:`SHARED_SHIFT_LIMIT` (tight
  clusters far from the others, as in the digits data, where it reaches 1e7) are
  summed about their own mean instead, one component at a time, exactly as the
  centred formulas read.
* Sums add up in float64 from block to block (:class:`ShiftedSums`) and become
  centred statistics once per chunk.
* All work is float64 by default, also for float32 input (float32 input then
  fits as exactly as float64, which ``tests/test_em.py`` holds to 1e-9).
  ``float32_products=True`` computes the full type's products of float32 input
  in float32, adding the block sums up in float64: about 1e-6 relative accuracy
  (``tests/test_estep_kernel.py``).
* BLAS runs single-threaded inside chunks when Dask's threads run chunks in
  parallel (:mod:`streamgmm.threads`); the compiled loops release the GIL.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .compiled import grouped_square_sums, pairwise_products
from .statistics import SufficientStatistics, scatter_shape, weighted_outer_sum

BLOCK_ROWS = 8192
"""The most rows processed at once inside a chunk (see :func:`block_rows`)."""

BLOCK_BYTES = 2**19
"""Target size of a block's design (see the module docs): 512 rows for the full
type with d = 16 in float64, which measured fastest (the product with the
responsibilities slows down 2.5x once the design leaves the 1 MiB L2 cache)."""

MIN_BLOCK_ROWS = 128

EXPANSION_LIMIT = 1e4
"""Largest :func:`expansion_error_factor` for which the full type's log-densities
come from the expanded quadratic form (an error of about 1e-12 in the
log-density); beyond it, from the whitened rows."""

SHARED_SHIFT_LIMIT = 1e3
"""Largest cancellation factor ``A_k`` (module docs) for which a component's sums
are taken about the common shift: at most 3 of float64's 16 digits."""

LOG_2PI = np.log(2.0 * np.pi)


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


def log_det_precision_cholesky(precisions_cholesky: np.ndarray, covariance_type: str, d: int):
    """``log det P_k`` per component (a scalar for tied), i.e. ``-1/2 log det Sigma_k``."""
    if covariance_type == "full":
        return np.log(np.diagonal(precisions_cholesky, axis1=1, axis2=2)).sum(axis=1)
    if covariance_type == "tied":
        return np.log(np.diag(precisions_cholesky)).sum()
    if covariance_type == "diag":
        return np.log(precisions_cholesky).sum(axis=1)
    return d * np.log(precisions_cholesky)


def compute_dtype(X: np.ndarray, covariance_type: str, float32_products: bool = False):
    """Float32 for float32 input of the full type when ``float32_products`` is
    asked for, float64 otherwise."""
    if float32_products and covariance_type == "full" and np.asarray(X[:0]).dtype == np.float32:
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def product_rows(n_features: int, covariance_type: str) -> int:
    """``m``, the rows of second-order products at the top of a block's design."""
    return {
        "full": n_features * (n_features + 1) // 2,
        "diag": n_features,
        "spherical": 1,
        "tied": 0,
    }[covariance_type]


def block_rows(
    n_components: int, n_features: int, dtype=np.float64, covariance_type: str = "full"
) -> int:
    """Rows per block so that the block's largest temporary stays near ``BLOCK_BYTES``."""
    width = max(
        product_rows(n_features, covariance_type) + n_features + 1,
        n_components * n_features if covariance_type == "full" else n_components,
    )
    return int(np.clip(BLOCK_BYTES // (width * np.dtype(dtype).itemsize),
                       MIN_BLOCK_ROWS, BLOCK_ROWS))


class DensityFactors(NamedTuple):
    """Everything the per-block E-step needs, prepared once per chunk.

    Attributes
    ----------
    shift : ndarray of shape (d,)
        ``c``, the mean of the component means, subtracted from every row.
    factors : ndarray
        Left operand of the block's main product with the design's last rows:
        (K d, d + 1) full, (d, d) tied (``P^T``), (K, 2 d + 1) diag,
        (K, d + 2) spherical.
    reduce : ndarray or None
        Tied: (K, d + 2) expanded distance in the whitened space.
    constant : ndarray of shape (K,)
        ``log pi_k + log det P_k - d/2 log 2 pi`` (full and tied only; the other
        types fold it into ``factors``).
    own_shift : ndarray of shape (K,), bool
        Components whose sums are taken about their own mean (module docs).
    whiten : bool
        Full type: log-densities from the stacked precision factors, (K d, d + 1)
        ``factors``, instead of the expanded quadratic form, (K, m + d + 1).
    dtype : numpy dtype of the products
    """

    shift: np.ndarray
    factors: np.ndarray
    reduce: np.ndarray | None
    constant: np.ndarray
    own_shift: np.ndarray
    whiten: bool
    dtype: np.dtype


def feature_variances(precisions_cholesky: np.ndarray, covariance_type: str, n_components: int,
                      n_features: int) -> np.ndarray:
    """``Sigma_k,jj`` of shape (K, d) from the precision factors.

    ``Sigma = P^-T P^-1``, so ``Sigma_jj`` is the squared norm of column j of
    ``P^-1``.
    """
    if covariance_type == "full":
        return np.square(np.linalg.inv(precisions_cholesky)).sum(axis=1)
    if covariance_type == "tied":
        variances = np.square(np.linalg.inv(precisions_cholesky)).sum(axis=0)
        return np.broadcast_to(variances, (n_components, n_features))
    if covariance_type == "diag":
        return 1.0 / np.square(precisions_cholesky)
    return np.broadcast_to((1.0 / np.square(precisions_cholesky))[:, None],
                           (n_components, n_features))


def needs_own_shift(means: np.ndarray, variances: np.ndarray, shift: np.ndarray,
                    covariance_type: str) -> np.ndarray:
    """(K,) bool: components whose cancellation factor ``A_k`` (module docs)
    exceeds :data:`SHARED_SHIFT_LIMIT`. The tied type always sums about ``c``
    (its one scatter is shared by all components)."""
    if covariance_type == "tied":
        return np.zeros(means.shape[0], dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        amplification = np.square(means - shift) / variances
    return ~(np.nan_to_num(amplification, nan=np.inf).max(axis=1) <= SHARED_SHIFT_LIMIT)


def density_factors(params: GaussianParameters, dtype=np.float64) -> DensityFactors:
    """Precompute the product operands of the E-step for ``params``."""
    means, prec_chol, cov_type = params.means, params.precisions_cholesky, params.covariance_type
    n_components, d = means.shape
    dtype = np.dtype(dtype)
    shift = means.mean(axis=0)
    centred_means = means - shift
    constant = (
        np.log(params.weights)
        + log_det_precision_cholesky(prec_chol, cov_type, d)
        - 0.5 * d * LOG_2PI
    )
    reduce = None
    variances = feature_variances(prec_chol, cov_type, n_components, d)
    whiten = False
    if cov_type == "full":
        precisions = np.einsum("kij,klj->kil", prec_chol, prec_chol)
        whiten = dtype == np.float32 or (
            expansion_error_factor(precisions, centred_means, variances) > EXPANSION_LIMIT
        )
        if whiten:
            factors = np.empty((n_components, d, d + 1))
            factors[:, :, :d] = prec_chol.transpose(0, 2, 1)
            factors[:, :, d] = -np.einsum("kd,kde->ke", centred_means, prec_chol)
            factors = factors.reshape(n_components * d, d + 1)
        else:
            factors = _expanded_quadratic(precisions, centred_means, constant)
    elif cov_type == "tied":
        factors = np.ascontiguousarray(prec_chol.T)
        whitened_means = centred_means @ prec_chol
        reduce = _expanded_distance(whitened_means, np.ones(n_components), constant)
    elif cov_type == "diag":
        squared = prec_chol**2
        factors = np.empty((n_components, 2 * d + 1))
        factors[:, :d] = -0.5 * squared
        factors[:, d : 2 * d] = centred_means * squared
        factors[:, 2 * d] = constant - 0.5 * np.einsum("kd,kd->k", centred_means**2, squared)
    else:
        factors = _expanded_distance(centred_means, prec_chol**2, constant)
    own_shift = needs_own_shift(means, variances, shift, cov_type)
    return DensityFactors(
        shift, factors.astype(dtype), None if reduce is None else reduce.astype(dtype),
        constant.astype(dtype), own_shift, whiten, dtype,
    )


def expansion_error_factor(
    precisions: np.ndarray, centred_means: np.ndarray, variances: np.ndarray
) -> float:
    """``max_k u_k^T |Lambda_k| u_k`` with ``u_k = |mu_k - c| + sqrt(Sigma_k,jj)``:
    how large the terms of the expanded quadratic form get for rows near a
    component, relative to its value; its rounding error is about eps times this."""
    spread = np.abs(centred_means) + np.sqrt(variances)
    return float(np.einsum("ki,kij,kj->k", spread, np.abs(precisions), spread).max())


def _expanded_quadratic(precisions: np.ndarray, centred_means: np.ndarray,
                        constant: np.ndarray) -> np.ndarray:
    """(K, m + d + 1) coefficients turning a full-type design
    ``[products; z; 1]`` into ``constant_k - 1/2 (z - centre_k)^T Lambda_k (z - centre_k)``."""
    n_components, d = centred_means.shape
    upper, lower = np.triu_indices(d)
    pair_weight = np.where(upper == lower, -0.5, -1.0)
    weighted_centres = np.einsum("kij,kj->ki", precisions, centred_means)
    factors = np.empty((n_components, upper.size + d + 1))
    factors[:, : upper.size] = precisions[:, upper, lower] * pair_weight
    factors[:, upper.size : -1] = weighted_centres
    factors[:, -1] = constant - 0.5 * np.einsum("ki,ki->k", weighted_centres, centred_means)
    return factors


def _expanded_distance(centres: np.ndarray, scale: np.ndarray, constant: np.ndarray):
    """(K, d + 2) matrix turning the columns ``[|z|^2; z; 1]`` into
    ``constant_k - scale_k / 2 |z - centre_k|^2``."""
    factors = np.empty((centres.shape[0], centres.shape[1] + 2))
    factors[:, 0] = -0.5 * scale
    factors[:, 1:-1] = centres * scale[:, None]
    factors[:, -1] = constant - 0.5 * scale * np.einsum("kd,kd->k", centres, centres)
    return factors


def block_design(X: np.ndarray, shift: np.ndarray, covariance_type: str, dtype) -> np.ndarray:
    """The design ``[products; (X - shift)^T; 1]`` of a block X (n, d), shape
    (m + d + 1, n) (module docs). The shift is subtracted in float64."""
    n, d = X.shape
    m = product_rows(d, covariance_type)
    design = np.empty((m + d + 1, n), dtype=dtype)
    columns = design[m : m + d]
    np.subtract(X.T, shift[:, None], out=columns, casting="unsafe")
    design[-1] = 1.0
    if covariance_type == "full":
        pairwise_products(columns, design)
    elif covariance_type == "diag":
        np.square(columns, out=design[:d])
    elif covariance_type == "spherical":
        np.einsum("dn,dn->n", columns, columns, out=design[0])
    return design


def _weighted_log_density(
    design: np.ndarray, covariance_type: str, factors: DensityFactors
) -> np.ndarray:
    """``log pi_k + log N(x_i | k)`` of shape (K, n), float64, from a block's design."""
    n_components = factors.constant.shape[0]
    n = design.shape[1]
    if factors.whiten:
        d = factors.factors.shape[1] - 1
        whitened = factors.factors @ design[-(d + 1) :]
        log_weighted = np.empty((n_components, n))
        grouped_square_sums(whitened, factors.constant.astype(np.float64), log_weighted)
        return log_weighted
    if covariance_type == "tied":
        d = factors.factors.shape[0]
        expanded = np.empty((d + 2, n), dtype=design.dtype)
        np.matmul(factors.factors, design[:d], out=expanded[1:-1])
        np.einsum("dn,dn->n", expanded[1:-1], expanded[1:-1], out=expanded[0])
        expanded[-1] = 1.0
        return factors.reduce @ expanded
    return factors.factors @ design


def _normalise(log_weighted: np.ndarray) -> np.ndarray:
    """Turn (K, n) weighted log-densities into responsibilities in place; returns
    the log-likelihood of every row (n,), by log-sum-exp."""
    largest = log_weighted.max(axis=0)
    log_weighted -= largest
    np.exp(log_weighted, out=log_weighted)
    total = log_weighted.sum(axis=0)
    log_weighted /= total
    np.log(total, out=total)
    total += largest
    return total


class ShiftedSums(NamedTuple):
    """Sums of a set of rows about fixed shifts; blocks with the same shifts add.

    Attributes
    ----------
    centres : ndarray of shape (K, d)
        The shifts: ``c`` (the mean of the means), or the component's current
        mean for components that need their own shift (module docs).
    weight : ndarray of shape (K,)
        ``sum_i gamma_ik``.
    first : ndarray of shape (K, d)
        ``sum_i gamma_ik (x_i - centre_k)``.
    second : ndarray
        ``sum_i gamma_ik (x_i - centre_k)(x_i - centre_k)^T`` reduced as the
        covariance type's scatter (module :mod:`streamgmm.statistics`); tied sums
        over components.
    log_likelihood : float
    n_samples : float
    """

    centres: np.ndarray
    weight: np.ndarray
    first: np.ndarray
    second: np.ndarray
    log_likelihood: float
    n_samples: float


class BlockAccumulator:
    """Adds up a chunk's blocks: ``resp @ design^T`` (sums about ``c`` of all
    components at once) plus, for the components in ``own_shift``, sums about
    their own shift, one component at a time.

    ``own_offsets`` (K, d) are those components' shifts minus ``c``.
    """

    def __init__(self, covariance_type: str, n_components: int, n_features: int,
                 own_shift: np.ndarray, own_offsets: np.ndarray):
        self.covariance_type = covariance_type
        self.own = np.flatnonzero(own_shift)
        self.own_offsets = own_offsets
        m = product_rows(n_features, covariance_type)
        self.moments = np.zeros((m + n_features + 1, n_components))
        self.own_first = np.zeros((n_components, n_features))
        self.own_second = np.zeros(scatter_shape(n_components, n_features, covariance_type))
        self.tied_second = np.zeros((n_features, n_features))

    def add(self, design: np.ndarray, resp: np.ndarray) -> None:
        """Add a block: its design (m + d + 1, n) and responsibilities (K, n)."""
        self.moments += design @ np.ascontiguousarray(resp.T)
        d = self.own_first.shape[1]
        columns = design[-(d + 1) : -1]
        if self.covariance_type == "tied":
            self.tied_second += (columns * resp.sum(axis=0)) @ columns.T
            return
        for k in self.own:
            diff = np.subtract(columns, self.own_offsets[k][:, None], dtype=np.float64)
            weighted = diff * resp[k]
            self.own_first[k] += weighted.sum(axis=1)
            if self.covariance_type == "full":
                self.own_second[k] += weighted @ diff.T
            elif self.covariance_type == "diag":
                self.own_second[k] += np.einsum("dn,dn->d", weighted, diff)
            else:
                self.own_second[k] += np.einsum("dn,dn->", weighted, diff)

    def sums(self, common: np.ndarray, own_centres: np.ndarray, log_likelihood: float,
             n_samples: float) -> ShiftedSums:
        """The accumulated :class:`ShiftedSums`; ``common`` is ``c`` (d,) and
        ``own_centres`` (K, d) the own shifts."""
        n_components, d = self.own_first.shape
        moments = self.moments.T
        m = moments.shape[1] - d - 1
        weight = moments[:, -1].copy()
        first = moments[:, m : m + d].copy()
        packed = moments[:, :m]
        if self.covariance_type == "full":
            second = np.empty((n_components, d, d))
            upper, lower = np.triu_indices(d)
            second[:, upper, lower] = packed
            second[:, lower, upper] = packed
        elif self.covariance_type == "diag":
            second = packed.copy()
        elif self.covariance_type == "spherical":
            second = packed[:, 0].copy()
        else:
            second = self.tied_second
        centres = np.repeat(common[None, :], n_components, axis=0)
        centres[self.own] = own_centres[self.own]
        first[self.own] = self.own_first[self.own]
        second[self.own] = self.own_second[self.own]
        return ShiftedSums(centres, weight, first, second, float(log_likelihood),
                           float(n_samples))


def _statistics_from_sums(sums: ShiftedSums, covariance_type: str) -> SufficientStatistics:
    """Centred statistics (about each component's weighted mean) from shifted sums."""
    weight = sums.weight
    safe = np.where(weight > 0, weight, 1.0)
    offset_means = sums.first / safe[:, None]
    scatter = sums.second - weighted_outer_sum(weight, offset_means, covariance_type)
    return SufficientStatistics(
        weight=weight,
        mean=sums.centres + offset_means,
        scatter=scatter,
        log_likelihood=float(sums.log_likelihood),
        n_samples=float(sums.n_samples),
    )


def log_gaussian_density(X: np.ndarray, params: GaussianParameters) -> np.ndarray:
    """``log N(x_i | mu_k, Sigma_k)`` for rows X of shape (n, d); returns (n, K).

    Uses ``-1/2 (d log 2 pi + ||(x - mu_k)^T P_k||^2) + log det P_k`` on rows
    shifted by the mean of the component means.
    """
    cov_type = params.covariance_type
    factors = density_factors(params, compute_dtype(X, cov_type))
    design = block_design(X, factors.shift, cov_type, factors.dtype)
    log_weighted = _weighted_log_density(design, cov_type, factors)
    return (log_weighted.T - np.log(params.weights)).astype(np.float64)


def e_step(X: np.ndarray, params: GaussianParameters) -> tuple[np.ndarray, np.ndarray]:
    """Log-likelihood per row (n,) and log-responsibilities (n, K) by log-sum-exp.

    The log-responsibilities are formed from the differences to each row's
    largest term, so they stay normalised even for rows whose log-densities are
    far larger in magnitude than 1/eps (rows far from every component).
    """
    cov_type = params.covariance_type
    factors = density_factors(params, compute_dtype(X, cov_type))
    log_weighted = np.empty((params.weights.shape[0], X.shape[0]))
    log_prob_norm = np.empty(X.shape[0])
    step = block_rows(*params.means.shape, factors.dtype, cov_type)
    for start in range(0, X.shape[0], step):
        block = slice(start, start + step)
        design = block_design(X[block], factors.shift, cov_type, factors.dtype)
        log_weighted[:, block] = _weighted_log_density(design, cov_type, factors)
    for start in range(0, X.shape[0], BLOCK_ROWS):
        block = log_weighted[:, start : start + BLOCK_ROWS]
        largest = block.max(axis=0)
        block -= largest
        log_norm_shifted = np.log(np.exp(block).sum(axis=0))
        block -= log_norm_shifted
        log_prob_norm[start : start + BLOCK_ROWS] = largest + log_norm_shifted
    return log_prob_norm, log_weighted.T


def statistics_from_responsibilities(
    X: np.ndarray,
    resp: np.ndarray,
    shift: np.ndarray,
    covariance_type: str,
    log_likelihood: float = 0.0,
) -> SufficientStatistics:
    """Centred statistics of rows X (n, d) with responsibilities ``resp`` (n, K).

    Sums are taken about ``shift`` (K, d), one component at a time (the tied type
    about the mean of the shifts), and then moved to each component's own
    weighted mean. Accumulates in float64.
    """
    shift = np.asarray(shift, dtype=np.float64)
    n_components, d = shift.shape
    common = shift.mean(axis=0)
    own_shift = np.full(n_components, covariance_type != "tied")
    total = BlockAccumulator(covariance_type, n_components, d, own_shift, shift - common)
    step = block_rows(n_components, d, np.float64, covariance_type)
    for start in range(0, X.shape[0], step):
        design = block_design(X[start : start + step], common, covariance_type, np.float64)
        total.add(design, np.ascontiguousarray(resp[start : start + step].T, dtype=np.float64))
    sums = total.sums(common, shift, log_likelihood, X.shape[0])
    return _statistics_from_sums(sums, covariance_type)


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
    limit = min(MAX_ABS_VALUE, float(np.finfo(X.dtype).max))
    return bool(X.min() >= -limit) and bool(X.max() <= limit)


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
        if np.isfinite(X[~usable]).all():
            problem = f"values larger than {MAX_ABS_VALUE:g} in magnitude (rescale the data)"
        else:
            problem = "NaN or infinity (remove or impute them)"
        raise ValueError(
            f"Input contains {problem} in {bad_rows.size} row(s) between rows "
            f"{bad_rows[0]} and {bad_rows[-1]} (first bad row {bad_rows[0]}) before fitting."
        )


def chunk_statistics(
    X: np.ndarray,
    params: GaussianParameters,
    row_offset: int = 0,
    *,
    float32_products: bool = False,
) -> SufficientStatistics:
    """E-step statistics and log-likelihood of one chunk of rows under ``params``.

    This is the map step of every EM driver. X has shape (n, d), any real dtype;
    statistics are centred on each component's weighted mean once per chunk,
    after adding up shifted sums block by block in float64 (module docs).
    ``float32_products`` computes the full type's products of float32 input in
    float32 (about 1e-6 relative accuracy instead of 1e-13; off by default).
    """
    check_finite(X, row_offset)
    cov_type = params.covariance_type
    n_components, d = params.means.shape
    factors = density_factors(params, compute_dtype(X, cov_type, float32_products))
    total = BlockAccumulator(
        cov_type, n_components, d, factors.own_shift, params.means - factors.shift
    )
    log_likelihood = 0.0
    step = block_rows(n_components, d, factors.dtype, cov_type)
    for start in range(0, X.shape[0], step):
        design = block_design(X[start : start + step], factors.shift, cov_type, factors.dtype)
        resp = _weighted_log_density(design, cov_type, factors)
        log_likelihood += _normalise(resp).sum(dtype=np.float64)
        total.add(design, resp.astype(factors.dtype, copy=False))
    sums = total.sums(factors.shift, params.means, log_likelihood, X.shape[0])
    return _statistics_from_sums(sums, cov_type)


def chunk_log_likelihood(
    X: np.ndarray, params: GaussianParameters, row_offset: int = 0
) -> tuple[float, int]:
    """Summed log-likelihood and row count of one chunk, for ``score`` and ``bic``."""
    check_finite(X, row_offset)
    cov_type = params.covariance_type
    factors = density_factors(params, compute_dtype(X, cov_type))
    total = 0.0
    step = block_rows(*params.means.shape, factors.dtype, cov_type)
    for start in range(0, X.shape[0], step):
        design = block_design(X[start : start + step], factors.shift, cov_type, factors.dtype)
        log_weighted = _weighted_log_density(design, cov_type, factors)
        total += _normalise(log_weighted).sum(dtype=np.float64)
    return total, X.shape[0]
