"""Batch EM agrees with scikit-learn iteration by iteration from the same start."""

import warnings

import dask.array as da
import numpy as np
import pytest
import xarray as xr
import zarr
from float32_rounding import assert_float32_rounding_of
from sklearn.datasets import load_digits
from sklearn.mixture import GaussianMixture as SklearnMixture
from unconverged import unconverged_fit

from streamgmm import GaussianMixture
from streamgmm.datasets import make_mixture

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]
RTOL = 1e-8


def _synthetic():
    X, _, _ = make_mixture(4000, n_components=4, n_features=5, separation=3.0, random_state=3)
    return X, 4


def _digits():
    return load_digits().data.astype(np.float64), 10


def _assert_close(ours, theirs, what, iteration):
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    scale = np.abs(theirs).max()
    np.testing.assert_allclose(
        ours,
        theirs,
        rtol=RTOL,
        atol=RTOL * 1e-4 * scale,
        err_msg=f"{what} differs from scikit-learn after iteration {iteration}",
    )


def _start(X, n_components, covariance_type):
    """Two scikit-learn iterations from its own start: the shared starting point."""
    start = unconverged_fit(SklearnMixture(
        n_components, covariance_type=covariance_type, max_iter=2, random_state=0
    ), X)
    return dict(
        n_components=n_components,
        covariance_type=covariance_type,
        weights_init=start.weights_,
        means_init=start.means_,
        precisions_init=start.precisions_,
    )


@pytest.mark.parametrize("dataset", [_synthetic, _digits], ids=["synthetic", "digits"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_each_of_first_ten_iterations_matches_sklearn(dataset, covariance_type):
    X, n_components = dataset()
    shared = dict(_start(X, n_components, covariance_type), max_iter=1, tol=0.0, warm_start=True)
    theirs = SklearnMixture(**shared)
    ours = GaussianMixture(**shared)
    for iteration in range(1, 11):
        unconverged_fit(theirs, X)
        unconverged_fit(ours, X)
        _assert_close(ours.weights_, theirs.weights_, "weights_", iteration)
        _assert_close(ours.means_, theirs.means_, "means_", iteration)
        _assert_close(ours.covariances_, theirs.covariances_, "covariances_", iteration)
        _assert_close(
            ours.precisions_cholesky_,
            theirs.precisions_cholesky_,
            "precisions_cholesky_",
            iteration,
        )
        assert abs(ours.lower_bound_ - theirs.lower_bound_) < 1e-8, iteration


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_scores_match_sklearn(covariance_type, mixture_data):
    X, _, _ = mixture_data
    theirs = SklearnMixture(3, covariance_type=covariance_type, random_state=0).fit(X)
    ours = unconverged_fit(GaussianMixture(
        3,
        covariance_type=covariance_type,
        weights_init=theirs.weights_,
        means_init=theirs.means_,
        precisions_init=theirs.precisions_,
        max_iter=1,
    ), X)
    # one more iteration on both sides from the same start
    theirs = unconverged_fit(SklearnMixture(
        3,
        covariance_type=covariance_type,
        weights_init=theirs.weights_,
        means_init=theirs.means_,
        precisions_init=theirs.precisions_,
        max_iter=1,
    ), X)
    np.testing.assert_allclose(ours.score_samples(X), theirs.score_samples(X), rtol=1e-10)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-10)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    assert ours.score(X) == pytest.approx(theirs.score(X), rel=1e-12)
    assert ours.bic(X) == pytest.approx(theirs.bic(X), rel=1e-12)
    assert ours.aic(X) == pytest.approx(theirs.aic(X), rel=1e-12)


# ------------------------------------------------ max_iter=0 and float32 input
FITTED = ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_")


def _as_kind(X, kind, tmp_path):
    """X as the input kind ``kind``: NumPy, Dask, a Zarr store's path or a DataArray."""
    if kind == "dask":
        return da.from_array(X, chunks=(len(X) // 3 + 1, -1))
    if kind == "zarr":
        path = str(tmp_path / "rows.zarr")
        store = zarr.create_array(store=path, shape=X.shape, chunks=(1000, X.shape[1]),
                                  dtype=X.dtype)
        store[:] = X
        return path
    if kind == "xarray":
        return xr.DataArray(X, dims=("sample", "feature"))
    return X


@pytest.mark.parametrize("kind", ["numpy", "dask", "zarr", "xarray"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_max_iter_0_keeps_the_start_as_sklearn(covariance_type, kind, tmp_path):
    X, n_components = _synthetic()
    shared = dict(_start(X, n_components, covariance_type), max_iter=1, tol=0.0)
    rows = _as_kind(X, kind, tmp_path)
    theirs = unconverged_fit(SklearnMixture(**shared), X)
    ours = unconverged_fit(GaussianMixture(**shared), rows)
    theirs.set_params(max_iter=0, warm_start=True)
    ours.set_params(max_iter=0, warm_start=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ConvergenceWarning for max_iter=0
        theirs.fit(X)
        ours.fit(rows)
    for name in FITTED:
        _assert_close(getattr(ours, name), getattr(theirs, name), name, 0)
    assert (ours.n_iter_, ours.converged_, ours.lower_bounds_) == (0, False, [])
    assert (theirs.n_iter_, theirs.converged_, theirs.lower_bounds_) == (0, False, [])
    assert ours.lower_bound_ == theirs.lower_bound_ == -np.inf
    assert type(ours.lower_bound_) is type(theirs.lower_bound_) is float


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_max_iter_0_from_scratch_returns_the_initialisation(covariance_type):
    X, n_components = _synthetic()
    start = _start(X, n_components, covariance_type)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ours = GaussianMixture(**start, max_iter=0).fit(X)
        theirs = SklearnMixture(n_components, covariance_type=covariance_type, max_iter=0,
                                random_state=0).fit(X)
    np.testing.assert_array_equal(ours.weights_, start["weights_init"])
    np.testing.assert_array_equal(ours.means_, start["means_init"])
    np.testing.assert_allclose(ours.precisions_, start["precisions_init"], rtol=1e-10)
    for model in (ours, theirs):
        assert (model.n_iter_, model.converged_, model.lower_bound_) == (0, False, -np.inf)
        assert model.lower_bounds_ == []


@pytest.mark.parametrize("kind", ["numpy", "dask", "zarr", "xarray"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_input_gives_sklearns_float32_attributes(covariance_type, kind, tmp_path):
    """scikit-learn computes float32 input in float32; we compute in float64 and
    round the attributes: they equal scikit-learn's float64 fit of the same
    values up to float32 rounding, and have the dtypes of its float32 fit.
    (The starting arrays are float32 too: scikit-learn keeps float64 ones in
    float64 for weights_ and means_ even with float32 X; we follow X.)"""
    X, n_components = _synthetic()
    X32 = X.astype(np.float32)
    start = _start(X32.astype(np.float64), n_components, covariance_type)
    # weights in multiples of 2**-20: exact in float32 and summing to exactly 1
    weights = np.round(start["weights_init"] * 2**20) / 2**20
    start["weights_init"] = np.append(weights[:-1], 1.0 - weights[:-1].sum())
    shared = {
        **{name: np.asarray(value, np.float32) if name.endswith("_init") else value
           for name, value in start.items()},
        "max_iter": 10,
        "tol": 0.0,
    }
    as_float64 = {
        name: value.astype(np.float64) if name.endswith("_init") else value
        for name, value in shared.items()
    }
    reference = unconverged_fit(SklearnMixture(**as_float64), X32.astype(np.float64))
    theirs32 = unconverged_fit(SklearnMixture(**shared), X32)
    ours = unconverged_fit(GaussianMixture(**shared), _as_kind(X32, kind, tmp_path))
    for name in FITTED:
        assert getattr(ours, name).dtype == getattr(theirs32, name).dtype == np.float32
        assert_float32_rounding_of(getattr(ours, name), getattr(reference, name), RTOL, name)
        # scikit-learn's float32 fit differs from its float64 fit by its float32
        # arithmetic: up to about 1e-4 of the largest value here, more than a rounding
        theirs = getattr(theirs32, name)
        np.testing.assert_allclose(getattr(ours, name), theirs, atol=2e-4 * np.abs(theirs).max())
    assert type(ours.lower_bound_) is type(theirs32.lower_bound_) is np.float32
    assert_float32_rounding_of(ours.lower_bound_, reference.lower_bound_, RTOL, "lower_bound_")
    assert {type(value) for value in ours.lower_bounds_} == {np.float32}
    assert len(ours.lower_bounds_) == len(theirs32.lower_bounds_) == 10


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_digits_within_float32_rounding_of_sklearn_in_float64(covariance_type):
    X, n_components = _digits()
    X32 = X.astype(np.float32)
    shared = dict(_start(X, n_components, covariance_type), max_iter=2, tol=0.0)
    reference = unconverged_fit(SklearnMixture(**shared), X)
    ours = unconverged_fit(GaussianMixture(**shared), X32)
    for name in FITTED:
        assert_float32_rounding_of(getattr(ours, name), getattr(reference, name), RTOL, name)


@pytest.mark.parametrize("x_dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("model_dtype", [np.float32, np.float64])
def test_output_dtypes_follow_sklearn(model_dtype, x_dtype):
    X, n_components = _synthetic()
    # no *_init: scikit-learn would keep float64 starting arrays in float64
    theirs = SklearnMixture(n_components, covariance_type="diag", random_state=0)
    ours = GaussianMixture(n_components, covariance_type="diag", random_state=0)
    theirs.fit(X.astype(model_dtype))
    ours.fit(X.astype(model_dtype))
    assert ours.means_.dtype == theirs.means_.dtype == model_dtype
    Xt = (X * 10).astype(x_dtype)
    for method in ("score_samples", "predict_proba", "predict"):
        assert getattr(ours, method)(Xt).dtype == getattr(theirs, method)(Xt).dtype, method
    for method in ("score", "bic", "aic"):
        assert isinstance(getattr(ours, method)(Xt), float), method
    drawn, labels = ours.sample(5)
    assert (drawn.dtype, labels.dtype) == (np.float64, np.int64)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_sample_draws_what_sklearn_draws(covariance_type):
    X, n_components = _synthetic()
    start = _start(X, n_components, covariance_type)
    theirs = unconverged_fit(SklearnMixture(**start, max_iter=1, random_state=7), X)
    ours = unconverged_fit(GaussianMixture(**start, max_iter=1, random_state=7), X)
    drawn, labels = ours.sample(500)
    their_drawn, their_labels = theirs.sample(500)
    np.testing.assert_array_equal(labels, their_labels)
    np.testing.assert_allclose(drawn, their_drawn, rtol=1e-7, atol=1e-7)


def test_fit_predict_and_n_init_match_sklearns_rules():
    X, n_components = _synthetic()
    model = GaussianMixture(n_components, n_init=2, random_state=0)
    np.testing.assert_array_equal(model.fit_predict(X), model.predict(X))
    with pytest.raises(ValueError, match="n_samples=1"):
        GaussianMixture(1).fit(X[:1])  # scikit-learn also needs 2 rows
