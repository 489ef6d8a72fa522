"""The E-step: log-densities, responsibilities and a chunk's sufficient statistics.

These are pure NumPy functions of a block of rows and the current parameters. The
batch loop, the Dask reduction and stepwise online EM all call
:func:`chunk_statistics`; nothing else computes responsibilities or statistics.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.special import logsumexp

from .statistics import SufficientStatistics, merge, weighted_outer_sum

BLOCK_ROWS = 8192
"""Rows processed at once inside a chunk, so that temporaries stay in cache."""

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


def log_gaussian_density(X: np.ndarray, params: GaussianParameters) -> np.ndarray:
    """``log N(x_i | mu_k, Sigma_k)`` for rows X of shape (n, d); returns (n, K).

    Uses ``-1/2 (d log 2 pi + ||(x - mu_k)^T P_k||^2) + log det P_k``. Rows are
    shifted by the mean of the component means first, so that the products see
    small numbers even when the data sit far from the origin.
    """
    means, prec_chol, cov_type = params.means, params.precisions_cholesky, params.covariance_type
    n_components, d = means.shape
    shift = means.mean(axis=0)
    Xs = np.asarray(X, dtype=np.float64) - shift
    ms = means - shift
    if cov_type == "full":
        stacked = prec_chol.transpose(1, 0, 2).reshape(d, n_components * d)
        y = (Xs @ stacked).reshape(-1, n_components, d)
        y -= np.einsum("kd,kde->ke", ms, prec_chol)
        mahalanobis = np.einsum("nkd,nkd->nk", y, y)
    elif cov_type == "tied":
        y = (Xs @ prec_chol)[:, None, :] - (ms @ prec_chol)[None, :, :]
        mahalanobis = np.einsum("nkd,nkd->nk", y, y)
    elif cov_type == "diag":
        y = (Xs[:, None, :] - ms[None, :, :]) * prec_chol[None, :, :]
        mahalanobis = np.einsum("nkd,nkd->nk", y, y)
    else:
        diff = Xs[:, None, :] - ms[None, :, :]
        mahalanobis = np.einsum("nkd,nkd->nk", diff, diff) * prec_chol**2
    log_det = log_det_precision_cholesky(prec_chol, cov_type, d)
    return -0.5 * (d * LOG_2PI + mahalanobis) + log_det


def e_step(X: np.ndarray, params: GaussianParameters) -> tuple[np.ndarray, np.ndarray]:
    """Log-likelihood per row (n,) and log-responsibilities (n, K) by log-sum-exp.

    The log-responsibilities are formed from the differences to each row's
    largest term, so they stay normalised even for rows whose log-densities are
    far larger in magnitude than 1/eps (rows far from every component).
    """
    weighted = log_gaussian_density(X, params) + np.log(params.weights)
    shifted = weighted - weighted.max(axis=1, keepdims=True)
    log_norm_shifted = logsumexp(shifted, axis=1)
    log_prob_norm = weighted.max(axis=1) + log_norm_shifted
    return log_prob_norm, shifted - log_norm_shifted[:, None]


def statistics_from_responsibilities(
    X: np.ndarray,
    resp: np.ndarray,
    shift: np.ndarray,
    covariance_type: str,
    log_likelihood: float = 0.0,
) -> SufficientStatistics:
    """Centred statistics of rows X (n, d) with responsibilities ``resp`` (n, K).

    Sums are taken about ``shift`` (K, d), normally the current means, and then
    moved to each component's own weighted mean, which loses almost nothing
    because the shift is close to that mean. Accumulates in float64.
    """
    X = np.asarray(X, dtype=np.float64)
    n_components = resp.shape[1]
    weight = resp.sum(axis=0)
    safe = np.where(weight > 0, weight, 1.0)
    if covariance_type == "tied":
        offset_sums = resp.T @ X - weight[:, None] * shift
        scatter = np.zeros((X.shape[1], X.shape[1]))
        for k in range(n_components):
            diff = X - shift[k]
            scatter += (diff * resp[:, k : k + 1]).T @ diff
    elif covariance_type == "full":
        offset_sums = np.empty_like(shift)
        scatter = np.empty((n_components, X.shape[1], X.shape[1]))
        for k in range(n_components):
            diff = X - shift[k]
            weighted = diff * resp[:, k : k + 1]
            offset_sums[k] = weighted.sum(axis=0)
            scatter[k] = weighted.T @ diff
    else:
        diff = X[:, None, :] - shift[None, :, :]
        weighted = diff * resp[:, :, None]
        offset_sums = weighted.sum(axis=0)
        squares = np.einsum("nkd,nkd->kd", weighted, diff)
        scatter = squares if covariance_type == "diag" else squares.sum(axis=1)
    offset_means = offset_sums / safe[:, None]
    scatter = scatter - weighted_outer_sum(weight, offset_means, covariance_type)
    return SufficientStatistics(
        weight=weight,
        mean=shift + offset_means,
        scatter=scatter,
        log_likelihood=float(log_likelihood),
        n_samples=float(X.shape[0]),
    )


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
    X: np.ndarray, params: GaussianParameters, row_offset: int = 0
) -> SufficientStatistics:
    """E-step statistics and log-likelihood of one chunk of rows under ``params``.

    This is the map step of every EM driver. X has shape (n, d), any real dtype;
    statistics are centred on the current means and accumulated in float64,
    ``BLOCK_ROWS`` rows at a time.
    """
    check_finite(X, row_offset)
    total = None
    for start in range(0, X.shape[0], BLOCK_ROWS):
        block = np.asarray(X[start : start + BLOCK_ROWS], dtype=np.float64)
        log_prob_norm, log_resp = e_step(block, params)
        part = statistics_from_responsibilities(
            block,
            np.exp(log_resp),
            params.means,
            params.covariance_type,
            log_likelihood=log_prob_norm.sum(),
        )
        total = part if total is None else merge(total, part, params.covariance_type)
    return total


def chunk_log_likelihood(
    X: np.ndarray, params: GaussianParameters, row_offset: int = 0
) -> tuple[float, int]:
    """Summed log-likelihood and row count of one chunk, for ``score`` and ``bic``."""
    check_finite(X, row_offset)
    total = 0.0
    for start in range(0, X.shape[0], BLOCK_ROWS):
        log_prob_norm, _ = e_step(X[start : start + BLOCK_ROWS], params)
        total += log_prob_norm.sum()
    return total, X.shape[0]
