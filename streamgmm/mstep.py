"""The M-step: from reduced sufficient statistics to mixture parameters."""

from __future__ import annotations

import numpy as np

from .covariance import KINDS, from_blocks
from .estep import GaussianParameters
from .kernels import codes
from .kernels import entries as kernels
from .statistics import SufficientStatistics, statistics_blocks

WEIGHT_FLOOR = codes.WEIGHT_FLOOR
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
    the mean variance over features (:func:`streamgmm.kernels.mstep.m_step_blocks`).
    """
    moments = kernels.m_step_blocks(
        statistics_blocks(stats, covariance_type), float(reg_covar), KINDS[covariance_type]
    )
    return moments.weights, moments.means, from_blocks(moments.covariances, covariance_type)


def cholesky_error(covariances: np.ndarray, covariance_type: str, failed: int):
    """The :class:`CholeskyError` for a failed factorisation (``failed`` the first
    component found); diag and spherical name every component at fault."""
    if covariance_type in ("diag", "spherical"):
        bad = ~(np.asarray(covariances) > 0)
        failed = np.unique(np.nonzero(bad)[0]).tolist()
    return CholeskyError(CHOLESKY_ADVICE.format(which=failed))


OVERFLOW_MESSAGE = (
    "The sufficient statistics overflowed float64 (the data hold values too "
    "large to square, or the current parameters give no row any weight); "
    "rescale or standardise the data before fitting."
)


def parameters_from_statistics(
    stats: SufficientStatistics, reg_covar: float, covariance_type: str
) -> tuple[GaussianParameters, np.ndarray]:
    """The M-step followed by the precision factors: returns the parameters the
    E-step needs and the covariances (:func:`streamgmm.kernels.mstep.parameters_blocks`).

    Raises ``ValueError`` when the statistics overflowed (data values so large
    that their squares exceed float64), rather than returning NaN parameters.
    """
    step = kernels.parameters_blocks(
        statistics_blocks(stats, covariance_type), float(reg_covar), KINDS[covariance_type]
    )
    mixture = step.mixture
    covariances = from_blocks(mixture.covariances, covariance_type)
    if step.failed == codes.OVERFLOWED:
        raise ValueError(OVERFLOW_MESSAGE)
    if step.failed >= 0:
        raise cholesky_error(covariances, covariance_type, step.failed)
    params = GaussianParameters(
        mixture.weights, mixture.means, from_blocks(mixture.factors, covariance_type),
        covariance_type,
    )
    return params, covariances


__all__: list[str] = []
"""Nothing here is public API (docs/api.md lists what is)."""
