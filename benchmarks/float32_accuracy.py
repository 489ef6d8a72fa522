"""Float32 input: how far streamgmm's and scikit-learn's float32 fits are from
scikit-learn's float64 fit of the same values.

Usage: python benchmarks/float32_accuracy.py [--iterations 10]

Both fits start from the same parameters (two scikit-learn iterations, rounded
to float32, the weights to multiples of 2**-20 so they still sum to 1) and run
``--iterations`` EM iterations with ``tol=0``. streamgmm runs EM in float64 and
rounds its attributes to float32; scikit-learn runs EM in float32. The table
gives max |fit - reference| / max |reference| per attribute; float32 rounding
alone is up to 2**-24 = 6e-8 of a value.
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.mixture import GaussianMixture as SklearnMixture

from streamgmm import GaussianMixture
from streamgmm.datasets import make_mixture

ATTRIBUTES = ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_")


def float32_start(X64: np.ndarray, n_components: int, covariance_type: str) -> dict:
    """Starting arrays exactly representable in float32, the weights summing to 1."""
    start = SklearnMixture(
        n_components, covariance_type=covariance_type, max_iter=2, random_state=0
    ).fit(X64)
    weights = np.round(start.weights_ * 2**20) / 2**20
    weights[-1] = 1.0 - weights[:-1].sum()
    return {
        "weights_init": weights.astype(np.float32),
        "means_init": start.means_.astype(np.float32),
        "precisions_init": start.precisions_.astype(np.float32),
    }


def relative_errors(X32: np.ndarray, n_components: int, covariance_type: str, iterations: int):
    """(streamgmm, scikit-learn float32) errors per attribute against the reference."""
    start = float32_start(X32.astype(np.float64), n_components, covariance_type)
    settings = dict(
        n_components=n_components, covariance_type=covariance_type, max_iter=iterations, tol=0.0
    )
    reference = SklearnMixture(
        **settings, **{name: value.astype(np.float64) for name, value in start.items()}
    ).fit(X32.astype(np.float64))
    ours = GaussianMixture(**settings, **start).fit(X32)
    theirs = SklearnMixture(**settings, **start).fit(X32)
    rows = {}
    for name in ATTRIBUTES:
        truth = getattr(reference, name)
        scale = np.abs(truth).max()
        rows[name] = tuple(
            float(np.abs(getattr(model, name).astype(np.float64) - truth).max() / scale)
            for model in (ours, theirs)
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=10)
    args = parser.parse_args()
    synthetic, _, _ = make_mixture(4000, n_components=4, n_features=5, separation=3.0,
                                   random_state=3)
    datasets = {"synthetic 4000x5, K=4": (synthetic, 4), "digits 1797x64, K=10":
                (load_digits().data, 10)}
    print("| data | covariance | attribute | streamgmm float32 | scikit-learn float32 |")
    print("| --- | --- | --- | --- | --- |")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for label, (X, n_components) in datasets.items():
            for covariance_type in ("full", "tied", "diag", "spherical"):
                errors = relative_errors(
                    X.astype(np.float32), n_components, covariance_type, args.iterations
                )
                for name, (ours, theirs) in errors.items():
                    print(f"| {label} | {covariance_type} | {name} | {ours:.1e} | {theirs:.1e} |")


if __name__ == "__main__":
    main()
