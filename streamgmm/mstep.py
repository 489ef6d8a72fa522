"""The M-step: from reduced sufficient statistics to mixture parameters."""

from __future__ import annotations

import numpy as np
from scipy import linalg

from .estep import GaussianParameters
from .statistics import SufficientStatistics

WEIGHT_FLOOR = 10 * np.finfo(np.float64).eps
"""Added to every component's weight so that an empty component divides by a
positive number (the same guard scikit-learn uses)."""


class CholeskyError(ValueError):
    """A covariance matrix was not positive definite."""


CHOLESKY_ADVICE = (
    "Fitting the mixture failed because the covariance of component(s) {which} is not "
    "positive definite (for example from collapsed, duplicated or constant data). "
    "Increase reg_covar, use fewer components, or check the data for duplicated rows "
    "and constant features."
)


def m_step(
    stats: SufficientStatistics, reg_covar: float, covariance_type: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weights (K,), means (K, d) and covariances from reduced statistics.

    ``pi_k = n_k / N``, ``mu_k`` the weighted mean, ``Sigma_k = M_k / n_k`` plus
    ``reg_covar`` on the diagonal; tied shares ``sum_k M_k / N``, spherical takes
    the mean variance over features.
    """
    weight = stats.weight + WEIGHT_FLOOR
    weights = weight / weight.sum()
    means = stats.mean.copy()
    d = means.shape[1]
    if covariance_type == "full":
        covariances = stats.scatter / weight[:, None, None]
        covariances[:, np.arange(d), np.arange(d)] += reg_covar
    elif covariance_type == "tied":
        covariances = stats.scatter / weight.sum()
        covariances[np.arange(d), np.arange(d)] += reg_covar
    elif covariance_type == "diag":
        covariances = stats.scatter / weight[:, None] + reg_covar
    elif covariance_type == "spherical":
        covariances = stats.scatter / (d * weight) + reg_covar
    else:
        raise ValueError(f"unknown covariance_type {covariance_type!r}")
    return weights, means, covariances


def precision_cholesky_from_covariances(covariances: np.ndarray, covariance_type: str):
    """Cholesky factors ``P`` with ``Sigma^-1 = P P^T`` (upper-triangular ``P`` for
    full and tied, the inverse square roots for diag and spherical).

    Raises :class:`CholeskyError` with advice when a covariance is not positive
    definite.
    """
    if covariance_type in ("full", "tied"):
        stacked = covariances if covariance_type == "full" else covariances[None]
        d = stacked.shape[-1]
        factors = np.empty_like(stacked)
        for k, cov in enumerate(stacked):
            try:
                lower = linalg.cholesky(cov, lower=True)
            except linalg.LinAlgError:
                raise CholeskyError(CHOLESKY_ADVICE.format(which=k)) from None
            factors[k] = linalg.solve_triangular(lower, np.eye(d), lower=True).T
        return factors if covariance_type == "full" else factors[0]
    bad = ~(covariances > 0)
    if bad.any():
        which = np.unique(np.nonzero(bad)[0])
        raise CholeskyError(CHOLESKY_ADVICE.format(which=which.tolist()))
    return 1.0 / np.sqrt(covariances)


def precision_cholesky_from_precisions(precisions: np.ndarray, covariance_type: str):
    """Cholesky factors from user-given precision matrices (``precisions_init``)."""
    if covariance_type in ("full", "tied"):
        stacked = precisions if covariance_type == "full" else precisions[None]
        try:
            factors = np.stack([linalg.cholesky(p, lower=True) for p in stacked])
        except linalg.LinAlgError:
            raise ValueError("precisions_init must be symmetric positive definite") from None
        return factors if covariance_type == "full" else factors[0]
    if np.any(precisions <= 0):
        raise ValueError("precisions_init must be positive")
    return np.sqrt(precisions)


def precisions_from_cholesky(precisions_cholesky: np.ndarray, covariance_type: str):
    """Precision matrices ``P P^T`` (or the squares for diag and spherical)."""
    if covariance_type == "full":
        return np.einsum("kij,klj->kil", precisions_cholesky, precisions_cholesky)
    if covariance_type == "tied":
        return precisions_cholesky @ precisions_cholesky.T
    return precisions_cholesky**2


def covariances_from_precisions_cholesky(precisions_cholesky: np.ndarray, covariance_type: str):
    """Covariances implied by precision factors (used when only precisions were given)."""
    if covariance_type == "full":
        return np.linalg.inv(precisions_from_cholesky(precisions_cholesky, "full"))
    if covariance_type == "tied":
        return np.linalg.inv(precisions_from_cholesky(precisions_cholesky, "tied"))
    return 1.0 / precisions_cholesky**2


def parameters_from_statistics(
    stats: SufficientStatistics, reg_covar: float, covariance_type: str
) -> tuple[GaussianParameters, np.ndarray]:
    """The M-step followed by the precision factors: returns the parameters the
    E-step needs and the covariances.

    Raises ``ValueError`` when the statistics overflowed (data values so large
    that their squares exceed float64), rather than returning NaN parameters.
    """
    if not all(np.all(np.isfinite(part)) for part in (stats.weight, stats.mean, stats.scatter)):
        raise ValueError(
            "The sufficient statistics overflowed float64 (the data hold values too "
            "large to square, or the current parameters give no row any weight); "
            "rescale or standardise the data before fitting."
        )
    weights, means, covariances = m_step(stats, reg_covar, covariance_type)
    prec_chol = precision_cholesky_from_covariances(covariances, covariance_type)
    return GaussianParameters(weights, means, prec_chol, covariance_type), covariances
