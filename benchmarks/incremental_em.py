"""Incremental EM (Neal & Hinton 1998) over in-memory chunks, for
``time_to_converge.py`` and its test: measured against plain and accelerated
EM, not used by the package.

The statistics of every chunk are kept (``K (1 + d + d^2)`` numbers each for
the full type); after a chunk is visited again under the current parameters
its statistics replace the old ones and the M-step runs on the total. The
total is kept in a binary tree of merged statistics (:class:`StatisticsTree`),
so that replacing one chunk costs ``log2(chunks)`` exact merges
(:func:`streamgmm.statistics.merge`, which re-centres each pair about its
combined mean) and no subtraction of statistics.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from streamgmm.estep import GaussianParameters, chunk_statistics
from streamgmm.mstep import parameters_from_statistics
from streamgmm.statistics import SufficientStatistics, empty_statistics, merge


class StatisticsTree:
    """Statistics of every chunk and their total, kept in a binary tree of
    merges so that replacing one chunk's statistics re-merges ``log2(chunks)``
    nodes (:func:`streamgmm.statistics.merge`, exact re-centring)."""

    def __init__(self, parts: Sequence[SufficientStatistics], covariance_type: str) -> None:
        self.covariance_type = covariance_type
        self.size = 1 << max(0, math.ceil(math.log2(len(parts))))
        n_components, n_features = parts[0].mean.shape
        empty = empty_statistics(n_components, n_features, covariance_type)
        self.nodes = [empty] * self.size + list(parts) + [empty] * (self.size - len(parts))
        for node in range(self.size - 1, 0, -1):
            self.nodes[node] = merge(self.nodes[2 * node], self.nodes[2 * node + 1],
                                     covariance_type)

    @property
    def total(self) -> SufficientStatistics:
        """The statistics of all chunks."""
        return self.nodes[1] if self.size > 1 else self.nodes[self.size]

    def replace(self, index: int, stats: SufficientStatistics) -> None:
        """Put ``stats`` in place of chunk ``index``'s statistics."""
        node = self.size + index
        self.nodes[node] = stats
        while node > 1:
            node //= 2
            self.nodes[node] = merge(self.nodes[2 * node], self.nodes[2 * node + 1],
                                     self.covariance_type)


def incremental_em(
    chunks: Sequence[np.ndarray],
    params: GaussianParameters,
    reg_covar: float,
    chunks_per_step: int = 1,
    map_function: Callable = map,
) -> Iterator[tuple[GaussianParameters, np.ndarray]]:
    """Incremental EM (Neal & Hinton 1998) over in-memory ``chunks``: yields the
    parameters and covariances after every pass, for as long as asked.

    The first pass is plain EM and keeps every chunk's statistics; each later
    pass visits the chunks in order, in groups of ``chunks_per_step``, replaces
    the group's statistics by those under the current parameters and runs the
    M-step on the total. ``map_function`` maps over a group's chunks (e.g. a
    thread pool's ``map``: :func:`~streamgmm.estep.chunk_statistics` releases
    the GIL)."""
    cov_type = params.covariance_type

    def statistics_of(current):
        return lambda index: chunk_statistics(chunks[index], current)

    tree = StatisticsTree(list(map_function(statistics_of(params), range(len(chunks)))),
                          cov_type)
    params, covariances = parameters_from_statistics(tree.total, reg_covar, cov_type)
    yield params, covariances
    while True:
        for first in range(0, len(chunks), chunks_per_step):
            group = range(first, min(len(chunks), first + chunks_per_step))
            for index, stats in zip(group, map_function(statistics_of(params), group),
                                    strict=True):
                tree.replace(index, stats)
            params, covariances = parameters_from_statistics(tree.total, reg_covar, cov_type)
        yield params, covariances


