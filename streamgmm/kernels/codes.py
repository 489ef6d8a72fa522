"""Codes and constants the kernels share with the Python code around them.

Nothing here imports numba, so that modules which only need a code (a
covariance type's kind, a status) import quickly.
"""

from __future__ import annotations

import math

import numpy as np

LOG_2PI = math.log(2.0 * math.pi)

PAIRWISE, SQUARES, NORM, NONE = 0, 1, 2, 3
"""Kinds of product rows, one per covariance type: the upper triangle of
``(x - c)(x - c)^T`` (full), ``(x - c)^2`` (diag), ``|x - c|^2`` (spherical) or
none (tied, which pools one scatter over the components instead)."""

LINEAR, WHITENED, TIED = 0, 1, 2
"""How log-densities come from a block (``Operands.mode``): one linear map of
``[products; columns]``; per-component whitened rows, squared and summed; or one
shared whitening followed by a linear map of ``[|w|^2; w; 1]``."""

WEIGHT_FLOOR = 10 * np.finfo(np.float64).eps
"""Added to every component's weight in the M-step so that an empty component
divides by a positive number (the same guard scikit-learn uses)."""

OVERFLOWED = -2
"""``failed`` of the M-step when the statistics were not finite."""

STEPS_DONE, STEPS_OVERFLOWED, STEPS_NOT_POSITIVE_DEFINITE, STEPS_UNUSABLE_ROWS = 0, 1, 2, 3
"""``status`` of the online fold (:func:`streamgmm.kernels.online.online_steps`)."""

SPLIT_MIN_ROWS = 128
"""Mini-batches with fewer rows are not split between two threads."""

(SYNC_POSTED, SYNC_CLAIMED, SYNC_DONE, SYNC_STOP, SYNC_HELPED, SYNC_PATIENCE,
 SYNC_RANGES) = range(7)
SYNC_PIECES = SYNC_RANGES + 8
SYNC_HOLDS = SYNC_PIECES + 2
SYNC_SLOTS = SYNC_HOLDS + 2
"""Slots of the int64 ``sync`` array of the two-thread protocol
(:mod:`streamgmm.kernels.pairing`): the generation (count) of the last posted
batch, of the last one the helper joined (or the folding thread closed to it),
and of the last one the helper finished; the stop flag; how many pieces the
helper computed (for tests and benchmarks); the helper's patience (processor
cycles it waits for a post before it leaves; 0: until the stop flag); the rows
``begin, split, end`` of the batch posted in buffer 0 and the row at which the
rows copied into that buffer start, then the same for buffer 1; the claims
word of buffer 0, then of buffer 1 (:data:`CLAIM_BITS`); and the generation of
the batch the helper may still hold in buffer 0, then 1 (0 for none)."""

CLAIM_BITS = 21
"""A claims word packs, from the high bits down, the batch's generation modulo
``2**CLAIM_BITS``, the next piece to claim from the front and the end of the
pieces not yet claimed from the back, ``CLAIM_BITS`` bits each: one
compare-exchange claims a piece at either end."""
