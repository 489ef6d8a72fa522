"""Bad input gives a clear ValueError/TypeError (FileNotFoundError for a missing
store) naming the problem, at any point of the fit, and a fitted model keeps its
parameters; degenerate data never give NaN parameters."""

import copy
import itertools
import threading

import dask
import dask.array as da
import numpy as np
import pytest
import zarr

from streamgmm import GaussianMixture
from streamgmm.mstep import CholeskyError

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
STATE = (
    "weights_",
    "means_",
    "covariances_",
    "precisions_",
    "precisions_cholesky_",
    "converged_",
    "n_iter_",
    "lower_bound_",
    "lower_bounds_",
    "n_features_in_",
)


@pytest.fixture(scope="module")
def data(mixture_data):
    return mixture_data[0][:1200]


@pytest.fixture
def model(data):
    return GaussianMixture(3, max_iter=10, random_state=0).fit(data)


def _snapshot(model):
    return {name: copy.deepcopy(getattr(model, name)) for name in STATE} | {
        "params": {k: v for k, v in model.get_params().items() if not k.endswith("_init")}
    }


def _assert_unchanged(model, before):
    for name in STATE:
        np.testing.assert_array_equal(getattr(model, name), before[name], err_msg=name)


def _with_bad_value(X, row, value):
    X = X.copy()
    X[row, 1] = value
    return X


def _zarr(tmp_path, X, chunk_rows=300):
    path = str(tmp_path / "x.zarr")
    array = zarr.create_array(
        store=path, shape=X.shape, chunks=(chunk_rows, X.shape[1]), dtype=X.dtype
    )
    array[:] = X
    return path


# ---------------------------------------------------------------- fit input
FIT_CASES = {
    "nan": (lambda X, tmp: _with_bad_value(X, 777, np.nan), ValueError, "NaN or infinity.*777"),
    "inf": (lambda X, tmp: _with_bad_value(X, 5, np.inf), ValueError, "NaN or infinity.*5"),
    "nan in zarr, last chunk": (
        lambda X, tmp: _zarr(tmp, _with_bad_value(X, 1100, -np.inf)),
        ValueError,
        "NaN or infinity.*1100",
    ),
    "1-D": (lambda X, tmp: X[:, 0], ValueError, "2-D.*1-D"),
    "3-D": (lambda X, tmp: X.reshape(100, 12, -1), ValueError, "2-D.*3-D"),
    "zero rows": (lambda X, tmp: X[:0], ValueError, "0 rows"),
    "zero features": (lambda X, tmp: X[:, :0], ValueError, "0 features"),
    "fewer rows than components": (lambda X, tmp: X[:2], ValueError, "n_samples >= n_compon"),
    "strings": (lambda X, tmp: X.astype(str), TypeError, "numeric"),
    "objects, one not a number": (
        lambda X, tmp: _with_bad_value(X.astype(object), 9, "n/a"), TypeError, "numeric"
    ),
    "complex": (lambda X, tmp: X.astype(complex), ValueError, "Complex data not supported"),
    "missing zarr": (lambda X, tmp: str(tmp / "missing.zarr"), FileNotFoundError, "missing"),
}


@pytest.mark.parametrize("case", FIT_CASES)
def test_bad_fit_input_raises_and_keeps_the_model(model, data, tmp_path, case):
    make, error, message = FIT_CASES[case]
    before = _snapshot(model)
    with pytest.raises(error, match=message):
        model.fit(make(data, tmp_path))
    _assert_unchanged(model, before)


@pytest.mark.parametrize(
    "init_params", ["k-means||", "kmeans", "k-means++", "random", "random_from_data"]
)
@pytest.mark.parametrize("row", [0, 650, 1199])
def test_nan_is_named_by_row_for_every_initialisation(data, tmp_path, init_params, row):
    path = _zarr(tmp_path, _with_bad_value(data, row, np.nan))
    with pytest.raises(ValueError, match=rf"NaN or infinity.*\b{row}\b"):
        GaussianMixture(3, init_params=init_params, init_sample_size=200, random_state=0).fit(path)


PARAMETER_CASES = [
    ("n_components", 0, ValueError),
    ("n_components", 2.5, TypeError),
    ("covariance_type", "banana", ValueError),
    ("tol", -1e-3, ValueError),
    ("reg_covar", -1.0, ValueError),
    ("max_iter", -1, ValueError),
    ("n_init", 0, ValueError),
    ("init_params", "magic", ValueError),
    ("persist", "sometimes", ValueError),
    ("tol", float("nan"), ValueError),
    ("max_iter", "10", TypeError),
    ("algorithm", "stochastic", ValueError),
    ("batch_size", 0, ValueError),
    ("learning_decay", 0.5, ValueError),
    ("learning_decay", 1.2, ValueError),
    ("learning_offset", -1.0, ValueError),
    ("step_floor", -0.1, ValueError),
    ("step_floor", 1.0, ValueError),
]


@pytest.mark.parametrize(("name", "value", "error"), PARAMETER_CASES)
def test_invalid_hyperparameters_are_named(model, data, name, value, error):
    before = _snapshot(model)
    model.set_params(**{name: value})
    with pytest.raises(error, match=name):
        model.fit(data)
    _assert_unchanged(model, before)


# ------------------------------------------------------- prediction input
PREDICTIONS = ("predict", "predict_proba", "score_samples", "score", "bic", "aic")


@pytest.mark.parametrize("method", PREDICTIONS)
@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda X: X[:, :2], ValueError, "2 features.*expecting 3"),
        (lambda X: _with_bad_value(X, 1042, np.nan), ValueError, "NaN or infinity.*1042"),
        (lambda X: X[:, 0], ValueError, "2-D"),
        (lambda X: X.astype(str), TypeError, "numeric"),
    ],
    ids=["feature count", "nan", "1-D", "strings"],
)
def test_bad_prediction_input_raises(model, data, method, make, error, message):
    before = _snapshot(model)
    with pytest.raises(error, match=message):
        getattr(model, method)(make(data))
    _assert_unchanged(model, before)


def test_nan_in_a_lazy_input_is_found_by_the_pass_that_reads_it(model, data, tmp_path):
    path = _zarr(tmp_path, _with_bad_value(data, 1150, np.nan))
    labels = model.predict(zarr.open_array(path, mode="r"))
    assert isinstance(labels, da.Array)
    with pytest.raises(ValueError, match="NaN or infinity.*1150"):
        labels.compute()


# ------------------------------------------- failures in the middle of EM
def _poisoned_on_pass(X, chunk_rows, poison_from_pass):
    """A Dask array whose last chunk gets a NaN from its ``poison_from_pass``-th
    read on: the fit fails in the middle of its EM iterations."""
    last = (X.shape[0] - 1) // chunk_rows
    reads = itertools.count(1)
    lock = threading.Lock()

    def poison(block, block_info=None):
        if block.size and block_info[0]["chunk-location"][0] == last:
            with lock:
                read = next(reads)
            if read >= poison_from_pass:
                block = block.copy()
                block[-1, 2] = np.nan
        return block

    return da.from_array(X, chunks=(chunk_rows, -1)).map_blocks(poison, dtype=X.dtype)


def test_nan_found_in_a_later_em_iteration_keeps_the_model(model, data):
    before = _snapshot(model)
    start = dict(
        weights_init=model.weights_,
        means_init=model.means_ + 0.5,
        precisions_init=model.precisions_,
        tol=0.0,
        max_iter=10,
    )
    X = _poisoned_on_pass(data, 400, poison_from_pass=4)
    model.set_params(**start)
    with dask.config.set(scheduler="synchronous"):
        with pytest.raises(ValueError, match=f"NaN or infinity.*{data.shape[0] - 1}"):
            model.fit(X)
    _assert_unchanged(model, before)


def test_cholesky_failure_keeps_the_model(model, data):
    before = _snapshot(model)
    model.set_params(reg_covar=0.0)
    with pytest.raises(CholeskyError, match="reg_covar"):
        model.fit(np.ones((50, 3)))
    _assert_unchanged(model, before)


def test_overflow_is_an_error_not_nan_parameters(model, data):
    before = _snapshot(model)
    with pytest.raises(ValueError, match=r"larger than 1e\+100 in magnitude.*rows 0 and 1199"):
        model.fit(data * 1e300)
    _assert_unchanged(model, before)


# ------------------------------------------------------------ degenerate data
def _degenerate(name):
    rng = np.random.default_rng(0)
    if name == "all rows equal":
        return np.full((60, 3), 2.5)
    if name == "constant feature":
        X = rng.normal(size=(300, 3))
        X[:, 1] = 7.0
        return X
    if name == "duplicated points":
        return np.repeat(rng.normal(size=(4, 3)) * 10, 25, axis=0)
    return np.repeat([[0.0, 0.0], [3.0, 4.0]], 30, axis=0)  # K > 2 leaves components empty


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize(
    "name", ["all rows equal", "constant feature", "duplicated points", "two points"]
)
@pytest.mark.parametrize("n_components", [1, 3, 5])
def test_degenerate_data_give_finite_parameters(covariance_type, name, n_components):
    X = _degenerate(name)
    model = GaussianMixture(
        n_components, covariance_type=covariance_type, max_iter=20, random_state=0
    ).fit(X)
    for attribute in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        assert np.all(np.isfinite(getattr(model, attribute))), attribute
    assert np.isclose(model.weights_.sum(), 1.0)
    assert np.all(np.isfinite(model.score_samples(X)))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_degenerate_data_without_regularisation_raise_the_cholesky_error(covariance_type):
    with pytest.raises(CholeskyError, match="not positive definite.*reg_covar"):
        GaussianMixture(2, covariance_type=covariance_type, reg_covar=0.0).fit(
            _degenerate("all rows equal")
        )
