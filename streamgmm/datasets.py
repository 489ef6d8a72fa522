"""Synthetic Gaussian mixtures, in memory or written to Zarr chunk by chunk."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import zarr
from scipy.optimize import linear_sum_assignment

from .inputs import row_store_compressor
from .outputs import SYNTHETIC_ROWS_FORMAT, write_output


@dataclass(frozen=True)
class MixtureTruth:
    """The parameters a synthetic data set was drawn from.

    weights (K,), means (K, d), covariances (K, d, d).
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray


def random_mixture(
    n_components: int,
    n_features: int,
    *,
    separation: float = 6.0,
    offset: float = 0.0,
    random_state: int | None = 0,
) -> MixtureTruth:
    """Random mixture parameters: means spread ``separation`` units apart on
    average around ``offset``, covariances random with eigenvalues in [0.5, 2],
    weights from a Dirichlet(5) draw."""
    rng = np.random.default_rng(random_state)
    weights = rng.dirichlet(np.full(n_components, 5.0))
    means = offset + rng.normal(scale=separation, size=(n_components, n_features))
    covariances = np.empty((n_components, n_features, n_features))
    for k in range(n_components):
        rotation, _ = np.linalg.qr(rng.normal(size=(n_features, n_features)))
        covariances[k] = (rotation * rng.uniform(0.5, 2.0, n_features)) @ rotation.T
    return MixtureTruth(weights, means, covariances)


def sample_mixture(
    truth: MixtureTruth, n_samples: int, random_state: int | np.random.Generator | None = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Draw rows (n, d) and their component labels (n,) from ``truth``."""
    rng = np.random.default_rng(random_state)
    labels = rng.choice(len(truth.weights), size=n_samples, p=truth.weights)
    factors = np.linalg.cholesky(truth.covariances)
    noise = rng.standard_normal((n_samples, truth.means.shape[1]))
    X = truth.means[labels] + np.einsum("nij,nj->ni", factors[labels], noise)
    return X, labels


def make_mixture(
    n_samples: int,
    n_components: int = 3,
    n_features: int = 2,
    *,
    separation: float = 6.0,
    offset: float = 0.0,
    random_state: int | None = 0,
) -> tuple[np.ndarray, np.ndarray, MixtureTruth]:
    """In-memory synthetic data: rows (n, d), labels (n,), and the truth."""
    truth = random_mixture(
        n_components, n_features, separation=separation, offset=offset, random_state=random_state
    )
    X, labels = sample_mixture(truth, n_samples, np.random.default_rng([random_state or 0, 1]))
    return X, labels, truth


def write_mixture_zarr(
    path: str | os.PathLike,
    n_samples: int,
    truth: MixtureTruth,
    *,
    chunk_rows: int = 100_000,
    dtype: str = "float64",
    random_state: int = 0,
    overwrite: bool = False,
) -> zarr.Array:
    """Write ``n_samples`` rows drawn from ``truth`` to a Zarr array at
    ``path`` compressed with :func:`~streamgmm.inputs.row_store_compressor`, one
    chunk at a time, so the data never has to fit in memory. Returns the array.

    Chunk ``i`` is drawn from the seed ``(random_state, i)``, so the same call
    writes the same bytes. The array carries ``format="streamgmm.synthetic_rows"``:
    synthetic rows at ``path`` are replaced atomically, anything else there is
    refused unless ``overwrite=True`` (see :mod:`streamgmm.outputs`).
    """
    n_features = truth.means.shape[1]
    chunk_rows = max(1, min(chunk_rows, n_samples))  # no chunk larger than the array

    def write(temporary):
        array = zarr.create_array(
            store=os.fspath(temporary),
            shape=(n_samples, n_features),
            chunks=(chunk_rows, n_features),
            dtype=dtype,
            compressors=row_store_compressor(),
            attributes={"format": SYNTHETIC_ROWS_FORMAT},
        )
        for index, start in enumerate(range(0, n_samples, chunk_rows)):
            stop = min(start + chunk_rows, n_samples)
            rng = np.random.default_rng([random_state, index])
            rows, _ = sample_mixture(truth, stop - start, rng)
            array[start:stop] = rows.astype(dtype)

    written = write_output(path, SYNTHETIC_ROWS_FORMAT, write, overwrite=overwrite)
    return zarr.open_array(store=os.fspath(written), mode="r+")


def match_components(true_means: np.ndarray, fitted_means: np.ndarray) -> np.ndarray:
    """Index of the fitted component paired with each true one (Hungarian matching
    on the distances between means)."""
    distances = np.linalg.norm(true_means[:, None, :] - fitted_means[None, :, :], axis=2)
    _, columns = linear_sum_assignment(distances)
    return columns


def means_recovered(truth: MixtureTruth, fitted_means: np.ndarray, tolerance: float = 0.5) -> bool:
    """Whether every true mean has its own fitted mean (Hungarian matching) within
    ``tolerance`` standard deviations: the Mahalanobis distance under the true
    covariance."""
    order = match_components(truth.means, np.asarray(fitted_means))
    for k, j in enumerate(order):
        diff = fitted_means[j] - truth.means[k]
        if np.sqrt(diff @ np.linalg.solve(truth.covariances[k], diff)) > tolerance:
            return False
    return True


__all__ = [
    "MixtureTruth",
    "random_mixture",
    "sample_mixture",
    "make_mixture",
    "write_mixture_zarr",
    "match_components",
    "means_recovered",
]
