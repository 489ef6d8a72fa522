"""The E-step of rows with missing values (NaN), compiled, row by row.

Formulas in :mod:`streamgmm.missing` (Ghahramani & Jordan 1994). For a row
with missing coordinates M and component k (mean mu, precision factor P,
``Lambda = P P^T``), ``r`` is the row's deviation from mu with zeros in M:

* full and tied: ``t = P^T r`` (one BLAS product per component for a whole
  block, whatever the rows' patterns) gives ``|t|^2 = r^T Lambda r``; with
  ``L L^T = Lambda_MM`` (|M| x |M|, factorised per row: |M| is small when few
  values are missing), ``u = Lambda_MO r_O`` and ``v = L^-1 u``, the marginal's
  quadratic form is ``|t|^2 - |v|^2``, ``log det Sigma_OO = -2 log det P + 2 log
  det L``, the conditional mean's deviation ``x_M - mu_M = -L^-T v`` and the
  conditional covariance ``L^-T L^-1``;
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
from .jit import kernel
from .mathfn import normalise
from .records import GappySums


@kernel
def gather_block(rows, start, shift, columns, gaps, n_missing, index):  # pragma: no cover
    """From row ``start`` of ``rows`` (:class:`~streamgmm.kernels.records.Rows`)
    on, the next rows with something observed, up to ``index.size``: their
    positions in X (``index``), ``columns`` (d + 1, b) ``[(x - shift)^T; 1]``
    with 0 where missing, their missing coordinates ``gaps[i, :m_i]`` and
    ``n_missing[i] = m_i``, in one pass; returns how many and where the next
    block starts."""
    X, order = rows.X, rows.order
    n, d = X.shape
    count = 0
    row = start
    while row < n and count < index.shape[0]:
        source = row if order.shape[0] == 0 else order[row]
        m = 0
        for j in range(d):
            value = X[source, j]
            if math.isnan(value):
                columns[j, count] = 0.0
                gaps[count, m] = j
                m += 1
            else:
                columns[j, count] = value - shift[j]
        if m < d:
            columns[d, count] = 1.0
            n_missing[count] = m
            index[count] = source
            count += 1
        row += 1
    return count, row


@kernel
def next_block(rows, start, shift, buffers):  # pragma: no cover
    """:func:`gather_block` into ``buffers`` (columns, gaps, n_missing, index
    of ``block`` rows); returns where the next block starts and the gathered
    rows' columns, gaps, n_missing and index, copies when fewer."""
    columns, gaps, n_missing, index = buffers
    count, start = gather_block(rows, start, shift, columns, gaps, n_missing, index)
    if count == index.shape[0]:
        return start, columns, gaps, n_missing, index
    return (start, np.ascontiguousarray(columns[:, :count]), gaps[:count].copy(),
            n_missing[:count].copy(), index[:count].copy())


@kernel
def block_buffers(block, d):  # pragma: no cover
    """The buffers of :func:`next_block`."""
    return (np.empty((d + 1, block)), np.empty((block, d), dtype=np.int64),
            np.empty(block, dtype=np.int64), np.empty(block, dtype=np.int64))


@kernel
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


@kernel
def squared_norms(values, out):  # pragma: no cover
    """``out[i] = sum_j values[j, i]^2`` (d, b), adding j in order."""
    for i in range(values.shape[1]):
        out[i] = 0.0
    for j in range(values.shape[0]):
        for i in range(values.shape[1]):
            out[i] += values[j, i] * values[j, i]


@kernel
def ldl_inverse(precision, columns, row, m, scratch, out):  # pragma: no cover
    """``Lambda_MM^-1`` (M the first m ``columns[row]``), m x m in row order,
    into ``out``, through ``Lambda_MM = L D L^T`` (L unit lower triangular
    below the diagonal of ``scratch[0]``, D on it, ``1 / D`` in ``scratch[2,
    0]``, ``L^-1`` in ``scratch[1]``) as ``L^-T D^-1 L^-1``; returns ``log det
    Lambda_MM / 2``."""
    factor, unit, reciprocal = scratch[0], scratch[1], scratch[2, 0]
    product = 1.0
    for a in range(m):
        for c in range(a):
            value = precision[columns[row, a], columns[row, c]]
            for e in range(c):
                value -= factor[a, e] * factor[c, e] * factor[e, e]
            factor[a, c] = value * reciprocal[c]
        value = precision[columns[row, a], columns[row, a]]
        for e in range(a):
            value -= factor[a, e] * factor[a, e] * factor[e, e]
        product *= value
        factor[a, a] = value
        reciprocal[a] = 1.0 / value
    half_log_det = 0.5 * math.log(product)
    if not 1e-150 < product < 1e150:
        half_log_det = 0.0
        for a in range(m):
            half_log_det += 0.5 * math.log(factor[a, a])
    for c in range(m):
        unit[c, c] = 1.0
        for a in range(c + 1, m):
            value = 0.0
            for e in range(c, a):
                value -= factor[a, e] * unit[e, c]
            unit[a, c] = value
    for a in range(m):
        for c in range(a, m):
            value = 0.0
            for e in range(c, m):
                value += unit[e, a] * unit[e, c] * reciprocal[e]
            out[a * m + c] = value
            out[c * m + a] = value
    return half_log_det


@kernel
def row_inverses(precision, columns, n_missing, half_log_diagonal, inverses, scratch,
                 half_log_dets):  # pragma: no cover
    """For each row i, with M its first ``m = n_missing[i]`` missing
    ``columns[i]``: ``Lambda_MM^-1`` (the conditional covariance), m x m in row
    order, into the flat ``inverses`` one row after the other
    (:func:`inverses_size`), and ``half_log_dets[i] = log det Lambda_MM / 2``.
    One or two missing values in closed form (one: ``half_log_diagonal[j]``
    looked up); more by :func:`ldl_inverse` (``scratch`` (3, d, d))."""
    start = 0
    for i in range(n_missing.shape[0]):
        m = n_missing[i]
        if m == 0:
            half_log_dets[i] = 0.0
        elif m == 1:
            j = columns[i, 0]
            inverses[start] = 1.0 / precision[j, j]
            half_log_dets[i] = half_log_diagonal[j]
        elif m == 2:
            a, c = columns[i, 0], columns[i, 1]
            det = precision[a, a] * precision[c, c] - precision[a, c] * precision[a, c]
            inverses[start] = precision[c, c] / det
            inverses[start + 1] = -precision[a, c] / det
            inverses[start + 2] = inverses[start + 1]
            inverses[start + 3] = precision[a, a] / det
            half_log_dets[i] = 0.5 * math.log(det)
        else:
            half_log_dets[i] = ldl_inverse(precision, columns, i, m, scratch,
                                           inverses[start:start + m * m])
        start += m * m


@kernel
def inverses_size(n_missing):  # pragma: no cover
    """``sum_i m_i^2``: the size of the flat conditional covariances of a
    block (:func:`row_inverses`)."""
    size = 0
    for i in range(n_missing.shape[0]):
        size += n_missing[i] * n_missing[i]
    return size


@kernel
def condition_rows(precision, columns, n_missing, inverses, deviations,
                   quadratic):  # pragma: no cover
    """For each row i of ``deviations`` (d, b) with ``m = n_missing[i]``
    missing coordinates ``columns[i, :m]`` and ``Lambda_MM^-1`` in ``inverses``
    (:func:`row_inverses`): ``u = Lambda_MO r_O``, ``quadratic[i] -= u^T
    Lambda_MM^-1 u`` and the missing deviations set to ``-Lambda_MM^-1 u``
    (module docs)."""
    d, b = deviations.shape
    u = np.empty(columns.shape[1])
    start = 0
    for i in range(b):
        m = n_missing[i]
        for a in range(m):
            value = 0.0
            for j in range(d):
                value += precision[columns[i, a], j] * deviations[j, i]
            u[a] = value
        for a in range(m):
            solved = 0.0
            for c in range(m):
                solved += inverses[start + a * m + c] * u[c]
            quadratic[i] -= u[a] * solved
            deviations[columns[i, a], i] = -solved
        start += m * m


@kernel
def conditional_covariances(columns, n_missing, inverses, weights, second):  # pragma: no cover
    """``second[M, M] += weights[i] Lambda_MM^-1`` for each row i, the
    conditional covariances (:func:`row_inverses`)."""
    start = 0
    for i in range(n_missing.shape[0]):
        m = n_missing[i]
        for a in range(m):
            for c in range(m):
                second[columns[i, a], columns[i, c]] += weights[i] * inverses[start + a * m + c]
        start += m * m


@kernel
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


@kernel
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


@kernel
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


@kernel
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


@kernel
def block_densities(values, marginal, logs, columns, n_missing, deviations,
                    inverses):  # pragma: no cover
    """``log pi_k + log N(x_O; mu_k,O, Sigma_k,OO)`` (K, b) of a block (its
    ``values`` (d + 1, b) from :func:`gather_block`, missing ``columns``); fills
    ``deviations`` (K, d, b) with ``x_hat - mu_k`` and, full and tied,
    ``inverses`` (K, size) with the conditional covariances (:func:`row_inverses`)."""
    n_components, d = marginal.means.shape
    b = values.shape[1]
    full = marginal.precisions.shape[0] > 0
    out = np.empty((n_components, b))
    scratch = np.empty((3, d, d))
    quadratic = np.empty(b)
    log_det = np.empty(b)
    for k in range(n_components):
        f = k if marginal.factors.shape[0] > 1 else 0
        fill_deviations(values, columns, n_missing, marginal.means[k], deviations[k])
        if full:
            squared_norms(np.dot(marginal.factors[f], deviations[k]), quadratic)
            row_inverses(marginal.precisions[f], columns, n_missing, logs[f], inverses[k],
                         scratch, log_det)
            condition_rows(marginal.precisions[f], columns, n_missing, inverses[k],
                           deviations[k], quadratic)
        else:
            diagonal_densities(marginal.factors[k], logs[k], columns, n_missing,
                               deviations[k], quadratic, log_det)
        constant = marginal.log_weights[k] + marginal.log_det[f]
        for i in range(b):
            out[k, i] = constant - log_det[i] - 0.5 * (
                (d - n_missing[i]) * LOG_2PI + quadratic[i])
    return out


@kernel
def zero_gappy_sums(n_components, d, full):  # pragma: no cover
    """The :class:`~streamgmm.kernels.records.GappySums` of no rows."""
    return GappySums(np.zeros(n_components), np.zeros((n_components, d)),
                     np.zeros((n_components, d if full else 1, d)), np.zeros(2))


@kernel
def gappy_sums(rows, marginal):  # pragma: no cover
    """Sums about each component's mean of the rows of ``rows`` with something
    observed (:class:`~streamgmm.kernels.records.GappySums`), ``marginal.block``
    rows at a time; weighted rows count their weight times."""
    X = rows.X
    n, d = X.shape
    n_components = marginal.means.shape[0]
    full = marginal.precisions.shape[0] > 0
    sums = zero_gappy_sums(n_components, d, full)
    buffers = block_buffers(marginal.block, d)
    logs = log_table(marginal)
    origin = np.zeros(d)
    start = 0
    while start < n:
        start, values, columns, n_missing, block = next_block(rows, start, origin, buffers)
        count = block.shape[0]
        if count == 0:
            continue
        deviations = np.empty((n_components, d, count))
        inverses = np.empty((n_components if full else 0, inverses_size(n_missing)))
        log_weighted = block_densities(values, marginal, logs, columns, n_missing,
                                       deviations, inverses)
        resp_t = np.empty((count, n_components))
        weights = row_weights(rows, block)
        sums.totals[0] += normalise(log_weighted, resp_t, weights)
        for i in range(count):
            sums.totals[1] += 1.0 if weights.shape[0] == 0 else weights[i]
        for k in range(n_components):
            gamma = np.ascontiguousarray(resp_t[:, k])
            for i in range(count):
                sums.weight[k] += gamma[i]
            if full:
                full_sums(deviations[k], gamma, sums.first[k], sums.second[k])
                conditional_covariances(columns, n_missing, inverses[k], gamma, sums.second[k])
            else:
                diagonal_sums(deviations[k], gamma, marginal.factors[k], columns, n_missing,
                              sums.first[k], sums.second[k, 0])
    return sums


@kernel
def row_weights(rows, index):  # pragma: no cover
    """The weights of the rows ``index`` (empty for unweighted rows)."""
    if rows.weights.shape[0] == 0:
        return rows.weights
    return rows.weights[index]
