"""What replacing outputs safely costs: ``streamgmm.save`` and
``streamgmm.save_predictions`` (check the path, write a sibling, flush it to
disk, swap it in, delete the old one) against xarray's ``to_zarr(mode="w")`` of
the same Dataset over the same path (what streamgmm did before issue 13), in
the same run.

Usage::

    python benchmarks/save_outputs.py [--rows N] [--repeats R] [--folder F] [--json out.json]

Cases: a model with K = 8 components in d = 16 (full), a model with K = 40 in
d = 40 (full), and the labels of N rows (chunks of 131,072 rows, computed from a
Zarr store) written as a prediction store. Every time is the best of R
replacements of an existing output.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

import streamgmm
from streamgmm import GaussianMixture
from streamgmm.datasets import random_mixture, write_mixture_zarr
from streamgmm.inputs import open_zarr_array
from streamgmm.io import model_to_dataset, predictions_dataset


def best_of(repeats: int, action) -> float:
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - began)
    return best


def fitted_model(n_components: int, n_features: int) -> GaussianMixture:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(max(4000, 20 * n_components), n_features))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GaussianMixture(n_components, max_iter=2, random_state=0).fit(X)


def model_case(model, folder: Path, repeats: int) -> dict:
    safe, plain = folder / "safe.zarr", folder / "plain.zarr"
    dataset = model_to_dataset(model)
    streamgmm.save(model, safe)
    dataset.to_zarr(plain, mode="w", consolidated=False)
    return {
        "streamgmm.save": best_of(repeats, lambda: streamgmm.save(model, safe)),
        "to_zarr(mode='w')": best_of(
            repeats, lambda: dataset.to_zarr(plain, mode="w", consolidated=False)
        ),
    }


def predictions_case(rows: int, folder: Path, repeats: int) -> dict:
    truth = random_mixture(8, 16, random_state=0)
    data = folder / "rows.zarr"
    write_mixture_zarr(data, rows, truth, chunk_rows=131_072)
    model = fitted_model(8, 16)
    safe, plain = folder / "labels-safe.zarr", folder / "labels-plain.zarr"
    dataset = predictions_dataset(model, open_zarr_array(data), False)
    streamgmm.save_predictions(model, data, safe)
    dataset.to_zarr(plain, mode="w", consolidated=False)
    return {
        "streamgmm.save_predictions": best_of(
            repeats, lambda: streamgmm.save_predictions(model, data, safe)
        ),
        "to_zarr(mode='w')": best_of(
            repeats, lambda: dataset.to_zarr(plain, mode="w", consolidated=False)
        ),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--folder", type=Path, default=None, help="where to write (default: the temp folder)"
    )
    args = parser.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory(prefix="streamgmm-save-", dir=args.folder) as directory:
        folder = Path(directory)
        for n_components, n_features in ((8, 16), (40, 40)):
            name = f"model K={n_components} d={n_features} full"
            model = fitted_model(n_components, n_features)
            results[name] = model_case(model, folder, args.repeats)
        results[f"labels of {args.rows:,} rows"] = predictions_case(
            args.rows, folder, args.repeats
        )
    for name, seconds in results.items():
        (safe, safe_time), (peer, peer_time) = seconds.items()
        print(
            f"{name:<32} {safe} {safe_time * 1e3:8.1f} ms   {peer} {peer_time * 1e3:8.1f} ms"
            f"   ratio {safe_time / peer_time:5.2f}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
