"""EM with missing values (``missing="marginalize"``, issue 27), against an
independent NumPy reference of Ghahramani & Jordan's EM written here."""

import dask.array as da
import numpy as np
import pytest
import xarray as xr
import zarr
from scipy.special import logsumexp
from unconverged import unconverged_fit

from streamgmm import GaussianMixture, select
from streamgmm.covariance import full_covariances
from streamgmm.datasets import make_mixture

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


# ------------------------------------------------- the reference (test-only)
def reference_log_terms(X, weights, means, covariances):
    """log pi_k + log N(x_O; mu_O, Sigma_OO) (n, K) and, per row and component,
    the conditional mean (n, K, d) and conditional covariance (n, K, d, d) of
    the missing block, pattern by pattern, through Sigma_OO directly."""
    n, d = X.shape
    K = means.shape[0]
    log_terms = np.empty((n, K))
    x_hat = np.empty((n, K, d))
    cond = np.zeros((n, K, d, d))
    missing = np.isnan(X)
    patterns, inverse = np.unique(missing, axis=0, return_inverse=True)
    for p, mask in enumerate(patterns):
        rows = np.flatnonzero(inverse.ravel() == p)
        obs, M = np.flatnonzero(~mask), np.flatnonzero(mask)
        for k in range(K):
            S = covariances[k]
            S_OO, S_MO, S_MM = S[np.ix_(obs, obs)], S[np.ix_(M, obs)], S[np.ix_(M, M)]
            r = X[np.ix_(rows, obs)] - means[k, obs]
            solved = np.linalg.solve(S_OO, r.T).T  # Sigma_OO^-1 r
            _, logdet = np.linalg.slogdet(S_OO)
            log_terms[rows, k] = np.log(weights[k]) - 0.5 * (
                obs.size * np.log(2 * np.pi) + logdet + (r * solved).sum(axis=1))
            x_hat[rows, k] = X[rows]
            x_hat[np.ix_(rows, [k], M)] = (means[k, M] + solved @ S_MO.T)[:, None, :]
            C = S_MM - S_MO @ np.linalg.solve(S_OO, S_MO.T)
            cond[np.ix_(rows, [k], M, M)] = C
    return log_terms, x_hat, cond


def reference_em(X, weights, means, covariances, cov_type, n_iter, reg_covar):
    """Ghahramani-Jordan EM from full covariances; returns the parameters after
    ``n_iter`` steps (covariances in the type's shape) and the per-row mean
    observed-data log-likelihood at every E-step."""
    X = X[~np.isnan(X).all(axis=1)]
    n, d = X.shape
    covariances = full_covariances(covariances, cov_type, *means.shape)
    bounds = []
    for _ in range(n_iter):
        log_terms, x_hat, cond = reference_log_terms(X, weights, means, covariances)
        log_norm = logsumexp(log_terms, axis=1)
        bounds.append(log_norm.mean())
        resp = np.exp(log_terms - log_norm[:, None])
        nk = resp.sum(axis=0)
        weights = nk / n
        means = np.einsum("nk,nkd->kd", resp, x_hat) / nk[:, None]
        dev = x_hat - means[None]
        scatter = np.einsum("nk,nki,nkj->kij", resp, dev, dev) + np.einsum(
            "nk,nkij->kij", resp, cond)
        full = scatter / nk[:, None, None]
        if cov_type == "tied":
            full[:] = scatter.sum(axis=0) / n
        elif cov_type == "diag":
            full = np.einsum("kii->ki", full)[:, :, None] * np.eye(d)
        elif cov_type == "spherical":
            full = np.einsum("kii->k", full)[:, None, None] / d * np.eye(d)
        covariances = full + reg_covar * np.eye(d)
    shaped = {"full": covariances, "tied": covariances[0],
              "diag": np.einsum("kii->ki", covariances),
              "spherical": covariances[:, 0, 0]}[cov_type]
    return weights, means, shaped, bounds


def reference_score(X, weights, means, covariances, cov_type):
    X = X[~np.isnan(X).all(axis=1)]
    covariances = full_covariances(covariances, cov_type, *means.shape)
    return logsumexp(reference_log_terms(X, weights, means, covariances)[0], axis=1).mean()


def gappy(X, fraction, seed, n_empty=0):
    """X with ``fraction`` of its values NaN completely at random, and ``n_empty``
    rows entirely NaN."""
    rng = np.random.default_rng(seed)
    X = X.copy()
    X[rng.random(X.shape) < fraction] = np.nan
    X[rng.choice(X.shape[0], n_empty, replace=False)] = np.nan
    return X


def start_of(X, K, cov_type, seed=0):
    """A start: parameters of a short fit on the complete rows."""
    complete = X[~np.isnan(X).any(axis=1)]
    model = GaussianMixture(K, covariance_type=cov_type, max_iter=0, random_state=seed)
    model.fit(complete)
    return model.weights_, model.means_, model.covariances_, model.precisions_


@pytest.fixture(scope="module")
def gappy_data():
    X, _, _ = make_mixture(600, n_components=3, n_features=4, separation=2.5, random_state=3)
    return gappy(X, 0.2, seed=4, n_empty=7)


@pytest.mark.parametrize("cov_type", COVARIANCE_TYPES)
def test_marginalize_equals_the_reference(gappy_data, cov_type):
    """Must show 1: 15 iterations from the same start equal the reference to
    1e-8; the observed-data log-likelihood never decreases; score is the
    reference's; the rows with nothing observed are counted."""
    X = gappy_data
    weights, means, covariances, precisions = start_of(X, 3, cov_type)
    model = GaussianMixture(
        3, covariance_type=cov_type, max_iter=15, tol=0.0, missing="marginalize",
        weights_init=weights, means_init=means, precisions_init=precisions,
    )
    unconverged_fit(model, X)
    ref_w, ref_m, ref_c, bounds = reference_em(
        X, weights, means, covariances, cov_type, 15, model.reg_covar)
    np.testing.assert_allclose(model.weights_, ref_w, rtol=0, atol=1e-8)
    np.testing.assert_allclose(model.means_, ref_m, rtol=0, atol=1e-8)
    np.testing.assert_allclose(model.covariances_, ref_c, rtol=0, atol=1e-8)
    np.testing.assert_allclose(model.lower_bounds_, bounds, rtol=0, atol=1e-8)
    assert np.all(np.diff(bounds) >= -1e-12)
    assert np.all(np.diff(model.lower_bounds_) >= -1e-12)
    expected = reference_score(X, model.weights_, model.means_, model.covariances_, cov_type)
    assert model.score(X) == pytest.approx(expected, abs=1e-10)
    assert model.n_empty_rows_ == 7


@pytest.mark.parametrize("cov_type", COVARIANCE_TYPES)
def test_no_missing_value_gives_the_same_bits(mixture_data, cov_type):
    """Must show 2: with 0% missing, missing="marginalize" is bit-identical to
    missing="raise"."""
    X = mixture_data[0][:2000]
    fits = [
        GaussianMixture(3, covariance_type=cov_type, random_state=0, missing=option,
                        tol=1e-6, max_iter=200).fit(X)
        for option in ("raise", "marginalize")
    ]
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_array_equal(getattr(fits[0], name), getattr(fits[1], name))
    assert fits[0].lower_bounds_ == fits[1].lower_bounds_
    assert fits[1].score(X) == fits[0].score(X)
    np.testing.assert_array_equal(fits[1].predict_proba(X), fits[0].predict_proba(X))


def parameter_errors(model, truth):
    """Largest error of the means and of the covariances, components matched by
    their first coordinate."""
    order = np.argsort(model.means_[:, 0])
    true_order = np.argsort(truth.means[:, 0])
    means = np.abs(model.means_[order] - truth.means[true_order]).max()
    covariances = np.abs(model.covariances_[order] - truth.covariances[true_order]).max()
    return means, covariances


def test_recovers_the_mixture_better_than_dropping_or_filling():
    """Must show 2: with 30% of values missing at random (the chance that
    features 1-2 are missing depends on the always observed feature 0), the fit
    is closer to the truth, in means and in covariances, than complete-case
    analysis and than a fit to mean-imputed data."""
    X, _, truth = make_mixture(20000, n_components=2, n_features=3, separation=3.0,
                               random_state=11)
    rng = np.random.default_rng(12)
    high = X[:, 0] > np.median(X[:, 0])
    chance = np.where(high, 0.75, 0.15)[:, None]
    gaps = X.copy()
    gaps[:, 1:][rng.random((X.shape[0], 2)) < chance] = np.nan
    assert 0.28 < np.isnan(gaps).mean() < 0.32
    settings = dict(covariance_type="full", random_state=0, tol=1e-6, max_iter=500)
    marginal = GaussianMixture(2, missing="marginalize", **settings).fit(gaps)
    complete_case = GaussianMixture(2, **settings).fit(gaps[~np.isnan(gaps).any(axis=1)])
    filled = np.where(np.isnan(gaps), np.nanmean(gaps, axis=0), gaps)
    mean_imputed = GaussianMixture(2, **settings).fit(filled)
    ours = parameter_errors(marginal, truth)
    for other in (complete_case, mean_imputed):
        theirs = parameter_errors(other, truth)
        assert ours[0] < theirs[0] and ours[1] < theirs[1], (ours, theirs)


def test_bad_input_with_missing_values_gets_clear_errors(gappy_data):
    """Must show 6: infinity, a column with nothing observed, an unknown
    ``missing``; a model given bad input keeps its parameters; with
    missing="raise" a NaN's message says how to opt in."""
    model = GaussianMixture(3, missing="marginalize", random_state=0).fit(gappy_data)
    means = model.means_.copy()
    infinite = gappy_data.copy()
    infinite[42, 1] = np.inf
    with pytest.raises(ValueError, match=r"infinity.*first bad row 42"):
        model.fit(infinite)
    empty_column = gappy_data.copy()
    empty_column[:, 2] = np.nan
    with pytest.raises(ValueError, match=r"Column\(s\) \[2\] of X hold no observed value"):
        model.fit(empty_column)
    np.testing.assert_array_equal(model.means_, means)
    with pytest.raises(ValueError, match="infinity.*first bad row 42"):
        model.score_samples(infinite)
    with pytest.raises(ValueError, match="missing"):
        GaussianMixture(3, missing="drop").fit(gappy_data)
    with pytest.raises(ValueError, match="NaN or infinity.*pass missing='marginalize'"):
        GaussianMixture(3).fit(gappy_data)
    with pytest.raises(ValueError, match="pass missing='marginalize'"):
        GaussianMixture(3).fit(np.nan_to_num(gappy_data)).predict(gappy_data)


def direct_conditional_mean(model, x):
    """sum_k P(k | x_O) E[x_M | x_O, k] for one row, from Sigma_OO directly."""
    covariances = full_covariances(model.covariances_, model.covariance_type,
                                   *model.means_.shape)
    log_terms, x_hat, _ = reference_log_terms(x[None], model.weights_, model.means_,
                                              covariances)
    resp = np.exp(log_terms - logsumexp(log_terms))
    return (resp[0][:, None] * x_hat[0]).sum(axis=0)


@pytest.mark.parametrize("cov_type", COVARIANCE_TYPES)
def test_impute_is_the_conditional_mean(gappy_data, cov_type):
    """Must show 4: impute equals the conditional mean computed directly (1e-8),
    keeps observed values, and gives rows with nothing observed the mixture mean."""
    model = GaussianMixture(3, covariance_type=cov_type, missing="marginalize",
                            random_state=0, tol=1e-4, max_iter=300).fit(gappy_data)
    imputed = model.impute(gappy_data)
    assert isinstance(imputed, np.ndarray) and imputed.shape == gappy_data.shape
    observed = ~np.isnan(gappy_data)
    np.testing.assert_array_equal(imputed[observed], gappy_data[observed])
    empty = np.isnan(gappy_data).all(axis=1)
    np.testing.assert_allclose(imputed[empty], np.broadcast_to(
        model.weights_ @ model.means_, imputed[empty].shape), atol=1e-12)
    some = np.flatnonzero(np.isnan(gappy_data).any(axis=1) & ~empty)[:40]
    expected = np.array([direct_conditional_mean(model, gappy_data[i]) for i in some])
    np.testing.assert_allclose(imputed[some], expected, rtol=0, atol=1e-8)
    scores = model.score_samples(gappy_data)
    assert np.isnan(scores[empty]).all() and np.isfinite(scores[~empty]).all()
    proba = model.predict_proba(gappy_data)
    np.testing.assert_allclose(proba[empty], np.broadcast_to(model.weights_, proba[empty].shape))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert model.score(gappy_data) == pytest.approx(scores[~empty].mean(), abs=1e-12)
    n_rows = (~empty).sum()
    assert model.bic(gappy_data) == pytest.approx(
        -2 * scores[~empty].sum() + model._n_parameters() * np.log(n_rows))


# ------------------------------------------------ every kind of input, weights
def given_start(X, K, cov_type="full"):
    weights, means, _, precisions = start_of(X, K, cov_type)
    return dict(weights_init=weights, means_init=means, precisions_init=precisions)


@pytest.fixture(scope="module")
def store_data(tmp_path_factory):
    """Gappy rows (the first chunk entirely missing and never written) and a Zarr
    store of them whose fill value is NaN, in chunks of 500 rows."""
    X, _, _ = make_mixture(3000, n_components=3, n_features=4, separation=3.0, random_state=8)
    X = gappy(X, 0.15, seed=9, n_empty=20)
    X[:500] = np.nan
    path = tmp_path_factory.mktemp("gappy") / "rows.zarr"
    store = zarr.create_array(store=str(path), shape=X.shape, chunks=(500, 4),
                              dtype="float64", fill_value=np.nan)
    store[500:] = X[500:]
    return X, str(path)


def test_zarr_dask_and_dataarray_give_the_in_memory_fit(store_data):
    """Must show 3: a gappy Zarr store (fill value NaN, one chunk never written),
    a Dask array and a DataArray give the in-memory fit to 1e-10."""
    X, path = store_data
    assert np.isnan(zarr.open_array(path, mode="r")[:500]).all()
    settings = dict(covariance_type="full", tol=1e-8, max_iter=40, missing="marginalize",
                    **given_start(X, 3))
    reference = GaussianMixture(3, **settings).fit(X)
    inputs = {
        "zarr": path,
        "dask": da.from_array(X, chunks=(700, 4)),
        "xarray": xr.DataArray(X, dims=("site", "band"), coords={"site": np.arange(3000)}),
    }
    for kind, data in inputs.items():
        model = GaussianMixture(3, **settings).fit(data)
        for name in ("weights_", "means_", "covariances_"):
            np.testing.assert_allclose(getattr(model, name), getattr(reference, name),
                                       rtol=1e-10, atol=1e-12, err_msg=f"{kind} {name}")
        assert model.n_iter_ == reference.n_iter_
        assert model.n_empty_rows_ == reference.n_empty_rows_ == np.isnan(X).all(axis=1).sum()


def test_impute_keeps_the_kind_of_its_input(store_data):
    """Must show 4: NumPy in, NumPy out; Dask and Zarr lazily; a DataArray keeps
    its dims (in their order) and coordinates; a pandas frame its columns and index."""
    import pandas as pd

    X, path = store_data
    model = GaussianMixture(3, missing="marginalize", random_state=0).fit(X)
    expected = model.impute(X)
    assert not np.isnan(expected).any()
    lazy = model.impute(da.from_array(X, chunks=(700, 4)))
    assert isinstance(lazy, da.Array)
    np.testing.assert_array_equal(lazy.compute(), expected)
    from_store = model.impute(path)
    assert isinstance(from_store, da.Array)
    np.testing.assert_array_equal(from_store.compute(), expected)
    grid = xr.DataArray(X.T, dims=("band", "site"),
                        coords={"site": np.arange(3000) * 10, "band": list("abcd")})
    model.set_params(sample_dim="site")
    imputed = model.impute(grid)
    assert imputed.dims == ("band", "site")
    assert list(imputed["band"].values) == list("abcd")
    np.testing.assert_array_equal(imputed["site"], grid["site"])
    np.testing.assert_array_equal(imputed.values.T, expected)
    chunked = model.impute(grid.chunk({"site": 1000}))
    assert chunked.chunks is not None
    np.testing.assert_array_equal(chunked.compute().values.T, expected)
    frame = pd.DataFrame(X, columns=list("abcd"), index=np.arange(3000) + 7)
    model_on_frame = GaussianMixture(3, missing="marginalize", random_state=0).fit(frame)
    table = model_on_frame.impute(frame)
    assert list(table.columns) == list("abcd") and table.index[0] == 7
    assert not table.isna().any().any()
    complete_fit = GaussianMixture(3, random_state=0).fit(X[~np.isnan(X).any(axis=1)])
    assert not np.isnan(complete_fit.impute(X)).any()  # whatever missing it was fitted with


def test_weights_count_like_repeated_rows(gappy_data):
    """A gappy row of weight 2 counts as the row twice (and a weight 0 not at all)."""
    rng = np.random.default_rng(5)
    weights = rng.integers(0, 3, size=gappy_data.shape[0])
    repeated = np.repeat(gappy_data, weights, axis=0)
    settings = dict(tol=0.0, max_iter=8, missing="marginalize", **given_start(gappy_data, 3))
    weighted = unconverged_fit(GaussianMixture(3, **settings), gappy_data,
                               sample_weight=weights)
    plain = unconverged_fit(GaussianMixture(3, **settings), repeated)
    for name in ("weights_", "means_", "covariances_"):
        np.testing.assert_allclose(getattr(weighted, name), getattr(plain, name),
                                   rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(weighted.lower_bounds_, plain.lower_bounds_, rtol=1e-10)
    assert weighted.score(gappy_data, sample_weight=weights) == pytest.approx(
        plain.score(repeated), rel=1e-12)


def test_select_fits_gappy_rows(gappy_data):
    """select(missing="marginalize"): the candidates are fitted on the observed
    coordinates, and the table's criterion is the chosen model's."""
    best, table = select(gappy_data, [2, 3], ["full", "diag"], missing="marginalize",
                         random_state=0, max_iter=200)
    assert best.missing == "marginalize" and best.n_empty_rows_ == 7
    chosen = table.sel(n_components=best.n_components, covariance_type=best.covariance_type)
    assert float(chosen["bic"]) == pytest.approx(best.bic(gappy_data), rel=1e-9)
    with pytest.raises(ValueError, match="pass missing='marginalize'"):
        select(gappy_data, [2], ["full"], random_state=0)


def test_checkpointed_fit_equals_the_plain_fit(gappy_data, tmp_path):
    """A fit through a checkpoint file (one run at a time) gives the plain fit."""
    settings = dict(n_init=2, random_state=0, tol=1e-6, max_iter=200, missing="marginalize")
    plain = GaussianMixture(3, **settings).fit(gappy_data)
    checked = GaussianMixture(3, **settings).fit(gappy_data, checkpoint=tmp_path / "fit.npz")
    np.testing.assert_array_equal(checked.means_, plain.means_)
    assert checked.lower_bounds_ == plain.lower_bounds_


# ------------------------------------------------------------- command line
def test_cli_fits_and_imputes_a_gappy_store(store_data, tmp_path):
    """`streamgmm fit --missing marginalize` and `streamgmm impute MODEL DATA
    --out`: the store holds model.impute(DATA); an input is never overwritten."""
    from click.testing import CliRunner

    from streamgmm.cli import main
    from streamgmm.io import load

    X, path = store_data

    def invoke(*args):
        return CliRunner().invoke(main, [str(arg) for arg in args])

    model_path = tmp_path / "model.zarr"
    result = invoke("fit", path, "-k", 3, "--missing", "marginalize", "--random-state", 0,
                    "-o", model_path, "--quiet")
    assert result.exit_code == 0, result.output
    out = tmp_path / "imputed.zarr"
    result = invoke("impute", model_path, path, "-o", out)
    assert result.exit_code == 0, result.output
    written = xr.open_zarr(out, consolidated=False)["imputed"].values
    np.testing.assert_allclose(written, load(model_path).impute(X), rtol=0, atol=0)
    result = invoke("impute", model_path, path, "-o", out)  # its own output: replaced
    assert result.exit_code == 0, result.output
    before = zarr.open_array(path, mode="r")[:]
    for target in (path, model_path):
        result = invoke("impute", model_path, path, "-o", target, "--overwrite")
        assert result.exit_code != 0 and "input" in result.output.lower(), result.output
    np.testing.assert_array_equal(zarr.open_array(path, mode="r")[:], before)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    result = invoke("impute", model_path, path, "-o", tmp_path / "other")
    assert result.exit_code != 0 and (tmp_path / "other" / "keep.txt").exists()
    result = invoke("fit", path, "-k", 3, "-o", tmp_path / "m2.zarr", "--quiet")
    assert result.exit_code != 0 and "--missing marginalize" in result.output


# ---------------------------------------------------------------- a cluster
def test_two_worker_cluster_equals_the_threaded_fit(store_data):
    """Must show 3: a 2-worker LocalCluster (worker processes) fits the gappy
    store as the threaded scheduler does, to 1e-12."""
    distributed = pytest.importorskip("distributed")
    X, path = store_data
    settings = dict(covariance_type="full", tol=0.0, max_iter=10, missing="marginalize",
                    random_state=0)
    threaded = unconverged_fit(GaussianMixture(3, **settings), path)
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                 dashboard_address=":0") as cluster,
        distributed.Client(cluster),
    ):
        clustered = unconverged_fit(GaussianMixture(3, **settings), path)
        imputed = clustered.impute(path).compute()
    for name in ("weights_", "means_", "covariances_"):
        np.testing.assert_allclose(getattr(clustered, name), getattr(threaded, name),
                                   rtol=1e-12, atol=1e-14)
    assert clustered.n_iter_ == threaded.n_iter_
    np.testing.assert_allclose(imputed, threaded.impute(X), rtol=1e-12, atol=1e-12)


def test_tables_with_empty_cells(gappy_data, tmp_path):
    """Parquet and CSV tables with empty cells fit as the NumPy array with NaN
    does (and without missing="marginalize" the error names the column)."""
    import pandas as pd

    X = gappy_data
    frame = pd.DataFrame(X, columns=list("abcd"))
    frame.to_parquet(tmp_path / "holes.parquet", row_group_size=250)
    frame.to_csv(tmp_path / "holes.csv", index=False)
    settings = dict(tol=1e-8, max_iter=50, missing="marginalize", **given_start(X, 3))
    reference = GaussianMixture(3, **settings).fit(X)
    for name in ("holes.parquet", "holes.csv"):
        model = GaussianMixture(3, **settings).fit(str(tmp_path / name))
        np.testing.assert_allclose(model.means_, reference.means_, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(model.covariances_, reference.covariances_, rtol=1e-10,
                                   atol=1e-12)
        assert model.n_empty_rows_ == 7
    with pytest.raises(ValueError, match="missing value"):
        GaussianMixture(3).fit(str(tmp_path / "holes.parquet"))


# ------------------------------------------------------------------- online
def test_python_steps_follow_the_compiled_steps(mixture_data):
    """On complete rows, the stepwise updates driven from Python for gappy rows
    (streamgmm.missing.stepwise_steps) give the compiled steps' fit: the same
    burn-in, step sizes, merge, averaging and M-step."""
    X = mixture_data[0][:3000]
    settings = dict(algorithm="online", max_iter=2, tol=0.0, random_state=0, batch_size=256,
                    averaging=True)
    compiled = unconverged_fit(GaussianMixture(3, **settings), X)
    python = unconverged_fit(GaussianMixture(3, missing="marginalize", **settings), X)
    assert python.n_steps_ == compiled.n_steps_
    for name in ("weights_", "means_", "covariances_"):
        np.testing.assert_allclose(getattr(python, name), getattr(compiled, name),
                                   rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(python.lower_bounds_, compiled.lower_bounds_, rtol=1e-9)


def test_online_em_on_gappy_rows_nears_batch_em_in_two_passes():
    """Must show 3: online EM on gappy rows comes within 0.01 nats per row
    (observed-data log-likelihood) of converged batch EM in 2 passes; partial_fit
    learns from gappy batches too."""
    X, _, _ = make_mixture(20000, n_components=3, n_features=4, separation=2.5,
                           random_state=3)
    G = gappy(X, 0.2, seed=4, n_empty=30)
    batch = GaussianMixture(3, missing="marginalize", tol=1e-8, max_iter=500,
                            random_state=0).fit(G)
    online = unconverged_fit(GaussianMixture(3, missing="marginalize", algorithm="online",
                                             max_iter=2, tol=0.0, random_state=0), G)
    assert online.n_iter_ == 2
    assert batch.score(G) - online.score(G) < 0.01
    model = GaussianMixture(3, missing="marginalize", random_state=0)
    for start in range(0, 20000, 4000):
        model.partial_fit(G[start : start + 4000])
    assert batch.score(G) - model.score(G) < 0.01
    infinite = G[:100].copy()
    infinite[10, 0] = np.inf
    means = model.means_.copy()
    with pytest.raises(ValueError, match="infinity"):
        model.partial_fit(infinite)
    np.testing.assert_array_equal(model.means_, means)


def test_accelerated_and_float32_fits_on_gappy_rows(gappy_data):
    """DAAREM reaches plain EM's fixed point on gappy rows, and float32 rows fit
    as float64 rows do (the gappy rows' sums are float64 either way)."""
    settings = dict(missing="marginalize", tol=1e-9, max_iter=1000, **given_start(gappy_data, 3))
    plain = GaussianMixture(3, **settings).fit(gappy_data)
    daarem = GaussianMixture(3, acceleration="daarem", **settings).fit(gappy_data)
    assert daarem.lower_bound_ == pytest.approx(plain.lower_bound_, abs=1e-7)
    np.testing.assert_allclose(daarem.means_, plain.means_, atol=1e-3)
    single = GaussianMixture(3, **settings).fit(gappy_data.astype(np.float32))
    assert single.means_.dtype == np.float32
    np.testing.assert_allclose(single.means_, plain.means_, atol=1e-4)


def reference_statistics(X, weights, means, covariances, cov_type, sample_weight):
    """Weight, mean, scatter (the type's shape), log-likelihood and count of
    the rows of X with something observed, from :func:`reference_log_terms`."""
    keep = ~np.isnan(X).all(axis=1)
    X, sample_weight = X[keep], sample_weight[keep]
    full = full_covariances(covariances, cov_type, *means.shape)
    log_terms, x_hat, cond = reference_log_terms(X, weights, means, full)
    log_norm = logsumexp(log_terms, axis=1)
    resp = np.exp(log_terms - log_norm[:, None]) * sample_weight[:, None]
    nk = resp.sum(axis=0)
    mean = np.einsum("nk,nkd->kd", resp, x_hat) / nk[:, None]
    dev = x_hat - mean[None]
    scatter = np.einsum("nk,nki,nkj->kij", resp, dev, dev) + np.einsum("nk,nkij->kij", resp,
                                                                       cond)
    scatter = {"full": scatter, "tied": scatter.sum(axis=0),
               "diag": np.einsum("kii->ki", scatter),
               "spherical": np.einsum("kii->k", scatter)}[cov_type]
    return nk, mean, scatter, sample_weight @ log_norm, sample_weight.sum()


def kernel_case(cov_type, separated, seed=5):
    """Rows with 25% of values missing, 9 of them with nothing observed, and a
    fitted-looking mixture; ``separated`` puts one component far away and tight
    (summed about its own mean, so the rows go through the component-by-component
    kernel)."""
    from streamgmm.estep import statistics_from_responsibilities
    from streamgmm.mstep import parameters_from_statistics

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, 5)) * 3
    if separated:
        centres[2] += 1e3
    X = np.concatenate([c + rng.normal(size=(150, 5)) @ rng.normal(size=(5, 5)) * (
        0.01 if separated and k == 2 else 1) for k, c in enumerate(centres)])
    resp = np.eye(3)[np.repeat(np.arange(3), 150)]
    stats = statistics_from_responsibilities(X, resp, centres, cov_type)
    params, covariances = parameters_from_statistics(stats, 1e-6, cov_type)
    return gappy(X, 0.25, seed=seed, n_empty=9), params, covariances


@pytest.mark.parametrize("cov_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("separated", [False, True])
def test_gappy_kernels_equal_the_reference(cov_type, separated):
    """The compiled E-step of rows with gaps gives the NumPy reference's
    statistics to 1e-10: both kernels (one shift and the complete rows' layout,
    or each component's own mean), weighted rows, rows with nothing observed,
    float32 rows; and a chunk without NaN is the complete kernel's."""
    from streamgmm import estep, missing

    X, params, covariances = kernel_case(cov_type, separated)
    operands = estep.density_factors(params)
    assert (operands.own_index.size > 0) == separated
    sample_weight = np.random.default_rng(1).uniform(0, 2, X.shape[0])
    for rows in (X, X.astype(np.float32)):
        expected = reference_statistics(rows.astype(np.float64), params.weights, params.means,
                                        covariances, cov_type, sample_weight)
        found = missing.chunk_statistics(rows, params, sample_weight=sample_weight)
        for name, value in zip(("weight", "mean", "scatter", "log_likelihood", "n_samples"),
                               expected, strict=True):
            np.testing.assert_allclose(getattr(found, name), value, rtol=1e-10,
                                       atol=1e-10 * np.abs(value).max(), err_msg=name)
    complete = X[~np.isnan(X).any(axis=1)]
    ours = missing.chunk_statistics(complete, params)
    theirs = estep.chunk_statistics(complete, params)
    for name in ("weight", "mean", "scatter", "log_likelihood", "n_samples"):
        np.testing.assert_array_equal(getattr(ours, name), getattr(theirs, name))


def test_gappy_kernel_on_wide_rows():
    """More than 64 features (the full type's whitened form, patterns wider than
    one machine word): the statistics equal the reference's to 1e-10."""
    from streamgmm import estep, missing
    from streamgmm.estep import statistics_from_responsibilities
    from streamgmm.mstep import parameters_from_statistics

    rng = np.random.default_rng(8)
    centres = rng.normal(size=(2, 70)) * 2
    X = np.concatenate([c + rng.normal(size=(200, 70)) for c in centres])
    resp = np.eye(2)[np.repeat(np.arange(2), 200)]
    stats = statistics_from_responsibilities(X, resp, centres, "full")
    params, covariances = parameters_from_statistics(stats, 1e-6, "full")
    X = gappy(X, 0.05, seed=9, n_empty=2)
    assert estep.density_factors(params).n_products == 0
    expected = reference_statistics(X, params.weights, params.means, covariances, "full",
                                    np.ones(X.shape[0]))
    found = missing.chunk_statistics(X, params)
    for name, value in zip(("weight", "mean", "scatter", "log_likelihood", "n_samples"),
                           expected, strict=True):
        np.testing.assert_allclose(getattr(found, name), value, rtol=1e-10,
                                   atol=1e-10 * np.abs(value).max(), err_msg=name)
