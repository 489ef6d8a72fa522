"""What differs by covariance type: shapes, dimension names, parameter counts and
conversions between covariances, precisions and their Cholesky factors.

============  ==================  =====================================
type          covariances shape   one component's covariance
============  ==================  =====================================
``full``      ``(K, d, d)``       its own matrix
``tied``      ``(d, d)``          one matrix shared by all components
``diag``      ``(K, d)``          its own variances, features independent
``spherical`` ``(K,)``            one variance for all features
============  ==================  =====================================

Precisions, their Cholesky factors and the statistics' scatter have the same
shape as the covariances. The compiled kernels take all four types as 3-D
"blocks" (:func:`as_blocks`). A new covariance type adds a row to each table
here, a kind code in :mod:`streamgmm.kernels.codes` and its branch in the
compiled statistics, merge and M-step.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

from .choices import (  # noqa: F401  (re-exported; they live in choices.py, import-light)
    COVARIANCE_TYPES,
    check_covariance_type,
    parameter_shape,
    variance_totals,
)
from .kernels import codes

KINDS = {
    "full": codes.PAIRWISE, "tied": codes.NONE,
    "diag": codes.SQUARES, "spherical": codes.NORM,
}
"""The code by which compiled functions know a covariance type (module
:mod:`streamgmm.kernels.codes`)."""

DIMS = {
    "full": ("component", "feature", "feature_j"),
    "tied": ("feature", "feature_j"),
    "diag": ("component", "feature"),
    "spherical": ("component",),
}
"""Dimension names of covariances, precisions, their factors and the scatter in
model files (the second feature axis is ``feature_j``)."""


def n_parameters(n_components: int, n_features: int, covariance_type: str) -> int:
    """Free parameters of a mixture: covariances, means and ``K - 1`` weights."""
    K, d = n_components, n_features
    covariance_parameters = {
        "full": K * d * (d + 1) / 2,
        "diag": K * d,
        "tied": d * (d + 1) / 2,
        "spherical": K,
    }[covariance_type]
    return int(covariance_parameters + K * d + K - 1)


def writeable(array) -> np.ndarray:
    """An array as the kernels take parameters: float64, C-contiguous and
    writeable (a copy only when it is not already)."""
    if (isinstance(array, np.ndarray) and array.dtype == np.float64
            and array.flags.c_contiguous and array.flags.writeable):
        return array
    return np.array(array, dtype=np.float64, order="C")


def as_blocks(array: np.ndarray, covariance_type: str) -> np.ndarray:
    """A scatter, covariances or precision factors of any covariance type as the
    3-D "blocks" the compiled functions take (C-contiguous, writeable float64,
    so that every caller's arrays have one numba type): full (K, d, d), tied
    (1, d, d), diag (K, 1, d), spherical (K, 1, 1)."""
    array = writeable(array)
    if covariance_type == "full":
        return array
    if covariance_type == "tied":
        return array.reshape(1, *array.shape)
    if covariance_type == "diag":
        return array.reshape(array.shape[0], 1, array.shape[1])
    if covariance_type == "spherical":
        return array.reshape(array.shape[0], 1, 1)
    raise ValueError(f"unknown covariance_type {covariance_type!r}")


def from_blocks(blocks: np.ndarray, covariance_type: str) -> np.ndarray:
    """The inverse of :func:`as_blocks`."""
    if covariance_type == "full":
        return blocks
    if covariance_type == "tied":
        return blocks[0]
    if covariance_type == "diag":
        return blocks[:, 0, :]
    return blocks[:, 0, 0]


def richest_scatter_type(covariance_types) -> str:
    """The scatter from which every requested covariance type can be derived
    (full for full and tied, else diag, else spherical)."""
    kinds = set(covariance_types)
    if kinds & {"full", "tied"}:
        return "full"
    return "diag" if "diag" in kinds else "spherical"


def derived_scatter(scatter: np.ndarray, covariance_type: str) -> np.ndarray:
    """A scatter reduced to what ``covariance_type`` needs.

    The input scatter is full (K, d, d), diag (K, d) or spherical (K,); tied is
    the sum of the full scatters over components."""
    if covariance_type == "full":
        if scatter.ndim != 3:
            raise ValueError("full scatter cannot be derived from a diagonal one")
    elif covariance_type == "tied":
        if scatter.ndim != 3:
            raise ValueError("tied scatter cannot be derived from a diagonal one")
        scatter = scatter.sum(axis=0)
    elif covariance_type == "diag":
        if scatter.ndim == 1:
            raise ValueError("diag scatter cannot be derived from a spherical one")
        scatter = np.diagonal(scatter, axis1=1, axis2=2).copy() if scatter.ndim == 3 else scatter
    elif covariance_type == "spherical":
        if scatter.ndim == 3:
            scatter = np.trace(scatter, axis1=1, axis2=2)
        elif scatter.ndim == 2:
            scatter = scatter.sum(axis=1)
    else:
        raise ValueError(f"unknown covariance_type {covariance_type!r}")
    return scatter


def product_rows(n_features: int, covariance_type: str) -> int:
    """``m``, the rows of scatter products a block of the E-step kernel forms per
    row (:mod:`streamgmm.estep`)."""
    return {"full": n_features * (n_features + 1) // 2, "tied": 0, "diag": n_features,
            "spherical": 1}[covariance_type]


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


def full_covariances(
    covariances: np.ndarray, covariance_type: str, n_components: int, n_features: int
) -> np.ndarray:
    """Covariances of any type as a (K, d, d) stack of full matrices (float64)."""
    K, d = n_components, n_features
    covariances = np.asarray(covariances, dtype=np.float64)
    check_covariance_type(covariance_type)
    if covariance_type == "full":
        return covariances
    if covariance_type == "tied":
        return np.broadcast_to(covariances, (K, d, d))
    if covariance_type == "diag":
        return covariances[:, :, None] * np.eye(d)
    return covariances[:, None, None] * np.eye(d)


def draw_mixture(
    rng, n_samples: int, weights, means, covariances, covariance_type: str
) -> tuple[np.ndarray, np.ndarray]:
    """``n_samples`` rows from a mixture and their components, (n, d) float64 and
    (n,) int64, component by component with the generator calls (and so the
    draws) of scikit-learn's ``GaussianMixture.sample``."""
    counts = rng.multinomial(n_samples, np.asarray(weights, dtype=np.float64))
    means = np.asarray(means, dtype=np.float64)
    covariances = np.asarray(covariances, dtype=np.float64)
    parts = []
    for k, count in enumerate(counts):
        if covariance_type in ("full", "tied"):
            own = covariances[k] if covariance_type == "full" else covariances
            parts.append(rng.multivariate_normal(means[k], own, int(count)))
        else:
            scale = np.sqrt(covariances[k])
            parts.append(means[k] + rng.standard_normal((int(count), means.shape[1])) * scale)
    labels = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    return np.vstack(parts), labels


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
        return precisions_cholesky @ precisions_cholesky.transpose(0, 2, 1)
    if covariance_type == "tied":
        return precisions_cholesky @ precisions_cholesky.T
    return precisions_cholesky**2


def covariances_from_precisions_cholesky(precisions_cholesky: np.ndarray, covariance_type: str):
    """Covariances implied by precision factors (used when only precisions were given)."""
    if covariance_type in ("full", "tied"):
        return np.linalg.inv(precisions_from_cholesky(precisions_cholesky, covariance_type))
    return 1.0 / precisions_cholesky**2


__all__: list[str] = []
"""Nothing here is public API (docs/api.md lists what is)."""
