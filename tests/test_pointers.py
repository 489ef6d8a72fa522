"""Kernels handed to a kernel as data (:mod:`streamgmm.kernels.pointers`)."""

import numpy as np
import pytest

from streamgmm.estep import kernel_plan
from streamgmm.kernels import entries
from streamgmm.kernels.pointers import FoldCallees, fold_callees
from streamgmm.kernels.records import rows_record

pytestmark = pytest.mark.usefixtures("compiled_kernels")


@pytest.fixture
def compiled_kernels(monkeypatch):
    monkeypatch.setenv("STREAMGMM_KERNELS", "compiled")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_kernel_called_through_its_pointer_gives_what_python_gets(dtype):
    """A compiled function calling the E-step through ``fold_callees()`` gets
    the same bytes as Python calling the compiled E-step, and Python calling
    the pointer gets them too."""
    import numba

    from streamgmm.kernels.jit import called

    rng = np.random.default_rng(3)
    X = rng.normal(size=(700, 4))
    plan = kernel_plan("full", 3, 4, dtype)._replace(block=128)
    factors = np.stack([np.triu(rng.normal(size=(4, 4)) * 0.1) + np.eye(4)] * 3)
    operands = entries.density_operands(np.full(3, 1 / 3), X[:3].copy(), factors,
                                        np.ones((3, 4)), plan)
    chosen = operands.single if dtype == np.float32 else operands.double
    rows = rows_record(X)
    callees = fold_callees()
    pointer = callees.range_sums_float32 if dtype == np.float32 else callees.range_sums

    @numba.njit
    def through(callees, rows, operands, plan):
        if plan.float32:
            return called(callees.range_sums_float32)(rows, 5, 650, operands, operands.single,
                                                      plan)
        return called(callees.range_sums)(rows, 5, 650, operands, operands.double, plan)

    tier = entries.range_sums_float32 if dtype == np.float32 else entries.range_sums
    direct = tier.compiled(rows, 5, 650, operands, chosen, plan)
    for result in (through(callees, rows, operands, plan),
                   pointer(rows, 5, 650, operands, chosen, plan)):
        for name in direct._fields:
            assert np.asarray(getattr(result, name)).tobytes() == (
                np.asarray(getattr(direct, name)).tobytes()), name
    assert direct.log_likelihood < 0


def test_fold_callees_are_made_once_and_typed_as_addresses():
    """The pointers are made once per process (a constant of the fold's
    pairing); numba types each as the address of its field's kernel, which is
    that kernel's one compiled version."""
    import numba

    from streamgmm.kernels.jit import KernelAddress

    callees = fold_callees()
    assert fold_callees() is callees and isinstance(callees, FoldCallees)
    for field, pointer in zip(FoldCallees._fields, callees, strict=True):
        assert numba.typeof(pointer) == KernelAddress(field)
        assert pointer.signature().args in pointer.tiered.compiled.overloads
        assert pointer.__wrapper_address__() > 0
