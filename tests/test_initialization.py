"""Out-of-core initialisation: k-means||, pass counts, grids, n_init, warm_start, bic/aic."""

from functools import partial

import dask
import numpy as np
import pytest
from chunk_counting import n_chunks, open_counting
from sklearn.mixture import GaussianMixture as SklearnMixture
from threadpoolctl import threadpool_limits
from unconverged import fit_warning_if_unconverged, unconverged_fit

import streamgmm.initialization as initialization
from streamgmm import GaussianMixture
from streamgmm.datasets import (
    make_mixture,
    means_recovered,
    random_mixture,
    write_mixture_zarr,
)
from streamgmm.estep import statistics_from_responsibilities
from streamgmm.initialization import (
    KMEANS_PARALLEL_ROUNDS,
    _combine_rounds,
    _sampling_round_chunk,
    convert_scatter,
    grouped_statistics,
    initialize_parameters,
    merge_groups,
    nearest_centres,
    row_uniforms,
    start_seeds,
    threshold_sample,
)
from streamgmm.inputs import as_rows
from streamgmm.reduction import tree_reduce


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """One BLAS thread per Dask thread, as dask.distributed workers set it: with
    OpenBLAS's default threads the small M-step solves run several times slower
    on a loaded two-core machine (measured: 77 s against 7 s for the recovery test)."""
    with threadpool_limits(1):
        yield


COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    """4,000 rows of a 3-component mixture in a Zarr store of 4 chunks."""
    truth = random_mixture(3, 3, separation=5.0, random_state=5)
    path = tmp_path_factory.mktemp("init") / "small.zarr"
    write_mixture_zarr(path, 4000, truth, chunk_rows=1000, random_state=5)
    return path


# ----------------------------------------------------------- must show 1
def test_kmeans_parallel_recovers_every_mean_where_random_rows_fail(tmp_path, capsys):
    n_components, n_features, n_seeds = 20, 8, 10
    recovered = {"k-means||": 0, "random_from_data": 0}
    fit_all_seeds(tmp_path, n_components, n_features, n_seeds, recovered)
    with capsys.disabled():
        print(
            f"\nall {n_components} means within 0.5 sd in {n_seeds} seeds: "
            f"k-means|| {recovered['k-means||']}/{n_seeds}, "
            f"random_from_data {recovered['random_from_data']}/{n_seeds}"
        )
    assert recovered["k-means||"] >= 9
    assert recovered["random_from_data"] < recovered["k-means||"]


def fit_all_seeds(tmp_path, n_components, n_features, n_seeds, recovered):
    for seed in range(n_seeds):
        truth = random_mixture(n_components, n_features, separation=6.0, random_state=seed)
        path = tmp_path / f"mixture-{seed}.zarr"
        n_samples = 300 * n_components
        write_mixture_zarr(path, n_samples, truth, chunk_rows=n_samples // 4, random_state=seed)
        for method in recovered:
            model = fit_warning_if_unconverged(GaussianMixture(
                n_components, init_params=method, max_iter=10, random_state=seed
            ), str(path))
            recovered[method] += means_recovered(truth, model.means_)


# ----------------------------------------------------------- must show 2
@pytest.mark.parametrize(
    "method, passes",
    [("kmeans", 2), ("k-means++", 2), ("random", 1)],
)
def test_passes_of_sample_based_methods(small_store, method, passes):
    array, store = open_counting(small_store)
    data = as_rows(array)
    store.reset()
    initialize_parameters(data, 3, "full", 1e-6, method, np.random.default_rng(0), 100_000)
    assert store.n_reads == passes * n_chunks(array)


@pytest.mark.parametrize("sample_size", [3, 500, 2000])
def test_hierarchical_reads_one_pass_at_most(small_store, sample_size, monkeypatch):
    """The sample read is the only read: the chunks that hold sampled rows."""
    monkeypatch.setattr(initialization, "HIERARCHICAL_SAMPLE_SIZE", sample_size)
    array, store = open_counting(small_store)
    data = as_rows(array)
    store.reset()
    params, _ = initialize_parameters(
        data, 3, "full", 1e-6, "hierarchical", np.random.default_rng(0), 100_000
    )
    assert 1 <= store.n_reads <= min(sample_size, n_chunks(array))
    assert np.all(np.isfinite(params.means))


def test_hierarchical_fit_out_of_core_recovers_the_mixture(tmp_path, monkeypatch):
    """A Zarr store of 12,000 rows in 6 chunks, agglomerated from 1,000 sampled
    rows: every mean found, in 1 + n_iter passes."""
    monkeypatch.setattr(initialization, "HIERARCHICAL_SAMPLE_SIZE", 1000)
    truth = random_mixture(6, 4, separation=5.0, random_state=3)
    path = tmp_path / "rows.zarr"
    write_mixture_zarr(path, 12_000, truth, chunk_rows=2000, random_state=3)
    array, store = open_counting(path)
    store.reset()
    model = GaussianMixture(6, init_params="hierarchical", random_state=0).fit(array)
    assert means_recovered(truth, model.means_)
    assert store.n_reads == (1 + model.n_iter_) * n_chunks(array)


def test_random_from_data_reads_at_most_two_passes(small_store):
    array, store = open_counting(small_store)
    data = as_rows(array)
    store.reset()
    initialize_parameters(data, 3, "diag", 1e-6, "random_from_data", np.random.default_rng(0), 1)
    # one pass of assignments plus the chunks that hold the 3 chosen rows
    assert n_chunks(array) + 1 <= store.n_reads <= n_chunks(array) + 3


@pytest.mark.parametrize("n_rounds", [1, 2, 4])
def test_kmeans_parallel_takes_one_pass_per_round_plus_one(small_store, n_rounds):
    array, store = open_counting(small_store)
    data = as_rows(array)
    store.reset()
    initialize_parameters(
        data, 3, "full", 1e-6, "k-means||", np.random.default_rng(0), 1, n_rounds=n_rounds
    )
    # one chunk read for the first centre, then n_rounds + 1 passes
    assert store.n_reads == 1 + (n_rounds + 1) * n_chunks(array)


def test_fit_reads_the_init_passes_plus_one_per_iteration(small_store):
    array, store = open_counting(small_store)
    store.reset()
    model = GaussianMixture(3, max_iter=4, tol=0.0, random_state=0)
    unconverged_fit(model, array)
    assert model.init_params == "k-means||" and model.n_iter_ == 4
    assert store.n_reads == 1 + (KMEANS_PARALLEL_ROUNDS + 1 + 4) * n_chunks(array)


# ------------------------------------------------------ k-means|| pieces
def test_one_round_samples_exactly_with_the_total_cost():
    """The tree's early thresholds keep exactly the rows the rule
    ``u < l d^2 / phi`` keeps with the total phi computed first."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(5000, 4)) * rng.uniform(0.5, 5.0, size=(5000, 1))
    candidates = X[:2]
    array = dask.array.from_array(X, chunks=(700, 4))
    oversampling, seed, round_index = 12.0, 99, 1
    drawn = tree_reduce(
        array,
        _sampling_round_chunk,
        partial(_combine_rounds, oversampling=oversampling),
        candidates,
        oversampling,
        seed,
        round_index,
        split_every=3,
    )
    drawn = threshold_sample(drawn, oversampling)
    _, closest = nearest_centres(X, candidates)
    phi = closest.sum()
    uniform = row_uniforms(seed, round_index, 0, len(X))[:, 0]
    expected = X[uniform < oversampling * closest / phi]
    assert drawn.cost == pytest.approx(phi, rel=1e-12)
    assert 0 < len(expected) < 3 * oversampling
    np.testing.assert_array_equal(
        drawn.rows[np.lexsort(drawn.rows.T)], expected[np.lexsort(expected.T)]
    )


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_grouped_statistics_equal_one_hot_responsibilities(covariance_type):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(600, 3)) + 100.0
    centres = X[:5] + 0.1
    labels, _ = nearest_centres(X, centres)
    resp = np.eye(5)[labels]
    scatter_type = "full" if covariance_type == "tied" else covariance_type
    ours = convert_scatter(grouped_statistics(X, labels, centres, scatter_type), covariance_type)
    theirs = statistics_from_responsibilities(X, resp, centres, covariance_type)
    np.testing.assert_allclose(ours.weight, theirs.weight)
    np.testing.assert_allclose(ours.mean, theirs.mean, rtol=1e-12)
    np.testing.assert_allclose(ours.scatter, theirs.scatter, rtol=1e-9)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_merging_groups_equals_grouping_by_component(covariance_type):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(800, 3))
    candidates = X[:12]
    labels, _ = nearest_centres(X, candidates)
    assignment = rng.integers(0, 3, size=12)
    centres = np.array([candidates[assignment == k].mean(axis=0) for k in range(3)])
    scatter_type = "full" if covariance_type == "tied" else covariance_type
    groups = grouped_statistics(X, labels, candidates, scatter_type)
    merged = convert_scatter(
        merge_groups(groups, assignment, centres, scatter_type), covariance_type
    )
    direct = statistics_from_responsibilities(
        X, np.eye(3)[assignment[labels]], centres, covariance_type
    )
    np.testing.assert_allclose(merged.weight, direct.weight)
    np.testing.assert_allclose(merged.mean, direct.mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(merged.scatter, direct.scatter, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_kmeans_parallel_gives_finite_starts_for_every_type(small_store, covariance_type):
    data = as_rows(str(small_store))
    params, covariances = initialize_parameters(
        data, 3, covariance_type, 1e-6, "k-means||", np.random.default_rng(4), 1
    )
    assert np.all(np.isfinite(params.means)) and np.all(np.isfinite(covariances))
    assert params.weights.sum() == pytest.approx(1.0)
    assert np.all(params.weights > 0.1)


@pytest.mark.parametrize("method", ["k-means||", "hierarchical"])
def test_starts_are_the_same_on_every_scheduler(small_store, method, monkeypatch):
    from dask.distributed import Client, LocalCluster

    # hierarchical: a sample smaller than the data, so that it is one out of core
    monkeypatch.setattr(initialization, "HIERARCHICAL_SAMPLE_SIZE", 500)

    def start():
        params, _ = initialize_parameters(
            as_rows(str(small_store)), 3, "full", 1e-6, method, np.random.default_rng(7), 10**5
        )
        return params

    with dask.config.set(scheduler="threads"):
        threaded = start()
    with dask.config.set(scheduler="synchronous"):
        synchronous = start()
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster),
    ):
        distributed = start()
    for other in (synchronous, distributed):
        np.testing.assert_allclose(other.means, threaded.means, rtol=1e-12)
        np.testing.assert_allclose(
            other.precisions_cholesky, threaded.precisions_cholesky, rtol=1e-10
        )


def test_kmeans_parallel_copes_with_fewer_distinct_rows_than_components():
    X = np.repeat(np.array([[0.0, 0.0], [5.0, 5.0], [0.0, 9.0]]), 50, axis=0)
    X = X + np.random.default_rng(0).normal(scale=1e-3, size=X.shape)
    X[::7] = [20.0, 20.0]
    model = GaussianMixture(4, init_params="k-means||", random_state=0).fit(X)
    order = np.argsort(model.means_[:, 0] + model.means_[:, 1])
    np.testing.assert_allclose(model.means_[order][[0, -1]], [[0, 0], [20, 20]], atol=0.1)
    assert np.all(np.isfinite(model.covariances_))


# ------------------------------------------------- n_init and warm_start
def test_n_init_keeps_the_best_of_its_runs():
    X, _, _ = make_mixture(3000, n_components=6, n_features=2, separation=3.0, random_state=4)
    gains = []
    for seed in range(3):
        one = GaussianMixture(6, init_params="random_from_data", max_iter=20, random_state=seed)
        many = GaussianMixture(
            6, init_params="random_from_data", max_iter=20, n_init=4, random_state=seed
        )
        # the first of the n_init runs is the single run (same random stream)
        gains.append(many.fit(X).lower_bound_ - one.fit(X).lower_bound_)
    assert min(gains) >= 0.0
    assert max(gains) > 1e-3


def test_n_init_runs_share_their_passes_and_fit_as_one_by_one(small_store, tmp_path):
    """Without a checkpoint the runs' iterations share passes: the data are read
    once per iteration of the longest run, not once per iteration of every run,
    and every run takes the steps it takes alone (checkpointed fits still run
    one by one)."""
    settings = dict(init_params="random", n_init=3, max_iter=8, tol=0.0, random_state=2)
    array, store = open_counting(small_store)
    store.reset()
    shared = unconverged_fit(GaussianMixture(3, **settings), array)
    shared_reads = store.n_reads
    store.reset()
    one_by_one = unconverged_fit(
        GaussianMixture(3, **settings), array, checkpoint=tmp_path / "c.ckpt"
    )
    assert store.n_reads == 3 * (1 + 8) * n_chunks(array)
    assert shared_reads == (3 * 1 + 8) * n_chunks(array)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_array_equal(getattr(shared, name), getattr(one_by_one, name))
    assert shared.lower_bounds_ == one_by_one.lower_bounds_
    first_run_alone = unconverged_fit(GaussianMixture(3, **{**settings, "n_init": 1}), array)
    assert shared.lower_bound_ >= first_run_alone.lower_bound_


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_warm_start_continues_as_sklearn_does(covariance_type, mixture_data):
    X, _, _ = mixture_data
    start = unconverged_fit(
        SklearnMixture(3, covariance_type=covariance_type, max_iter=1, random_state=0), X
    )
    shared = dict(
        covariance_type=covariance_type,
        weights_init=start.weights_,
        means_init=start.means_,
        precisions_init=start.precisions_,
        max_iter=2,
        tol=1e-12,
        warm_start=True,
        n_init=3,  # ignored after the first fit, as in scikit-learn
    )
    ours, theirs = GaussianMixture(3, **shared), SklearnMixture(3, **shared)
    for _ in range(3):
        fit_warning_if_unconverged(ours, X)
        fit_warning_if_unconverged(theirs, X)
        np.testing.assert_allclose(ours.means_, theirs.means_, rtol=1e-8)
        np.testing.assert_allclose(ours.covariances_, theirs.covariances_, rtol=1e-8)
        assert ours.lower_bound_ == pytest.approx(theirs.lower_bound_, rel=1e-10)
        assert ours.n_iter_ == theirs.n_iter_


def test_warm_start_false_starts_again(mixture_data):
    X, _, _ = mixture_data
    model = GaussianMixture(3, max_iter=50, random_state=0).fit(X)
    first = model.means_.copy()
    unconverged_fit(model.set_params(max_iter=1, tol=0.0), X)
    assert model.n_iter_ == 1
    assert not np.allclose(model.means_, first, rtol=1e-12)


# -------------------------------------------------------------- bic/aic
def test_bic_and_aic_match_sklearn_signs_from_zarr(small_store):
    X = np.asarray(as_rows(str(small_store)).array)
    bics = {}
    for K in (1, 2, 3, 4, 5):
        ours = GaussianMixture(K, random_state=0, max_iter=200).fit(str(small_store))
        theirs = SklearnMixture(K).fit(X)
        for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
            setattr(theirs, name, getattr(ours, name))
        assert ours.bic(str(small_store)) == pytest.approx(theirs.bic(X), rel=1e-12)
        assert ours.aic(str(small_store)) == pytest.approx(theirs.aic(X), rel=1e-12)
        bics[K] = ours.bic(str(small_store))
    # lower is better, and the true number of components scores best
    assert min(bics, key=bics.get) == 3


# ------------------------------------------------- chunking independence
def test_row_uniforms_depend_on_the_row_index_only():
    whole = row_uniforms(123, 4, 0, 10_000, 3)
    pieces = np.vstack(
        [
            row_uniforms(123, 4, start, stop - start, 3)
            for start, stop in [(0, 7), (7, 5000), (5000, 10_000)]
        ]
    )
    np.testing.assert_array_equal(whole, pieces)
    assert whole.min() > 0.0 and whole.max() <= 1.0
    from scipy.stats import kstest

    assert kstest(whole.ravel(), "uniform").pvalue > 1e-3
    assert not np.array_equal(whole, row_uniforms(123, 5, 0, 10_000, 3))
    assert not np.array_equal(whole, row_uniforms(124, 4, 0, 10_000, 3))


@pytest.mark.parametrize("method", ["k-means||", "random"])
def test_starts_do_not_depend_on_the_chunking(mixture_data, method):
    X, _, _ = mixture_data
    starts = []
    for chunks in [(6000, 3), ((700, 1300, 2500, 1, 1499), (3,)), (500, 3)]:
        data = as_rows(dask.array.from_array(X, chunks=chunks))
        params, _ = initialize_parameters(
            data, 3, "full", 1e-6, method, np.random.default_rng(5), 1
        )
        starts.append(params)
    for other in starts[1:]:
        np.testing.assert_allclose(other.means, starts[0].means, rtol=1e-10)
        np.testing.assert_allclose(other.weights, starts[0].weights, rtol=1e-10)


@pytest.mark.parametrize("init_params", ["k-means||", "random_from_data"])
def test_a_nan_in_a_row_read_directly_is_named_by_its_row(tmp_path, init_params):
    X = np.random.default_rng(0).normal(size=(1200, 2))
    # the rows these starts read directly: the first centre / the chosen rows,
    # drawn from the start's own seed
    (seed,) = start_seeds(np.random.default_rng(0), 1)
    rng = np.random.default_rng(seed)
    row = (
        int(rng.integers(1200))
        if init_params == "k-means||"
        else int(np.sort(rng.choice(1200, size=3, replace=False))[1])
    )
    X[row, 1] = np.nan
    with pytest.raises(ValueError, match=rf"NaN or infinity.*\b{row}\b"):
        initialize_parameters(
            as_rows(X), 3, "full", 1e-6, init_params, np.random.default_rng(0), 1
        )
