"""Atomic operations on an int64 array for compiled code shared by two threads.

Numba has no atomics on the CPU; these intrinsics emit LLVM's atomic load,
store and compare-exchange on one slot of a C-contiguous int64 array, with
acquire and release ordering: everything a thread wrote before a
:func:`store_release` is visible to a thread whose :func:`load_acquire` (or
successful :func:`compare_exchange`) read that value. :func:`yield_thread`
calls ``sched_yield`` so that a thread waiting for another gives up its core
on a busy machine instead of spinning through its time slice,
:func:`spin_pause` tells the processor that a thread is spinning (x86
``pause``: the spinning thread takes fewer of the resources of a core it may
share with the thread it waits for), and :func:`cycle_count` reads the
processor's cycle counter, so that a thread can bound how long it waits.

They are what :func:`streamgmm.kernels.online.online_steps` and its helper thread
hand each other a mini-batch's second half with (:mod:`streamgmm.kernels.pairing`).
"""

from __future__ import annotations

import platform

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic


def _slot_pointer(context, builder, array_type, array, index):
    """LLVM pointer to ``array[index]`` (no bounds check, no negative index)."""
    array = context.make_array(array_type)(context, builder, array)
    return cgutils.get_item_pointer(context, builder, array_type, array, [index],
                                    wraparound=False)


@intrinsic
def load_acquire(typingctx, flags, index):  # pragma: no cover
    """``flags[index]``, read atomically with acquire ordering."""
    signature = types.int64(flags, types.intp)

    def codegen(context, builder, sig, args):
        pointer = _slot_pointer(context, builder, sig.args[0], args[0], args[1])
        return builder.load_atomic(pointer, "acquire", 8)

    return signature, codegen


@intrinsic
def store_release(typingctx, flags, index, value):  # pragma: no cover
    """``flags[index] = value``, written atomically with release ordering."""
    signature = types.none(flags, types.intp, types.int64)

    def codegen(context, builder, sig, args):
        pointer = _slot_pointer(context, builder, sig.args[0], args[0], args[1])
        builder.store_atomic(args[2], pointer, "release", 8)
        return context.get_dummy_value()

    return signature, codegen


@intrinsic
def compare_exchange(typingctx, flags, index, expected, new):  # pragma: no cover
    """If ``flags[index] == expected``, set it to ``new`` and return True, as one
    atomic step (acquire and release); else return False."""
    signature = types.boolean(flags, types.intp, types.int64, types.int64)

    def codegen(context, builder, sig, args):
        pointer = _slot_pointer(context, builder, sig.args[0], args[0], args[1])
        outcome = builder.cmpxchg(pointer, args[2], args[3], "acq_rel", "acquire")
        return builder.extract_value(outcome, 1)

    return signature, codegen


@intrinsic
def yield_thread(typingctx):  # pragma: no cover
    """``sched_yield()``: let another thread run on this core."""
    signature = types.none()

    def codegen(context, builder, sig, args):
        function_type = ir.FunctionType(ir.IntType(32), [])
        function = cgutils.get_or_insert_function(builder.module, function_type, "sched_yield")
        builder.call(function, [])
        return context.get_dummy_value()

    return signature, codegen


SPIN_PAUSE_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")
"""Whether :func:`spin_pause` emits the x86 ``pause`` instruction (elsewhere it
does nothing)."""


@intrinsic
def spin_pause(typingctx):  # pragma: no cover
    """A hint that this thread is in a spin-wait loop (x86 ``pause``)."""
    signature = types.none()

    def codegen(context, builder, sig, args):
        if SPIN_PAUSE_X86:
            function_type = ir.FunctionType(ir.VoidType(), [])
            function = cgutils.get_or_insert_function(
                builder.module, function_type, "llvm.x86.sse2.pause"
            )
            builder.call(function, [])
        return context.get_dummy_value()

    return signature, codegen


@intrinsic
def cycle_count(typingctx):  # pragma: no cover
    """The processor's cycle counter (``rdtsc`` on x86; 0 where there is none)."""
    signature = types.int64()

    def codegen(context, builder, sig, args):
        function_type = ir.FunctionType(ir.IntType(64), [])
        function = cgutils.get_or_insert_function(
            builder.module, function_type, "llvm.readcyclecounter"
        )
        return builder.call(function, [])

    return signature, codegen


@intrinsic
def prefetch(typingctx, values, row, column):  # pragma: no cover
    """A hint that ``values[row, column]`` (a 2-D C-contiguous array) will be
    read soon: its cache line is fetched meanwhile (LLVM's ``prefetch``, for
    reading, kept in every cache level). It reads nothing and cannot fault;
    the value is not checked against the bounds."""
    signature = types.none(values, types.intp, types.intp)

    def codegen(context, builder, sig, args):
        array = context.make_array(sig.args[0])(context, builder, args[0])
        pointer = cgutils.get_item_pointer(context, builder, sig.args[0], array,
                                           [args[1], args[2]], wraparound=False)
        integer = ir.IntType(32)
        function_type = ir.FunctionType(ir.VoidType(), [pointer.type, integer, integer, integer])
        function = cgutils.get_or_insert_function(builder.module, function_type,
                                                  "llvm.prefetch.p0")
        builder.call(function, [pointer, integer(0), integer(3), integer(1)])
        return context.get_dummy_value()

    return signature, codegen


SPINS_BEFORE_YIELD = 64
"""Reads of a slot a waiting thread makes before it starts yielding its core
between reads (a few microseconds)."""


@njit(nogil=True, cache=True)
def wait_at_least(flags, index, value, stop_index, patience):  # pragma: no cover
    """Wait until ``flags[index] >= value`` (True), or until ``flags[stop_index]``
    is non-zero or, if ``patience`` is positive, ``patience`` processor cycles
    have passed (False; where there is no cycle counter, ``patience / 1000``
    reads), spinning first (:func:`spin_pause` between reads), then yielding
    the core between reads."""
    spins = 0
    start = cycle_count()
    while load_acquire(flags, index) < value:
        if load_acquire(flags, stop_index) != 0:
            return False
        if patience > 0 and (cycle_count() - start >= patience if start != 0
                             else spins * 1000 >= patience):
            return False
        spins += 1
        if spins > SPINS_BEFORE_YIELD:
            yield_thread()
        else:
            spin_pause()
    return True


@njit(nogil=True, cache=True)
def wait_cycles(flags, index, value, cycles):  # pragma: no cover
    """Spin until ``flags[index] >= value`` (True) or ``cycles`` processor cycles
    have passed (False; at once where there is no cycle counter), with
    :func:`spin_pause` between reads."""
    deadline = cycle_count() + cycles
    while load_acquire(flags, index) < value:
        if cycle_count() >= deadline:
            return False
        spin_pause()
    return True


__all__: list[str] = []
"""Nothing here is public API (docs/api.md lists what is)."""
