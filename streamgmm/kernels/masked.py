"""The E-step of rows with missing values through the complete rows' layout.

Every row with something observed goes through the blocks of
:mod:`streamgmm.kernels.estep`, shifted by the common shift c with zeros in
its missing coordinates M (``z = x - c``, ``z_M = 0``): the same products give
every component's log-density of the completed row ``z`` and the sums about c.
What the gaps change is then added row by row, for the rows that have gaps
only, at a cost of about ``|M| d`` per row and component (formulas in
:mod:`streamgmm.missing`; ``delta_k = mu_k - c``):

* diag and spherical: the missing coordinates take their terms
  ``log p_kj - 1/2 log 2 pi - 1/2 p_kj^2 delta_kj^2`` out of the log-density;
  ``x_hat_M = mu_M`` adds ``delta_kM`` to the first sums and ``delta_kM^2 +
  sigma^2_kM`` to the second;
* full: with ``s = z - delta_k`` (``s_M = -delta_kM``), the expanded quadratic
  form gives ``s^T Lambda s``; with ``g = (Lambda s)_M`` and ``u = g +
  Lambda_MM delta_M = (Lambda r)_M``, the marginal's is ``s^T Lambda s + 2
  delta_M^T g + delta_M^T Lambda_MM delta_M - u^T C u`` with ``C =
  Lambda_MM^-1`` (the conditional covariance), ``log det Sigma_OO = log det
  Sigma + log det Lambda_MM``; the completed row is ``z + e`` with ``e_M =
  delta_M - C u``, so the second sums gain ``z e^T + e z^T + e e^T + C``.
  C and ``log det Lambda_MM`` depend only on the row's pattern and the
  component: they are computed once per pattern of the chunk
  (:func:`~streamgmm.kernels.patterns.pattern_table`),
  and C enters the sums once per pattern, times its summed responsibilities.

Used where the complete kernel takes every component's sums about c (the
LINEAR form and no own-shifted component, :mod:`streamgmm.estep`): the extra
terms are then bounded by the same factors that bound the expansion.
"""

from __future__ import annotations

import numpy as np

from .codes import LOG_2PI, PAIRWISE
from .estep import accumulate, block_log_density, fill_products, zero_sums
from .gappy import block_buffers, log_table, next_block, row_weights
from .jit import kernel, part
from .mathfn import normalise
from .patterns import add_pattern_mass, pattern_covariances
from .records import GappySums, Operands, Products, Sums


@part
def transposed(columns, d):  # pragma: no cover
    """The first d rows of ``columns`` (d + 1, b) as rows (b, d), C-contiguous
    (none for d = 0)."""
    b = columns.shape[1]
    out = np.empty((b, d))
    for i in range(b):
        for j in range(d):
            out[i, j] = columns[j, i]
    return out


@part
def gap_tables(marginal, offsets):  # pragma: no cover
    """Per coordinate and component (3, d, K): ``delta = mu - c`` (``offsets``
    (K, d)); full: ``Lambda delta``; diag and spherical: ``delta^2 + sigma^2``
    and the log-density's term ``log p - 1/2 log 2 pi - 1/2 p^2 delta^2``,
    which a missing coordinate adds and takes away."""
    n_components, d = offsets.shape
    full = marginal.precisions.shape[0] > 0
    logs = log_table(marginal)
    tables = np.zeros((3, d, n_components))
    for k in range(n_components):
        for j in range(d):
            tables[0, j, k] = offsets[k, j]
            if full:
                value = 0.0
                for e in range(d):
                    value += marginal.precisions[k, j, e] * offsets[k, e]
                tables[1, j, k] = value
            else:
                p = marginal.factors[k, 0, 0 if marginal.factors.shape[2] == 1 else j]
                squared = offsets[k, j] * offsets[k, j]
                tables[1, j, k] = squared + 1.0 / (p * p)
                tables[2, j, k] = logs[k, j] - 0.5 * LOG_2PI - 0.5 * p * p * squared
    return tables


@part
def with_gap_terms(operands, terms):  # pragma: no cover
    """Diag and spherical: ``operands`` whose linear map also takes the
    missing coordinates' ``terms`` (d, K) away, through the missing-value
    indicators appended to the columns
    (:func:`~streamgmm.kernels.gappy.gather_block`)."""
    double = operands.double
    n_components, width = double.linear_columns.shape
    d = terms.shape[0]
    linear = np.empty((n_components, width + d))
    for k in range(n_components):
        for j in range(width):
            linear[k, j] = double.linear_columns[k, j]
        for j in range(d):
            linear[k, width + j] = -terms[j, k]
    return Operands(operands.shift, operands.density_mode, operands.n_products,
                    Products(double.linear_products, linear, double.whitening, double.reduce),
                    operands.single, operands.constant, operands.own_shift,
                    operands.own_index, operands.own_offsets)


@part
def full_gaps(columns, ids, table, precisions, tables, log_weighted,
              completed):  # pragma: no cover
    """Full: the log-densities (K, b) of the rows of ``columns`` (d + 1, b,
    :func:`~streamgmm.kernels.gappy.gather_block`) with gaps (pattern numbers
    ``ids``, -1 for none; ``table`` their
    :class:`~streamgmm.kernels.records.PatternTable`) made their observed
    coordinates' (module docs), in place; the rows' ``e_M`` one after the
    other into ``completed`` (sum m, K), for the sums. ``precisions`` and
    ``tables`` have the components last (d, d, K), (3, d, K). Each row's
    operations in the order of a row-by-row loop, but for a run of rows of one
    pattern (:func:`streamgmm.missing.gappy_statistics` visits a chunk's rows
    by pattern) side by side, the rows innermost (SIMD),
    where the K components' short loops of one row ran one at a time."""
    n_components, b = log_weighted.shape
    d = precisions.shape[0]
    rows = np.empty((d, b))
    u = np.empty((d, b))
    change = np.empty(b)
    solved = np.empty(b)
    start = 0
    i = 0
    while i < b:
        p = ids[i]
        stop = i + 1
        while stop < b and ids[stop] == p:
            stop += 1
        if p < 0:
            i = stop
            continue
        m = table.n_missing[p]
        square = table.offsets[p]
        n = stop - i
        # the run's rows from place 0 of buffers of their own: loops over
        # range(n) index them with a place numba knows is not negative, so that
        # they vectorise (i + t is wrapped around as if it could be)
        for e in range(d):
            for t in range(n):
                rows[e, t] = columns[e, i + t]
        for k in range(n_components):
            for t in range(n):
                change[t] = 0.0
            for a in range(m):
                j = table.columns[p, a]
                for t in range(n):
                    solved[t] = -tables[1, j, k]
                for e in range(d):
                    weight = precisions[j, e, k]
                    for t in range(n):
                        solved[t] += weight * rows[e, t]
                h = 0.0
                for c in range(m):
                    column = table.columns[p, c]
                    h += precisions[j, column, k] * tables[0, column, k]
                offset = tables[0, j, k]
                for t in range(n):
                    u[a, t] = solved[t] + h
                    change[t] += offset * (2.0 * solved[t] + h)
            for a in range(m):
                for t in range(n):
                    solved[t] = 0.0
                for c in range(m):
                    inverse = table.inverses[square + a * m + c, k]
                    for t in range(n):
                        solved[t] += inverse * u[c, t]
                offset = tables[0, table.columns[p, a], k]
                for t in range(n):
                    change[t] -= u[a, t] * solved[t]
                    solved[t] = offset - solved[t]
                for t in range(n):
                    completed[start + t * m + a, k] = solved[t]
            constant = 0.5 * m * LOG_2PI - table.half_log_dets[p, k]
            for t in range(n):
                change[t] = constant - 0.5 * change[t]
            for t in range(n):
                log_weighted[k, i + t] += change[t]
        start += n * m
        i = stop


@part
def full_gap_sums(z, ids, table, resp_t, completed, first, second):  # pragma: no cover
    """Add the rows with gaps' ``g e`` to ``first`` (d, K) and ``g (e z^T + e
    e^T / 2)`` to ``second`` (d, K, d: the coordinates of z innermost, so that
    the loop over them vectorises), whose symmetric part (``S + S^T``) is
    then what the gaps add to the second sums, with the conditional
    covariances (:func:`~streamgmm.kernels.patterns.pattern_covariances`)."""
    n_components = resp_t.shape[1]
    d = z.shape[1]
    weighted = np.empty(n_components)
    start = 0
    for i in range(ids.shape[0]):
        p = ids[i]
        if p < 0:
            continue
        m = table.n_missing[p]
        for a in range(m):
            j = table.columns[p, a]
            for k in range(n_components):
                weighted[k] = resp_t[i, k] * completed[start + a, k]
                first[j, k] += weighted[k]
            for k in range(n_components):
                value = weighted[k]
                for e in range(d):
                    second[j, k, e] += value * z[i, e]
            for c in range(m):
                column = table.columns[p, c]
                for k in range(n_components):
                    second[j, k, column] += 0.5 * weighted[k] * completed[start + c, k]
        start += m


@part
def about_shift(sums, first, second, covariances, tables, kind, totals):  # pragma: no cover
    """:class:`~streamgmm.kernels.records.GappySums` about the common shift
    from the complete layout's ``sums`` and what the gaps add: ``first`` (d,
    K) and ``second`` (d, K, d) of :func:`full_gap_sums` and the conditional
    ``covariances`` (K, d, d); diag and spherical: the responsibilities of the
    rows missing each coordinate, ``sums.columns[d + 1:]``. Spherical's second
    sums are all in the first coordinate (only their total counts)."""
    d, n_components = first.shape
    full = kind == PAIRWISE
    out = GappySums(np.empty(n_components), np.empty((n_components, d)),
                    np.zeros((n_components, d if full else 1, d)), totals)
    for k in range(n_components):
        out.weight[k] = sums.columns[d, k]
        for j in range(d):
            added = first[j, k] if full else sums.columns[d + 1 + j, k] * tables[0, j, k]
            out.first[k, j] = sums.columns[j, k] + added
        if full:
            row = 0
            for a in range(d):
                for c in range(a, d):
                    value = (sums.products[row, k] + second[a, k, c] + second[c, k, a]
                             + covariances[k, a, c])
                    out.second[k, a, c] = value
                    out.second[k, c, a] = value
                    row += 1
        else:
            for j in range(d):
                filled = sums.columns[d + 1 + j, k] * tables[1, j, k]
                if sums.products.shape[0] == d:
                    out.second[k, 0, j] = sums.products[j, k] + filled
                else:
                    out.second[k, 0, 0] += filled
            if sums.products.shape[0] != d:
                out.second[k, 0, 0] += sums.products[0, k]
    return out


@kernel
def masked_sums(rows, marginal, operands, plan, ids, table, precisions):  # pragma: no cover
    """Sums about ``operands.shift`` (:class:`~streamgmm.kernels.records.GappySums`)
    of the rows of ``rows`` with something observed, ``plan.block`` rows at a
    time (module docs; float64 products); weighted rows count their weight
    times. Diag and spherical append the missing-value indicators to the
    columns (:func:`~streamgmm.kernels.gappy.gather_block` writes them with
    the values), so that the complete rows' two products
    also take the gaps' terms away and sum the responsibilities per missing
    coordinate. Full: ``ids`` and ``table`` the rows' patterns
    (:func:`~streamgmm.kernels.patterns.pattern_table`) under the
    ``precisions`` laid out (d, d, K)."""
    n, d = rows.X.shape
    n_components = marginal.means.shape[0]
    kind = plan.kind
    full = kind == PAIRWISE
    extra = 0 if full else d
    sums = zero_sums(operands.n_products, kind, n_components, d)
    sums = Sums(sums.products, np.zeros((d + 1 + extra, n_components)), sums.own_products,
                sums.own_columns, sums.own_full, sums.pooled, sums.log_likelihood)
    first = np.zeros((d, n_components))
    second = np.zeros((d if full else 0, n_components, d if full else 0))
    covariances = np.zeros((n_components, d if full else 0, d if full else 0))
    totals = np.zeros(3)
    tables = gap_tables(marginal, operands.own_offsets)
    density = operands if full else with_gap_terms(operands, tables[2])
    buffers = block_buffers(plan.block, d, extra)
    start = np.int64(0)  # not the literal 0: next_block would compile twice
    while start < n:
        start, columns, gaps, n_missing, block = next_block(rows, start, operands.shift,
                                                            buffers, totals)
        count = block.shape[0]
        if count == 0:
            continue
        products = np.empty((operands.n_products, count))
        fill_products(columns[:d + 1], kind, products)
        log_weighted = block_log_density(products, columns, density, density.double)
        block_ids = ids[block] if full else ids[:0]
        completed = np.empty((n_missing.sum() if full else 0, n_components))
        z = transposed(columns, d if full else 0)
        if full:
            full_gaps(columns, block_ids, table, precisions, tables, log_weighted, completed)
        resp_t = np.empty((count, n_components))
        weights = row_weights(rows, block)
        totals[0] += normalise(log_weighted, resp_t, weights)
        for i in range(count):
            totals[1] += 1.0 if weights.shape[0] == 0 else weights[i]
        accumulate(products, columns, resp_t, kind, operands.own_index, operands.own_offsets,
                   sums)
        if full:
            add_pattern_mass(block_ids, resp_t, table.mass)
            full_gap_sums(z, block_ids, table, resp_t, completed, first, second)
    if full:
        pattern_covariances(table, covariances)
    return about_shift(sums, first, second, covariances, tables, kind, totals)
