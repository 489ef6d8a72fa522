"""Kernels handed to another kernel as data, so that numba compiles them once.

numba links the whole library of every kernel a compiled kernel calls into the
caller's library, and optimises and emits it again there: the online fold's
library held both of the E-step's versions and the density operands a second
time, half of its code. A :class:`KernelPointer` reaches compiled code as the
address of its kernel's compiled version (numba's type ``KernelAddress``,
:mod:`streamgmm.kernels.jit`), which ``called(pointer)`` turns into a
first-class function of the kernel's one signature: the caller calls the
kernel there, and only the caller's code is compiled with it (the fold's
compile about a sixth shorter, docs/benchmarks.md, "Session 17"). Called from
Python (the interpreted tier, where ``called`` returns the pointer itself), a
pointer runs its tiered kernel.

Nothing here imports numba until a pointer is typed or compiled.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from .records import Operands, Plan, Rows, rows_record


class KernelPointer:
    """The tiered kernel ``tiered`` (:class:`~streamgmm.kernels.tiers.Tiered`) as
    a numba first-class function; its signature is that of ``examples()``'s
    argument types (each kernel has one compiled version). Typing or unboxing
    it compiles the kernel, or loads it from the disk cache."""

    def __init__(self, field: str, tiered: Any, examples: Callable[[], tuple]):
        self.field = field
        self.tiered = tiered
        self.examples = examples
        self._signature: Any = None
        self._address = 0

    def __repr__(self) -> str:
        return f"KernelPointer({self.field})"

    def _compiled(self) -> Any:
        import numba

        from .tiers import load_cached

        dispatcher = self.tiered.compiled
        arguments = self.examples()
        types = tuple(numba.typeof(argument) for argument in arguments)
        if not load_cached(dispatcher, arguments):
            dispatcher.compile(types)
        return dispatcher.overloads[types]

    def signature(self) -> Any:
        """The numba signature of the kernel's compiled version."""
        if self._signature is None:
            self._signature = self._compiled().signature
        return self._signature

    def __wrapper_address__(self) -> int:
        """The address of the compiled version's C wrapper."""
        if not self._address:
            result = self._compiled()
            self._address = result.library.get_pointer_to_function(
                result.fndesc.llvm_cfunc_wrapper_name)
        return self._address

    def __call__(self, *arguments: Any) -> Any:
        return self.tiered(*arguments)


class FoldCallees(NamedTuple):
    """The kernels the online fold calls through pointers: the E-step's sums
    with float64 and with float32 products, and the density operands."""

    range_sums: KernelPointer
    range_sums_float32: KernelPointer
    density_operands: KernelPointer


def density_operand_examples(dtype: type = np.float64) -> tuple:
    """Arguments of ``density_operands`` (two components, three features)
    with products in ``dtype``, of the types every caller passes."""
    from ..estep import kernel_plan

    plan = kernel_plan("full", 2, 3, dtype)
    factors = np.repeat(np.eye(3)[None], 2, axis=0)
    return np.full(2, 0.5), np.zeros((2, 3)), factors, np.ones((2, 3)), plan


def e_step_examples(dtype: type = np.float64) -> tuple[Rows, Operands, Plan]:
    """``(rows, operands, plan)`` of the E-step with products in ``dtype``, of
    the types every caller passes; made by the interpreted kernels (nothing is
    compiled)."""
    from . import entries

    arguments = density_operand_examples(dtype)
    operands = entries.density_operands.interpreted(*arguments)
    return rows_record(np.zeros((2, 3))), operands, arguments[-1]


def range_sums_examples(dtype: type) -> tuple:
    """Arguments of ``typed_range_sums`` with products in ``dtype``."""
    rows, operands, plan = e_step_examples(dtype)
    chosen = operands.single if dtype == np.float32 else operands.double
    return rows, 0, 0, operands, chosen, plan


@functools.cache
def fold_callees() -> FoldCallees:
    """The fold's callees (made once)."""
    from . import entries

    return FoldCallees(
        KernelPointer("range_sums", entries.range_sums,
                      lambda: range_sums_examples(np.float64)),
        KernelPointer("range_sums_float32", entries.range_sums_float32,
                      lambda: range_sums_examples(np.float32)),
        KernelPointer("density_operands", entries.density_operands, density_operand_examples),
    )
