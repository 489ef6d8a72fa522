"""The reference data sets beside the repository (``shared/data`` in the first
folder above the repository that has one), with mclust's results for them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

REPOSITORY = Path(__file__).resolve().parents[1]

MCLUST_RESULTS = {
    "faithful": {"covariance_type": "tied", "n_components": 3,
                 "log_likelihood": -1126.326, "bic": 2314.316},
    "diabetes": {"covariance_type": "full", "n_components": 3,
                 "log_likelihood": -2303.496, "bic": 4751.316},
}
"""mclust 6.0.0's choice over K = 1..9 and the four shared covariance types, BIC
in scikit-learn's sign (``shared/data/README.md``)."""


def reference_directory() -> Path:
    """``shared/data`` beside the repository; raises if there is none."""
    for folder in REPOSITORY.parents:
        candidate = folder / "shared" / "data"
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"No shared/data folder in any parent of {REPOSITORY}: the reference data "
        "(faithful.csv, diabetes.csv) must sit beside the repository"
    )


def load_reference(name: str) -> np.ndarray:
    """The rows of ``shared/data/<name>.csv`` (header skipped), float64."""
    return np.loadtxt(reference_directory() / f"{name}.csv", delimiter=",", skiprows=1)
