"""Sufficient statistics of a Gaussian mixture, kept in centred form.

Every path (in-memory, Dask tree reduction, stepwise online EM) reduces data to a
:class:`SufficientStatistics` and combines two of them with :func:`merge`. The
centred form (weight, mean, scatter about that mean) keeps the covariance free of
the cancellation that the raw form ``E[xx^T] - mu mu^T`` suffers when the data sit
far from the origin (Chan, Golub & LeVeque 1983).

The scatter holds only what the covariance type needs:

============  ==============  ==============================================
type          ``scatter``     meaning
============  ==============  ==============================================
``full``      ``(K, d, d)``   sum_i g_ik (x_i - m_k)(x_i - m_k)^T
``tied``      ``(d, d)``      the sum of the full scatters over components
``diag``      ``(K, d)``      the diagonals of the full scatters
``spherical`` ``(K,)``        the traces of the full scatters
============  ==============  ==============================================
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .covariance import KINDS, as_blocks, from_blocks, parameter_shape, writeable
from .kernels import entries as kernels
from .kernels.records import Statistics


class SufficientStatistics(NamedTuple):
    """Statistics of a set of rows under fixed responsibilities.

    Attributes
    ----------
    weight : ndarray of shape (K,)
        Sum of responsibilities per component, ``n_k``.
    mean : ndarray of shape (K, d)
        Responsibility-weighted mean per component.
    scatter : ndarray
        Weighted scatter about ``mean``; shape by covariance type (module docs).
    log_likelihood : float
        Summed log-likelihood of the rows under the parameters that gave the
        responsibilities.
    n_samples : float
        Number of rows (a float so that stepwise EM can rescale it).
    """

    weight: np.ndarray
    mean: np.ndarray
    scatter: np.ndarray
    log_likelihood: float
    n_samples: float


def statistics_blocks(stats: SufficientStatistics, covariance_type: str) -> Statistics:
    """``stats`` as the kernels take them (:class:`~streamgmm.kernels.records.Statistics`:
    writeable float64, the scatter in blocks form)."""
    return Statistics(writeable(stats.weight), writeable(stats.mean),
                      as_blocks(stats.scatter, covariance_type))


def empty_statistics(n_components: int, n_features: int, covariance_type: str):
    """Statistics of no rows: the identity of :func:`merge`."""
    return SufficientStatistics(
        weight=np.zeros(n_components),
        mean=np.zeros((n_components, n_features)),
        scatter=np.zeros(parameter_shape(n_components, n_features, covariance_type)),
        log_likelihood=0.0,
        n_samples=0.0,
    )


def merge(
    a: SufficientStatistics, b: SufficientStatistics, covariance_type: str
) -> SufficientStatistics:
    """Statistics of the union of two disjoint sets of rows.

    Per component: ``W = W_a + W_b``, ``m = m_a + (W_b / W)(m_b - m_a)`` and
    ``M = M_a + M_b + (W_a W_b / W)(m_b - m_a)(m_b - m_a)^T``
    (:func:`streamgmm.kernels.mstep.merge_blocks`). A component with no weight on
    either side gets the midpoint of the two means.
    """
    merged = kernels.merge_blocks(
        statistics_blocks(a, covariance_type), statistics_blocks(b, covariance_type),
        KINDS[covariance_type],
    )
    return SufficientStatistics(
        weight=merged.weight,
        mean=merged.mean,
        scatter=from_blocks(merged.scatter, covariance_type),
        log_likelihood=a.log_likelihood + b.log_likelihood,
        n_samples=a.n_samples + b.n_samples,
    )


def merge_all(parts, covariance_type: str) -> SufficientStatistics:
    """Merge a non-empty sequence of statistics from left to right."""
    parts = list(parts)
    total = parts[0]
    for part in parts[1:]:
        total = merge(total, part, covariance_type)
    return total


def rescale(stats: SufficientStatistics, factor: float) -> SufficientStatistics:
    """Statistics with every row's weight multiplied by ``factor`` (means unchanged)."""
    return SufficientStatistics(
        weight=stats.weight * factor,
        mean=stats.mean,
        scatter=stats.scatter * factor,
        log_likelihood=stats.log_likelihood * factor,
        n_samples=stats.n_samples * factor,
    )


__all__: list[str] = []
"""Nothing here is public API (docs/api.md lists what is)."""
