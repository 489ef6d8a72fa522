"""Climate regimes: a mixture fitted to a gridded xarray Dataset.

A climate-like Dataset holds several variables on a (time, lat, lon) grid. A
mixture model wants rows of features, so the example

1. writes the Dataset to Zarr and opens it lazily (Dask-backed), as one would a
   reanalysis or model output;
2. turns the variables into a ``feature`` dimension and stacks (time, lat, lon)
   into one ``sample`` dimension, then standardises every feature;
3. fits a GaussianMixture to the stacked DataArray (nothing is loaded at once);
4. labels every sample and unstacks the labels back onto the grid, with the
   original time, lat and lon coordinates, and writes them to Zarr.

The synthetic climate has three zones by latitude (tropical: warm and wet;
temperate: mild with a seasonal cycle; polar: cold and dry); the fitted regimes
should find them.

    python examples/xarray_climate.py              # 2 years, 2.5 degree grid
    python examples/xarray_climate.py --small      # a quick run
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import xarray as xr

import streamgmm
from streamgmm.outputs import write_zarr

ZONES = ("tropical", "temperate", "polar")


def climate_zone(lat: np.ndarray) -> np.ndarray:
    """0 tropical (|lat| < 23), 1 temperate (< 60), 2 polar, for every latitude."""
    return np.digitize(np.abs(lat), [23.0, 60.0])


def synthetic_climate(n_days: int, resolution: float, seed: int = 0) -> xr.Dataset:
    """Daily temperature (degC), log precipitation (log mm/day) and relative
    humidity (%) on a regular grid, drawn per zone with a seasonal cycle."""
    rng = np.random.default_rng(seed)
    time = pd.date_range("2001-01-01", periods=n_days, freq="D")
    lat = np.arange(-90 + resolution / 2, 90, resolution)
    lon = np.arange(0, 360, resolution)
    zone = climate_zone(lat)[None, :, None]
    season = np.sin(2 * np.pi * time.day_of_year.values / 365.25)[:, None, None]
    hemisphere = np.sign(lat)[None, :, None]
    shape = (n_days, lat.size, lon.size)
    mean_temperature = np.array([27.0, 12.0, -15.0])[zone]
    seasonal_amplitude = np.array([1.0, 6.0, 10.0])[zone]
    temperature = (
        mean_temperature
        + seasonal_amplitude * season * hemisphere
        + rng.normal(scale=2.0, size=shape)
    )
    log_precipitation = np.array([2.0, 0.8, -0.8])[zone] + rng.normal(scale=0.5, size=shape)
    humidity = np.array([80.0, 65.0, 55.0])[zone] + rng.normal(scale=6.0, size=shape)
    dims = ("time", "lat", "lon")
    return xr.Dataset(
        {
            "temperature": (dims, temperature.astype("float32"), {"units": "degC"}),
            "log_precipitation": (dims, log_precipitation.astype("float32")),
            "humidity": (dims, humidity.astype("float32"), {"units": "%"}),
        },
        coords={"time": time, "lat": lat, "lon": lon},
    )


def stack_features(dataset: xr.Dataset) -> xr.DataArray:
    """(time, lat, lon) variables -> a standardised (sample, feature) DataArray."""
    features = dataset.to_dataarray("feature")
    stacked = features.stack(sample=("time", "lat", "lon")).transpose("sample", "feature")
    # One pass for the scale of every feature; computed now so that every EM pass
    # does not recompute it.
    mean, std = xr.align(*dask.compute(stacked.mean("sample"), stacked.std("sample")))
    return (stacked - mean) / std


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="60 days on a 10 degree grid")
    parser.add_argument("--folder", type=Path, default=None, help="default: a temporary folder")
    args = parser.parse_args(argv)
    n_days, resolution = (60, 10.0) if args.small else (730, 2.5)
    scratch = tempfile.TemporaryDirectory(prefix="streamgmm-climate-")
    folder = args.folder or Path(scratch.name)
    folder.mkdir(parents=True, exist_ok=True)

    # 1. A gridded Dataset on disk, opened lazily in chunks of 30 days.
    #    write_zarr replaces a store only if it carries the same format marker, so a
    #    rerun replaces this example's stores and never a store of yours.
    write_zarr(
        synthetic_climate(n_days, resolution).chunk({"time": 30}),
        folder / "climate.zarr",
        "streamgmm.example.climate",
    )
    climate = xr.open_zarr(folder / "climate.zarr", chunks={"time": 30}, consolidated=False)
    print(f"climate: {dict(climate.sizes)}, variables {list(climate.data_vars)}")

    # 2. Rows of features: one row per (time, lat, lon) point.
    X = stack_features(climate)
    print(
        f"stacked: {dict(X.sizes)} ({X.sizes['sample']:,} samples), lazy: {X.chunks is not None}"
    )

    # 3. Fit: the DataArray's first dimension indexes samples.
    model = streamgmm.GaussianMixture(3, covariance_type="full", random_state=0)
    model.fit(X)
    print(f"fitted: {model.n_iter_} iterations, mean log-likelihood {model.lower_bound_:.4f}")
    parameters = model.to_xarray()
    print(parameters["means"].assign_coords(feature=X["feature"].values).round(2).to_pandas())

    # 4. Labels back on the grid: predict keeps the stacked coordinates, unstack restores
    #    (time, lat, lon).
    labels = model.predict(X).unstack("sample").transpose("time", "lat", "lon")
    regimes = labels.rename("regime").to_dataset()
    regimes["regime"].attrs["description"] = "most likely mixture component"
    write_zarr(
        regimes,
        folder / "regimes.zarr",
        "streamgmm.example.regimes",
        inputs=[folder / "climate.zarr"],
    )
    regimes = xr.open_zarr(folder / "regimes.zarr", consolidated=False).load()

    # How well the regimes match the zones, by the most common regime of each zone.
    zone = xr.DataArray(climate_zone(regimes["lat"].values), dims="lat")
    agreement = {}
    for index, name in enumerate(ZONES):
        in_zone = regimes["regime"].where(zone == index)
        counts = np.bincount(in_zone.values[np.isfinite(in_zone.values)].astype(int), minlength=3)
        agreement[name] = counts.max() / counts.sum()
        print(f"{name:>9}: regime {counts.argmax()} on {agreement[name]:.1%} of its points")
    return {"model": model, "regimes": regimes, "agreement": agreement, "X": X}


if __name__ == "__main__":
    main()
