"""The reference data sets kept in ``benchmarks/data``, with mclust's results
for them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent / "data"

MCLUST_RESULTS = {
    "faithful": {"covariance_type": "tied", "n_components": 3,
                 "log_likelihood": -1126.326, "bic": 2314.316},
    "diabetes": {"covariance_type": "full", "n_components": 3,
                 "log_likelihood": -2303.496, "bic": 4751.316},
}
"""mclust 6.0.0's choice, ``Mclust(X, G = 1:9, modelNames = c("VII", "VVI",
"EEE", "VVV"))`` (the four covariance types scikit-learn also has), its
log-likelihood and BIC in scikit-learn's sign (lower is better)."""


def load_reference(name: str) -> np.ndarray:
    """The rows of ``benchmarks/data/<name>.csv`` (header skipped), float64."""
    return np.loadtxt(DATA / f"{name}.csv", delimiter=",", skiprows=1)
