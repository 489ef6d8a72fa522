"""The ``streamgmm`` command line."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import click
import numpy as np

from .datasets import match_components, random_mixture, write_mixture_zarr
from .mixture import GaussianMixture


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="streamgmm")
def main() -> None:
    """Fit Gaussian mixture models to data larger than memory."""


@main.command()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for the Zarr store (default: a temporary folder, removed afterwards).",
)
@click.option("--n-samples", default=2_000_000, show_default=True, help="Rows to generate.")
@click.option("--n-components", default=5, show_default=True, help="Mixture components.")
@click.option("--n-features", default=4, show_default=True, help="Features per row.")
@click.option("--chunk-rows", default=250_000, show_default=True, help="Rows per Zarr chunk.")
@click.option("--seed", default=0, show_default=True, help="Seed for data and fit.")
def demo(
    out_dir: Path | None,
    n_samples: int,
    n_components: int,
    n_features: int,
    chunk_rows: int,
    seed: int,
) -> None:
    """Write a synthetic mixture to a Zarr store and fit it out of core with
    the local Dask scheduler."""
    with tempfile.TemporaryDirectory(prefix="streamgmm-demo-") as scratch:
        folder = out_dir if out_dir is not None else Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        store = folder / "mixture.zarr"
        truth = random_mixture(n_components, n_features, random_state=seed)
        started = time.perf_counter()
        write_mixture_zarr(store, n_samples, truth, chunk_rows=chunk_rows, random_state=seed)
        click.echo(
            f"wrote {n_samples:,} rows x {n_features} features to {store} "
            f"in {time.perf_counter() - started:.1f} s"
        )
        model = GaussianMixture(n_components, random_state=seed, tol=1e-4)
        started = time.perf_counter()
        model.fit(store)
        elapsed = time.perf_counter() - started
        pairs = match_components(truth.means, model.means_)
        mean_error = np.abs(model.means_[pairs] - truth.means).max()
        weight_error = np.abs(model.weights_[pairs] - truth.weights).max()
        click.echo(
            f"batch EM: {model.n_iter_} iterations in {elapsed:.1f} s, "
            f"mean log-likelihood {model.lower_bound_:.5f}, converged={model.converged_}"
        )
        click.echo(
            f"recovery: largest error of a mean {mean_error:.4f}, of a weight {weight_error:.5f}"
        )


if __name__ == "__main__":
    main()
