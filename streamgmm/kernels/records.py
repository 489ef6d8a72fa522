"""The records the kernels take and return, instead of long argument lists.

Each is a ``NamedTuple`` of arrays and scalars: numba types it as one
heterogeneous tuple, compiled code reads its fields by name, and Python code
builds and reads the same records. Arrays inside are float64 and C-contiguous
unless said otherwise; covariances, precision factors and scatters are in
"blocks" form (:func:`streamgmm.covariance.as_blocks`): full (K, d, d), tied
(1, d, d), diag (K, 1, d), spherical (K, 1, 1).

Nothing here imports numba.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .codes import SYNC_SLOTS


class Rows(NamedTuple):
    """The rows a kernel reads, always of one type (one compiled version).

    ``X`` (n, d) float64, C-contiguous and read-only (:func:`frozen`); ``order``
    (int64) the rows ``X[order]`` in that order, or empty for all rows in their
    order; ``weights`` (n,) float64 aligned with X, or empty for unweighted rows.
    """

    X: np.ndarray
    order: np.ndarray
    weights: np.ndarray


class Plan(NamedTuple):
    """How a chunk is laid out and which forms the E-step may use.

    ``kind`` the covariance type's code; ``block`` rows per block; ``float32``
    whether the products are in float32 (``float32_products``; else float64: a
    run-time choice, so that each kernel compiles once for both); the limits of
    :mod:`streamgmm.estep`.
    """

    kind: int
    block: int
    float32: bool
    expansion_limit: float
    shared_shift_limit: float
    shared_products_max_features: int


class Products(NamedTuple):
    """The operands a block's products meet, in the products' dtype:
    ``linear_products`` (K, m) and ``linear_columns`` (K, d + 1) the expanded
    quadratic form; ``whitening`` (K d, d + 1) or (d, d + 1); ``reduce``
    (K, d + 2) (tied)."""

    linear_products: np.ndarray
    linear_columns: np.ndarray
    whitening: np.ndarray
    reduce: np.ndarray


class Operands(NamedTuple):
    """The E-step's operands for one set of parameters (:mod:`streamgmm.estep`).

    ``shift`` (d,) the common shift c; ``density_mode`` LINEAR, WHITENED or TIED;
    ``n_products`` m; the :class:`Products` operands in float64 (``double``) and
    in float32 (``single``), only the plan's dtype filled (the other empty);
    ``constant`` (K,) ``log pi_k + log det P_k - d/2 log 2 pi``; ``own_shift``
    (K,) bool, ``own_index`` its indices and ``own_offsets`` (K, d) each
    component's mean minus ``shift``.
    """

    shift: np.ndarray
    density_mode: int
    n_products: int
    double: Products
    single: Products
    constant: np.ndarray
    own_shift: np.ndarray
    own_index: np.ndarray
    own_offsets: np.ndarray


class Sums(NamedTuple):
    """Responsibility-weighted sums of a set of rows (:mod:`streamgmm.kernels.estep`).

    About the common shift: ``products`` (m, K) and ``columns`` (d + 1, K, the
    last row the weights); about each own-shifted component's mean:
    ``own_products`` (m, K) and ``own_columns`` (d + 1, K) (diag, spherical,
    tied), ``own_full`` (K, d + 1, d + 1) (full); tied's pooled scatter
    ``pooled`` (d + 1, d + 1); and the rows' summed ``log_likelihood``.
    """

    products: np.ndarray
    columns: np.ndarray
    own_products: np.ndarray
    own_columns: np.ndarray
    own_full: np.ndarray
    pooled: np.ndarray
    log_likelihood: float


class Marginal(NamedTuple):
    """What the E-step of rows with gaps needs of a mixture
    (:mod:`streamgmm.kernels.gappy`): ``log_weights`` (K,), ``means`` (K, d),
    ``factors``: the precision factors' transposes ``P^T`` (K, d, d) full,
    (1, d, d) tied, or the factors (K, 1, d) diag, (K, 1, 1) spherical;
    ``precisions`` ``P P^T`` (F, d, d), empty (0, d, d) for diag and
    spherical; ``log_det`` ``log det P`` per factor (F,) or component; and the
    ``block`` of rows processed at once."""

    log_weights: np.ndarray
    means: np.ndarray
    factors: np.ndarray
    precisions: np.ndarray
    log_det: np.ndarray
    block: int


class GappySums(NamedTuple):
    """Sums of rows with gaps about each component's mean: ``weight`` (K,),
    ``first`` (K, d) of ``x_hat - mu_k``, ``second`` of ``(x_hat - mu_k)(x_hat
    - mu_k)^T + C`` (K, d, d), or its diagonal (K, 1, d) for diag and
    spherical; ``totals`` [log_likelihood, rows (their weights) counted,
    largest magnitude of an observed value]."""

    weight: np.ndarray
    first: np.ndarray
    second: np.ndarray
    totals: np.ndarray


class PatternTable(NamedTuple):
    """The missingness patterns of a chunk and what each costs to condition on
    (:mod:`streamgmm.kernels.patterns`): ``columns`` (P, d) int64, pattern
    p's missing coordinates in its first ``n_missing[p]`` places; per
    precision (last: F = K, or 1 for tied), the conditional covariances
    ``Lambda_MM^-1`` (sum m^2, F), pattern p's m x m block from row
    ``offsets[p]`` (P + 1,), and ``half_log_dets`` (P, F) ``log det Lambda_MM /
    2``; ``mass`` (P, K) the responsibilities summed per pattern."""

    columns: np.ndarray
    n_missing: np.ndarray
    offsets: np.ndarray
    inverses: np.ndarray
    half_log_dets: np.ndarray
    mass: np.ndarray


class Statistics(NamedTuple):
    """Centred statistics in blocks form: ``weight`` (K,), ``mean`` (K, d),
    ``scatter`` about the means."""

    weight: np.ndarray
    mean: np.ndarray
    scatter: np.ndarray


class Mixture(NamedTuple):
    """Parameters in blocks form: ``weights`` (K,), ``means`` (K, d),
    ``covariances`` and the precision Cholesky ``factors``."""

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    factors: np.ndarray


class MStep(NamedTuple):
    """The M-step's outcome: ``mixture``, and ``failed``: -1, the first component
    whose covariance is not positive definite, or ``OVERFLOWED``."""

    mixture: Mixture
    failed: int


class OnlineSettings(NamedTuple):
    """The stepwise-EM hyper-parameters of a fold (:mod:`streamgmm.online`);
    ``limit`` the largest usable magnitude of a value."""

    batch_size: int
    reg_covar: float
    learning_decay: float
    learning_offset: float
    step_floor: float
    averaging: bool
    burn_in_cap: int
    limit: float


class Running(NamedTuple):
    """What stepwise EM carries from one mini-batch to the next.

    ``mixture`` the parameters of the next E-step; ``statistics`` and
    ``totals`` ([log_likelihood, n_samples]) the running statistics, per row;
    ``n_steps``; ``n_seen`` rows (or their summed weights) absorbed; the
    Polyak-Ruppert average ``averaged``, ``averaged_totals`` of ``n_averaged``
    running statistics (meaningless while ``n_averaged`` is 0).
    """

    mixture: Mixture
    statistics: Statistics
    totals: np.ndarray
    n_steps: int
    n_seen: float
    averaged: Statistics
    averaged_totals: np.ndarray
    n_averaged: int


class PostedBatch(NamedTuple):
    """Where a posted mini-batch travels between the two threads
    (:mod:`streamgmm.kernels.pairing`): the parameters its pieces are to be
    computed under; per piece the helper computed, its sums in ``pieces`` (a
    :class:`Sums` whose arrays have a leading piece axis, its
    ``log_likelihood`` unused), ``scalars`` [log_likelihood, usable (1.0 or
    0.0)] (pieces, 2), and ``done`` (pieces,) int64, the generation of the batch
    when the helper finished it; and, for a standing helper (which outlives the
    call that started it, and so that call's rows), the rows after the first
    piece: copied into ``values`` (r, d) and ``weights`` (r,) (empty for
    unweighted rows), which ``rows`` views read-only."""

    mixture: Mixture
    pieces: Sums
    scalars: np.ndarray
    done: np.ndarray
    values: np.ndarray
    weights: np.ndarray
    rows: Rows


class Pairing(NamedTuple):
    """The two-thread protocol's shared state: whether a helper thread runs
    (``paired``), whether this is the helper's call (``helping``), the int64
    ``sync`` slots (:data:`~streamgmm.kernels.codes.SYNC_SLOTS`) and the two
    :class:`PostedBatch` buffers batches are posted in, alternately."""

    paired: bool
    helping: bool
    sync: np.ndarray
    buffers: tuple


class Outcome(NamedTuple):
    """What a fold of stepwise EM returns: ``status`` (``STEPS_*``), the
    ``failed_batch`` and ``failed_component`` (or -1), each batch's summed
    ``batch_log_likelihoods`` under the parameters it met, and the ``running``
    state after the last step taken (meaningful only with ``STEPS_DONE``)."""

    status: int
    failed_batch: int
    failed_component: int
    batch_log_likelihoods: np.ndarray
    running: Running


NO_ROWS_ORDER = np.empty(0, dtype=np.int64)
NO_WEIGHTS = np.empty(0, dtype=np.float64)
NO_WEIGHTS.flags.writeable = False
NO_ROWS_ORDER.flags.writeable = False


def frozen(array: np.ndarray, dtype: type = np.float64) -> np.ndarray:
    """``array`` as a C-contiguous read-only array of ``dtype`` (a view when it
    already is one), so that every caller's rows have one numba type."""
    view = np.ascontiguousarray(array, dtype=dtype).view()
    view.flags.writeable = False
    return view


def rows_record(X: np.ndarray, order: np.ndarray | None = None,
                weights: np.ndarray | None = None) -> Rows:
    """The :class:`Rows` of X (n, d): float64 (float32 values convert exactly),
    an optional visiting ``order`` and optional row ``weights`` (n,)."""
    return Rows(
        frozen(X),
        NO_ROWS_ORDER if order is None or len(order) == 0 else frozen(order, np.int64),
        NO_WEIGHTS if weights is None else frozen(np.ravel(weights)),
    )


def unpaired() -> Pairing:
    """The :class:`Pairing` of a fold without a helper thread. Its buffers are
    never read nor written: empty arrays of the dimensions a helper's have,
    so that the fold has one numba type whether it is paired or not."""
    def empty(ndim: int) -> np.ndarray:
        return np.zeros((0,) * ndim)

    buffer = PostedBatch(Mixture(empty(1), empty(2), empty(3), empty(3)),
                         Sums(empty(3), empty(3), empty(3), empty(3), empty(4), empty(3), 0.0),
                         empty(2), np.zeros(0, dtype=np.int64), empty(2), empty(1),
                         rows_record(empty(2)))
    return Pairing(False, False, np.zeros(SYNC_SLOTS, dtype=np.int64), (buffer, buffer))
