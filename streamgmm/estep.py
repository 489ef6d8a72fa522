"""The E-step: log-densities, responsibilities and a chunk's sufficient statistics.

These are pure NumPy functions of a block of rows and the current parameters. The
batch loop, the Dask reduction and stepwise online EM all call
:func:`chunk_statistics`; nothing else computes responsibilities or statistics.

How the work is laid out (measured with ``benchmarks/run.py``, written up in
``docs/benchmarks.md``):

* A chunk is processed in blocks of :func:`block_rows` rows, sized so that the
  largest temporary stays in cache. Every block is first shifted by ``c``, the
  mean of the component means, into ``[x - c, 1]``, so that the products see
  small numbers even when the data sit far from the origin.
* The log-densities of all components come from one product per block: the
  full type multiplies by all precision factors side by side, with the offsets
  ``-(mu_k - c) P_k`` as one extra row; the diag, spherical and tied types
  expand the squared distance into one product with a few extra columns.
* Log-densities and responsibilities are kept as (K, rows), so that the
  log-sum-exp reduces over contiguous rows.
* Within a chunk, sums about fixed shifts simply add from block to block
  (:class:`ShiftedSums`); they become centred statistics once per chunk. The
  full, diag and spherical types sum about the current means, forming
  ``x - mu_k`` per component in one small buffer, exactly as the centred
  formulas read (a common shift fails the scikit-learn parity on the digits
  data by about 1.5e-8, measured). The tied type sums about ``c``.
* All work is float64 by default, also for float32 input (float32 input then
  fits as exactly as float64, which ``tests/test_em.py`` holds to 1e-9).
  ``chunk_statistics(..., float32_products=True)`` computes the full type's
  products of float32 input in float32, still adding the sums up in float64:
  about 1e-6 relative accuracy (``tests/test_estep_kernel.py``).
* BLAS runs single-threaded inside chunks when Dask's threads run chunks in
  parallel (:mod:`streamgmm.threads`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .statistics import SufficientStatistics, scatter_shape, weighted_outer_sum

BLOCK_ROWS = 8192
"""The most rows processed at once inside a chunk (see :func:`block_rows`)."""

BLOCK_BYTES = 2**21
"""Target size of a block's (rows, K (d + 1)) temporary: about 2,000 rows for
d = 16, K = 8 in float64, which measured fastest (1,000 and 4,000 rows were 5 to
15 % slower on the machine of ``docs/benchmarks.md``)."""

MIN_BLOCK_ROWS = 512

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


def block_rows(n_components: int, n_features: int, dtype=np.float64) -> int:
    """Rows per block so that the (rows, K d) temporary stays near ``BLOCK_BYTES``."""
    row_bytes = n_components * (n_features + 1) * np.dtype(dtype).itemsize
    return int(np.clip(BLOCK_BYTES // row_bytes, MIN_BLOCK_ROWS, BLOCK_ROWS))


class DensityFactors(NamedTuple):
    """Everything the per-block E-step needs, prepared once per chunk.

    Attributes
    ----------
    shift : ndarray of shape (d,)
        ``c``, the mean of the component means, subtracted from every row.
    factors : ndarray
        Right-hand side of the block's main product; (d + 1, K d) full,
        (d, d) tied, (2 d + 1, K) diag, (d + 2, K) spherical.
    reduce : ndarray or None
        Tied: (d + 2, K) expanded distance in the whitened space.
    constant : ndarray of shape (K,)
        ``log pi_k + log det P_k - d/2 log 2 pi`` (full and tied only; the other
        types fold it into ``factors``).
    dtype : numpy dtype of the products
    """

    shift: np.ndarray
    factors: np.ndarray
    reduce: np.ndarray | None
    constant: np.ndarray
    dtype: np.dtype


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
    if cov_type == "full":
        factors = np.empty((d + 1, n_components * d))
        factors[:d] = prec_chol.transpose(1, 0, 2).reshape(d, n_components * d)
        factors[d] = -np.einsum("kd,kde->ke", centred_means, prec_chol).ravel()
    elif cov_type == "tied":
        factors = prec_chol
        whitened_means = centred_means @ prec_chol
        reduce = _expanded_distance(whitened_means, np.ones(n_components), constant)
    elif cov_type == "diag":
        squared = prec_chol**2
        factors = np.empty((2 * d + 1, n_components))
        factors[:d] = -0.5 * squared.T
        factors[d : 2 * d] = (centred_means * squared).T
        factors[2 * d] = constant - 0.5 * np.einsum("kd,kd->k", centred_means**2, squared)
    else:
        factors = _expanded_distance(centred_means, prec_chol**2, constant)
    return DensityFactors(
        shift, factors.astype(dtype), None if reduce is None else reduce.astype(dtype),
        constant.astype(dtype), dtype,
    )


def _expanded_distance(centres: np.ndarray, scale: np.ndarray, constant: np.ndarray):
    """(d + 2, K) matrix turning ``[|z|^2, z, 1]`` into
    ``constant_k - scale_k / 2 |z - centre_k|^2``."""
    factors = np.empty((centres.shape[1] + 2, centres.shape[0]))
    factors[0] = -0.5 * scale
    factors[1:-1] = (centres * scale[:, None]).T
    factors[-1] = constant - 0.5 * scale * np.einsum("kd,kd->k", centres, centres)
    return factors


def _shifted_rows(X: np.ndarray, shift: np.ndarray, dtype) -> np.ndarray:
    """``[X - shift, 1]`` of shape (n, d + 1), computed in float64, stored in ``dtype``."""
    shifted = np.empty((X.shape[0], X.shape[1] + 1), dtype=dtype)
    np.subtract(X, shift, out=shifted[:, :-1], casting="unsafe")
    shifted[:, -1] = 1.0
    return shifted


def _design(shifted: np.ndarray, covariance_type: str, factors: DensityFactors) -> np.ndarray:
    """The left operand whose product with ``factors`` gives the log-densities."""
    d = shifted.shape[1] - 1
    if covariance_type == "full":
        return shifted
    if covariance_type == "diag":
        design = np.empty((shifted.shape[0], 2 * d + 1), dtype=shifted.dtype)
        np.square(shifted[:, :d], out=design[:, :d])
        design[:, d:] = shifted
        return design
    rows = shifted[:, :d] if covariance_type == "spherical" else shifted[:, :d] @ factors.factors
    design = np.empty((shifted.shape[0], d + 2), dtype=shifted.dtype)
    np.einsum("nd,nd->n", rows, rows, out=design[:, 0])
    design[:, 1:-1] = rows
    design[:, -1] = 1.0
    return design


def _weighted_log_density(
    shifted: np.ndarray, covariance_type: str, factors: DensityFactors
) -> np.ndarray:
    """``log pi_k + log N(x_i | k)`` of shape (K, n) for rows ``[x - c, 1]``."""
    design = _design(shifted, covariance_type, factors)
    if covariance_type == "full":
        n_components = factors.constant.shape[0]
        whitened = (design @ factors.factors).reshape(design.shape[0], n_components, -1)
        log_weighted = np.einsum("nkd,nkd->kn", whitened, whitened)
        log_weighted *= -0.5
        log_weighted += factors.constant[:, None]
        return log_weighted
    if covariance_type == "tied":
        return factors.reduce.T @ design.T
    return factors.factors.T @ design.T


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
        The shifts: the current means for the full type, ``c`` (the mean of the
        means) repeated for the other types.
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


def _block_sums(
    shifted: np.ndarray, resp: np.ndarray, covariance_type: str, centred_shifts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weight (K,), first and second sums (see :class:`ShiftedSums`) of one block
    of rows ``[x - c, 1]`` (n, d + 1) with responsibilities ``resp`` (K, n).

    ``centred_shifts`` (K, d) are the shifts minus ``c``. Except for the tied type
    (which sums about ``c``), ``x - mu_k`` is formed per component in one (n, d)
    buffer and the sums read exactly as the centred formulas.
    """
    n_components, n = resp.shape
    d = shifted.shape[1] - 1
    rows = shifted[:, :d]
    weight = resp.sum(axis=1, dtype=np.float64)
    if covariance_type == "tied":
        first = resp @ rows
        second = (rows * resp.sum(axis=0)[:, None]).T @ rows
        return weight, first, second
    first = np.empty((n_components, d))
    second = np.empty(scatter_shape(n_components, d, covariance_type))
    diff = np.empty((n, d), dtype=shifted.dtype)
    weighted = np.empty_like(diff)
    for k in range(n_components):
        np.subtract(rows, centred_shifts[k], out=diff, casting="unsafe")
        first[k] = resp[k] @ diff
        if covariance_type == "full":
            np.multiply(diff, resp[k][:, None], out=weighted)
            second[k] = weighted.T @ diff
        elif covariance_type == "diag":
            second[k] = resp[k] @ np.square(diff, out=weighted)
        else:
            second[k] = resp[k] @ np.einsum("nd,nd->n", diff, diff)
    return weight, first, second


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


def _centres(shifts: np.ndarray, common: np.ndarray, covariance_type: str) -> np.ndarray:
    """The shifts the sums are taken about: per component, or ``c`` for tied."""
    if covariance_type == "tied":
        return np.broadcast_to(common, shifts.shape)
    return shifts


def _empty_sums(centres: np.ndarray, covariance_type: str) -> ShiftedSums:
    n_components, d = centres.shape
    return ShiftedSums(
        centres,
        np.zeros(n_components),
        np.zeros((n_components, d)),
        np.zeros(scatter_shape(n_components, d, covariance_type)),
        0.0,
        0.0,
    )


def _add_block(total: ShiftedSums, block) -> ShiftedSums:
    weight, first, second = block
    return total._replace(
        weight=total.weight + weight, first=total.first + first, second=total.second + second
    )


def log_gaussian_density(X: np.ndarray, params: GaussianParameters) -> np.ndarray:
    """``log N(x_i | mu_k, Sigma_k)`` for rows X of shape (n, d); returns (n, K).

    Uses ``-1/2 (d log 2 pi + ||(x - mu_k)^T P_k||^2) + log det P_k`` on rows
    shifted by the mean of the component means.
    """
    factors = density_factors(params, compute_dtype(X, params.covariance_type))
    shifted = _shifted_rows(X, factors.shift, factors.dtype)
    log_weighted = _weighted_log_density(shifted, params.covariance_type, factors)
    return (log_weighted.T - np.log(params.weights)).astype(np.float64)


def e_step(X: np.ndarray, params: GaussianParameters) -> tuple[np.ndarray, np.ndarray]:
    """Log-likelihood per row (n,) and log-responsibilities (n, K) by log-sum-exp.

    The log-responsibilities are formed from the differences to each row's
    largest term, so they stay normalised even for rows whose log-densities are
    far larger in magnitude than 1/eps (rows far from every component).
    """
    factors = density_factors(params, compute_dtype(X, params.covariance_type))
    log_weighted = np.empty((params.weights.shape[0], X.shape[0]))
    log_prob_norm = np.empty(X.shape[0])
    step = block_rows(*params.means.shape, factors.dtype)
    for start in range(0, X.shape[0], step):
        block = slice(start, start + step)
        shifted = _shifted_rows(X[block], factors.shift, factors.dtype)
        log_weighted[:, block] = _weighted_log_density(shifted, params.covariance_type, factors)
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

    Sums are taken about ``shift`` (K, d), normally the current means (the full
    type about each ``shift_k``, the other types about their mean), and then
    moved to each component's own weighted mean. Accumulates in float64.
    """
    shift = np.asarray(shift, dtype=np.float64)
    common = shift.mean(axis=0)
    centres = _centres(shift, common, covariance_type)
    total = _empty_sums(centres, covariance_type)
    step = block_rows(*shift.shape)
    for start in range(0, X.shape[0], step):
        shifted = _shifted_rows(X[start : start + step], common, np.float64)
        block_resp = np.ascontiguousarray(resp[start : start + step].T, dtype=np.float64)
        total = _add_block(
            total, _block_sums(shifted, block_resp, covariance_type, centres - common)
        )
    total = total._replace(log_likelihood=float(log_likelihood), n_samples=float(X.shape[0]))
    return _statistics_from_sums(total, covariance_type)


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


def check_finite(
    X: np.ndarray, row_offset: int = 0, row_numbers: np.ndarray | None = None
) -> None:
    """Raise ``ValueError`` naming the rows if X holds NaN, infinity or values
    too large to square in float64 (above ``MAX_ABS_VALUE``).

    Rows are named as ``row_offset`` plus their position in X, or by
    ``row_numbers`` (n,) when X gathers rows from all over the data.
    """
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
    statistics are centred on the current means once per chunk, after adding up
    shifted sums block by block in float64 (module docs). ``float32_products``
    computes the full type's products of float32 input in float32 (about 1e-6
    relative accuracy instead of 1e-13; off by default, module docs).
    """
    check_finite(X, row_offset)
    cov_type = params.covariance_type
    factors = density_factors(params, compute_dtype(X, cov_type, float32_products))
    centres = _centres(params.means, factors.shift, cov_type)
    centred_shifts = centres - factors.shift
    total = _empty_sums(centres, cov_type)
    log_likelihood = 0.0
    step = block_rows(*params.means.shape, factors.dtype)
    for start in range(0, X.shape[0], step):
        shifted = _shifted_rows(X[start : start + step], factors.shift, factors.dtype)
        resp = _weighted_log_density(shifted, cov_type, factors)
        log_likelihood += _normalise(resp).sum(dtype=np.float64)
        total = _add_block(total, _block_sums(shifted, resp, cov_type, centred_shifts))
    total = total._replace(log_likelihood=log_likelihood, n_samples=float(X.shape[0]))
    return _statistics_from_sums(total, cov_type)


def chunk_log_likelihood(
    X: np.ndarray, params: GaussianParameters, row_offset: int = 0
) -> tuple[float, int]:
    """Summed log-likelihood and row count of one chunk, for ``score`` and ``bic``."""
    check_finite(X, row_offset)
    factors = density_factors(params, compute_dtype(X, params.covariance_type))
    total = 0.0
    step = block_rows(*params.means.shape, factors.dtype)
    for start in range(0, X.shape[0], step):
        shifted = _shifted_rows(X[start : start + step], factors.shift, factors.dtype)
        log_weighted = _weighted_log_density(shifted, params.covariance_type, factors)
        total += _normalise(log_weighted).sum(dtype=np.float64)
    return total, X.shape[0]
