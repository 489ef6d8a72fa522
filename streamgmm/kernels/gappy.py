"""The E-step of rows with missing values (NaN), compiled, row by row.

Formulas in :mod:`streamgmm.missing` (Ghahramani & Jordan 1994). For a row
with missing coordinates M and component k (mean mu, precision factor P,
``Lambda = P P^T``), ``r`` is the row's deviation from mu with zeros in M:

* full and tied: ``t = P^T r`` (one BLAS product per component for a whole
  block, whatever the rows' patterns) gives ``|t|^2 = r^T Lambda r``; with
  ``u = Lambda_MO r_O`` and the conditional covariance ``C = Lambda_MM^-1``
  (once per pattern of the chunk, :mod:`streamgmm.kernels.patterns`), the
  marginal's quadratic form is ``|t|^2 - u^T C u``, ``log det Sigma_OO = -2 log
  det P + log det Lambda_MM`` and the conditional mean's deviation ``x_M - mu_M
  = -C u``;
* diag and spherical: the observed coordinates alone (``x_M = mu_M``, the
  conditional covariance ``sigma^2_M``).

Sums ``sum g``, ``sum g (x_hat - mu)`` and ``sum g ((x_hat - mu)(x_hat - mu)^T
+ C)`` are taken about each component's own mean, in float64, so no shift
loses digits. Rows with nothing observed are skipped. A block's deviations are
laid out as the complete kernel's columns, (d, b), one block per component.
"""

from __future__ import annotations

import math

import numpy as np

from .codes import LOG_2PI
from .jit import kernel, part, shared
from .mathfn import normalise
from .patterns import add_pattern_mass, pattern_covariances
from .records import GappySums


@part
def gather_block(rows, start, shift, columns, gaps, n_missing, index):  # pragma: no cover
    """From row ``start`` of ``rows`` (:class:`~streamgmm.kernels.records.Rows`)
    on, the next rows with something observed, up to ``index.size``: their
    positions in X (``index``), the first d + 1 rows of ``columns`` ``[(x -
    shift)^T; 1]`` with 0 where missing, their missing coordinates ``gaps[i, :m_i]`` and
    ``n_missing[i] = m_i`` and, if ``columns`` has 2d + 1 rows, the
    missing-value indicators in rows d + 1 to 2d (1 where missing), in one
    pass; returns how many, where the next
    block starts and the largest magnitude of an observed value read (so that
    the values need no check of their own before)."""
    X, order = rows.X, rows.order
    n, d = X.shape
    marks = columns.shape[0] > d + 1
    count = 0
    row = start
    largest = 0.0
    while row < n and count < index.shape[0]:
        source = row if order.shape[0] == 0 else order[row]
        m = 0
        for j in range(d):
            value = X[source, j]
            if math.isnan(value):
                columns[j, count] = 0.0
                if marks:
                    columns[d + 1 + j, count] = 1.0
                gaps[count, m] = j
                m += 1
            else:
                columns[j, count] = value - shift[j]
                if marks:
                    columns[d + 1 + j, count] = 0.0
                largest = max(largest, abs(value))
        if m < d:
            columns[d, count] = 1.0
            n_missing[count] = m
            index[count] = source
            count += 1
        row += 1
    return count, row, largest


@shared
def next_block(rows, start, shift, buffers, totals):  # pragma: no cover
    """:func:`gather_block` into ``buffers`` (columns, gaps, n_missing, index
    of ``block`` rows); returns where the next block starts and the gathered
    rows' columns, gaps, n_missing and index, copies when fewer; ``totals[2]``
    becomes the largest magnitude of an observed value so far."""
    columns, gaps, n_missing, index = buffers
    count, start, largest = gather_block(rows, start, shift, columns, gaps, n_missing, index)
    totals[2] = max(totals[2], largest)
    if count == index.shape[0]:
        return start, columns, gaps, n_missing, index
    return (start, np.ascontiguousarray(columns[:, :count]), gaps[:count].copy(),
            n_missing[:count].copy(), index[:count].copy())


@shared
def block_buffers(block, d, extra):  # pragma: no cover
    """The buffers of :func:`next_block` (``extra`` more rows of columns)."""
    return (np.empty((d + 1 + extra, block)), np.empty((block, d), dtype=np.int64),
            np.empty(block, dtype=np.int64), np.empty(block, dtype=np.int64))


@part
def fill_deviations(columns, gaps, n_missing, mean, out):  # pragma: no cover
    """``out`` (d, b) the deviations from ``mean`` of the rows of ``columns``
    (:func:`gather_block`, shifted by 0), 0 where missing."""
    d, b = out.shape
    for j in range(d):
        for i in range(b):
            out[j, i] = columns[j, i] - mean[j]
    for i in range(b):
        for a in range(n_missing[i]):
            out[gaps[i, a], i] = 0.0


@part
def squared_norms(values, out):  # pragma: no cover
    """``out[i] = sum_j values[j, i]^2`` (d, b), adding j in order."""
    for i in range(values.shape[1]):
        out[i] = 0.0
    for j in range(values.shape[0]):
        for i in range(values.shape[1]):
            out[i] += values[j, i] * values[j, i]


@part
def condition_rows(precision, ids, table, f, deviations, quadratic, log_det):  # pragma: no cover
    """For each row i of ``deviations`` (d, b) with a gap (its pattern
    ``ids[i]`` in ``table``, whose conditional covariances ``Lambda_MM^-1`` come
    from precision ``f``): ``u = Lambda_MO r_O``, ``quadratic[i] -= u^T
    Lambda_MM^-1 u``, ``log_det[i] = log det Lambda_MM / 2`` and the missing
    deviations set to ``-Lambda_MM^-1 u`` (module docs)."""
    d, b = deviations.shape
    u = np.empty(d)
    for i in range(b):
        p = ids[i]
        log_det[i] = 0.0
        if p < 0:
            continue
        m = table.n_missing[p]
        square = table.offsets[p]
        log_det[i] = table.half_log_dets[p, f]
        for a in range(m):
            value = 0.0
            for j in range(d):
                value += precision[table.columns[p, a], j] * deviations[j, i]
            u[a] = value
        for a in range(m):
            solved = 0.0
            for c in range(m):
                solved += table.inverses[square + a * m + c, f] * u[c]
            quadratic[i] -= u[a] * solved
            deviations[table.columns[p, a], i] = -solved


@part
def diagonal_densities(factors, log_factors, columns, n_missing, deviations, quadratic,
                       log_det):  # pragma: no cover
    """Diag and spherical, one component (``factors`` (1, d) or (1, 1), their
    logarithms ``log_factors`` (d,)): ``quadratic[i] = sum_j (p_j r_ji)^2`` of
    the deviations (d, b) (zero where missing) and ``log_det[i] = sum_(j in M)
    log p_j``, the part of ``log det P`` the missing coordinates take away."""
    d, b = deviations.shape
    spherical = factors.shape[1] == 1
    for i in range(b):
        quadratic[i] = 0.0
        log_det[i] = 0.0
    for j in range(d):
        p = factors[0, 0 if spherical else j]
        for i in range(b):
            whitened = deviations[j, i] * p
            quadratic[i] += whitened * whitened
    for i in range(b):
        for a in range(n_missing[i]):
            log_det[i] += log_factors[columns[i, a]]


@part
def diagonal_sums(deviations, weights, factors, columns, n_missing, first,
                  second):  # pragma: no cover
    """Add ``sum_i g_i r_i`` to ``first`` (d,) and ``sum_i g_i r_i^2``, with
    ``sigma^2_j`` in the missing coordinates, to ``second`` (d,), for one
    component (``factors`` (1, d) or (1, 1))."""
    d, b = deviations.shape
    spherical = factors.shape[1] == 1
    for j in range(d):
        first_sum = 0.0
        second_sum = 0.0
        for i in range(b):
            weighted = weights[i] * deviations[j, i]
            first_sum += weighted
            second_sum += weighted * deviations[j, i]
        first[j] += first_sum
        second[j] += second_sum
    for i in range(b):
        for a in range(n_missing[i]):
            p = factors[0, 0 if spherical else columns[i, a]]
            second[columns[i, a]] += weights[i] / (p * p)


@part
def full_sums(deviations, weights, first, second):  # pragma: no cover
    """Add ``sum_i g_i r_i`` to ``first`` (d,) and ``sum_i g_i r_i r_i^T`` to
    ``second`` (d, d) (one product)."""
    d, b = deviations.shape
    weighted = np.empty((d, b))
    for j in range(d):
        first_sum = 0.0
        for i in range(b):
            weighted[j, i] = deviations[j, i] * weights[i]
            first_sum += weighted[j, i]
        first[j] += first_sum
    product = np.dot(weighted, deviations.T)
    for a in range(d):
        for c in range(d):
            second[a, c] += product[a, c]


@shared
def log_table(marginal):  # pragma: no cover
    """Per factor (F, d): ``log Lambda_jj / 2`` (full, tied) or ``log p_j``
    (diag; spherical's one value in every column)."""
    factors = marginal.factors
    n_factors, d = factors.shape[0], marginal.means.shape[1]
    full = marginal.precisions.shape[0] > 0
    table = np.empty((n_factors, d))
    for f in range(n_factors):
        for j in range(d):
            if full:
                table[f, j] = 0.5 * math.log(marginal.precisions[f, j, j])
            else:
                table[f, j] = math.log(factors[f, 0, 0 if factors.shape[2] == 1 else j])
    return table


@part
def block_densities(values, marginal, logs, columns, n_missing, deviations, ids,
                    table):  # pragma: no cover
    """``log pi_k + log N(x_O; mu_k,O, Sigma_k,OO)`` (K, b) of a block (its
    ``values`` (d + 1, b) from :func:`gather_block`, missing ``columns``; full
    and tied: the rows' patterns ``ids`` in ``table``); fills ``deviations``
    (K, d, b) with ``x_hat - mu_k``."""
    n_components, d = marginal.means.shape
    b = values.shape[1]
    full = marginal.precisions.shape[0] > 0
    out = np.empty((n_components, b))
    quadratic = np.empty(b)
    log_det = np.empty(b)
    for k in range(n_components):
        f = k if marginal.factors.shape[0] > 1 else 0
        fill_deviations(values, columns, n_missing, marginal.means[k], deviations[k])
        if full:
            squared_norms(np.dot(marginal.factors[f], deviations[k]), quadratic)
            condition_rows(marginal.precisions[f], ids, table, f, deviations[k], quadratic,
                           log_det)
        else:
            diagonal_densities(marginal.factors[k], logs[k], columns, n_missing,
                               deviations[k], quadratic, log_det)
        marginal_densities(marginal.log_weights[k] + marginal.log_det[f], log_det, n_missing,
                           quadratic, d, out[k])
    return out


@part
def marginal_densities(constant, log_det, n_missing, quadratic, d, out):  # pragma: no cover
    """``out[i] = constant - log_det[i] - ((d - m_i) log 2 pi + quadratic[i]) / 2``
    (b,): one component's log-densities of the rows' observed coordinates
    (:func:`block_densities`)."""
    for i in range(out.shape[0]):
        out[i] = constant - log_det[i] - 0.5 * ((d - n_missing[i]) * LOG_2PI + quadratic[i])


@part
def zero_gappy_sums(n_components, d, full):  # pragma: no cover
    """The :class:`~streamgmm.kernels.records.GappySums` of no rows."""
    return GappySums(np.zeros(n_components), np.zeros((n_components, d)),
                     np.zeros((n_components, d if full else 1, d)), np.zeros(3))


@kernel
def gappy_sums(rows, marginal, ids, table):  # pragma: no cover
    """Sums about each component's mean of the rows of ``rows`` with something
    observed (:class:`~streamgmm.kernels.records.GappySums`), ``marginal.block``
    rows at a time; weighted rows count their weight times. Full and tied:
    ``ids`` and ``table`` the rows' patterns
    (:func:`~streamgmm.kernels.patterns.pattern_table`)."""
    X = rows.X
    n, d = X.shape
    n_components = marginal.means.shape[0]
    full = marginal.precisions.shape[0] > 0
    sums = zero_gappy_sums(n_components, d, full)
    buffers = block_buffers(marginal.block, d, 0)
    logs = log_table(marginal)
    origin = np.zeros(d)
    start = np.int64(0)  # not the literal 0: next_block would compile twice
    while start < n:
        start, values, columns, n_missing, block = next_block(rows, start, origin, buffers,
                                                              sums.totals)
        count = block.shape[0]
        if count == 0:
            continue
        deviations = np.empty((n_components, d, count))
        block_ids = ids[block]
        log_weighted = block_densities(values, marginal, logs, columns, n_missing,
                                       deviations, block_ids, table)
        resp_t = np.empty((count, n_components))
        weights = row_weights(rows, block)
        sums.totals[0] += normalise(log_weighted, resp_t, weights)
        for i in range(count):
            sums.totals[1] += 1.0 if weights.shape[0] == 0 else weights[i]
        add_pattern_mass(block_ids, resp_t, table.mass)
        for k in range(n_components):
            gamma = np.ascontiguousarray(resp_t[:, k])
            for i in range(count):
                sums.weight[k] += gamma[i]
            if full:
                full_sums(deviations[k], gamma, sums.first[k], sums.second[k])
            else:
                diagonal_sums(deviations[k], gamma, marginal.factors[k], columns, n_missing,
                              sums.first[k], sums.second[k, 0])
    if full:
        pattern_covariances(table, sums.second)
    return sums


@shared
def row_weights(rows, index):  # pragma: no cover
    """The weights of the rows ``index`` (empty for unweighted rows)."""
    if rows.weights.shape[0] == 0:
        return rows.weights
    return rows.weights[index]
