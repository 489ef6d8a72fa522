"""A mini-batch on two threads: the protocol by which the thread folding
stepwise EM (:func:`streamgmm.kernels.online.online_steps`) shares the E-step
of each batch with a helper thread (:func:`help_online_steps`, which the
helper thread reaches through the same compiled fold, called with
``pairing.helping``: one compiled entry for both threads).

A batch is cut into *pieces*, fixed by its rows alone: its two halves
(:func:`split_row`), each cut into blocks of ``plan.block`` rows, the blocks
:func:`~streamgmm.kernels.estep.range_sums` would visit. A batch's sums are
each half's pieces added in order, then the two halves added: the sums of
:func:`~streamgmm.kernels.estep.range_sums` over each half, to the last bit,
whichever thread computed which piece and whether a second thread ran at all.

The folding thread posts the batch (the parameters, the rows' ranges and a
claims word: :data:`~streamgmm.kernels.codes.CLAIM_BITS`) in one of two
buffers, alternately, and claims pieces from the front, starting with the
first; the helper claims pieces from the back, each with one atomic
compare-exchange, so the threads meet wherever their speeds put them (the two
processors of a shared machine often run at different speeds). The helper
leaves each of its pieces' sums in the buffer. When no piece is left, the
folding thread waits for each of the helper's pieces at most as long as one of
its own took, then computes a late piece itself (it may have lost its core to
another process) and moves on; a buffer is posted again only once the helper
is done with it. A helper that has not started, or is slow, therefore never
holds the fit up for long. Both threads wait by spinning with the processor's
pause hint, the helper yielding its core after a few microseconds
(:mod:`streamgmm.kernels.atomics`).
"""

from __future__ import annotations

from .atomics import (
    compare_exchange,
    cycle_count,
    load_acquire,
    prefetch,
    store_release,
    wait_at_least,
    wait_cycles,
)
from .codes import (
    CLAIM_BITS,
    SPLIT_MIN_ROWS,
    SYNC_CLAIMED,
    SYNC_DONE,
    SYNC_HELPED,
    SYNC_PATIENCE,
    SYNC_PIECES,
    SYNC_POSTED,
    SYNC_RANGES,
    SYNC_STOP,
)
from .estep import range_sums, zero_sums
from .jit import part
from .mathfn import add_into, added, copy_into
from .operands import density_operands, variances_of
from .records import Sums

CLAIM_MASK = (1 << CLAIM_BITS) - 1
PREFETCH_ROWS = 32
"""How far ahead :func:`rows_usable` asks for the rows it visits out of order
(whose cache misses it would otherwise wait for one after another)."""
CACHE_LINE_VALUES = 8
"""float64 values in a 64-byte cache line."""


@part
def split_row(begin, end):  # pragma: no cover
    """Where the batch ``begin:end`` is split (``end``: not split)."""
    size = end - begin
    return begin + size // 2 if size >= SPLIT_MIN_ROWS else end


@part
def rows_usable(rows, begin, end, limit):  # pragma: no cover
    """Whether every value of the rows ``begin:end`` is at most ``limit`` in
    magnitude (NaN is not). Rows visited out of order are asked for
    :data:`PREFETCH_ROWS` rows ahead, so that their cache misses overlap (the
    E-step then finds them in the cache)."""
    X, order = rows.X, rows.order
    d = X.shape[1]
    prefetch_rows(rows, begin, min(begin + PREFETCH_ROWS, end))
    for i in range(begin, end):
        row = i if order.shape[0] == 0 else order[i]
        if i + PREFETCH_ROWS < end:
            prefetch_rows(rows, i + PREFETCH_ROWS, i + PREFETCH_ROWS + 1)
        usable = True
        for j in range(d):
            usable &= abs(X[row, j]) <= limit
        if not usable:
            return False
    return True


@part
def prefetch_rows(rows, start, stop):  # pragma: no cover
    """Ask for every cache line of the rows ``start:stop`` of ``rows`` if they
    are visited out of order (rows in stored order need no help)."""
    X, order = rows.X, rows.order
    if order.shape[0] == 0:
        return
    d = X.shape[1]
    for i in range(start, stop):
        for j in range(0, d, CACHE_LINE_VALUES):
            prefetch(X, order[i], j)
        prefetch(X, order[i], d - 1)


@part
def prefetch_next_piece(rows, begin, end, block, last):  # pragma: no cover
    """Ask for the rows of the batch after ``begin:end`` (as long, or what
    rows are left) that a thread computes first: its first piece, or with
    ``last`` its last piece (the helper claims from the back). Issued before
    a thread's wait, they arrive while the batch's M-step runs."""
    n_rows = rows.X.shape[0] if rows.order.shape[0] == 0 else rows.order.shape[0]
    next_end = min(end + (end - begin), n_rows)
    if next_end <= end:
        return
    split = split_row(end, next_end)
    count = pieces_in(end, split, block) + pieces_in(split, next_end, block)
    start, stop = piece_range(end, split, next_end, block, count - 1 if last else 0)
    prefetch_rows(rows, start, stop)


@part
def pieces_in(begin, end, block):  # pragma: no cover
    """How many pieces (blocks of ``block`` rows) the rows ``begin:end`` make."""
    return (end - begin + block - 1) // block


@part
def piece_range(begin, split, end, block, piece):  # pragma: no cover
    """The rows ``(start, stop)`` of ``piece`` of the batch ``begin:end`` split
    at ``split``: the first half's blocks of ``block`` rows, then the second's."""
    first_pieces = pieces_in(begin, split, block)
    if piece < first_pieces:
        start = begin + piece * block
        return start, min(start + block, split)
    start = split + (piece - first_pieces) * block
    return start, min(start + block, end)


@part
def claim(sync, index, generation, from_front):  # pragma: no cover
    """Claim a piece of batch ``generation`` from the claims word
    ``sync[index]``, from the front or the back: its number, or -1 if none is
    left (or the word is another batch's)."""
    while True:
        word = load_acquire(sync, index)
        if word >> (2 * CLAIM_BITS) != generation & CLAIM_MASK:
            return -1
        front, back = (word >> CLAIM_BITS) & CLAIM_MASK, word & CLAIM_MASK
        if front >= back:
            return -1
        claimed = word + (1 << CLAIM_BITS) if from_front else word - 1
        if compare_exchange(sync, index, word, claimed):
            return front if from_front else back - 1


@part
def post_batch(pairing, generation, rows, begin, end, block, mixture):  # pragma: no cover
    """Offer the pieces of the rows ``begin:end`` of ``rows`` after the first
    (which the folding thread keeps) under ``mixture`` as batch
    ``generation``, in the buffer of its parity: the mixture copied, and for a
    standing helper (positive patience), which outlives the call and so its
    rows, the rows from the second piece on too. Returns whether it was posted
    (not if the buffer has too few piece slots)."""
    parity = generation % 2
    buffer = pairing.buffers[parity]
    sync = pairing.sync
    split = split_row(begin, end)
    count = pieces_in(begin, split, block) + pieces_in(split, end, block)
    if count > buffer.done.shape[0]:
        return False
    copy_into(buffer.mixture.weights, mixture.weights)
    copy_into(buffer.mixture.means, mixture.means)
    copy_into(buffer.mixture.covariances, mixture.covariances)
    copy_into(buffer.mixture.factors, mixture.factors)
    offset = 0
    if sync[SYNC_PATIENCE] > 0:
        offset = piece_range(begin, split, end, block, 1)[0]
        X, order, weights = rows.X, rows.order, rows.weights
        for i in range(offset, end):
            row = i if order.shape[0] == 0 else order[i]
            for j in range(X.shape[1]):
                buffer.values[i - offset, j] = X[row, j]
            if weights.shape[0] > 0:
                buffer.weights[i - offset] = weights[row]
    ranges = SYNC_RANGES + 4 * parity
    sync[ranges] = begin
    sync[ranges + 1] = split
    sync[ranges + 2] = end
    sync[ranges + 3] = offset
    sync[SYNC_PIECES + parity] = ((generation & CLAIM_MASK) << (2 * CLAIM_BITS)
                                  | (1 << CLAIM_BITS) | count)
    store_release(sync, SYNC_POSTED, generation)
    return True


@part
def posted_piece(buffer, piece):  # pragma: no cover
    """The sums the helper left in ``buffer`` for ``piece`` (views: the helper
    writes them once per batch, and the buffer is posted again only after the
    batch), and whether its rows were usable."""
    sums = buffer.pieces
    return Sums(sums.products[piece], sums.columns[piece], sums.own_products[piece],
                sums.own_columns[piece], sums.own_full[piece], sums.pooled[piece],
                buffer.scalars[piece, 0]), buffer.scalars[piece, 1] != 0.0


@part
def add_piece(total, sums):  # pragma: no cover
    """``total`` after ``total += sums`` in place, for every array (the
    log-likelihood is added apart)."""
    add_into(total.products, sums.products)
    add_into(total.columns, sums.columns)
    add_into(total.own_products, sums.own_products)
    add_into(total.own_columns, sums.own_columns)
    add_into(total.own_full, sums.own_full)
    add_into(total.pooled, sums.pooled)
    return total


@part
def batch_sums(rows, begin, end, operands, plan, limit, pairing, posted):  # pragma: no cover
    """The E-step sums of the batch ``begin:end``, whether its rows were usable,
    and whether the helper joined the batch (``posted`` > 0 its generation,
    else not posted): the folding thread's side of the protocol. The pieces
    are visited in order: the folding thread's own (claimed from the front)
    computed, then the helper's taken from the buffer (or computed, if late),
    each added to its half's sums at once."""
    split = split_row(begin, end)
    block = plan.block
    first_pieces = pieces_in(begin, split, block)
    count = first_pieces + pieces_in(split, end, block)
    sync = pairing.sync
    buffer = pairing.buffers[posted % 2]
    first = second = zero_sums(0, plan.kind, 0, -1)
    first_log_likelihood = second_log_likelihood = 0.0
    usable = claiming = True
    joined = False
    spent = patience = 0
    for piece in range(count):
        if piece > 0 and posted > 0 and claiming:
            claiming = claim(sync, SYNC_PIECES + posted % 2, posted, True) == piece
            if not claiming:
                joined = not compare_exchange(sync, SYNC_CLAIMED, posted - 1, posted)
                patience = spent // piece
                prefetch_next_piece(rows, begin, end, block, False)
        started = cycle_count()
        if not claiming and wait_cycles(buffer.done, piece, posted, patience):
            sums, piece_usable = posted_piece(buffer, piece)
        else:
            start, stop = piece_range(begin, split, end, block, piece)
            piece_usable = rows_usable(rows, start, stop, limit)
            sums = range_sums(rows, start, stop if piece_usable else start, operands, plan)
        spent += cycle_count() - started
        usable = usable and piece_usable
        if piece == 0:
            first = sums
        elif piece == first_pieces:
            second = sums
        else:
            add_piece(first if piece < first_pieces else second, sums)
        if piece < first_pieces:
            first_log_likelihood += sums.log_likelihood
        else:
            second_log_likelihood += sums.log_likelihood
    if posted > 0 and claiming:
        joined = not compare_exchange(sync, SYNC_CLAIMED, posted - 1, posted)
    if split == end:
        return Sums(first.products, first.columns, first.own_products, first.own_columns,
                    first.own_full, first.pooled, first_log_likelihood), usable, joined
    return Sums(added(first.products, second.products), added(first.columns, second.columns),
                added(first.own_products, second.own_products),
                added(first.own_columns, second.own_columns),
                added(first.own_full, second.own_full), added(first.pooled, second.pooled),
                first_log_likelihood + second_log_likelihood), usable, joined


@part
def help_online_steps(rows, plan, limit, pairing):  # pragma: no cover
    """The helper thread of :func:`~streamgmm.kernels.online.online_steps` (same
    ``rows``, ``plan``, ``limit`` and ``pairing``): join each posted batch,
    claim its pieces from the back and leave their sums in its buffer (from
    the rows posted with it if the helper is a standing one), until the stop
    flag is set or no batch was posted for the pairing's patience."""
    sync = pairing.sync
    seen = 0
    while wait_at_least(sync, SYNC_POSTED, seen + 1, SYNC_STOP, sync[SYNC_PATIENCE]):
        seen = load_acquire(sync, SYNC_POSTED)
        if not compare_exchange(sync, SYNC_CLAIMED, seen - 1, seen):
            continue
        parity = seen % 2
        buffer = pairing.buffers[parity]
        mixture = buffer.mixture
        n_components, d = mixture.means.shape
        operands = density_operands(
            mixture.weights, mixture.means, mixture.factors,
            variances_of(mixture.covariances, plan.kind, n_components, d), plan)
        ranges = SYNC_RANGES + 4 * parity
        begin, split, end, offset = (sync[ranges], sync[ranges + 1], sync[ranges + 2],
                                     sync[ranges + 3])
        source = buffer.rows if sync[SYNC_PATIENCE] > 0 else rows
        while True:
            piece = claim(sync, SYNC_PIECES + parity, seen, False)
            if piece < 0:
                break
            start, stop = piece_range(begin, split, end, plan.block, piece)
            usable = rows_usable(source, start - offset, stop - offset, limit)
            sums = range_sums(source, start - offset, (stop if usable else start) - offset,
                              operands, plan)
            pieces = buffer.pieces
            copy_into(pieces.products[piece], sums.products)
            copy_into(pieces.columns[piece], sums.columns)
            copy_into(pieces.own_products[piece], sums.own_products)
            copy_into(pieces.own_columns[piece], sums.own_columns)
            copy_into(pieces.own_full[piece], sums.own_full)
            copy_into(pieces.pooled[piece], sums.pooled)
            buffer.scalars[piece, 0] = sums.log_likelihood
            buffer.scalars[piece, 1] = 1.0 if usable else 0.0
            sync[SYNC_HELPED] += 1
            store_release(buffer.done, piece, seen)
        store_release(sync, SYNC_DONE, seen)
        if sync[SYNC_PATIENCE] == 0:
            prefetch_next_piece(rows, begin, end, plan.block, True)
