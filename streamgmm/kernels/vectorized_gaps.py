"""NumPy versions of the row loops of the kernels for rows with gaps
(:mod:`streamgmm.kernels.gappy`, :mod:`~streamgmm.kernels.patterns`,
:mod:`~streamgmm.kernels.masked`), equal to them bit for bit, for the
interpreted tier: the same floating-point operations in the same order
(:mod:`streamgmm.kernels.vectorized` says how). Rows are vectorised together
when they have the same number of missing values; sums over rows that a
compiled loop adds one row after the other are added by ``np.add.at`` in the
same order.
"""

from __future__ import annotations

import math

import numpy as np

from .codes import LOG_2PI


def _logs(values: np.ndarray) -> np.ndarray:
    """``math.log`` of each value (``np.log`` may differ in the last bit)."""
    return np.array([math.log(value) for value in np.ravel(values).tolist()]).reshape(
        np.shape(values))


def gather_block(rows, start, shift, columns, gaps, n_missing, index):
    """:func:`streamgmm.kernels.gappy.gather_block` on whole blocks."""
    X, order = rows.X, rows.order
    n, d = X.shape
    count, row, largest = 0, start, 0.0
    while row < n and count < index.shape[0]:
        stop = min(n, row + index.shape[0] - count)
        sources = np.arange(row, stop) if order.shape[0] == 0 else order[row:stop]
        values = X[sources]
        missing = np.isnan(values)
        m = missing.sum(axis=1)
        keep = m < d
        kept = int(keep.sum())
        block = slice(count, count + kept)
        columns[:d, block] = np.where(missing[keep], 0.0, values[keep] - shift).T
        columns[d, block] = 1.0
        if columns.shape[0] > d + 1:
            columns[d + 1:, block] = missing[keep].T
        n_missing[block] = m[keep]
        index[block] = sources[keep]
        which, column = np.nonzero(missing[keep])
        first = np.cumsum(m[keep]) - m[keep]
        gaps[count + which, np.arange(which.size) - first[which]] = column
        largest = max(largest, float(np.abs(values[~missing]).max(initial=0.0)))
        count += kept
        row = stop
    return count, row, largest


def chunk_patterns(X, n_rows):
    """:func:`streamgmm.kernels.patterns.chunk_patterns`: the distinct masks
    of the rows, numbered in the order of their first row."""
    n, d = X.shape
    ids = np.full(n, -1, dtype=np.int64)
    missing = np.isnan(X[:n_rows])
    m = missing.sum(axis=1)
    used = np.flatnonzero((m > 0) & (m < d))
    _, first, inverse = np.unique(np.packbits(missing[used], axis=1), axis=0,
                                  return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    ids[used] = rank[np.ravel(inverse)]
    masks = missing[used[first[order]]]
    n_missing = masks.sum(axis=1).astype(np.int64)
    columns = np.zeros((order.size, d), dtype=np.int64)
    which, column = np.nonzero(masks)
    columns[which, np.arange(which.size) - (np.cumsum(n_missing) - n_missing)[which]] = column
    return ids, columns, n_missing


def small_inverses(precisions, columns, m, start, inverses, half_log_dets):
    """:func:`streamgmm.kernels.patterns.small_inverses`, the components together."""
    a, c = columns[0], columns[m - 1]
    if m == 1:
        inverses[start] = 1.0 / precisions[a, a]
        half_log_dets[:] = 0.5 * _logs(precisions[a, a])
        return
    det = precisions[a, a] * precisions[c, c] - precisions[a, c] * precisions[a, c]
    inverses[start] = precisions[c, c] / det
    inverses[start + 1] = -precisions[a, c] / det
    inverses[start + 2] = inverses[start + 1]
    inverses[start + 3] = precisions[a, a] / det
    half_log_dets[:] = 0.5 * _logs(det)


def ldl_inverses(precisions, columns, m, start, inverses, half_log_dets, scratch):
    """:func:`streamgmm.kernels.patterns.ldl_inverses`, the components together."""
    factor, unit, reciprocal = scratch[0], scratch[1], scratch[2, 0]
    product = np.ones(precisions.shape[2])
    for a in range(m):
        for c in range(a + 1):
            value = precisions[columns[a], columns[c]].copy()
            for e in range(c):
                value -= factor[a, e] * factor[c, e] * factor[e, e]
            if c < a:
                factor[a, c] = value * reciprocal[c]
            else:
                factor[a, a] = value
                reciprocal[a] = 1.0 / value
                product *= value
    half_log_dets[:] = 0.5 * _logs(product)
    far = ~((product > 1e-150) & (product < 1e150))
    if far.any():
        half_log_dets[far] = 0.0
        for a in range(m):
            half_log_dets[far] += 0.5 * _logs(factor[a, a, far])
    for c in range(m):
        unit[c, c] = 1.0
        for a in range(c + 1, m):
            value = np.zeros(precisions.shape[2])
            for e in range(c, a):
                value -= factor[a, e] * unit[e, c]
            unit[a, c] = value
    for a in range(m):
        for c in range(a, m):
            value = np.zeros(precisions.shape[2])
            for e in range(c, m):
                value += unit[e, a] * unit[e, c] * reciprocal[e]
            inverses[start + a * m + c] = value
            inverses[start + c * m + a] = value


def pattern_covariances(table, second):
    """:func:`streamgmm.kernels.patterns.pattern_covariances`, the components together."""
    for p in range(table.n_missing.shape[0]):
        m = table.n_missing[p]
        square = table.offsets[p]
        for a in range(m):
            for c in range(m):
                second[:, table.columns[p, a], table.columns[p, c]] += (
                    table.mass[p] * table.inverses[square + a * m + c])


def add_pattern_mass(ids, resp_t, mass):
    """:func:`streamgmm.kernels.patterns.add_pattern_mass`."""
    rows = np.flatnonzero(ids >= 0)
    np.add.at(mass, (ids[rows][:, None], np.arange(resp_t.shape[1])), resp_t[rows])


def transposed(columns, d):
    """:func:`streamgmm.kernels.masked.transposed`."""
    return np.ascontiguousarray(columns[:d].T)


def _gappy_rows(ids, table):
    """The rows with gaps, their patterns, numbers of missing values and
    first places among the completed values."""
    rows = np.flatnonzero(ids >= 0)
    patterns = ids[rows]
    m = table.n_missing[patterns]
    return rows, patterns, m, np.cumsum(m) - m


def full_gaps(columns, ids, table, precisions, tables, log_weighted, completed):
    """:func:`streamgmm.kernels.masked.full_gaps`, the rows with as many
    missing values together."""
    z = columns[:precisions.shape[0]].T
    rows, patterns, counts, starts = _gappy_rows(ids, table)
    for m in np.unique(counts).tolist():
        chosen = counts == m
        r, p, start = rows[chosen], patterns[chosen], starts[chosen]
        square = table.offsets[p]
        columns = table.columns[p, :m]
        change = np.zeros((r.size, log_weighted.shape[0]))
        u = np.empty((m, r.size, log_weighted.shape[0]))
        for a in range(m):
            j = columns[:, a]
            g = -tables[1][j]
            for e in range(z.shape[1]):
                g += precisions[j, e] * z[r, e][:, None]
            h = np.zeros_like(g)
            for c in range(m):
                h += precisions[j, columns[:, c]] * tables[0][columns[:, c]]
            u[a] = g + h
            change += tables[0][j] * (2.0 * g + h)
        for a in range(m):
            solved = np.zeros_like(change)
            for c in range(m):
                solved += table.inverses[square + a * m + c] * u[c]
            change -= u[a] * solved
            completed[start + a] = tables[0][columns[:, a]] - solved
        log_weighted[:, r] += (0.5 * m * LOG_2PI - table.half_log_dets[p] - 0.5 * change).T


def full_gap_sums(z, ids, table, resp_t, completed, first, second):
    """:func:`streamgmm.kernels.masked.full_gap_sums`: every addition listed
    in the compiled loop's order and made by ``np.add.at``."""
    rows, patterns, counts, starts = _gappy_rows(ids, table)
    n_components, d = resp_t.shape[1], z.shape[1]
    components = np.arange(n_components)
    pair = np.repeat(np.arange(rows.size), counts)
    place = np.arange(pair.size) - starts[pair]
    row, pattern = rows[pair], patterns[pair]
    j = table.columns[pattern, place]
    weighted = resp_t[row] * completed[starts[pair] + place]
    np.add.at(first, (j[:, None], components), weighted)
    cross = weighted[:, None, :] * z[row][:, :, None]
    inner = np.repeat(np.arange(pair.size), counts[pair])
    offset = np.arange(inner.size) - (np.cumsum(counts[pair]) - counts[pair])[inner]
    within = 0.5 * weighted[inner] * completed[starts[pair[inner]] + offset]
    targets = np.concatenate([np.repeat(np.arange(d)[None, :], pair.size, axis=0).ravel(),
                              table.columns[pattern[inner], offset]])
    owners = np.concatenate([np.repeat(np.arange(pair.size), d), inner])
    values = np.concatenate([cross.reshape(-1, n_components), within])
    order = np.argsort(owners, kind="stable")
    np.add.at(second, (j[owners[order]][:, None], components, targets[order][:, None]),
              values[order])


def _row_places(n_missing):
    """Each gap's row and place among its row's gaps, in the rows' order."""
    which = np.repeat(np.arange(n_missing.shape[0]), n_missing)
    return which, np.arange(which.size) - (np.cumsum(n_missing) - n_missing)[which]


def _sequential(values):
    """``0.0 + v_0 + v_1 + ...`` in order, as a compiled loop adds."""
    return float(np.cumsum(values)[-1]) if values.size else 0.0


def fill_deviations(columns, gaps, n_missing, mean, out):
    """:func:`streamgmm.kernels.gappy.fill_deviations`."""
    out[:] = columns[: out.shape[0]] - mean[:, None]
    which, place = _row_places(n_missing)
    out[gaps[which, place], which] = 0.0


def squared_norms(values, out):
    """:func:`streamgmm.kernels.gappy.squared_norms`."""
    out[:] = 0.0
    for j in range(values.shape[0]):
        out += values[j] * values[j]


def condition_rows(precision, ids, table, f, deviations, quadratic, log_det):
    """:func:`streamgmm.kernels.gappy.condition_rows`, the rows with as many
    missing values together."""
    rows = np.flatnonzero(ids >= 0)
    log_det[:] = 0.0
    log_det[rows] = table.half_log_dets[ids[rows], f]
    counts = table.n_missing[ids[rows]]
    for m in np.unique(counts).tolist():
        r = rows[counts == m]
        p = ids[r]
        square = table.offsets[p]
        columns = table.columns[p, :m]
        u = np.empty((m, r.size))
        for a in range(m):
            u[a] = np.cumsum(precision[columns[:, a]] * deviations[:, r].T, axis=1)[:, -1]
        for a in range(m):
            solved = np.zeros(r.size)
            for c in range(m):
                solved += table.inverses[square + a * m + c, f] * u[c]
            quadratic[r] -= u[a] * solved
            deviations[columns[:, a], r] = -solved


def diagonal_densities(factors, log_factors, columns, n_missing, deviations, quadratic,
                       log_det):
    """:func:`streamgmm.kernels.gappy.diagonal_densities`."""
    quadratic[:] = 0.0
    log_det[:] = 0.0
    for j in range(deviations.shape[0]):
        whitened = deviations[j] * factors[0, 0 if factors.shape[1] == 1 else j]
        quadratic += whitened * whitened
    for a in range(int(n_missing.max(initial=0))):
        rows = np.flatnonzero(n_missing > a)
        log_det[rows] += log_factors[columns[rows, a]]


def diagonal_sums(deviations, weights, factors, columns, n_missing, first, second):
    """:func:`streamgmm.kernels.gappy.diagonal_sums`."""
    for j in range(deviations.shape[0]):
        weighted = weights * deviations[j]
        first[j] += _sequential(weighted)
        second[j] += _sequential(weighted * deviations[j])
    which, place = _row_places(n_missing)
    gaps = columns[which, place]
    p = factors[0, 0] if factors.shape[1] == 1 else factors[0, gaps]
    np.add.at(second, gaps, weights[which] / (p * p))


def full_sums(deviations, weights, first, second):
    """:func:`streamgmm.kernels.gappy.full_sums`."""
    weighted = deviations * weights
    for j in range(deviations.shape[0]):
        first[j] += _sequential(weighted[j])
    second += np.dot(weighted, deviations.T)


def marginal_densities(constant, log_det, n_missing, quadratic, d, out):
    """:func:`streamgmm.kernels.gappy.marginal_densities`."""
    out[:] = constant - log_det - 0.5 * ((d - n_missing) * LOG_2PI + quadratic)
