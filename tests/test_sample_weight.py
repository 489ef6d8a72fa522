"""Weighted rows (issue 17): a row of weight w counts as w rows in every fit.

Integer weights equal repeated rows, from every kind of input and on a real
two-process LocalCluster; scaling the weights changes nothing; bad weights get
one clear error and leave a fitted model as it was; the initialisations draw
and weigh rows by weight; score and the criteria count the weights."""


import contextlib
import warnings

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr
from unconverged import fit_warning_if_unconverged

from streamgmm import ConvergenceWarning, GaussianMixture
from streamgmm.datasets import make_mixture

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
FITTED = ("weights_", "means_", "covariances_", "precisions_cholesky_")
ATTRIBUTES = (*FITTED, "precisions_", "lower_bound_", "lower_bounds_", "n_iter_", "converged_")
CHUNK_ROWS = 150


@contextlib.contextmanager
def no_convergence_warning():
    """Online EM runs its passes without a ConvergenceWarning (issue 29, item 7)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        yield



@pytest.fixture(scope="module")
def weighted_data():
    """600 rows of 3 components in 3-D, integer weights in {0, 1, 2, 3}, and
    the rows repeated that many times (zero-weight rows dropped)."""
    X, _, _ = make_mixture(600, n_components=3, n_features=3, separation=3.0, random_state=4)
    weights = np.random.default_rng(5).integers(0, 4, size=X.shape[0])
    return X, weights, np.repeat(X, weights, axis=0)


def fixed_start(X, covariance_type):
    """``*_init`` of a k-means start on X, so that both fits start alike."""
    start = GaussianMixture(3, covariance_type=covariance_type, max_iter=0, random_state=0).fit(X)
    return {
        "weights_init": start.weights_,
        "means_init": start.means_,
        "precisions_init": start.precisions_,
    }


def model(covariance_type, X, **options):
    return GaussianMixture(
        3, covariance_type=covariance_type, tol=1e-6, max_iter=200,
        **fixed_start(X, covariance_type), **options,
    )


def assert_same_fit(fitted, reference, rtol=1e-10):
    for name in FITTED:
        np.testing.assert_allclose(
            getattr(fitted, name), getattr(reference, name), rtol=rtol, atol=rtol,
            err_msg=f"{name} differs",
        )
    assert fitted.n_iter_ == reference.n_iter_
    assert fitted.lower_bound_ == pytest.approx(reference.lower_bound_, rel=rtol, abs=rtol)


def write_zarr(path, values, chunk_rows=CHUNK_ROWS):
    array = zarr.create_array(
        store=str(path), shape=values.shape, chunks=(chunk_rows, *values.shape[1:]),
        dtype=values.dtype,
    )
    array[:] = values
    return str(path)


def inputs_of(kind, X, weights, tmp_path):
    """X and its weights as ``kind`` of input."""
    if kind == "numpy":
        return X, weights
    if kind == "dask":
        return da.from_array(X, chunks=(CHUNK_ROWS, -1)), da.from_array(weights, chunks=97)
    if kind == "zarr":
        return write_zarr(tmp_path / "X.zarr", X), write_zarr(tmp_path / "w.zarr", weights, 64)
    coords = {"sample": np.arange(X.shape[0]) * 10}
    return (
        xr.DataArray(X, dims=("sample", "feature"), coords=coords),
        xr.DataArray(weights, dims=("sample",), coords=coords),
    )


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("kind", ["numpy", "dask", "zarr", "xarray"])
def test_integer_weights_equal_repeated_rows(weighted_data, covariance_type, kind, tmp_path):
    X, weights, repeated = weighted_data
    X_in, weights_in = inputs_of(kind, X, weights, tmp_path)
    weighted = model(covariance_type, X).fit(X_in, sample_weight=weights_in)
    reference = model(covariance_type, X).fit(repeated)
    assert reference.n_iter_ > 2 and reference.converged_
    assert_same_fit(weighted, reference)
    assert weighted.score(X_in, sample_weight=weights_in) == pytest.approx(
        reference.score(repeated), rel=1e-12
    )


def test_integer_weights_equal_repeated_rows_on_a_local_cluster(weighted_data):
    """Batch fits on two worker processes equal the repeated rows' fits, and a
    weighted online fit folded on the workers equals the same fit here."""
    distributed = pytest.importorskip("distributed")
    X, weights, repeated = weighted_data
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster),
    ):
        for covariance_type in COVARIANCE_TYPES:
            weighted = model(covariance_type, X).fit(
                da.from_array(X, chunks=(CHUNK_ROWS, -1)), sample_weight=weights
            )
            reference = model(covariance_type, X).fit(repeated)
            assert_same_fit(weighted, reference)
        with no_convergence_warning():
            online_on_cluster = online_model(X).fit(
                da.from_array(X, chunks=(CHUNK_ROWS, -1)), sample_weight=weights
            )
    with no_convergence_warning():
        online_here = online_model(X).fit(
            da.from_array(X, chunks=(CHUNK_ROWS, -1)), sample_weight=weights
        )
    assert_same_fit(online_on_cluster, online_here, rtol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_scaling_every_weight_changes_no_parameter(weighted_data, covariance_type):
    X, weights, _ = weighted_data
    real_weights = weights * np.random.default_rng(0).uniform(0.5, 2.0, X.shape[0])
    options = {"init_params": "k-means||", "random_state": 3}
    fits = [
        GaussianMixture(3, covariance_type=covariance_type, tol=1e-6, **options).fit(
            X, sample_weight=real_weights * scale
        )
        for scale in (1.0, 7.3, 1e-3)
    ]
    for fitted in fits[1:]:
        assert_same_fit(fitted, fits[0], rtol=1e-12)


def test_score_and_criteria_count_the_weights(weighted_data):
    X, weights, repeated = weighted_data
    fitted = model("full", X).fit(X, sample_weight=weights)
    for name in ("bic", "aic", "icl"):
        weighted = getattr(fitted, name)(X, sample_weight=weights)
        assert weighted == pytest.approx(getattr(fitted, name)(repeated), rel=1e-12)
    assert fitted.score(X, sample_weight=weights) != pytest.approx(fitted.score(X), rel=1e-6)


def test_weight_column_of_a_table(weighted_data, tmp_path):
    X, weights, repeated = weighted_data
    frame = pd.DataFrame(X, columns=["a", "b", "c"]).assign(count=weights)
    reference = model("diag", X).fit(repeated)
    assert_same_fit(model("diag", X).fit(frame, sample_weight="count"), reference)
    path = tmp_path / "rows.parquet"
    frame.to_parquet(path, row_group_size=200)
    from_table = model("diag", X).fit(str(path), sample_weight="count")
    assert_same_fit(from_table, reference)
    assert list(from_table.feature_names_in_) == ["a", "b", "c"]


# ------------------------------------------------------------------ bad weights
def bad_weights(X):
    """(name, weights, message) of every kind of bad weights for X."""
    n = X.shape[0]
    ones = np.ones(n)
    unknown = da.from_array(ones, chunks=100)
    unknown = unknown[unknown > -1]
    return [
        ("negative", np.where(np.arange(n) == 7, -1.0, ones), "1 negative value.*row 7"),
        ("nan", np.where(np.arange(n) == 11, np.nan, ones), "NaN or infinite.*row 11"),
        ("inf", np.where(np.arange(n) == 13, np.inf, ones), "NaN or infinite.*row 13"),
        ("short", ones[:-1], f"{n - 1} values but X has {n} rows"),
        ("long", np.ones(n + 5), f"{n + 5} values but X has {n} rows"),
        ("2-D", ones[:, None], "must be 1-D"),
        ("all zeros", np.zeros(n), "zero for every row"),
        ("unknown chunks", unknown, "chunks of unknown size"),
        ("text", np.array(["a"] * n), "real numbers"),
        ("wrong dim", xr.DataArray(ones, dims=("other",)), "along the sample dimension"),
    ]


@pytest.mark.parametrize("case", range(10))
def test_bad_weights_leave_a_fitted_model_as_it_was(weighted_data, case):
    X, weights, _ = weighted_data
    name, bad, message = bad_weights(X)[case]
    fitted = GaussianMixture(3, random_state=0).fit(X, sample_weight=weights)
    before = {attribute: np.copy(getattr(fitted, attribute)) for attribute in ATTRIBUTES}
    error = TypeError if name == "text" else ValueError
    X_in = xr.DataArray(X, dims=("sample", "feature")) if name == "wrong dim" else X
    with pytest.raises(error, match=message):
        fitted.fit(X_in, sample_weight=bad)
    with pytest.raises(error, match=message):
        fitted.score(X_in, sample_weight=bad)
    for attribute, value in before.items():
        np.testing.assert_array_equal(getattr(fitted, attribute), value, strict=True)


def test_too_few_rows_of_positive_weight(weighted_data):
    X, _, _ = weighted_data
    weights = np.zeros(X.shape[0])
    weights[:2] = 1.0
    with pytest.raises(ValueError, match="rows of positive weight=2 and n_components=3"):
        GaussianMixture(3).fit(X, sample_weight=weights)


# --------------------------------------------------------------- initialisation
@pytest.fixture(scope="module")
def outlying_data():
    """600 rows near the origin with weight 1..3 and 300 far outliers (at 1e3)
    with weight 0: a weighted start must never see the outliers."""
    X, _, _ = make_mixture(600, n_components=3, n_features=2, separation=3.0, random_state=2)
    rng = np.random.default_rng(3)
    outliers = 1e3 + rng.standard_normal((300, 2))
    rows = np.concatenate([X, outliers])
    order = rng.permutation(rows.shape[0])
    weights = np.concatenate([rng.integers(1, 4, 600), np.zeros(300)])
    return rows[order], weights[order].astype(float)


@pytest.mark.parametrize(
    "init_params", ["kmeans", "k-means++", "k-means||", "random_from_data", "hierarchical",
                    "random"]
)
def test_weighted_initialisation_never_uses_zero_weight_rows(outlying_data, init_params):
    """A zero-weight row chosen as a centre would keep its group's mean at the
    outliers (its group has no weight), so no start mean lies there."""
    X, weights = outlying_data
    options = {"init_params": init_params, "max_iter": 0, "random_state": 0}
    for seed in range(3):
        start = GaussianMixture(3, **{**options, "random_state": seed}).fit(
            X, sample_weight=weights
        )
        assert np.abs(start.means_).max() < 50
    unweighted = GaussianMixture(3, **options).fit(X)
    if init_params not in ("random_from_data", "hierarchical"):
        assert np.abs(unweighted.means_).max() > 50


@pytest.mark.parametrize("init_params", ["k-means||", "random"])
def test_weighted_initialisation_weighs_rows(weighted_data, init_params):
    """Statistics passes of the starts count every row's weight: scaling the
    weights leaves the start unchanged, and random responsibilities (drawn per
    row index) give the weighted means of the rows."""
    X, weights, _ = weighted_data
    options = {"init_params": init_params, "max_iter": 0, "random_state": 1}
    starts = [
        GaussianMixture(3, **options).fit(X, sample_weight=weights * scale)
        for scale in (1.0, 4.0)
    ]
    np.testing.assert_allclose(starts[0].means_, starts[1].means_, rtol=1e-12)
    np.testing.assert_allclose(starts[0].weights_, starts[1].weights_, rtol=1e-12)
    unweighted = GaussianMixture(3, **options).fit(X)
    assert not np.allclose(starts[0].means_, unweighted.means_, rtol=1e-6)


# ------------------------------------------------------------------ online EM
def online_model(X, covariance_type="full", **options):
    return GaussianMixture(
        3, covariance_type=covariance_type, algorithm="online", batch_size=128, max_iter=2,
        tol=0.0, random_state=0, **fixed_start(X, covariance_type), **options,
    )


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("kind", ["numpy", "dask"])
def test_online_steps_with_unit_weights_are_the_unweighted_steps(
    weighted_data, covariance_type, kind
):
    """Weight 1 for every row takes exactly the unweighted steps: the weighted
    kernel, the weight column through shuffles and leftovers, and the weight
    counts in place of row counts (burn-in, step sizes, n_samples_seen_)."""
    X, _, _ = weighted_data
    X_in = X if kind == "numpy" else da.from_array(X, chunks=(100, -1))
    with no_convergence_warning():
        plain = online_model(X, covariance_type).fit(X_in)
    with no_convergence_warning():
        weighted = online_model(X, covariance_type).fit(X_in, sample_weight=np.ones(len(X)))
    assert_same_fit(weighted, plain, rtol=1e-12)
    assert weighted.n_steps_ == plain.n_steps_
    assert weighted.n_samples_seen_ == plain.n_samples_seen_


def test_online_step_counts_the_batch_weight(weighted_data):
    """Doubling every weight changes nothing after the burn-in's first step
    (each batch's statistics are divided by its weight), and the weight seen
    is counted: n_samples_seen_ is the sum of the weights."""
    X, weights, _ = weighted_data
    fits = []
    for scale in (1.0, 2.0):
        with no_convergence_warning():
            fits.append(online_model(X).fit(X, sample_weight=weights * scale))
    assert fits[0].n_samples_seen_ == pytest.approx(2 * weights.sum())
    assert fits[1].n_samples_seen_ == pytest.approx(4 * weights.sum())
    assert_same_fit(fits[1], fits[0], rtol=1e-9)


def test_partial_fit_with_weights(weighted_data):
    X, weights, _ = weighted_data
    plain, weighted = (GaussianMixture(3, batch_size=50, **fixed_start(X, "full")) for _ in "ab")
    for part in np.array_split(np.arange(len(X)), 3):
        plain.partial_fit(X[part])
        weighted.partial_fit(X[part], sample_weight=np.ones(part.size))
    assert_same_fit(weighted, plain, rtol=1e-12)
    counted = GaussianMixture(3, batch_size=50, **fixed_start(X, "full")).partial_fit(
        X, sample_weight=weights
    )
    assert counted.n_samples_seen_ == pytest.approx(weights.sum())
    before = {name: np.copy(getattr(counted, name)) for name in ATTRIBUTES}
    bad = np.where(np.arange(len(X)) == 3, np.nan, 1.0)
    with pytest.raises(ValueError, match="NaN or infinite.*row 3"):
        counted.partial_fit(X, sample_weight=bad)
    for name, value in before.items():
        np.testing.assert_array_equal(getattr(counted, name), value, strict=True)


def collapsed_counts(n_rows=20_000, grid=0.1):
    """Rows of 3 overlapping components in 2-D rounded to ``grid``, collapsed
    into distinct rows and their counts (as ``benchmarks/online_counts.py``)."""
    X, _, _ = make_mixture(n_rows, n_components=3, n_features=2, separation=2.5, random_state=6)
    distinct, counts = np.unique(np.round(X / grid) * grid, axis=0, return_counts=True)
    return distinct, counts


def test_online_over_counts_reaches_the_batch_fit_in_two_passes():
    """20,000 rows rounded to 0.1 are about 3,000 distinct rows with counts up to
    about 50; batch EM over the counts converges in hundreds of passes."""
    distinct, counts = collapsed_counts()
    assert distinct.shape[0] < 3500 and counts.max() > 10
    start = fixed_start(distinct, "full")
    batch = GaussianMixture(3, tol=1e-7, max_iter=3000, **start).fit(
        distinct, sample_weight=counts
    )
    assert batch.converged_
    reference = batch.score(distinct, sample_weight=counts)
    online = GaussianMixture(
        3, algorithm="online", batch_size=64, max_iter=2, tol=0.0, random_state=0, **start
    )
    with no_convergence_warning():
        online.fit(distinct, sample_weight=counts)
    assert online.n_iter_ == 2
    assert -1e-3 < reference - online.score(distinct, sample_weight=counts) < 0.01


# ---------------------------------------------------------------- checkpoints
def failing_weights(weights, chunk_rows, fail_after):
    """Weights as Dask chunks whose ``fail_after``-th non-empty read raises."""
    reads = [0]

    def count(block):
        if block.size:
            reads[0] += 1
            if reads[0] == fail_after:
                raise KeyboardInterrupt(f"read {reads[0]}")
        return block

    return da.from_array(weights, chunks=chunk_rows).map_blocks(count, dtype=weights.dtype)


@pytest.mark.parametrize("algorithm", ["batch", "online"])
def test_weighted_fit_resumed_from_its_checkpoint(weighted_data, tmp_path, algorithm):
    X, weights, _ = weighted_data
    X_in = da.from_array(X, chunks=(CHUNK_ROWS, -1))
    options = {"algorithm": algorithm, "random_state": 0, "tol": 1e-6, "batch_size": 64}
    if algorithm == "online":
        options.update(max_iter=3, tol=0.0)
    path = tmp_path / "fit.ckpt"
    with pytest.raises(KeyboardInterrupt):
        GaussianMixture(3, **options).fit(
            X_in, sample_weight=failing_weights(weights, CHUNK_ROWS, 30), checkpoint=path,
            checkpoint_every=2,
        )
    assert path.exists()
    resumed = fit_warning_if_unconverged(
        GaussianMixture(3, **options), X_in, sample_weight=weights, checkpoint=path,
        checkpoint_every=2,
    )
    whole = fit_warning_if_unconverged(GaussianMixture(3, **options), X_in, sample_weight=weights)
    for name in ATTRIBUTES:
        np.testing.assert_array_equal(getattr(resumed, name), getattr(whole, name))


# --------------------------------------------------------------- command line
def test_command_line_weights(weighted_data, tmp_path):
    from click.testing import CliRunner

    from streamgmm import load
    from streamgmm.cli import main

    X, weights, repeated = weighted_data
    table = tmp_path / "rows.csv"
    pd.DataFrame(X, columns=["a", "b", "c"]).assign(count=weights).to_csv(table, index=False)
    weight_store = write_zarr(tmp_path / "weights.zarr", weights.astype(float))
    rows_store = write_zarr(tmp_path / "rows.zarr", X)

    def invoke(*args):
        result = CliRunner().invoke(main, [str(arg) for arg in args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    common = ("-k", 3, "--random-state", 0, "--tol", "1e-6", "--quiet")
    output = invoke("fit", table, *common, "--weights", "count", "-o", tmp_path / "t.zarr")
    assert "columns of" in output and "but the weights 'count'" in output
    invoke("fit", rows_store, *common, "--weights", weight_store, "-o", tmp_path / "z.zarr")
    from_table, from_zarr = load(tmp_path / "t.zarr"), load(tmp_path / "z.zarr")
    reference = GaussianMixture(3, random_state=0, tol=1e-6).fit(X, sample_weight=weights)
    assert_same_fit(from_table, reference)
    assert_same_fit(from_zarr, reference)
    printed = float(invoke("score", tmp_path / "z.zarr", rows_store, "--weights", weight_store))
    assert printed == pytest.approx(reference.score(repeated), abs=1e-5)
    invoke("select", table, "--n-components", "2,3", "--covariance-types", "full",
           "--random-state", 0, "--weights", "count", "-o", tmp_path / "s.zarr")
    assert load(tmp_path / "s.zarr").n_features_in_ == 3


def test_select_with_weights_ranks_by_the_weighted_criteria(weighted_data):
    from streamgmm import select

    X, weights, _ = weighted_data
    best, table = select(X, [2, 3], ["full", "diag"], sample_weight=weights, random_state=0)
    chosen = table.sel(n_components=best.n_components, covariance_type=best.covariance_type)
    assert float(chosen["bic"]) == pytest.approx(best.bic(X, sample_weight=weights), rel=1e-9)
    assert float(chosen["bic"]) != pytest.approx(best.bic(X), rel=1e-3)
    with pytest.raises(ValueError, match="negative"):
        select(X, [2], ["full"], sample_weight=-np.ones(len(X)))


@pytest.mark.parametrize("acceleration", ["squarem", "daarem"])
def test_accelerated_fit_with_integer_weights_equals_repeated_rows(weighted_data, acceleration):
    X, weights, repeated = weighted_data
    weighted = model("full", X, acceleration=acceleration).fit(X, sample_weight=weights)
    reference = model("full", X, acceleration=acceleration).fit(repeated)
    assert_same_fit(weighted, reference)
