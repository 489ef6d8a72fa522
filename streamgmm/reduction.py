"""The Dask reduction: map a chunk function over row-chunks, tree-combine, compute.

This is the chunk / combine / aggregate pattern of ``dask.array.reductions``
with results that are :class:`~streamgmm.statistics.SufficientStatistics` (or any
value with a combine function) instead of arrays. Only those small results travel
between workers and to the client; each iteration is one graph and one
``dask.compute`` on whatever scheduler is active.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from itertools import accumulate
from typing import Any

import dask
import dask.array as da
import numpy as np
from dask.utils import funcname

from .threads import blas_threads_for_dask

SPLIT_EVERY = 8
"""How many partial results one combine task merges."""


def row_offsets(array: da.Array) -> list[int]:
    """Index of the first row of every row-chunk."""
    return [0, *accumulate(array.chunks[0])][:-1]


def _reduce_block(block, *arguments, chunk_function, weighted=False, block_info=None):
    """``chunk_function(block, *arguments, row_offset)`` for one block; if
    ``weighted``, the first argument is the block's weights (b, 1), passed on
    as ``sample_weight`` (b,)."""
    offset = block_info[0]["array-location"][0][0] if block_info else 0
    if weighted:
        weights, *arguments = arguments
        return chunk_function(block, *arguments, offset, sample_weight=weights[:, 0])
    return chunk_function(block, *arguments, offset)


def build_tree_reduction(
    array: da.Array,
    chunk_function: Callable[..., Any],
    combine_function: Callable[[Sequence[Any]], Any],
    *arguments: Any,
    split_every: int = SPLIT_EVERY,
    name: str | None = None,
    sample_weight: da.Array | None = None,
):
    """A lazy ``dask.delayed`` result of reducing ``array`` (row-chunked, one
    feature chunk) with ``chunk_function(block, *arguments, row_offset)`` and
    ``combine_function(list_of_partials)``.

    ``sample_weight`` (n,), chunked like the rows of ``array``, travels with
    them: each block's weights reach the chunk function as its keyword
    ``sample_weight`` (read in the same task as the block).

    The chunk function is mapped with ``map_blocks``, so Dask's graph
    optimisation fuses it with the task that loads the block (from Zarr, say):
    a block is reduced on the worker that reads it and only the partial results
    travel. The mapped "array" is never computed as an array: its blocks are the
    partial results, taken one by one with ``to_delayed`` (``meta`` is given so
    that Dask never calls the chunk function to guess it). ``arguments`` are
    wrapped once as graph keys so that large parameters are not copied into
    every task. Tasks are named ``reduce-<name>`` (default: the chunk
    function's name).
    """
    if array.numblocks[1] != 1:
        raise ValueError("array must have a single chunk along the feature axis")
    shared = [dask.delayed(argument, pure=True) for argument in arguments]
    if sample_weight is not None:
        if sample_weight.chunks[0] != array.chunks[0]:
            raise ValueError("sample_weight must be chunked like the rows of the array")
        shared.insert(0, sample_weight[:, None])
    partial_blocks = array.map_blocks(
        _reduce_block,
        *shared,
        chunk_function=chunk_function,
        weighted=sample_weight is not None,
        chunks=(1, 1),
        meta=np.empty((0, 0), dtype=object),
        token=f"reduce-{name or funcname(chunk_function)}",
    )
    partials = list(partial_blocks.to_delayed().ravel())
    combine_task = dask.delayed(combine_function, pure=True)
    while len(partials) > 1:
        partials = [
            combine_task(partials[start : start + split_every])
            for start in range(0, len(partials), split_every)
        ]
    return partials[0]


def sum_tuples(parts: Sequence[tuple]) -> tuple:
    """Combine function of reductions whose chunks give tuples of numbers:
    the position-wise sums."""
    return tuple(map(sum, zip(*parts, strict=True)))


def tree_reduce(
    array: da.Array,
    chunk_function: Callable[..., Any],
    combine_function: Callable[[Sequence[Any]], Any],
    *arguments: Any,
    split_every: int = SPLIT_EVERY,
    name: str | None = None,
    sample_weight: da.Array | None = None,
):
    """Compute :func:`build_tree_reduction` on the active Dask scheduler."""
    reduction = build_tree_reduction(
        array, chunk_function, combine_function, *arguments, split_every=split_every, name=name,
        sample_weight=sample_weight,
    )
    with blas_threads_for_dask([reduction]):
        (result,) = dask.compute(reduction)
    return result


def _each_chunk(block, reductions, row_offset, **sample_weight):
    """``chunk_function(block, argument, row_offset)`` of every reduction (with
    the block's ``sample_weight`` when the reduction is weighted)."""
    return [
        chunk_function(block, argument, row_offset, **sample_weight)
        for chunk_function, _, argument in reductions
    ]


def _each_combined(parts, *, combine_functions):
    """Combine the lists of :func:`_each_chunk`, position by position."""
    return [
        combine(list(column))
        for combine, column in zip(combine_functions, zip(*parts, strict=True), strict=True)
    ]


def tree_reduce_each(
    array: da.Array,
    reductions: Sequence[tuple[Callable[..., Any], Callable[[Sequence[Any]], Any], Any]],
    split_every: int = SPLIT_EVERY,
    sample_weight: da.Array | None = None,
) -> list:
    """``[tree_reduce(array, chunk_function, combine_function, argument) for
    chunk_function, combine_function, argument in reductions]`` in one pass: each
    block is read once and reduced for every reduction, and the partial results
    combine in the same tree, so each result equals its own ``tree_reduce``
    exactly. Tasks are named after the first chunk function. With
    ``sample_weight`` every chunk function is called with its block's weights."""
    reductions = list(reductions)
    return tree_reduce(
        array,
        _each_chunk,
        partial(_each_combined, combine_functions=[combine for _, combine, _ in reductions]),
        reductions,
        split_every=split_every,
        name=funcname(reductions[0][0]),
        sample_weight=sample_weight,
    )


__all__: list[str] = []
"""Nothing here is public API (docs/api.md lists what is)."""
