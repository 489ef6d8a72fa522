"""EM with missing values: rows with NaN used through their observed coordinates.

Ghahramani & Jordan (1994); Little & Rubin, *Statistical Analysis with Missing
Data*, ch. 8 and 11. For a row with observed coordinates O and missing M, under
component k with mean mu, covariance Sigma and precision Lambda = Sigma^-1 =
P P^T:

* its responsibilities and log-likelihood come from the marginal density
  N(x_O; mu_O, Sigma_OO);
* its missing block is replaced by the conditional mean
  x_M = mu_M + Sigma_MO Sigma_OO^-1 (x_O - mu_O) = mu_M - Lambda_MM^-1 Lambda_MO (x_O - mu_O),
  and the statistics gain the conditional covariance C = Lambda_MM^-1
  (= Sigma_MM - Sigma_MO Sigma_OO^-1 Sigma_OM) on the M x M block;
* the sums ``sum g``, ``sum g x_hat`` and ``sum g (x_hat x_hat^T + C)`` are kept
  in the centred form of :class:`~streamgmm.statistics.SufficientStatistics`, so
  merge, Dask reduction and M-step are those of complete rows.

Everything is derived from the component's precision factor P rather than by
factorising Sigma_OO for every pattern: with r the row's deviation from mu with
zeros in M, ``t = P^T r`` and ``y = P t = Lambda r`` (two products per component
for all rows of a block at once, whatever their patterns),

* ``y_M = Lambda_MO r_O``; with L L^T = Lambda_MM (factorised once per pattern and
  component: |M| x |M|, small when few values are missing),
  ``x_M - mu_M = -L^-T L^-1 y_M``;
* ``(x_O - mu_O)^T Sigma_OO^-1 (x_O - mu_O) = |t|^2 - |L^-1 y_M|^2`` (the
  completed row minimises the full quadratic form over x_M);
* ``log det Sigma_OO = log det Sigma + log det Lambda_MM``.

A chunk's statistics are compiled (:func:`gappy_statistics`): every row with
something observed goes through the complete rows' blocks with zeros in its
gaps, and what the gaps change is added row by row
(:mod:`streamgmm.kernels.masked`; diag and spherical: ``x_M = mu_M``, ``C =
diag(sigma^2_M)``, the missing coordinates' terms taken out); C and ``log det
Lambda_MM`` are computed once per pattern of the chunk, for all components
side by side (:mod:`streamgmm.kernels.patterns`). Where the complete kernel
sums a component about its own mean (tied, own-shifted components, the full
type's whitened form), the rows go component by component about each mean
(:mod:`streamgmm.kernels.gappy`). Prediction and :func:`impute` (one pass,
not the loop of a fit) stay NumPy over blocks of rows (:func:`gappy_terms`).

A chunk without NaN goes through :func:`streamgmm.estep.chunk_statistics`
unchanged (it costs one sum more than today and gives the same bits); rows
with nothing observed carry no information and are skipped (counted by
:func:`missing_summary`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import numpy as np

from . import estep
from .choices import MISSING_OPTIONS  # noqa: F401  (re-exported; it lives in choices.py)
from .covariance import as_blocks, writeable
from .estep import LOG_2PI, GaussianParameters, shifted_log_sum_exp
from .kernels import codes
from .kernels import entries as kernels
from .kernels.records import Marginal, Rows, rows_record
from .reduction import sum_tuples, tree_reduce
from .statistics import SufficientStatistics

GAPPY_KERNEL_ROWS = 256
"""Rows the compiled E-step of a chunk with gaps processes at once
(:func:`gappy_statistics`; diag and spherical through the complete rows'
layout: :data:`GAPPY_DIAGONAL_ROWS`): 128 to 256 measured fastest for the
full type, d = 16, K = 8 (512 and more: 10 to 20 % slower)."""

GAPPY_DIAGONAL_ROWS = 1000
"""Rows per block of the diag and spherical types' compiled E-step with gaps
(:func:`streamgmm.kernels.masked.masked_sums`), whose block holds 2d + 1
rows of columns (values, 1, missing-value indicators): 744 to 1,992 rows
measured alike for d = 16, K = 8; not a power of two, whose row stride (256
rows: 2 KiB) put the columns that one row of X fills in the same few cache
sets (256 rows: 1.4 to 2 times slower)."""

GAPPY_BLOCK_ROWS = 2048
"""Rows with gaps whose log-densities and conditional means (prediction,
:func:`impute`) are computed at once in NumPy: the K deviation blocks of 2048 x d float64
(1 MiB for K = 8, d = 16) stay near the cache; 1024 to 2048 rows measured
fastest (512: 1.3 times slower for full, 8192: 1.5 times)."""


# ------------------------------------------------------------------ checks
def has_gaps(X: np.ndarray) -> bool:
    """Whether X may hold NaN or infinity: one sum over X (NaN and infinity
    propagate; finite values of at most ``MAX_ABS_VALUE`` cannot overflow it)."""
    if X.dtype.kind in "iub" or X.size == 0:
        return False
    return not np.isfinite(np.add.reduce(X, axis=None, dtype=np.float64))


def check_observed(
    X: np.ndarray, row_offset: int = 0, row_numbers: np.ndarray | None = None
) -> None:
    """Raise ``ValueError`` naming the rows if X holds infinity or values larger
    than ``MAX_ABS_VALUE`` in magnitude; NaN (a missing value) is allowed."""
    if X.dtype.kind in "iub":
        return
    limit = estep.usable_limit(X.dtype)
    bad = np.flatnonzero((np.abs(X) > limit).any(axis=1))
    if bad.size == 0:
        return
    rows = bad + row_offset if row_numbers is None else np.asarray(row_numbers)[bad]
    if np.isinf(X[bad]).any():
        problem = ("infinity (with missing='marginalize' only NaN marks a missing value; "
                   "replace infinities by NaN or remove them)")
    else:
        problem = f"values larger than {estep.MAX_ABS_VALUE:g} in magnitude (rescale the data)"
    raise ValueError(
        f"Input contains {problem} in {rows.size} row(s) between rows {rows[0]} and "
        f"{rows[-1]} (first bad row {rows[0]}) before fitting."
    )


class MissingSummary(NamedTuple):
    """What one pass over X says about its missing values.

    Attributes
    ----------
    observed : ndarray of shape (d,)
        Observed (non-NaN) values per column.
    sums : ndarray of shape (d,)
        Sum of the observed values per column.
    n_empty : int
        Rows with nothing observed (of positive weight, when weighted).
    n_observed_rows : float
        Rows with something observed (of positive weight, when weighted).
    n_missing : int
        Missing values.
    """

    observed: np.ndarray
    sums: np.ndarray
    n_empty: int
    n_observed_rows: int
    n_missing: int

    @property
    def column_means(self) -> np.ndarray:
        """Mean of every column's observed values."""
        return self.sums / np.maximum(self.observed, 1)


def chunk_missing_summary(
    X: np.ndarray, row_offset: int = 0, sample_weight: np.ndarray | None = None
) -> tuple:
    """:class:`MissingSummary` fields of one chunk (checked by :func:`check_observed`)."""
    check_observed(X, row_offset)
    missing = np.isnan(X) if X.dtype.kind == "f" else np.zeros(X.shape, dtype=bool)
    counted = np.ones(X.shape[0], dtype=bool) if sample_weight is None else sample_weight > 0
    empty = missing.all(axis=1)
    observed_values = np.where(missing, 0.0, X)
    return (
        (~missing).sum(axis=0), observed_values.sum(axis=0, dtype=np.float64),
        int((empty & counted).sum()), int((~empty & counted).sum()), int(missing.sum()),
    )


def missing_summary(data: Any) -> MissingSummary:
    """One pass over a :class:`~streamgmm.inputs.RowData`: its missing values
    (:class:`MissingSummary`), after checking every value
    (:func:`check_observed`)."""
    return MissingSummary(*tree_reduce(data.array, chunk_missing_summary, sum_tuples,
                                       sample_weight=data.weights))


def check_missing_summary(summary: MissingSummary, n_components: int) -> None:
    """Raise ``ValueError`` for a column with no observed value, or for fewer
    than ``max(2, n_components)`` rows with something observed."""
    empty_columns = np.flatnonzero(summary.observed == 0)
    if empty_columns.size:
        raise ValueError(
            f"Column(s) {empty_columns.tolist()} of X hold no observed value (every value is "
            "NaN); a mixture cannot be fitted on them: drop them before fitting."
        )
    if summary.n_observed_rows < max(2, n_components):
        raise ValueError(
            f"Expected n_samples >= 2 and n_samples >= n_components rows with at least one "
            f"observed value, got {summary.n_observed_rows} (and {summary.n_empty} rows with "
            f"nothing observed) for n_components={n_components}"
        )


def fill_missing(X: np.ndarray, values: np.ndarray) -> np.ndarray:
    """X with every NaN of column j replaced by ``values[j]`` (a copy)."""
    X = np.asarray(X, dtype=np.float64)
    return np.where(np.isnan(X), values, X)


def prepare_gaps(data: Any, n_components: int) -> tuple[Any, int]:
    """Before a fit with missing values: one pass over ``data`` (a
    :class:`~streamgmm.inputs.RowData`) checking its values and gaps
    (:func:`check_missing_summary`); returns the rows the starts are drawn from
    (``data`` with every gap filled by its column's observed mean, lazily; None
    when nothing is missing) and the number of rows with nothing observed."""
    summary = missing_summary(data)
    check_missing_summary(summary, n_components)
    if summary.n_missing == 0:
        return None, 0
    filled = data.array.map_blocks(fill_missing, summary.column_means, dtype=np.float64)
    return dataclasses.replace(data, array=filled, in_memory=None), summary.n_empty


# --------------------------------------------------------------- patterns
class Patterns(NamedTuple):
    """Missingness patterns of a block of rows.

    Attributes
    ----------
    index : ndarray of shape (n,)
        Each row's pattern.
    masks : ndarray of shape (P, d), bool
        Each pattern's missing coordinates.
    """

    index: np.ndarray
    masks: np.ndarray


def missingness_patterns(missing: np.ndarray) -> Patterns:
    """The distinct rows of the mask ``missing`` (n, d) and each row's pattern:
    for up to 64 features the rows' bits as one integer each, sorted (a tenth of
    the time of sorting the rows themselves)."""
    packed = np.packbits(missing, axis=1)
    if packed.shape[1] <= 8:
        keys = np.zeros((packed.shape[0], 8), dtype=np.uint8)
        keys[:, : packed.shape[1]] = packed
        packed = keys.view(np.uint64).ravel()
        _, first, index = np.unique(packed, return_index=True, return_inverse=True)
    else:
        _, first, index = np.unique(packed, axis=0, return_index=True, return_inverse=True)
    return Patterns(np.ravel(index), missing[first])


class PatternGroup(NamedTuple):
    """The patterns with the same number m of missing coordinates, and their
    factors under every component (full and tied types).

    Attributes
    ----------
    n_missing : int
        m.
    patterns : ndarray of shape (P_m,)
        Their pattern numbers.
    position : ndarray of shape (P,)
        Each pattern's place among ``patterns`` (meaningful for those only).
    columns : ndarray of shape (P_m, m)
        Their missing coordinates.
    inverse_factor : ndarray of shape (P_m, F, m, m)
        ``L^-1`` with ``L L^T = Lambda_MM`` for each of the F factors (K full, 1 tied).
    log_det : ndarray of shape (P_m, F)
        ``log det L`` (half of ``log det Lambda_MM``).
    """

    n_missing: int
    patterns: np.ndarray
    position: np.ndarray
    columns: np.ndarray
    inverse_factor: np.ndarray
    log_det: np.ndarray


def pattern_groups(masks: np.ndarray, precisions: np.ndarray) -> list[PatternGroup]:
    """:class:`PatternGroup` for every number of missing coordinates among
    ``masks`` (P, d), from the precision matrices (F, d, d)."""
    counts = masks.sum(axis=1)
    groups = []
    for m in np.unique(counts):
        patterns = np.flatnonzero(counts == m)
        columns = np.nonzero(masks[patterns])[1].reshape(patterns.size, m)
        block = precisions[:, columns[:, :, None], columns[:, None, :]].transpose(1, 0, 2, 3)
        factor = np.linalg.cholesky(block)
        log_det = np.log(np.diagonal(factor, axis1=2, axis2=3)).sum(axis=2)
        position = np.zeros(masks.shape[0], dtype=np.intp)
        position[patterns] = np.arange(patterns.size)
        groups.append(PatternGroup(int(m), patterns, position, columns, np.linalg.inv(factor),
                                   log_det))
    return groups


# ---------------------------------------------------------- per component
class ChunkFactors(NamedTuple):
    """What the gappy-row computations need of the parameters, once per chunk."""

    covariance_type: str
    log_weights: np.ndarray  # (K,)
    means: np.ndarray  # (K, d)
    factors: np.ndarray  # P: (F, d, d) full/tied, (K, d) diag, (K,) spherical
    log_det: np.ndarray  # log|det P| per factor (F,) full/tied; unused otherwise
    precisions: np.ndarray | None  # P P^T (F, d, d) full/tied


def chunk_factors(params: GaussianParameters) -> ChunkFactors:
    """:class:`ChunkFactors` of ``params``."""
    cov_type = params.covariance_type
    factors = np.asarray(params.precisions_cholesky, dtype=np.float64)
    precisions = log_det = None
    if cov_type in ("full", "tied"):
        factors = factors.reshape(-1, *factors.shape[-2:])
        precisions = factors @ factors.transpose(0, 2, 1)
        log_det = np.linalg.slogdet(factors)[1]
    with np.errstate(divide="ignore"):
        log_weights = np.log(np.asarray(params.weights, dtype=np.float64))
    return ChunkFactors(cov_type, log_weights, np.asarray(params.means, dtype=np.float64),
                        factors, log_det, precisions)


class GappyTerms(NamedTuple):
    """E-step terms of a block of rows with gaps.

    Attributes
    ----------
    log_weighted : ndarray of shape (K, n)
        ``log pi_k + log N(x_O; mu_k,O, Sigma_k,OO)``.
    deviations : ndarray of shape (K, n, d)
        ``x_hat - mu_k``: the observed coordinates' deviations and, in M, the
        conditional mean's.
    """

    log_weighted: np.ndarray
    deviations: np.ndarray


def gappy_terms(
    X: np.ndarray, missing: np.ndarray, factors: ChunkFactors,
    groups: list[PatternGroup] | None, patterns: Patterns,
) -> GappyTerms:
    """:class:`GappyTerms` of rows X (n, d) with NaN where ``missing``."""
    cov_type, means = factors.covariance_type, factors.means
    n_components, d = means.shape
    observed = (~missing).astype(np.float64)
    deviations = np.where(missing, 0.0, X)[None, :, :] - means[:, None, :]
    deviations *= observed
    n_observed = observed.sum(axis=1)
    if cov_type == "diag":
        whitened = deviations * factors.factors[:, None, :]
        quadratic = np.einsum("knd,knd->kn", whitened, whitened)
        log_det = np.log(factors.factors) @ observed.T
    elif cov_type == "spherical":
        squares = np.einsum("knd,knd->kn", deviations, deviations)
        quadratic = squares * factors.factors[:, None] ** 2
        log_det = np.log(factors.factors)[:, None] * n_observed
    else:
        tied = cov_type == "tied"
        P = factors.factors
        whitened = deviations @ (P[0] if tied else P)
        quadratic = np.einsum("knd,knd->kn", whitened, whitened)
        projected = whitened @ (P[0].T if tied else P.transpose(0, 2, 1))  # Lambda r
        log_det = np.broadcast_to(factors.log_det[:, None], quadratic.shape).copy()
        n_missing = d - n_observed
        for group in groups:
            rows = np.flatnonzero(n_missing == group.n_missing)
            if rows.size == 0:
                continue
            position = group.position[patterns.index[rows]]
            columns = group.columns[position]  # (r, m)
            y = projected[:, rows[:, None], columns].transpose(1, 0, 2)  # (r, K, m): y_M
            v, conditional = _triangular_products(group.inverse_factor[position], y)
            quadratic[:, rows] -= np.square(v).sum(axis=2).T
            deviations[:, rows[:, None], columns] = -conditional.transpose(1, 0, 2)
            log_det[:, rows] -= group.log_det[position].T
        np.maximum(quadratic, 0.0, out=quadratic)
    log_weighted = factors.log_weights[:, None] + log_det - 0.5 * (
        n_observed * LOG_2PI + quadratic)
    return GappyTerms(log_weighted, deviations)


SMALL_BLOCK = 2
"""Most missing values per row for which :func:`_triangular_products` runs
elementwise over the rows (m = 1 and 2: half of the per-pattern time of the
stacked matrix products at 10% missing, d = 16); more go through ``matmul``."""


def _triangular_products(inverse: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``v = L^-1 y`` and ``L^-T v`` (= Lambda_MM^-1 y) for every row and
    component: ``inverse`` (r, F, m, m) lower triangular (F = 1 broadcasts over
    the K components), ``y`` (r, K, m)."""
    m = y.shape[2]
    if m > SMALL_BLOCK:
        v = inverse @ y[..., None]
        return v[..., 0], (np.swapaxes(inverse, 2, 3) @ v)[..., 0]
    v = np.empty_like(y)
    for i in range(m):
        v[..., i] = (inverse[:, :, i, : i + 1] * y[..., : i + 1]).sum(axis=2)
    conditional = np.empty_like(y)
    for i in range(m):
        conditional[..., i] = (inverse[:, :, i:, i] * v[..., i:]).sum(axis=2)
    return v, conditional


def _log_responsibilities(log_weighted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row log-likelihood (n,) and log-responsibilities (K, n), in place."""
    largest, log_norm = shifted_log_sum_exp(log_weighted)
    log_weighted -= log_norm
    return largest + log_norm, log_weighted


def _prepared(X: np.ndarray, params: GaussianParameters):
    """Missing mask, patterns, chunk factors and pattern groups of rows X
    (patterns and groups None for diag and spherical, which need neither)."""
    missing = np.isnan(X)
    factors = chunk_factors(params)
    if factors.covariance_type not in ("full", "tied"):
        return missing, None, factors, None
    patterns = missingness_patterns(missing)
    return missing, patterns, factors, pattern_groups(patterns.masks, factors.precisions)


def _block_patterns(patterns: Patterns | None, rows: slice) -> Patterns | None:
    return None if patterns is None else Patterns(patterns.index[rows], patterns.masks)


def _blocks(n_rows: int):
    for start in range(0, n_rows, GAPPY_BLOCK_ROWS):
        yield slice(start, min(start + GAPPY_BLOCK_ROWS, n_rows))


# --------------------------------------------------------------- statistics
def marginal_record(params: GaussianParameters) -> Marginal:
    """The :class:`~streamgmm.kernels.records.Marginal` of ``params``."""
    cov_type = params.covariance_type
    means = writeable(params.means)
    d = means.shape[1]
    factors = as_blocks(params.precisions_cholesky, cov_type)
    with np.errstate(divide="ignore"):
        log_weights = np.log(writeable(params.weights))
    if cov_type in ("full", "tied"):
        precisions = np.ascontiguousarray(factors @ factors.transpose(0, 2, 1))
        log_det = np.log(np.diagonal(factors, axis1=1, axis2=2)).sum(axis=1)
        factors = np.ascontiguousarray(factors.transpose(0, 2, 1))
    else:
        precisions = np.zeros((0, d, d))
        log_det = np.log(factors).sum(axis=(1, 2)) * (d if cov_type == "spherical" else 1)
    return Marginal(log_weights, means, factors, precisions, log_det, GAPPY_KERNEL_ROWS)


def gappy_statistics(
    X: np.ndarray, params: GaussianParameters, sample_weight: np.ndarray | None = None,
    row_offset: int = 0,
) -> SufficientStatistics:
    """Centred statistics of the rows of X (n, d) with something observed:
    ``sum g``, ``sum g x_hat`` and ``sum g (x_hat x_hat^T + C)`` (module docs),
    compiled. Where the complete rows' kernel takes every component's sums
    about one shift in its expanded form (full, diag, spherical; no
    own-shifted component), the rows go through its layout with the gaps'
    terms added (:func:`streamgmm.kernels.masked.masked_sums`); otherwise
    component by component about each mean
    (:func:`streamgmm.kernels.gappy.gappy_sums`). Full and tied: the chunk's
    missingness patterns and their conditional covariances come first, from
    their own kernel (:func:`streamgmm.kernels.patterns.pattern_table`, the
    precisions laid out (d, d, K)), so that neither kernel compiles it again
    inside itself (numba optimises a kernel with every function it calls).
    The kernels return the
    largest magnitude of an observed value they read: above
    ``MAX_ABS_VALUE`` (or infinite), :func:`check_observed` names the rows
    (numbered from ``row_offset``) and raises, so X needs no pass of its own
    for the check."""
    cov_type = params.covariance_type
    n_components, d = params.means.shape
    rows = rows_record(X, weights=None if sample_weight is None else estep.kernel_weights(
        sample_weight))
    marginal = marginal_record(params)
    operands = estep.density_factors(params)
    expanded = (cov_type != "tied" and operands.density_mode == codes.LINEAR
                and operands.own_index.size == 0)
    precisions = np.ascontiguousarray(np.moveaxis(marginal.precisions, 0, -1))
    try:  # interpreted kernels may warn or stop at a bad value, compiled ones do neither
        with np.errstate(all="ignore"):
            ids, table = kernels.pattern_table(
                rows.X, X.shape[0] if cov_type in ("full", "tied") else 0, precisions,
                n_components)
            if expanded:
                plan = estep.kernel_plan(cov_type, n_components, d)._replace(
                    block=GAPPY_KERNEL_ROWS if cov_type == "full" else GAPPY_DIAGONAL_ROWS)
                ordered = by_pattern(rows, ids, table) if cov_type == "full" else rows
                sums = kernels.masked_sums(ordered, marginal, operands, plan, ids, table,
                                           precisions)
            else:
                sums = kernels.gappy_sums(rows, marginal, ids, table)
    except (ArithmeticError, ValueError):
        check_observed(X, row_offset)
        raise
    if not sums.totals[2] <= estep.usable_limit(X.dtype):
        check_observed(X, row_offset)
    shifts = np.broadcast_to(operands.shift, (n_components, d)) if expanded else marginal.means
    second = sums.second if cov_type in ("full", "tied") else sums.second[:, 0, :]
    return centred(sums.weight, sums.first, second, shifts, cov_type, sums.totals[0],
                   sums.totals[1])


def by_pattern(rows: Rows, ids: np.ndarray, table) -> Rows:
    """``rows`` visited pattern by pattern (rows without a gap first), each
    pattern's rows in their order, for the full type's gap terms
    (:func:`streamgmm.kernels.masked.full_gaps`), which run over the rows of
    one pattern side by side; the rows' sums then add in another order
    (equal to rounding: about 1e-15 relative in a chunk's sums). While the
    patterns are numbered below 2^15 - 1, the pattern numbers sort as int16,
    which NumPy's stable sort orders by radix (a counting sort: 2 ms for
    250,000 rows, against 23 for int64)."""
    keys = ids if len(rows.order) == 0 else ids[rows.order]
    if len(table.n_missing) < np.iinfo(np.int16).max:
        keys = keys.astype(np.int16)
    order = np.argsort(keys, kind="stable")
    if len(rows.order):
        order = rows.order[order]
    return rows_record(rows.X, order, rows.weights if len(rows.weights) else None)


def centred(weight, first, second, shifts, covariance_type, log_likelihood, n_samples):
    """:class:`SufficientStatistics` from sums about ``shifts`` (K, d):
    ``first = sum g (x - s)``, ``second = sum g (x - s)(x - s)^T`` (its diagonal for
    diag and spherical)."""
    safe = np.where(weight > 0, weight, 1.0)
    offset = first / safe[:, None]
    mean = shifts + offset
    if covariance_type in ("full", "tied"):
        scatter = second - weight[:, None, None] * offset[:, :, None] * offset[:, None, :]
        if covariance_type == "tied":
            scatter = scatter.sum(axis=0)
    else:
        scatter = second - weight[:, None] * offset**2
        if covariance_type == "spherical":
            scatter = scatter.sum(axis=1)
    return SufficientStatistics(weight, mean, scatter, float(log_likelihood), float(n_samples))


def _split(X: np.ndarray):
    """Masks (n,) of complete rows and of rows with gaps and something observed."""
    missing = np.isnan(X)
    complete = ~missing.any(axis=1)
    gappy = ~complete & ~missing.all(axis=1)
    return complete, gappy


def chunk_statistics(
    X: np.ndarray,
    params: GaussianParameters,
    row_offset: int = 0,
    *,
    float32_products: bool = False,
    sample_weight: np.ndarray | None = None,
) -> SufficientStatistics:
    """:func:`streamgmm.estep.chunk_statistics` for rows that may hold NaN: a
    chunk without NaN through it (the same bits as ``missing="raise"``), a chunk
    with NaN through :func:`gappy_statistics` (rows with nothing observed
    skipped; float64 products)."""
    if not has_gaps(X):
        return estep.chunk_statistics(X, params, row_offset, float32_products=float32_products,
                                      sample_weight=sample_weight)
    return gappy_statistics(X, params, sample_weight, row_offset)


# ------------------------------------------------------- prediction, scores
def e_step(X: np.ndarray, params: GaussianParameters) -> tuple[np.ndarray, np.ndarray]:
    """:func:`streamgmm.estep.e_step` for rows that may hold NaN: log-likelihood
    of every row's observed coordinates (n,) and log-responsibilities (n, K).
    A row with nothing observed gets NaN and the prior ``log pi``."""
    if not has_gaps(X):
        return estep.e_step(X, params)
    check_observed(X)
    complete, gappy = _split(X)
    log_likelihood = np.full(X.shape[0], np.nan)
    with np.errstate(divide="ignore"):
        log_resp = np.tile(np.log(np.asarray(params.weights, dtype=np.float64)),
                           (X.shape[0], 1))
    if complete.any():
        log_likelihood[complete], log_resp[complete] = estep.e_step(X[complete], params)
    if gappy.any():
        rows = np.flatnonzero(gappy)
        gappy_X = np.asarray(X[rows], dtype=np.float64)
        missing, patterns, factors, groups = _prepared(gappy_X, params)
        for block in _blocks(rows.size):
            terms = gappy_terms(gappy_X[block], missing[block], factors, groups,
                                _block_patterns(patterns, block))
            row_ll, block_resp = _log_responsibilities(terms.log_weighted)
            log_likelihood[rows[block]] = row_ll
            log_resp[rows[block]] = block_resp.T
    return log_likelihood, log_resp


def chunk_likelihood_terms(
    X: np.ndarray,
    params: GaussianParameters,
    row_offset: int = 0,
    sample_weight: np.ndarray | None = None,
) -> tuple[float, float, float]:
    """:func:`streamgmm.estep.chunk_likelihood_terms` for rows that may hold NaN:
    rows with nothing observed count in none of the three sums."""
    if not has_gaps(X):
        return estep.chunk_likelihood_terms(X, params, row_offset, sample_weight)
    check_observed(X, row_offset)
    row_ll, log_resp = e_step(X, params)
    counted = ~np.isnan(row_ll)
    weights = np.ones(X.shape[0]) if sample_weight is None else estep.kernel_weights(
        sample_weight)
    weights = np.where(counted, weights, 0.0)
    classification = np.where(counted, log_resp.max(axis=1), 0.0)
    return (float(weights @ np.where(counted, row_ll, 0.0)), float(weights.sum()),
            float(weights @ classification))


def chunk_log_likelihood(
    X: np.ndarray,
    params: GaussianParameters,
    row_offset: int = 0,
    sample_weight: np.ndarray | None = None,
) -> tuple[float, float]:
    """Summed log-likelihood and count of the rows with something observed."""
    total, n_rows, _ = chunk_likelihood_terms(X, params, row_offset, sample_weight)
    return total, n_rows


def impute(X: np.ndarray, params: GaussianParameters) -> np.ndarray:
    """X (float64) with every NaN replaced by its conditional mean under the
    mixture, ``sum_k P(k | x_O) E[x_M | x_O, k]``; a row with nothing observed
    gets the mixture's mean ``sum_k pi_k mu_k``."""
    X = np.array(X, dtype=np.float64)
    if not has_gaps(X):
        return X
    check_observed(X)
    complete, gappy = _split(X)
    means = np.asarray(params.means, dtype=np.float64)
    empty = ~complete & ~gappy
    X[empty] = np.asarray(params.weights, dtype=np.float64) @ means
    rows = np.flatnonzero(gappy)
    gappy_X = X[rows]
    missing, patterns, factors, groups = _prepared(gappy_X, params)
    for block in _blocks(rows.size):
        terms = gappy_terms(gappy_X[block], missing[block], factors, groups,
                            _block_patterns(patterns, block))
        _, log_resp = _log_responsibilities(terms.log_weighted)
        resp = np.exp(log_resp)
        expected = np.einsum("kn,knd->nd", resp, terms.deviations + means[:, None, :])
        filled = gappy_X[block]
        filled[missing[block]] = expected[missing[block]]
        X[rows[block]] = filled
    return X


# ------------------------------------------------------------- stepwise EM
def stepwise_steps(
    state: Any,
    params: GaussianParameters,
    covariances: np.ndarray,
    rows: np.ndarray,
    config: Any,
    batch_size: int,
    order: np.ndarray | None,
    *,
    update: Any,
    step_size: Any,
    burn_in_complete: Any,
) -> tuple[tuple, GaussianParameters, np.ndarray, np.ndarray, float]:
    """Stepwise-EM updates from ``rows`` that may hold NaN, ``batch_size`` rows
    per step, driven from Python one mini-batch at a time: the batch's
    statistics are :func:`chunk_statistics` (its rows with nothing observed
    skipped), divided by the batch's count of rows with something observed, and
    go through the same stepwise merge (``update``:
    :func:`streamgmm.online.stepwise_update`), step sizes (``step_size``),
    burn-in rule (``burn_in_complete``), averaging and M-step as the compiled
    steps of :func:`streamgmm.online.online_steps` (whose semantics this
    follows; ``state`` and ``config`` are an ``OnlineState`` and an
    ``OnlineConfig``).

    Returns the new state's fields ``(statistics, n_steps, n_samples_seen,
    averaged, n_averaged)``, the parameters and covariances of the next
    E-step, each batch's summed log-likelihood and the rows (weight) that
    counted. Pure: raises ``ValueError`` (infinite rows, overflow) or
    ``CholeskyError`` without changing anything."""
    from .mstep import parameters_from_statistics

    cov_type = config.covariance_type
    X = rows if order is None else rows[order]
    weights = None
    if config.weighted:
        X, weights = X[:, :-1], X[:, -1]
    statistics, n_steps, n_seen, averaged, n_averaged = state
    log_likelihoods, counted = [], 0.0
    for begin in range(0, X.shape[0], batch_size):
        batch = slice(begin, begin + batch_size)
        found = chunk_statistics(X[batch], params, float32_products=config.float32_products,
                                 sample_weight=None if weights is None else weights[batch])
        log_likelihoods.append(found.log_likelihood)
        size = found.n_samples
        counted += size
        if size == 0:
            continue
        found = SufficientStatistics(found.weight / size, found.mean, found.scatter / size,
                                     found.log_likelihood / size, 1.0)
        seen = n_seen + size
        rho = size / seen if n_steps == 0 else step_size(
            n_steps + 1, config.learning_decay, config.learning_offset, config.step_floor)
        statistics = update(statistics, found, rho, cov_type)
        n_seen = seen
        if n_steps == 0 and not burn_in_complete(statistics, seen, cov_type):
            continue
        n_steps += 1
        params, covariances = parameters_from_statistics(statistics, config.reg_covar, cov_type)
        if config.averaging:
            n_averaged += 1
            averaged = statistics if n_averaged == 1 else update(
                averaged, statistics, 1.0 / n_averaged, cov_type)
    if not config.weighted:
        n_seen, counted = int(n_seen), int(counted)
    return ((statistics, n_steps, n_seen, averaged, n_averaged), params, covariances,
            np.array(log_likelihoods), counted)


__all__: list[str] = []
"""Nothing here is public API (docs/api.md lists what is)."""
