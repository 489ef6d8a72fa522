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

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


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


def weighted_outer_sum(weights: np.ndarray, vectors: np.ndarray, covariance_type: str):
    """Reduce ``sum_k w_k v_k v_k^T`` to the part the covariance type keeps.

    ``weights`` has shape (K,), ``vectors`` (K, d); the result has the shape of a
    ``scatter`` of that type.
    """
    if covariance_type == "full":
        return np.einsum("k,ki,kj->kij", weights, vectors, vectors)
    if covariance_type == "tied":
        return (vectors * weights[:, None]).T @ vectors
    if covariance_type == "diag":
        return weights[:, None] * vectors**2
    if covariance_type == "spherical":
        return weights * np.einsum("ki,ki->k", vectors, vectors)
    raise ValueError(f"unknown covariance_type {covariance_type!r}")


def empty_statistics(n_components: int, n_features: int, covariance_type: str):
    """Statistics of no rows: the identity of :func:`merge`."""
    return SufficientStatistics(
        weight=np.zeros(n_components),
        mean=np.zeros((n_components, n_features)),
        scatter=np.zeros(scatter_shape(n_components, n_features, covariance_type)),
        log_likelihood=0.0,
        n_samples=0.0,
    )


def scatter_shape(n_components: int, n_features: int, covariance_type: str) -> tuple:
    """Shape of ``scatter`` for a covariance type."""
    shapes = {
        "full": (n_components, n_features, n_features),
        "tied": (n_features, n_features),
        "diag": (n_components, n_features),
        "spherical": (n_components,),
    }
    if covariance_type not in shapes:
        raise ValueError(f"unknown covariance_type {covariance_type!r}")
    return shapes[covariance_type]


def merge(
    a: SufficientStatistics, b: SufficientStatistics, covariance_type: str
) -> SufficientStatistics:
    """Statistics of the union of two disjoint sets of rows.

    Per component: ``W = W_a + W_b``, ``m = m_a + (W_b / W)(m_b - m_a)`` and
    ``M = M_a + M_b + (W_a W_b / W)(m_b - m_a)(m_b - m_a)^T``. A component with
    no weight on either side keeps the other side's mean.
    """
    weight = a.weight + b.weight
    safe = np.where(weight > 0, weight, 1.0)
    share_b = np.where(weight > 0, b.weight / safe, 0.5)
    delta = b.mean - a.mean
    mean = a.mean + share_b[:, None] * delta
    cross_weight = np.where(weight > 0, a.weight * b.weight / safe, 0.0)
    scatter = a.scatter + b.scatter + weighted_outer_sum(cross_weight, delta, covariance_type)
    return SufficientStatistics(
        weight=weight,
        mean=mean,
        scatter=scatter,
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
