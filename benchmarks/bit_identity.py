"""Fitted parameters of fixed fits, saved to compare two versions of the code bit for bit.

Usage::

    python benchmarks/bit_identity.py save OUT.npz
    python benchmarks/bit_identity.py compare BEFORE.npz AFTER.npz

``save`` runs batch fits of every covariance type (float64 and float32 data),
``n_init``, ``warm_start``, ``max_iter=0``, :func:`streamgmm.select`, a batch
and an online fit interrupted by an error in the middle and resumed from their
checkpoint, online fits (plain, averaged, step floor), ``partial_fit`` calls and
a model file written and read back, and stores every fitted attribute (the
history without its elapsed seconds). ``compare`` exits 1 unless both files
hold the same names with the same dtypes, shapes and bytes.
"""

from __future__ import annotations

import sys
import tempfile
import warnings
from pathlib import Path

import dask.array as da
import numpy as np

from streamgmm import GaussianMixture, load, save, select
from streamgmm.datasets import make_mixture

ATTRIBUTES = (
    "weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_",
    "lower_bound_", "lower_bounds_", "n_iter_", "converged_",
    "n_steps_", "n_samples_seen_", "n_averaged_",
)
STATISTICS = ("running_statistics_", "averaged_statistics_")


class Interrupted(Exception):
    """Raised by :func:`failing_rows` to stop a fit in the middle."""


def failing_rows(X: np.ndarray, chunk_rows: int, fail_after: int) -> da.Array:
    """X as Dask rows whose ``fail_after``-th non-empty block read raises."""
    reads = [0]

    def count(block):
        if block.size:
            reads[0] += 1
            if reads[0] == fail_after:
                raise Interrupted(f"read {reads[0]}")
        return block

    source = da.from_array(X, chunks=(chunk_rows, X.shape[1]))
    return source.map_blocks(count, dtype=X.dtype)


def attributes(model: GaussianMixture) -> dict[str, np.ndarray]:
    """Every fitted attribute of ``model`` as arrays (scalars 0-d)."""
    found = {}
    for name in ATTRIBUTES:
        if hasattr(model, name):
            found[name] = np.asarray(getattr(model, name))
            if name == "lower_bounds_":
                found["lower_bounds_dtypes"] = np.array(
                    [np.dtype(type(v)).str for v in model.lower_bounds_] or [""]
                )
    if hasattr(model, "lower_bound_"):
        found["lower_bound_type"] = np.array(type(model.lower_bound_).__name__)
    for name in STATISTICS:
        stats = getattr(model, name, None)
        if stats is not None:
            for field in ("weight", "mean", "scatter", "log_likelihood", "n_samples"):
                found[f"{name}{field}"] = np.asarray(getattr(stats, field))
    for key in ("passes", "log_likelihood"):
        if key in getattr(model, "history_", {}):
            found[f"history_{key}"] = np.asarray(model.history_[key], dtype=np.float64)
    return found


def fits(folder: Path) -> dict[str, GaussianMixture]:
    X, _, _ = make_mixture(3000, n_components=3, n_features=3, separation=2.5, random_state=3)
    X32 = (X + 100.0).astype(np.float32)
    models = {}
    for cov in ("full", "tied", "diag", "spherical"):
        models[f"fit-{cov}"] = GaussianMixture(3, covariance_type=cov, random_state=0).fit(X)
        models[f"fit32-{cov}"] = GaussianMixture(
            3, covariance_type=cov, random_state=1, tol=1e-5
        ).fit(X32)
        models[f"n_init-{cov}"] = GaussianMixture(
            3, covariance_type=cov, n_init=3, init_params="random", max_iter=15, random_state=2
        ).fit(X)
        models[f"online-{cov}"] = GaussianMixture(
            3, covariance_type=cov, algorithm="online", max_iter=3, batch_size=200,
            random_state=4,
        ).fit(X)
    models["float32_products"] = GaussianMixture(
        3, float32_products=True, random_state=0, max_iter=10
    ).fit(X32)
    warm = GaussianMixture(3, random_state=0, max_iter=3, warm_start=True).fit(X)
    models["warm_start"] = warm.fit(X)
    models["max_iter0"] = GaussianMixture(3, n_init=2, max_iter=0, random_state=0).fit(X)
    models["online-averaged"] = GaussianMixture(
        3, algorithm="online", averaging=True, max_iter=2, batch_size=300, random_state=5
    ).fit(X)
    models["online-floor-noshuffle"] = GaussianMixture(
        3, algorithm="online", step_floor=0.05, shuffle=False, max_iter=2, batch_size=256,
        random_state=6,
    ).fit(da.from_array(X, chunks=(700, 3)))
    partial = GaussianMixture(3, batch_size=128, random_state=7)
    for begin in range(0, 3000, 500):
        partial.partial_fit(X[begin : begin + 500])
    models["partial_fit"] = partial
    online_then_partial = GaussianMixture(
        3, algorithm="online", max_iter=1, batch_size=256, random_state=8
    ).fit(X)
    models["online-then-partial_fit"] = online_then_partial.partial_fit(X[:700])

    best, table = select(
        X, n_components=[2, 3, 4], covariance_types=("full", "diag", "tied", "spherical"),
        n_init=2, random_state=9, max_iter=30,
    )
    models["select-best"] = best
    models["select-table"] = table

    settings = dict(n_components=3, n_init=2, max_iter=12, tol=0.0, random_state=5)
    path = folder / "batch.ckpt"
    try:
        GaussianMixture(**settings).fit(failing_rows(X, 500, 40), checkpoint=path)
    except Interrupted:
        pass
    else:
        raise AssertionError("the interrupted batch fit finished")
    models["checkpoint-batch-resumed"] = GaussianMixture(**settings).fit(
        failing_rows(X, 500, 10**9), checkpoint=path
    )
    models["checkpoint-batch-whole"] = GaussianMixture(**settings).fit(
        failing_rows(X, 500, 10**9)
    )
    settings = dict(
        n_components=3, algorithm="online", max_iter=3, tol=0.0, batch_size=100, random_state=6
    )
    path = folder / "online.ckpt"
    try:
        GaussianMixture(**settings).fit(
            failing_rows(X, 300, 17), checkpoint=path, checkpoint_every=4
        )
    except Interrupted:
        pass
    else:
        raise AssertionError("the interrupted online fit finished")
    models["checkpoint-online-resumed"] = GaussianMixture(**settings).fit(
        failing_rows(X, 300, 10**9), checkpoint=path, checkpoint_every=4
    )
    for name in ("fit-full", "fit32-tied", "online-averaged", "partial_fit"):
        save(models[name], folder / f"{name}.zarr")
        models[f"loaded-{name}"] = load(folder / f"{name}.zarr")
    return models


def collect() -> dict[str, np.ndarray]:
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models = fits(Path(folder))
    arrays = {}
    for label, model in models.items():
        if label == "select-table":
            for name, variable in model.data_vars.items():
                arrays[f"{label}/{name}"] = np.asarray(variable.values)
            continue
        for name, value in attributes(model).items():
            arrays[f"{label}/{name}"] = value
    return arrays


def compare(before: Path, after: Path) -> int:
    with np.load(before) as a, np.load(after) as b:
        names = sorted(set(a.files) | set(b.files))
        differing = [
            name for name in names
            if name not in a.files or name not in b.files
            or a[name].dtype != b[name].dtype or a[name].shape != b[name].shape
            or a[name].tobytes() != b[name].tobytes()
        ]
    print(f"{len(names)} arrays compared, {len(differing)} differ")
    for name in differing:
        print("  differs:", name)
    return 1 if differing else 0


def main() -> int:
    if sys.argv[1:2] == ["save"]:
        np.savez(sys.argv[2], **collect())
        return 0
    if sys.argv[1:2] == ["compare"]:
        return compare(Path(sys.argv[2]), Path(sys.argv[3]))
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
