"""select: a grid of candidates fitted together, one read of the data per iteration."""

import warnings

import dask
import numpy as np
import pytest
import xarray as xr
from chunk_counting import n_chunks, open_counting
from sklearn.mixture import GaussianMixture as SklearnMixture
from threadpoolctl import threadpool_limits
from unconverged import unconverged_fit

import streamgmm
from benchmarks.reference_data import MCLUST_RESULTS, load_reference
from streamgmm import ConvergenceWarning, GaussianMixture, select
from streamgmm.covariance import precisions_from_cholesky
from streamgmm.datasets import make_mixture, random_mixture, write_mixture_zarr
from streamgmm.initialization import (
    KMEANS_PARALLEL_ROUNDS,
    Start,
    initial_statistics_grid,
    start_seeds,
)
from streamgmm.inputs import as_rows
from streamgmm.mstep import parameters_from_statistics


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """One BLAS thread per Dask thread, as dask.distributed workers set it: with
    OpenBLAS's default threads the small M-step solves run several times slower
    on a loaded two-core machine (measured: 77 s against 7 s for the recovery test)."""
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def four_component_store(tmp_path_factory):
    """3,000 rows of 4 well-separated components in 3-D, a Zarr store of 3 chunks."""
    truth = random_mixture(4, 3, separation=5.0, random_state=2)
    path = tmp_path_factory.mktemp("select") / "four.zarr"
    write_mixture_zarr(path, 3000, truth, chunk_rows=1000, random_state=2)
    return path


def test_select_is_exported():
    assert streamgmm.select is select


# ----------------------------------------------------------- must show 3
def test_select_picks_the_true_number_of_components(four_component_store):
    model, table = select(str(four_component_store), n_components=range(1, 8), random_state=0)
    assert isinstance(model, GaussianMixture)
    assert model.n_components == 4
    assert isinstance(table, xr.Dataset)
    assert table["bic"].dims == ("n_components", "covariance_type")
    assert list(table.n_components.values) == list(range(1, 8))
    assert list(table.covariance_type.values) == ["full", "diag"]
    for name in ("bic", "aic", "lower_bound", "n_iter", "converged"):
        assert name in table
    assert int(table["bic"].min("covariance_type").idxmin("n_components")) == 4
    # the table's criterion is the model's, computed out of core
    chosen = table["bic"].sel(n_components=4, covariance_type=model.covariance_type)
    assert model.bic(str(four_component_store)) == pytest.approx(float(chosen), rel=1e-10)
    assert model.predict(np.zeros((2, 3))).shape == (2,)


@pytest.mark.parametrize("init_params", ["kmeans", "k-means||", "hierarchical"])
@pytest.mark.parametrize(
    "sizes, types",
    [
        ([3], ["full"]),
        ([2, 3, 4, 5, 6], ["full", "diag"]),
        ([1, 2, 3, 4], ["full", "tied", "diag", "spherical"]),
    ],
    ids=["1 candidate", "10 candidates", "16 candidates"],
)
def test_grid_reads_the_data_once_per_iteration(four_component_store, sizes, types, init_params):
    array, store = open_counting(four_component_store)
    max_iter = 3
    store.reset()
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        _, table = select(
            array,
            n_components=sizes,
            covariance_types=types,
            max_iter=max_iter,
            tol=0.0,
            init_params=init_params,
            random_state=0,
        )
    assert (table["n_iter"] == max_iter).all()
    # "kmeans": sample + assignment passes; "k-means||": one chunk read for the first
    # centre, its rounds and the candidate statistics pass; then one pass per
    # iteration and one for the criterion, whatever the number of candidates
    if init_params == "kmeans":
        first_centre, init_passes = 0, 2
    elif init_params == "hierarchical":  # its 2,000-row sample touches every chunk
        first_centre, init_passes = 0, 1
    else:
        first_centre, init_passes = 1, KMEANS_PARALLEL_ROUNDS + 1
    passes = init_passes + max_iter + 1
    assert store.n_reads == first_centre + passes * n_chunks(array)
    assert table.attrs["n_passes"] == passes
    assert table.attrs["n_passes_one_by_one"] == len(sizes) * len(types) * passes


def test_fitting_one_by_one_reads_the_data_once_per_candidate_iteration(
    four_component_store,
):
    array, store = open_counting(four_component_store)
    sizes, types = [2, 4], ["full", "diag"]
    _, table = select(
        array, n_components=sizes, covariance_types=types, init_params="k-means||", tol=1e-3,
        random_state=0,
    )
    store.reset()
    expected = 0
    for K in sizes:
        for covariance_type in types:
            model = GaussianMixture(K, covariance_type=covariance_type, random_state=0)
            model.fit(array).bic(array)
            expected += KMEANS_PARALLEL_ROUNDS + 1 + model.n_iter_ + 1
    # each k-means|| start also reads one chunk for its first centre
    assert store.n_reads == expected * n_chunks(array) + len(sizes) * len(types)
    assert table.attrs["n_passes"] == KMEANS_PARALLEL_ROUNDS + 1 + int(table["n_iter"].max()) + 1
    assert table.attrs["n_passes"] < expected


@pytest.mark.parametrize("init_params", ["kmeans", "k-means||", "random_from_data"])
def test_a_single_candidate_grid_is_exactly_a_fit(init_params):
    X, _, _ = make_mixture(2000, n_components=3, n_features=2, separation=4.0, random_state=6)
    model, table = select(
        X,
        n_components=[3],
        covariance_types=["diag"],
        init_params=init_params,
        tol=1e-3,
        random_state=11,
    )
    alone = GaussianMixture(
        3, covariance_type="diag", init_params=init_params, random_state=11
    ).fit(X)
    np.testing.assert_array_equal(model.means_, alone.means_)
    np.testing.assert_array_equal(model.covariances_, alone.covariances_)
    assert model.n_iter_ == alone.n_iter_ == int(table["n_iter"].item())
    assert model.lower_bound_ == alone.lower_bound_
    assert float(table["bic"].item()) == pytest.approx(alone.bic(X), rel=1e-12)
    assert float(table["aic"].item()) == pytest.approx(alone.aic(X), rel=1e-12)


def test_float32_products_reach_every_candidate_and_the_chosen_model():
    X, _, _ = make_mixture(3000, n_components=3, n_features=4, separation=4.0, random_state=6)
    X = X.astype(np.float32)
    settings = dict(n_components=[3], covariance_types=["full"], random_state=11, max_iter=5,
                    tol=0, init_params="k-means||")
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        model, table = select(X, float32_products=True, **settings)
    alone = unconverged_fit(
        GaussianMixture(3, float32_products=True, random_state=11, max_iter=5, tol=0), X
    )
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        exact, _ = select(X, **settings)
    assert model.float32_products and not exact.float32_products
    np.testing.assert_array_equal(model.means_, alone.means_)
    assert not np.array_equal(model.means_, exact.means_)
    np.testing.assert_allclose(model.means_, exact.means_, rtol=1e-5, atol=1e-5)


def test_n_init_keeps_each_candidates_best_run():
    X, _, _ = make_mixture(2000, n_components=5, n_features=2, separation=3.0, random_state=4)
    _, one = select(
        X,
        n_components=[5],
        covariance_types=["full"],
        init_params="random_from_data",
        random_state=3,
    )
    _, many = select(
        X,
        n_components=[5],
        covariance_types=["full"],
        init_params="random_from_data",
        random_state=3,
        n_init=4,
    )
    assert float(many["lower_bound"].item()) >= float(one["lower_bound"].item())


def test_aic_criterion_ranks_by_aic(four_component_store):
    model, table = select(
        str(four_component_store),
        n_components=[2, 4],
        covariance_types=["diag"],
        criterion="aic",
        random_state=0,
    )
    assert table.attrs["criterion"] == "aic"
    assert model.n_components == int(table["aic"].idxmin("n_components").item())


def test_a_failing_candidate_is_reported_not_fatal():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(300, 2)), np.repeat([[40.0, 40.0]], 6, axis=0)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model, table = select(
            X, n_components=[1, 2], covariance_types=["full"], reg_covar=0.0, random_state=0
        )
    assert np.isnan(float(table["bic"].sel(n_components=2, covariance_type="full")))
    assert any("n_components=2" in str(w.message) for w in caught)
    assert model.n_components == 1 and np.all(np.isfinite(model.means_))


def test_bad_arguments_raise_clear_errors():
    X = np.random.default_rng(0).normal(size=(50, 2))
    with pytest.raises(ValueError, match="criterion"):
        select(X, criterion="likelihood")
    with pytest.raises(ValueError, match="covariance_type"):
        select(X, n_components=[2], covariance_types=["round"])
    with pytest.raises(ValueError, match="n_samples >= n_components"):
        select(X, n_components=[2, 60])
    with pytest.raises(ValueError, match="repeated"):
        select(X, n_components=[2, 2])
    with pytest.raises(ValueError, match="distinct start methods"):
        select(X, n_components=[2], init_params=("hierarchical", "hierarchical"))
    with pytest.raises(ValueError, match="init_params"):
        select(X, n_components=[2], init_params=("hierarchical", "k-means"))


@pytest.mark.parametrize("kind", ["numpy", "dask", "xarray"])
def test_select_takes_every_input_kind(kind):
    import dask.array as da

    X, _, _ = make_mixture(1500, n_components=2, n_features=2, separation=6.0, random_state=8)
    data = {
        "numpy": X,
        "dask": da.from_array(X, chunks=(400, 2)),
        "xarray": xr.DataArray(X, dims=("time", "feature")),
    }[kind]
    model, table = select(data, n_components=[1, 2, 3], covariance_types=["full"], random_state=0)
    assert model.n_components == 2
    assert model.predict(X[:5]).shape == (5,)


# ------------------------------------------------------ issue 19: must show 1
def _start_parameters(X, K, covariance_type, seeds, init_params="k-means||"):
    starts = [Start(K, covariance_type, seed) for seed in seeds]
    stats = initial_statistics_grid(as_rows(X), starts, init_params, 100_000)
    return [parameters_from_statistics(s, 1e-6, covariance_type) for s in stats]


def test_n_init_keeps_the_best_of_distinct_starts_as_fit_does():
    X = load_reference("diabetes")
    k, seed, settings = 5, 2, dict(tol=1e-5, max_iter=300)
    _, table = select(
        X, n_components=[3], covariance_types=["full"], n_init=k, init_params="k-means||",
        random_state=seed, **settings,
    )
    starts = _start_parameters(X, 3, "full", start_seeds(np.random.default_rng(seed), k))
    # the k starts are distinct: no two share their starting means
    sorted_means = [np.sort(params.means, axis=0) for params, _ in starts]
    for i in range(k):
        for j in range(i):
            assert not np.allclose(sorted_means[i], sorted_means[j], rtol=1e-3)
    # each run is EM from its own start, and the kept run is the best of them
    runs = table["run_lower_bound"].sel(n_components=3, covariance_type="full").values
    for (params, _), run_bound in zip(starts, runs, strict=True):
        alone = GaussianMixture(
            3,
            weights_init=params.weights,
            means_init=params.means,
            precisions_init=precisions_from_cholesky(params.precisions_cholesky, "full"),
            **settings,
        ).fit(X)
        assert alone.lower_bound_ == pytest.approx(run_bound, rel=1e-9, abs=1e-9)
    assert np.ptp(runs) > 0.01  # the starts reach different optima
    assert float(table["lower_bound"].item()) == runs.max()


def test_every_candidate_is_the_model_fit_returns():
    X = load_reference("diabetes")
    settings = dict(n_init=3, random_state=4, tol=1e-4, init_params="k-means||")
    model, table = select(
        X, n_components=[2, 3, 4], covariance_types=["full", "diag"], **settings
    )
    for K in (2, 3, 4):
        for covariance_type in ("full", "diag"):
            alone = GaussianMixture(K, covariance_type=covariance_type, **settings).fit(X)
            cell = dict(n_components=K, covariance_type=covariance_type)
            assert float(table["lower_bound"].sel(**cell)) == alone.lower_bound_
            assert int(table["n_iter"].sel(**cell)) == alone.n_iter_
            assert float(table["bic"].sel(**cell)) == pytest.approx(alone.bic(X), rel=1e-12)
    chosen = GaussianMixture(
        model.n_components, covariance_type=model.covariance_type, **settings
    ).fit(X)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_array_equal(getattr(model, name), getattr(chosen, name))


# ------------------------------------------------------------- ICL criterion
def test_icl_is_bic_plus_twice_the_classification_entropy(four_component_store):
    path = str(four_component_store)
    X = np.asarray(as_rows(path).array)
    ours = unconverged_fit(
        GaussianMixture(6, covariance_type="diag", random_state=0, max_iter=5), path
    )
    theirs = SklearnMixture(6, covariance_type="diag").fit(X)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        setattr(theirs, name, getattr(ours, name))
    map_log_resp = np.log(theirs.predict_proba(X).max(axis=1)).sum()
    assert map_log_resp < -1.0  # six components for four clusters overlap
    expected = theirs.bic(X) - 2 * map_log_resp
    assert ours.icl(path) == pytest.approx(expected, rel=1e-10)
    assert ours.icl(path) > ours.bic(path)


def test_icl_criterion_ranks_by_icl_computed_out_of_core(four_component_store):
    path = str(four_component_store)
    model, table = select(
        path, n_components=[2, 3, 4, 5], covariance_types=["full"], criterion="icl",
        random_state=0,
    )
    assert table.attrs["criterion"] == "icl"
    assert model.n_components == int(table["icl"].idxmin("n_components").item())
    chosen = table["icl"].sel(n_components=model.n_components, covariance_type="full")
    assert model.icl(path) == pytest.approx(float(chosen), rel=1e-10)
    assert (table["icl"] >= table["bic"]).all()


# ------------------------------------------------------ issue 19: must show 2
@pytest.mark.parametrize("name", sorted(MCLUST_RESULTS))
def test_select_chooses_mclusts_model_for_every_seed(name):
    """mclust's choice (or a lower BIC) with mclust's log-likelihood or more, with
    the default settings and ``n_init=1``, for ``random_state`` 0 to 9."""
    X = load_reference(name)
    reference = MCLUST_RESULTS[name]
    for seed in range(10):
        with dask.config.set(scheduler="synchronous"):  # the same fits, less overhead
            model, table = select(
                X,
                n_components=range(1, 10),
                covariance_types=("full", "tied", "diag", "spherical"),
                n_init=1,
                random_state=seed,
            )
        chosen = (model.covariance_type, model.n_components)
        bic = float(table["bic"].sel(n_components=model.n_components,
                                     covariance_type=model.covariance_type))
        assert chosen == (reference["covariance_type"], reference["n_components"]) or (
            bic < reference["bic"]
        ), (seed, chosen, bic)
        log_likelihood = model.score(X) * X.shape[0]
        assert log_likelihood >= reference["log_likelihood"] * (1 + 1e-6), (seed, chosen)
