"""GaussianMixture is a scikit-learn estimator: its checks, exceptions, parameter
validation, and use inside scikit-learn's and dask-ml's meta-estimators."""

import warnings

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import sklearn.exceptions
from sklearn.base import clone
from sklearn.mixture import GaussianMixture as SklearnMixture
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import (
    check_dataframe_column_names_consistency,
    check_estimator,
)

import streamgmm
from streamgmm import GaussianMixture
from streamgmm.validation import InvalidParameterError

RANDOM_START_CHECKS = {
    "check_sample_weight_equivalence_on_dense_data": (
        "the start is drawn at random from the rows, and a start drawn from weighted rows "
        "cannot take the same draws as one drawn from shuffled repeated rows: with two or "
        "more components the fit may then find the same components in another order (or, "
        "with max_iter=0, is that other start), so predict_proba's columns differ "
        "(scikit-learn declares the same expected failure for KMeans and "
        "BisectingKMeans); fits from the same start agree (tests/test_sample_weight.py)"
    )
}
"""Checks of ``check_estimator`` that cannot hold, with the reason, by
estimator (docs/user-guide.md says so)."""


@pytest.mark.parametrize(
    ("estimator", "expected_failed_checks"),
    [
        (GaussianMixture(), {}),
        (GaussianMixture(2, covariance_type="diag", max_iter=0), RANDOM_START_CHECKS),
        (GaussianMixture(algorithm="online", batch_size=16), {}),
        (GaussianMixture(2, covariance_type="tied"), RANDOM_START_CHECKS),
        (GaussianMixture(2, covariance_type="diag"), RANDOM_START_CHECKS),
        (GaussianMixture(2, covariance_type="spherical"), RANDOM_START_CHECKS),
        (GaussianMixture(2, max_iter=20, random_state=0), RANDOM_START_CHECKS),
    ],
    ids=["default", "diag, max_iter=0", "online", "tied", "diag", "spherical", "max_iter=20"],
)
def test_check_estimator_passes(estimator, expected_failed_checks):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sklearn.exceptions.SkipTestWarning)
        results = check_estimator(
            estimator, expected_failed_checks=expected_failed_checks, on_fail=None
        )
    failed = {r["check_name"]: repr(r["exception"]) for r in results if r["status"] == "failed"}
    assert not failed
    # the only check not run needs SCIPY_ARRAY_API (array API input is not supported)
    skipped = {r["check_name"] for r in results if r["status"] == "skipped"}
    assert skipped <= {"check_array_api_input"}
    assert len(results) >= 40


def test_feature_names_follow_sklearn(mixture_data):
    check_dataframe_column_names_consistency("GaussianMixture", GaussianMixture())
    X = pd.DataFrame(mixture_data[0], columns=["a", "b", "c"])
    model = GaussianMixture(3, random_state=0).fit(X)
    np.testing.assert_array_equal(model.feature_names_in_, ["a", "b", "c"])
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        model.predict(X.to_numpy())
    with pytest.raises(ValueError, match="feature names should match"):
        model.score(X.rename(columns={"a": "z"}))
    model.fit(X.to_numpy())
    assert not hasattr(model, "feature_names_in_")


def test_exceptions_are_sklearns():
    assert streamgmm.NotFittedError is sklearn.exceptions.NotFittedError
    assert streamgmm.ConvergenceWarning is sklearn.exceptions.ConvergenceWarning
    X = np.random.default_rng(0).normal(size=(300, 2))
    with pytest.raises(sklearn.exceptions.NotFittedError, match="not fitted yet"):
        GaussianMixture(2).predict(X)
    with pytest.warns(sklearn.exceptions.ConvergenceWarning, match="did not converge"):
        GaussianMixture(2, max_iter=1, tol=0.0, random_state=0).fit(X)


def test_parameters_are_validated_in_fit_not_in_init():
    X = np.random.default_rng(0).normal(size=(50, 2))
    model = GaussianMixture(n_components=-1, tol="small")  # accepted, as scikit-learn does
    assert model.get_params()["n_components"] == -1
    with pytest.raises(InvalidParameterError) as raised:
        model.fit(X)
    assert isinstance(raised.value, ValueError) and isinstance(raised.value, TypeError)
    assert str(raised.value) == (
        "The 'n_components' parameter of GaussianMixture must be an int in the range "
        "[1, inf). Got -1 instead."
    )
    with pytest.raises(InvalidParameterError, match="'tol' parameter .* Got 'small'"):
        model.set_params(n_components=2).fit(X)
    # the names shared with scikit-learn refuse what scikit-learn refuses
    for name, value in [("max_iter", -1), ("n_init", 0), ("covariance_type", "x"),
                        ("warm_start", "yes"), ("verbose", -1), ("init_params", "magic")]:
        for estimator in (GaussianMixture(2), SklearnMixture(2)):
            with pytest.raises(ValueError, match=f"'{name}' parameter of GaussianMixture"):
                estimator.set_params(**{name: value}).fit(X)


def test_repr_and_params_come_from_base_estimator():
    model = GaussianMixture(3, covariance_type="tied", means_init=np.zeros((3, 2)))
    assert repr(model).startswith("GaussianMixture(covariance_type='tied',")
    assert "n_components=3" in repr(model) and "tol" not in repr(model)
    copy = clone(model)
    assert copy is not model and copy.means_init is not model.means_init
    np.testing.assert_array_equal(copy.means_init, model.means_init)
    assert {k: v for k, v in copy.get_params().items() if k != "means_init"} == {
        k: v for k, v in model.get_params().items() if k != "means_init"
    }


def test_clone_of_a_fitted_model_is_unfitted_with_the_same_parameters(mixture_data):
    X = mixture_data[0]
    model = GaussianMixture(3, random_state=0).fit(X)
    copy = clone(model)
    assert not hasattr(copy, "means_")
    with pytest.raises(sklearn.exceptions.NotFittedError):
        copy.score(X)
    np.testing.assert_array_equal(copy.fit(X).means_, model.means_)


def test_object_arrays_of_numbers_fit_as_float64(mixture_data):
    X = mixture_data[0][:1000]
    as_objects = GaussianMixture(3, random_state=0).fit(X.astype(object))
    as_floats = GaussianMixture(3, random_state=0).fit(X)
    assert as_objects.means_.dtype == np.float64
    np.testing.assert_array_equal(as_objects.means_, as_floats.means_)


# ------------------------------------------------------------ meta-estimators
def test_pipeline_with_a_scaler(mixture_data):
    X = mixture_data[0] * [1.0, 100.0, 0.01] + [0.0, 5e3, -1.0]
    pipeline = make_pipeline(StandardScaler(), GaussianMixture(3, random_state=0)).fit(X)
    scaled = StandardScaler().fit_transform(X)
    alone = GaussianMixture(3, random_state=0).fit(scaled)
    np.testing.assert_allclose(pipeline[-1].means_, alone.means_, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(pipeline.predict(X), alone.predict(scaled))
    assert pipeline.score(X) == pytest.approx(alone.score(scaled), rel=1e-12)


def test_grid_search_scored_by_score_finds_the_true_number_of_components(mixture_data):
    X, labels, _ = mixture_data
    search = GridSearchCV(GaussianMixture(random_state=0), {"n_components": [1, 2, 3]}).fit(X)
    means = search.cv_results_["mean_test_score"]
    assert search.best_params_ == {"n_components": 3}
    assert means[0] < means[1] < means[2]  # held-out mean log-likelihood, by `score`
    assert search.best_estimator_.n_components == 3
    fold = np.array_split(np.arange(len(X)), 5)[0]
    held_out = GaussianMixture(3, random_state=0).fit(np.delete(X, fold, axis=0))
    assert search.cv_results_["split0_test_score"][2] == pytest.approx(held_out.score(X[fold]))


def test_cross_val_score_is_the_held_out_score(mixture_data):
    X = mixture_data[0]
    scores = cross_val_score(GaussianMixture(2, random_state=0), X, cv=3)
    assert scores.shape == (3,) and np.all(np.isfinite(scores))
    folds = np.array_split(np.arange(len(X)), 3)
    expected = [
        GaussianMixture(2, random_state=0).fit(np.delete(X, fold, axis=0)).score(X[fold])
        for fold in folds
    ]
    np.testing.assert_allclose(scores, expected, rtol=1e-12)


def test_dask_ml_incremental_calls_partial_fit_block_by_block(mixture_data):
    from dask_ml.wrappers import Incremental

    X = mixture_data[0]
    blocks = da.from_array(X, chunks=(1500, 3))
    settings = dict(n_components=3, batch_size=256, random_state=0)
    # shuffle_blocks=False: the blocks in order, so that a loop by hand gives the same steps
    wrapped = Incremental(GaussianMixture(**settings), shuffle_blocks=False).fit(blocks)
    by_hand = GaussianMixture(**settings)
    for start in range(0, len(X), 1500):
        by_hand.partial_fit(X[start : start + 1500])
    fitted = wrapped.estimator_
    assert fitted.n_iter_ == 4 and fitted.n_samples_seen_ == len(X)
    for name in ("weights_", "means_", "covariances_"):
        np.testing.assert_array_equal(getattr(fitted, name), getattr(by_hand, name))
    labels = wrapped.predict(blocks)  # ParallelPostFit maps predict over the blocks
    assert isinstance(labels, da.Array)
    np.testing.assert_array_equal(labels.compute(), by_hand.predict(X))
    # dask-ml's Incremental.score(X, y) needs a y; the model's own score takes Dask input
    assert fitted.score(blocks) == pytest.approx(by_hand.score(X), rel=1e-12)


# ------------------------------------------- float32 and max_iter=0 elsewhere
@pytest.mark.parametrize("max_iter", [0, 5])
def test_model_files_keep_the_dtype_feature_names_and_lower_bound(mixture_data, tmp_path,
                                                                  max_iter):
    X = pd.DataFrame(mixture_data[0].astype(np.float32), columns=["a", "b", "c"])
    model = GaussianMixture(3, max_iter=max_iter, random_state=0).fit(X)
    streamgmm.save(model, tmp_path / "model.zarr")
    loaded = streamgmm.load(tmp_path / "model.zarr")
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        assert getattr(loaded, name).dtype == np.float32, name
        np.testing.assert_array_equal(getattr(loaded, name), getattr(model, name))
    assert type(loaded.lower_bound_) is type(model.lower_bound_)
    assert loaded.lower_bound_ == model.lower_bound_
    assert loaded.lower_bounds_ == model.lower_bounds_
    assert {type(value) for value in loaded.lower_bounds_} <= {np.float32}
    np.testing.assert_array_equal(loaded.feature_names_in_, ["a", "b", "c"])
    assert loaded.score(X) == model.score(X)


def test_select_gives_float32_attributes_for_float32_rows(mixture_data):
    X32 = mixture_data[0].astype(np.float32)
    best, table = streamgmm.select(X32, n_components=[2, 3], covariance_types=("diag",),
                                   init_params="k-means||", tol=1e-3, random_state=0)
    assert best.means_.dtype == best.covariances_.dtype == np.float32
    assert type(best.lower_bound_) is np.float32
    assert best.predict_proba(X32).dtype == np.float32
