"""The interpreted tier of every kernel equals its compiled version bit for bit
(streamgmm.kernels.tiers), for each covariance type, both products dtypes,
weighted and reordered rows, own-shifted components and every density form.

This file compiles every kernel once (the only tests that must: the rest of
the suite runs whichever tier is due)."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from streamgmm import estep
from streamgmm.covariance import KINDS, as_blocks, writeable
from streamgmm.estep import kernel_plan
from streamgmm.kernels import records, tiers, vectorized
from streamgmm.kernels.records import (
    Mixture,
    OnlineSettings,
    Running,
    Statistics,
    rows_record,
    unpaired,
)
from streamgmm.mstep import parameters_from_statistics
from streamgmm.statistics import statistics_blocks

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


def both(module: str, name: str):
    compiled = getattr(importlib.import_module(f"streamgmm.kernels.{module}"), name)
    return compiled, getattr(tiers.interpreted_module(module), name)


def assert_identical(ours, theirs, where="result"):
    if isinstance(ours, tuple):
        assert type(ours) is type(theirs) or not hasattr(ours, "_fields"), where
        assert len(ours) == len(theirs), where
        for index, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            name = ours._fields[index] if hasattr(ours, "_fields") else str(index)
            assert_identical(a, b, f"{where}.{name}")
        return
    a, b = np.asarray(ours), np.asarray(theirs)
    assert a.dtype == b.dtype, where
    assert a.shape == b.shape, where
    assert a.tobytes() == b.tobytes(), f"{where} differs"


def mixture_case(covariance_type: str, separated: bool, rng):
    """Rows and a fitted-looking mixture; ``separated`` puts one component far
    away and tight (own shift; the full type's whitened form)."""
    d, K = 5, 3
    centres = rng.normal(size=(K, d)) * 3
    if separated:
        centres[2] += 1e4
    X = np.concatenate([c + rng.normal(size=(200, d)) * (0.01 if separated and k == 2 else 1)
                        for k, c in enumerate(centres)])
    resp = np.eye(K)[np.repeat(np.arange(K), 200)]
    stats = estep.statistics_from_responsibilities(X, resp, centres, covariance_type)
    params, covariances = parameters_from_statistics(stats, 1e-6, covariance_type)
    return X, params, covariances, stats


CASES = [(t, s, dt) for t in COVARIANCE_TYPES for s in (False, True)
         for dt in (("float64", "float32") if t == "full" else ("float64",))]


@pytest.mark.parametrize(("covariance_type", "separated", "dtype"), CASES)
def test_e_step_kernels_are_identical_in_both_tiers(covariance_type, separated, dtype):
    rng = np.random.default_rng(7)
    X, params, _, _ = mixture_case(covariance_type, separated, rng)
    n, d = X.shape
    K = params.means.shape[0]
    plan = kernel_plan(covariance_type, K, d, dtype)._replace(block=97)
    operands = [f(writeable(params.weights), writeable(params.means),
                  as_blocks(params.precisions_cholesky, covariance_type),
                  writeable(1.0 / as_blocks(params.precisions_cholesky,
                                                  covariance_type)[:, 0, :1] ** 2
                                  * np.ones((K, d))), plan)
                for f in both("operands", "density_operands")]
    assert_identical(*operands, "operands")
    operands = operands[0]
    order = rng.permutation(n)[: n - 50]
    weights = rng.random(n) * 3
    for rows in (rows_record(X), rows_record(X, order), rows_record(X, order, weights),
                 rows_record(X, None, weights)):
        chosen = operands.single if plan.float32 else operands.double
        sums = [f(rows, 3, 480, operands, chosen, plan)
                for f in both("estep", "typed_range_sums")]
        assert_identical(*sums, "range_sums")
        stats = [f(sums[0], operands.shift, writeable(params.means), operands.own_shift,
                   KINDS[covariance_type]) for f in both("mstep", "centred_statistics")]
        assert_identical(*stats, "centred_statistics")
    rows = rows_record(X)
    assert_identical(*(f(rows, operands, chosen, plan)
                       for f in both("estep", "typed_log_densities")), "log_densities")
    resp = rng.dirichlet(np.ones(K), size=n)
    resp_operands = operands._replace(own_index=np.arange(K, dtype=np.int64))
    assert_identical(*(f(rows, resp, resp_operands, kernel_plan(covariance_type, K, d))
                       for f in both("estep", "responsibility_sums")), "responsibility_sums")


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_m_step_kernels_are_identical_in_both_tiers(covariance_type):
    rng = np.random.default_rng(3)
    _, _, _, stats = mixture_case(covariance_type, True, rng)
    kind = KINDS[covariance_type]
    a = statistics_blocks(stats, covariance_type)
    b = Statistics(a.weight[::-1].copy(), a.mean + 1.5, a.scatter * 0.5)
    for name, arguments in (("merge_blocks", (a, b, kind)),
                            ("stepwise_blocks", (a, b, 0.3, kind)),
                            ("m_step_blocks", (a, 1e-6, kind)),
                            ("parameters_blocks", (a, 1e-6, kind))):
        assert_identical(*(f(*arguments) for f in both("mstep", name)), name)
    broken = Statistics(a.weight, a.mean, a.scatter * -1.0)
    assert_identical(*(f(broken, 0.0, kind) for f in both("mstep", "parameters_blocks")),
                     "parameters_blocks of a covariance that is not positive definite")


@pytest.mark.parametrize(("covariance_type", "weighted", "averaging", "dtype"), [
    ("full", False, True, "float64"), ("full", True, False, "float32"),
    ("tied", False, False, "float64"), ("diag", True, True, "float64"),
    ("spherical", False, True, "float64"),
])
def test_online_fold_is_identical_in_both_tiers(covariance_type, weighted, averaging, dtype):
    rng = np.random.default_rng(11)
    X, params, covariances, stats = mixture_case(covariance_type, False, rng)
    n, d = X.shape
    K = params.means.shape[0]
    plan = kernel_plan(covariance_type, K, d, dtype)
    order = rng.permutation(n)
    rows = rows_record(X, order, rng.random(n) * 2 if weighted else None)
    statistics = statistics_blocks(stats, covariance_type)
    zero = Statistics(np.zeros(K), np.zeros((K, d)), np.zeros_like(statistics.scatter))
    mixture = Mixture(writeable(params.weights), writeable(params.means),
                      as_blocks(covariances, covariance_type),
                      as_blocks(params.precisions_cholesky, covariance_type))
    settings = OnlineSettings(64, 1e-6, 0.6, 2.0, 0.0, averaging, 10 * K * (d + 1), 1e100)
    pairing = unpaired()
    for running in (Running(mixture, zero, np.zeros(2), 0, 0.0, zero, np.zeros(2), 0),
                    Running(mixture, statistics, np.array([-3.0, 1.0]), 4, 500.0, statistics,
                            np.array([-3.0, 1.0]), 2)):
        outcomes = [f(rows, running, settings, plan, pairing) for f in both("online",
                                                                            "online_steps")]
        assert outcomes[0].status == 0
        assert_identical(*outcomes, "online_steps")


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("separated", [False, True])
def test_gappy_kernels_are_identical_in_both_tiers(covariance_type, separated):
    """The E-step of rows with gaps (missing values): both kernels, weighted and
    unweighted rows, rows with nothing observed."""
    from streamgmm.missing import GAPPY_KERNEL_ROWS, by_pattern, marginal_record

    rng = np.random.default_rng(13)
    X, params, _, _ = mixture_case(covariance_type, separated, rng)
    X = X.copy()
    X[rng.random(X.shape) < 0.3] = np.nan
    X[[5, 70, 400]] = np.nan
    n, d = X.shape
    K = params.means.shape[0]
    marginal = marginal_record(params)._replace(block=97)
    operands = estep.density_factors(params)
    plan = kernel_plan(covariance_type, K, d)._replace(block=97)
    assert GAPPY_KERNEL_ROWS > 97
    precisions = np.ascontiguousarray(np.moveaxis(marginal.precisions, 0, -1))
    n_rows = n if covariance_type in ("full", "tied") else 0
    tables = both("patterns", "pattern_table")
    assert_identical(*(f(X, n_rows, precisions, K) for f in tables), "pattern_table")
    for rows in (rows_record(X), rows_record(X, None, rng.random(n) * 3)):
        # each call its own table: the kernels add the patterns' masses into it
        assert_identical(*(f(rows, marginal, *table(rows.X, n_rows, precisions, K))
                           for f, table in zip(both("gappy", "gappy_sums"), tables,
                                               strict=True)), "gappy_sums")
        if (covariance_type != "tied" and operands.density_mode == 0
                and operands.own_index.size == 0):
            # also visited by pattern, as gappy_statistics does for full: runs of one pattern
            for visited in (rows, by_pattern(rows, *tables[0](rows.X, n_rows, precisions, K))):
                assert_identical(*(f(visited, marginal, operands, plan,
                                     *table(rows.X, n_rows, precisions, K), precisions)
                                   for f, table in zip(both("masked", "masked_sums"), tables,
                                                       strict=True)), "masked_sums")


def test_exponentials_are_identical_in_both_tiers():
    rng = np.random.default_rng(5)
    values = np.concatenate([-rng.exponential(30, 5000), [0.0, -708.0, -708.5, -1e30, -745.2]])
    for name, dtype in (("exp_nonpositive", np.float64), ("exp_nonpositive_float32", np.float32)):
        compiled, _ = both("mathfn", name)
        ours, theirs = np.empty_like(values.astype(dtype)), np.empty_like(values.astype(dtype))
        compiled(values.astype(dtype), ours)
        getattr(vectorized, name)(values.astype(dtype), theirs)
        assert_identical(ours, theirs, name)


def test_a_fit_is_identical_whichever_tier_runs(monkeypatch):
    """Whole fits (batch and online) give the same bytes interpreted and compiled."""
    from streamgmm import GaussianMixture

    rng = np.random.default_rng(2)
    X = np.concatenate([rng.normal(size=(300, 3)) + shift for shift in (0, 4, 8)])
    results = []
    for mode in ("interpreted", "compiled"):
        monkeypatch.setenv("STREAMGMM_KERNELS", mode)
        fitted = []
        for algorithm in ("batch", "online"):
            model = GaussianMixture(3, algorithm=algorithm, random_state=0, max_iter=5,
                                    tol=0, batch_size=128)
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(X)
            fitted.append((model.means_, model.covariances_, model.weights_, model.lower_bound_))
        results.append(fitted)
    assert_identical(tuple(map(tuple, results[0])), tuple(map(tuple, results[1])), "fits")


def test_rows_reach_the_kernels_in_one_type():
    """Read-only, float32, F-ordered and writeable rows all become one numba type."""
    import numba

    X = np.arange(12.0).reshape(4, 3)
    readonly = X.copy()
    readonly.flags.writeable = False
    types = {numba.typeof(rows_record(rows)) for rows in
             (X, readonly, X.astype(np.float32), np.asfortranarray(X))}
    assert len(types) == 1
    assert records.rows_record(X).X.flags.writeable is False


def test_a_kernel_is_compiled_once_hot_and_the_user_is_told_once(tmp_path):
    """In a fresh process with an empty cache: interpreted first, compiled once
    its interpreted time passes the threshold (here 1 ns), with one line on
    standard error; a second process loads it from the disk cache silently
    once its interpreted time passes that threshold (here 0), and a third, with
    the default, keeps a call that takes microseconds interpreted."""
    import os
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from streamgmm.kernels import entries, tiers\n"
        "tiers.COMPILE_AFTER_SECONDS = 1e-9\n"
        "tiers.LOAD_AFTER_SECONDS = float(sys.argv[1])\n"
        "first = entries.step_size.tier(3, 0.6, 2.0, 0.0)\n"
        "value = first(3, 0.6, 2.0, 0.0)\n"
        "second = entries.step_size.tier(4, 0.6, 2.0, 0.0)\n"
        "entries.step_size(5, 0.6, 2.0, 0.0)\n"
        "print(first is entries.step_size.compiled, second is entries.step_size.compiled,"
        " value == (3 + 2.0) ** -0.6)\n"
    )
    environment = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    environment.pop("STREAMGMM_KERNELS", None)
    runs = [subprocess.run([sys.executable, "-c", code, load_after], env=environment,
                           capture_output=True, text=True, check=True)
            for load_after in ("0", "0", repr(tiers.LOAD_AFTER_SECONDS))]
    assert runs[0].stdout.split() == ["False", "True", "True"]
    assert runs[0].stderr.count("compiling kernels") == 1
    assert runs[1].stdout.split() == ["True", "True", "True"]
    assert "compiling" not in runs[1].stderr
    assert runs[2].stdout.split()[0] == "False"
    assert "compiling" not in runs[2].stderr


def test_an_edit_of_any_kernel_module_recompiles_the_kernels_that_use_it(tmp_path):
    """numba stamps a cached kernel with its own file alone; ours carry every
    kernel module's source (``jit.stamped``). In a copy of the package, a
    process compiles ``merge_blocks`` (``mstep.py``), whose scatter is summed
    by ``added`` (``mathfn.py``, linked in); after ``added`` is edited to
    subtract, a second process on the same cache must run the edited code,
    not load the kernel as it was."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import streamgmm

    package = tmp_path / "copy" / "streamgmm"
    shutil.copytree(Path(streamgmm.__file__).parent, package,
                    ignore=shutil.ignore_patterns("__pycache__"))
    code = (
        "import numpy as np, streamgmm\n"
        f"assert streamgmm.__file__.startswith({str(package)!r})\n"
        "from streamgmm.kernels import entries\n"
        "from streamgmm.kernels.records import Statistics\n"
        "a = Statistics(np.ones(2), np.zeros((2, 3)), np.ones((2, 3, 3)))\n"
        "print(entries.merge_blocks(a, a, 0).scatter.sum())\n"
    )
    environment = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"),
                       STREAMGMM_KERNELS="compiled", PYTHONPATH=str(package.parent))

    def run() -> float:
        return float(subprocess.run([sys.executable, "-c", code], env=environment, cwd=tmp_path,
                                    capture_output=True, text=True, check=True).stdout)

    assert run() == 36.0
    mathfn = package / "kernels" / "mathfn.py"
    source = mathfn.read_text()
    edited = source.replace("    out = first.copy()\n    add_into(out, second)\n",
                            "    out = first.copy()\n    out -= second\n")
    assert edited != source
    mathfn.write_text(edited)
    assert run() == 0.0


def test_the_fast_call_takes_only_argument_types_numba_checked(monkeypatch):
    """Once compiled, a kernel goes past numba's dispatcher only for arguments
    whose fingerprints numba's typing matched to its single compiled version
    (a registered constant's fingerprint taken once); arguments of another type
    take the dispatcher, which compiles for them as before."""
    import numba

    monkeypatch.setenv("STREAMGMM_KERNELS", "compiled")
    kernel = tiers.Tiered("online", "step_size")
    kernel._dispatcher = numba.njit(lambda values, settings: values.sum() * settings.reg_covar)
    settings = tiers.constant(OnlineSettings(64, 0.5, 0.6, 2.0, 0.0, False, 100, 1e100))
    values = np.arange(6.0)
    assert kernel(values, settings) == 7.5
    assert len(kernel._fast) == 1
    assert kernel(values, settings) == 7.5  # the fast call
    assert kernel(values + 1, settings) == 10.5
    assert kernel(np.arange(6, dtype=np.float32), settings) == 7.5  # float32: the dispatcher
    assert len(kernel._dispatcher.overloads) == 2
    assert len(kernel._fast) == 1
    frozen = np.arange(6.0)
    frozen.flags.writeable = False
    assert kernel(frozen, settings) == 7.5
    assert len(kernel._fast) == 1
    assert kernel(values, settings) == 7.5
