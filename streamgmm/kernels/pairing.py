"""A mini-batch on two threads: the protocol by which the thread folding
stepwise EM (:func:`streamgmm.kernels.online.online_steps`) hands the second
half of each batch to a helper thread (:func:`help_online_steps`, which the
helper thread reaches through the same compiled fold, called with
``pairing.helping``: one compiled entry for both threads).

A batch's E-step sums are those of its two halves added, first + second. The
halves are fixed by the batch's rows alone, so a result does not depend on
which thread computed which half, nor on whether a second thread ran. The
folding thread posts the second half (the parameters and the rows, in one of
two buffers, alternately) and computes the first; whichever thread claims the
posted half first (an atomic compare-exchange on ``SYNC_CLAIMED``) computes it.
If the helper claimed it but has not finished by the time half as long again
has passed (it may have lost its core to another process), the folding thread
computes the half itself and moves on; a buffer is posted again only once the
helper is done with it. A helper that has not started, or is slow, therefore
never holds the fit up for long. Both threads wait by spinning with the
processor's pause hint, the helper yielding its core after a few microseconds
(:mod:`streamgmm.kernels.atomics`).
"""

from __future__ import annotations

from .atomics import compare_exchange, load_acquire, store_release, wait_at_least
from .codes import (
    SPLIT_MIN_ROWS,
    SYNC_CLAIMED,
    SYNC_DONE,
    SYNC_HELPED,
    SYNC_PATIENCE,
    SYNC_POSTED,
    SYNC_RANGES,
    SYNC_STOP,
)
from .estep import range_sums
from .jit import part
from .mathfn import copy_into
from .operands import density_operands, variances_of
from .records import Sums


@part
def split_row(begin, end):  # pragma: no cover
    """Where the batch ``begin:end`` is split (``end``: not split)."""
    size = end - begin
    return begin + size // 2 if size >= SPLIT_MIN_ROWS else end


@part
def rows_usable(rows, begin, end, limit):  # pragma: no cover
    """Whether every value of the rows ``begin:end`` is at most ``limit`` in
    magnitude (NaN is not)."""
    X, order = rows.X, rows.order
    d = X.shape[1]
    for i in range(begin, end):
        row = i if order.shape[0] == 0 else order[i]
        usable = True
        for j in range(d):
            usable &= abs(X[row, j]) <= limit
        if not usable:
            return False
    return True


@part
def post_half(pairing, generation, rows, begin, end, mixture):  # pragma: no cover
    """Offer the rows ``begin:end`` of ``rows`` under ``mixture`` as half
    ``generation``, in the buffer of its parity: the mixture copied, and for a
    standing helper (positive patience), which outlives the call and so its
    rows, the rows too."""
    buffer = pairing.buffers[generation % 2]
    copy_into(buffer.mixture.weights, mixture.weights)
    copy_into(buffer.mixture.means, mixture.means)
    copy_into(buffer.mixture.covariances, mixture.covariances)
    copy_into(buffer.mixture.factors, mixture.factors)
    if pairing.sync[SYNC_PATIENCE] > 0:
        X, order, weights = rows.X, rows.order, rows.weights
        for i in range(begin, end):
            row = i if order.shape[0] == 0 else order[i]
            for j in range(X.shape[1]):
                buffer.values[i - begin, j] = X[row, j]
            if weights.shape[0] > 0:
                buffer.weights[i - begin] = weights[row]
        begin, end = 0, end - begin
    pairing.sync[SYNC_RANGES + 2 * (generation % 2)] = begin
    pairing.sync[SYNC_RANGES + 2 * (generation % 2) + 1] = end
    store_release(pairing.sync, SYNC_POSTED, generation)


@part
def posted_sums(buffer):  # pragma: no cover
    """What the helper left in ``buffer``: its sums and whether its rows were usable."""
    sums = buffer.sums
    return Sums(sums.products, sums.columns, sums.own_products, sums.own_columns,
                sums.own_full, sums.pooled, buffer.scalars[0]), buffer.scalars[1] != 0.0


@part
def help_online_steps(rows, plan, limit, pairing):  # pragma: no cover
    """The helper thread of :func:`~streamgmm.kernels.online.online_steps` (same
    ``rows``, ``plan``, ``limit`` and ``pairing``): claim each posted half,
    compute its sums into its buffer (from the rows posted with it if the
    helper is a standing one), until the stop flag is set or no half was
    posted for the pairing's patience."""
    sync = pairing.sync
    seen = 0
    while wait_at_least(sync, SYNC_POSTED, seen + 1, SYNC_STOP, sync[SYNC_PATIENCE]):
        seen = load_acquire(sync, SYNC_POSTED)
        if not compare_exchange(sync, SYNC_CLAIMED, seen - 1, seen):
            continue
        buffer = pairing.buffers[seen % 2]
        mixture = buffer.mixture
        n_components, d = mixture.means.shape
        operands = density_operands(
            mixture.weights, mixture.means, mixture.factors,
            variances_of(mixture.covariances, plan.kind, n_components, d), plan)
        begin, end = sync[SYNC_RANGES + 2 * (seen % 2)], sync[SYNC_RANGES + 2 * (seen % 2) + 1]
        half = buffer.rows if sync[SYNC_PATIENCE] > 0 else rows
        usable = rows_usable(half, begin, end, limit)
        sums = range_sums(half, begin, end if usable else begin, operands, plan)
        copy_into(buffer.sums.products, sums.products)
        copy_into(buffer.sums.columns, sums.columns)
        copy_into(buffer.sums.own_products, sums.own_products)
        copy_into(buffer.sums.own_columns, sums.own_columns)
        copy_into(buffer.sums.own_full, sums.own_full)
        copy_into(buffer.sums.pooled, sums.pooled)
        buffer.scalars[0] = sums.log_likelihood
        buffer.scalars[1] = 1.0 if usable else 0.0
        sync[SYNC_HELPED] += 1
        store_release(sync, SYNC_DONE, seen)
