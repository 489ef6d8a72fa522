"""The decorators every kernel is compiled with, in one place.

:func:`kernel` compiles a function with numba, without the GIL (so that Dask's
threads and the online helper thread run kernels truly in parallel) and cached
on disk (:func:`addressable` also with the C wrapper a pointer to it calls);
:func:`shared` compiles a function that only kernels call, without
the wrappers Python would need. :func:`part` marks a function that has a
single compiled caller: numba inlines it into that caller instead of compiling
it on its own. The interpreted
tier (:mod:`streamgmm.kernels.tiers`) loads the kernel modules with another
``jit`` module in this one's place, whose decorators leave each function as it
is. It also types a :class:`~streamgmm.kernels.pointers.KernelPointer` for
numba (an address, unboxed cheaply) and turns it into a function to call
(:func:`called`).
"""

from __future__ import annotations

from collections.abc import Callable

import numba.experimental.function_type  # noqa: F401  (lowers first-class functions)
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.core.types.function_type import FunctionType
from numba.core.typing.typeof import typeof_impl
from numba.extending import NativeValue, intrinsic, models, register_model, unbox

from .pointers import KernelPointer, fold_callees


class KernelAddress(types.Type):
    """numba's type of a :class:`~streamgmm.kernels.pointers.KernelPointer`:
    the address of its kernel's C wrapper, an integer. (Typed as numba's own
    first-class function, a pointer was unboxed at every call through
    Python functions that unpickle its signature: 30 us a ``partial_fit``.)"""

    def __init__(self, field: str):
        self.field = field
        super().__init__(name=f"KernelAddress({field})")


@typeof_impl.register(KernelPointer)
def _typeof_pointer(pointer: KernelPointer, context: object) -> KernelAddress:
    return KernelAddress(pointer.field)


@register_model(KernelAddress)
class _AddressModel(models.PrimitiveModel):
    def __init__(self, dmm: object, kind: KernelAddress):
        super().__init__(dmm, kind, ir.IntType(64))


@unbox(KernelAddress)
def _unbox_pointer(kind: KernelAddress, pointer: object, c: object) -> NativeValue:
    address = c.pyapi.call_method(pointer, "__wrapper_address__", ())
    value = c.pyapi.long_as_longlong(address)
    c.pyapi.decref(address)
    return NativeValue(value, is_error=c.pyapi.c_api_error())


@intrinsic
def called(typingctx: object, pointer: object) -> object:
    """The kernel of a pointer (a ``KernelAddress``) as a numba first-class
    function of its one signature, to call."""
    if not isinstance(pointer, KernelAddress):
        return None
    kind = FunctionType(getattr(fold_callees(), pointer.field).signature())

    def codegen(context, builder, signature, arguments):
        function = cgutils.create_struct_proxy(kind)(context, builder)
        function.c_addr = builder.inttoptr(arguments[0], cgutils.voidptr_t)
        function.py_addr = cgutils.get_null_value(cgutils.voidptr_t)
        function.jit_addr = cgutils.get_null_value(cgutils.voidptr_t)
        return function._getvalue()

    return kind(pointer), codegen


def kernel(function: Callable) -> Callable:
    """``function``, an entry point Python calls (through
    :mod:`streamgmm.kernels.entries`), compiled by numba on its first call
    (``nogil``, ``cache``), with the CPython wrapper Python calls it through."""
    return njit(nogil=True, cache=True, no_cfunc_wrapper=True)(function)


def addressable(function: Callable) -> Callable:
    """A :func:`kernel` that other kernels also call through a
    :class:`~streamgmm.kernels.pointers.KernelPointer`: compiled with the C
    wrapper too, whose address the pointer hands to them."""
    return njit(nogil=True, cache=True)(function)


def shared(function: Callable) -> Callable:
    """``function``, called by several compiled kernels and never by Python,
    compiled once on its own (``nogil``, ``cache``) without the wrappers a
    call from Python needs: numba makes a CPython wrapper (unboxing every
    argument) and a C wrapper for each compiled function, 500 to 1,700 lines
    of IR each, and optimises and emits them with it although only compiled
    callers call it (docs/benchmarks.md, "Session 17": the E-step's sums
    compiled in 8.6 against 12.4 s)."""
    return njit(nogil=True, cache=True, no_cpython_wrapper=True, no_cfunc_wrapper=True)(function)


def part(function: Callable) -> Callable:
    """``function`` inlined by numba into its one compiled caller.

    numba compiles each :func:`kernel` into a library of its own, then links
    that library's code into every compiled caller and optimises it again
    there; for a function with a single caller the first compile buys nothing.
    Inlined, it is typed and optimised only inside its caller (about a fifth
    less CPU for ``streamgmm compile``, the same machine arithmetic: see
    docs/benchmarks.md). ``tests/test_architecture.py`` keeps every function
    with one caller a part and every part with one caller.
    """
    return njit(nogil=True, cache=True, inline="always")(function)
