"""Tabular input (issue 18, Must show 2 and 3): Parquet and CSV tables read out of
core, pandas and Dask frames as X, outputs on the table's index, clear errors."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import streamgmm
from streamgmm import tables
from streamgmm.cli import main
from streamgmm.datasets import random_mixture, sample_mixture

K, D = 3, 3
COLUMNS = ["a", "b", "c"]
WORKTREE = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def truth():
    return random_mixture(K, D, separation=5.0, random_state=3)


@pytest.fixture(scope="module")
def rows(truth):
    X, _ = sample_mixture(truth, 12_000, random_state=3)
    return X


def start_of(truth):
    return {
        "weights_init": truth.weights,
        "means_init": truth.means + 0.3,
        "precisions_init": np.linalg.inv(truth.covariances),
    }


def write_parquet_folder(folder, X, n_files=4, row_group_size=None, index=None, text=True):
    """X in ``n_files`` Parquet files (with a text column, not a feature) and
    ``index`` (default 0..n-1) as the frame's index."""
    folder.mkdir()
    frame = pd.DataFrame(X, columns=COLUMNS, index=index)
    if text:
        frame["name"] = [f"row {i}" for i in range(len(frame))]
    for number, part in enumerate(np.array_split(np.arange(len(frame)), n_files)):
        frame.iloc[part].to_parquet(
            folder / f"part-{number}.parquet", row_group_size=row_group_size
        )
    return frame


def fit(X, truth, **options):
    model = streamgmm.GaussianMixture(K, tol=1e-10, max_iter=200, **start_of(truth), **options)
    return model.fit(X)


def assert_same_fit(model, reference):
    for name in ("weights_", "means_", "covariances_"):
        np.testing.assert_allclose(
            getattr(model, name), getattr(reference, name), rtol=0, atol=1e-10
        )
    assert model.n_iter_ == reference.n_iter_


def test_parquet_folder_glob_and_csv_fits_equal_the_numpy_fit(
    tmp_path, rows, truth, monkeypatch
):
    """Must show 2: a folder of Parquet files (several row groups each, so many
    chunks), a glob of them, and a CSV file read in several blocks fit as the
    same rows in a NumPy array, to 1e-10."""
    write_parquet_folder(tmp_path / "rows.parquet", rows, row_group_size=1000)
    reference = fit(rows, truth)
    assert reference.converged_
    source = tables.table_source(tmp_path / "rows.parquet")
    assert source.columns == tuple(COLUMNS) and source.skipped == ("name",)
    assert len(source.lengths) == 12 and sum(source.lengths) == len(rows)
    for path in (tmp_path / "rows.parquet", str(tmp_path / "rows.parquet" / "*.parquet")):
        model = fit(path, truth)
        assert_same_fit(model, reference)
        assert list(model.feature_names_in_) == COLUMNS

    monkeypatch.setattr(tables, "CSV_BLOCK_BYTES", 100_000)
    table = pd.DataFrame(rows, columns=COLUMNS).assign(name="x")
    table.to_csv(tmp_path / "rows.csv", index=False)
    parsed = pd.read_csv(tmp_path / "rows.csv")[COLUMNS].to_numpy()
    np.testing.assert_allclose(parsed, rows, rtol=1e-15, atol=0)
    source = tables.table_source(tmp_path / "rows.csv")
    assert len(source.lengths) > 3 and sum(source.lengths) == len(rows)
    assert_same_fit(fit(source, truth), fit(parsed, truth))


def test_frames_as_x_give_results_on_their_index(rows, truth):
    index = pd.Index(np.arange(len(rows))[::-1] * 10, name="id")
    frame = pd.DataFrame(rows, columns=COLUMNS, index=index)
    lazy = dd.from_pandas(frame, npartitions=5, sort=False)
    reference = fit(rows, truth)
    for X in (frame, lazy):
        model = fit(X, truth)
        assert_same_fit(model, reference)
        labels, proba = model.predict(X), model.predict_proba(X)
        log_densities = model.score_samples(X)
        if X is lazy:
            assert isinstance(labels, dd.Series) and isinstance(proba, dd.DataFrame)
            labels, proba = labels.compute(), proba.compute()
            log_densities = log_densities.compute()
        assert isinstance(labels, pd.Series) and labels.name == "label"
        assert labels.index.equals(index) and proba.index.equals(index)
        assert list(proba.columns) == tables.responsibility_columns(K)
        np.testing.assert_array_equal(labels.to_numpy(), reference.predict(rows))
        np.testing.assert_allclose(proba.to_numpy(), reference.predict_proba(rows), atol=1e-12)
        np.testing.assert_allclose(
            log_densities.to_numpy(), reference.score_samples(rows), atol=1e-10
        )
        assert model.score(X) == pytest.approx(reference.score(rows), abs=1e-12)
    online = streamgmm.GaussianMixture(K, algorithm="online", random_state=0, **start_of(truth))
    online.partial_fit(frame.iloc[:6000]).partial_fit(frame.iloc[6000:])
    assert list(online.feature_names_in_) == COLUMNS and np.all(np.isfinite(online.means_))


def test_predict_on_parquet_writes_labels_aligned_with_its_index(tmp_path, rows, truth):
    """Must show 2: the labels file has the table's index, row for row, one row
    group per row group of the input; a rerun replaces it, other files are refused."""
    order = np.random.default_rng(0).permutation(len(rows))
    index = pd.Index(order * 7 + 100, name="id")
    write_parquet_folder(tmp_path / "rows", rows, n_files=3, row_group_size=2000, index=index)
    model = fit(rows, truth)
    model_path = tmp_path / "model.zarr"
    streamgmm.save(model, model_path)
    out = tmp_path / "labels.parquet"
    for proba in (["--proba"], []):
        result = CliRunner().invoke(
            main, ["predict", str(model_path), str(tmp_path / "rows"), "--out", str(out), *proba]
        )
        assert result.exit_code == 0, result.output
        assert "columns of" in result.output and "not used: name" in result.output
    written = pd.read_parquet(out)
    assert written.index.equals(index) and list(written.columns) == ["label"]
    np.testing.assert_array_equal(written["label"].to_numpy(), model.predict(rows))
    assert pq.read_metadata(out).num_row_groups == 6
    result = CliRunner().invoke(
        main, ["predict", str(model_path), str(tmp_path / "rows"), "--out", str(out), "--proba"]
    )
    written = pd.read_parquet(out)
    np.testing.assert_allclose(
        written[tables.responsibility_columns(K)].to_numpy(), model.predict_proba(rows), atol=1e-12
    )
    notes = tmp_path / "notes.parquet"
    notes.write_bytes(b"PAR1 not ours")
    predict = ["predict", str(model_path), str(tmp_path / "rows"), "--out"]
    result = CliRunner().invoke(main, [*predict, str(notes)])
    assert result.exit_code == 1 and "refusing to overwrite" in result.output
    assert notes.read_bytes() == b"PAR1 not ours"
    result = CliRunner().invoke(main, [*predict, str(tmp_path / "rows" / "part-0.parquet"),
                                       "--overwrite"])
    assert result.exit_code == 1 and "input" in result.output


READ_AND_REPORT = textwrap.dedent(
    """
    import json, sys
    import dask.array as da
    from streamgmm.inputs import as_rows

    def kib(key):
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith(key))

    da.sum(as_rows(sys.argv[1]).array, axis=0).compute()  # imports, pools, warm-up
    with open("/proc/self/clear_refs", "w") as file:
        file.write("5")  # the peak (VmHWM) starts again from the current size
    before = kib("VmRSS:")
    data = as_rows(sys.argv[2])
    totals = da.sum(data.array, axis=0).compute()
    print(json.dumps({"growth": (kib("VmHWM:") - before) * 1024, "rows": data.n_samples,
                      "chunk": max(data.array.chunks[0]) * data.n_features * 8,
                      "totals": totals.tolist()}))
    """
)


def test_reading_a_million_row_parquet_dataset_holds_under_three_chunks(tmp_path, truth):
    """Must show 2 (memory): a pass over 10^6 rows of 16 features in 4 Parquet
    files (chunks of 32 MB, 128 MB in all) peaks below 3 chunks above the size
    before the pass, measured in a fresh process (VmHWM, reset)."""
    n_features, n_files, rows_per_file = 16, 4, 250_000
    wide = random_mixture(K, n_features, random_state=1)
    totals = np.zeros(n_features)
    for name, count in (("small", 1), ("large", n_files)):
        (tmp_path / name).mkdir()
        for number in range(count):
            X, _ = sample_mixture(wide, rows_per_file if name == "large" else 5000, number)
            totals += X.sum(axis=0) if name == "large" else 0.0
            pd.DataFrame(X, columns=[f"x{j}" for j in range(n_features)]).to_parquet(
                tmp_path / name / f"part-{number}.parquet"
            )
    result = subprocess.run(
        [sys.executable, "-c", READ_AND_REPORT, str(tmp_path / "small"), str(tmp_path / "large")],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(WORKTREE)),
        timeout=300,
        check=True,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    data_bytes = n_files * rows_per_file * n_features * 8
    mib = {key: report[key] / 2**20 for key in ("growth", "chunk")}
    print(f"peak growth {mib['growth']:.1f} MiB, chunk {mib['chunk']:.1f} MiB, "
          f"data {data_bytes / 2**20:.1f} MiB")
    assert report["rows"] == n_files * rows_per_file
    assert report["chunk"] == rows_per_file * n_features * 8
    assert report["growth"] < 3 * report["chunk"]
    np.testing.assert_allclose(report["totals"], totals, rtol=1e-9)
