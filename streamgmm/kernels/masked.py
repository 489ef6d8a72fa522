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

Used where the complete kernel takes every component's sums about c (the
LINEAR form and no own-shifted component, :mod:`streamgmm.estep`): the extra
terms are then bounded by the same factors that bound the expansion.
"""

from __future__ import annotations

import math

import numpy as np

from .codes import LOG_2PI, PAIRWISE
from .estep import accumulate, block_log_density, fill_products, zero_sums
from .gappy import (
    gap_columns,
    inverses_size,
    log_table,
    observed_rows,
    row_inverses,
    row_weights,
)
from .jit import kernel
from .mathfn import normalise
from .records import GappySums


@kernel
def masked_columns(X, index, shift, columns):  # pragma: no cover
    """``columns`` (d + 1, b) ``[(x - shift)^T; 1]`` of the rows ``index`` of X,
    0 where missing."""
    d = X.shape[1]
    for i in range(index.shape[0]):
        for j in range(d):
            value = X[index[i], j]
            columns[j, i] = 0.0 if math.isnan(value) else value - shift[j]
        columns[d, i] = 1.0


@kernel
def transposed(columns, d):  # pragma: no cover
    """The first d rows of ``columns`` (d + 1, b) as rows (b, d), C-contiguous."""
    b = columns.shape[1]
    out = np.empty((b, d))
    for i in range(b):
        for j in range(d):
            out[i, j] = columns[j, i]
    return out


@kernel
def gap_tables(marginal, offsets):  # pragma: no cover
    """Per component and coordinate (3, K, d): ``delta = mu - c`` (``offsets``);
    full: ``Lambda delta`` and ``log Lambda_jj / 2``; diag and spherical:
    ``delta^2 + sigma^2`` and the log-density's term ``log p - 1/2 log 2 pi -
    1/2 p^2 delta^2``, which a missing coordinate adds and takes away."""
    n_components, d = offsets.shape
    full = marginal.precisions.shape[0] > 0
    logs = log_table(marginal)
    tables = np.empty((3, n_components, d))
    for k in range(n_components):
        for j in range(d):
            tables[0, k, j] = offsets[k, j]
            if full:
                value = 0.0
                for e in range(d):
                    value += marginal.precisions[k, j, e] * offsets[k, e]
                tables[1, k, j] = value
                tables[2, k, j] = logs[k, j]
            else:
                p = marginal.factors[k, 0, 0 if marginal.factors.shape[2] == 1 else j]
                squared = offsets[k, j] * offsets[k, j]
                tables[1, k, j] = squared + 1.0 / (p * p)
                tables[2, k, j] = logs[k, j] - 0.5 * LOG_2PI - 0.5 * p * p * squared
    return tables


@kernel
def diagonal_gaps(columns, n_missing, terms, log_weighted):  # pragma: no cover
    """``log_weighted`` (K, b) less the missing coordinates' ``terms`` (K, d)."""
    for i in range(n_missing.shape[0]):
        for a in range(n_missing[i]):
            j = columns[i, a]
            for k in range(log_weighted.shape[0]):
                log_weighted[k, i] -= terms[k, j]


@kernel
def diagonal_mass(columns, n_missing, resp_t, mass):  # pragma: no cover
    """``mass[k, j] +=`` the responsibilities (b, K) of the rows missing j."""
    for i in range(n_missing.shape[0]):
        for a in range(n_missing[i]):
            j = columns[i, a]
            for k in range(resp_t.shape[1]):
                mass[k, j] += resp_t[i, k]


@kernel
def full_gaps(z, columns, n_missing, precisions, tables, log_weighted, completed,
              inverses):  # pragma: no cover
    """Full: the log-densities (K, b) of the rows of ``z`` (b, d) with gaps
    made their observed coordinates' (module docs), in place; the rows' ``e_M``
    one after the other into ``completed[k]`` and their ``C`` into
    ``inverses[k]`` (:func:`~streamgmm.kernels.gappy.row_inverses`), for the sums."""
    n_components, b = log_weighted.shape
    d = z.shape[1]
    u = np.empty(d)
    scratch = np.empty((2, d, d))
    half_log_dets = np.empty(b)
    for k in range(n_components):
        precision = precisions[k]
        offsets = tables[0, k]
        weighted_offsets = tables[1, k]
        row_inverses(precision, columns, n_missing, tables[2, k], inverses[k], scratch,
                     half_log_dets)
        start = 0
        square = 0
        for i in range(b):
            m = n_missing[i]
            if m == 0:
                continue
            change = 0.0
            for a in range(m):
                j = columns[i, a]
                g = -weighted_offsets[j]
                for e in range(d):
                    g += precision[j, e] * z[i, e]
                h = 0.0
                for c in range(m):
                    h += precision[j, columns[i, c]] * offsets[columns[i, c]]
                u[a] = g + h
                change += offsets[j] * (2.0 * g + h)
            for a in range(m):
                solved = 0.0
                for c in range(m):
                    solved += inverses[k, square + a * m + c] * u[c]
                change -= u[a] * solved
                completed[k, start + a] = offsets[columns[i, a]] - solved
            log_weighted[k, i] += 0.5 * m * LOG_2PI - half_log_dets[i] - 0.5 * change
            start += m
            square += m * m


@kernel
def full_gap_sums(z, columns, n_missing, resp_t, completed, inverses, extra):  # pragma: no cover
    """Add the rows with gaps' ``g e`` to ``extra.first`` (K, d) and ``g (e z^T
    + (e e^T + C) / 2)`` to ``extra.second`` (K, d, d), whose symmetric part
    (``S + S^T``) is then what the gaps add to the second sums; ``z`` (b, d)."""
    d = z.shape[1]
    for k in range(resp_t.shape[1]):
        first = extra.first[k]
        second = extra.second[k]
        start = 0
        square = 0
        for i in range(n_missing.shape[0]):
            m = n_missing[i]
            gamma = resp_t[i, k]
            for a in range(m):
                j = columns[i, a]
                weighted = gamma * completed[k, start + a]
                first[j] += weighted
                for e in range(d):
                    second[j, e] += weighted * z[i, e]
                for c in range(m):
                    second[j, columns[i, c]] += 0.5 * gamma * (
                        completed[k, start + a] * completed[k, start + c]
                        + inverses[k, square + a * m + c])
            start += m
            square += m * m


@kernel
def about_shift(sums, extra, tables, kind):  # pragma: no cover
    """:class:`~streamgmm.kernels.records.GappySums` about the common shift
    from the complete layout's ``sums`` and the gaps' ``extra``
    (:func:`full_gap_sums`; diag and spherical: ``extra.first`` the
    responsibilities of the rows missing each coordinate). Spherical's second
    sums are all in the first coordinate (only their total counts)."""
    n_components, d = extra.first.shape
    full = kind == PAIRWISE
    out = GappySums(np.empty(n_components), np.empty((n_components, d)),
                    np.zeros((n_components, d if full else 1, d)), extra.totals)
    for k in range(n_components):
        out.weight[k] = sums.columns[d, k]
        for j in range(d):
            added = extra.first[k, j] if full else extra.first[k, j] * tables[0, k, j]
            out.first[k, j] = sums.columns[j, k] + added
        if full:
            row = 0
            for a in range(d):
                for c in range(a, d):
                    value = sums.products[row, k] + extra.second[k, a, c] + extra.second[k, c, a]
                    out.second[k, a, c] = value
                    out.second[k, c, a] = value
                    row += 1
        else:
            for j in range(d):
                filled = extra.first[k, j] * tables[1, k, j]
                if sums.products.shape[0] == d:
                    out.second[k, 0, j] = sums.products[j, k] + filled
                else:
                    out.second[k, 0, 0] += filled
            if sums.products.shape[0] != d:
                out.second[k, 0, 0] += sums.products[0, k]
    return out


@kernel
def masked_sums(rows, marginal, operands, plan):  # pragma: no cover
    """Sums about ``operands.shift`` (:class:`~streamgmm.kernels.records.GappySums`)
    of the rows of ``rows`` with something observed, ``plan.block`` rows at a
    time (module docs; float64 products); weighted rows count their weight
    times."""
    X = rows.X
    n, d = X.shape
    n_components = marginal.means.shape[0]
    kind = plan.kind
    full = kind == PAIRWISE
    sums = zero_sums(operands.n_products, kind, n_components, d)
    extra = GappySums(np.zeros(n_components), np.zeros((n_components, d)),
                      np.zeros((n_components, d if full else 0, d if full else 0)), np.zeros(2))
    tables = gap_tables(marginal, operands.own_offsets)
    index = np.empty(plan.block, dtype=np.int64)
    start = 0
    while start < n:
        count, start = observed_rows(rows, start, index)
        if count == 0:
            continue
        block = index[:count]
        columns = np.empty((d + 1, count))
        masked_columns(X, block, operands.shift, columns)
        products = np.empty((operands.n_products, count))
        fill_products(columns, kind, products)
        log_weighted = block_log_density(products, columns, operands)
        gaps = np.empty((count, d), dtype=np.int64)
        n_missing = np.empty(count, dtype=np.int64)
        gap_columns(X, block, gaps, n_missing)
        completed = np.empty((n_components if full else 0, n_missing.sum()))
        inverses = np.empty((n_components if full else 0, inverses_size(n_missing)))
        z = transposed(columns, d)
        if full:
            full_gaps(z, gaps, n_missing, marginal.precisions, tables, log_weighted,
                      completed, inverses)
        else:
            diagonal_gaps(gaps, n_missing, tables[2], log_weighted)
        resp_t = np.empty((count, n_components))
        weights = row_weights(rows, block)
        extra.totals[0] += normalise(log_weighted, resp_t, weights)
        for i in range(count):
            extra.totals[1] += 1.0 if weights.shape[0] == 0 else weights[i]
        accumulate(products, columns, resp_t, kind, operands.own_index, operands.own_offsets,
                   sums)
        if full:
            full_gap_sums(z, gaps, n_missing, resp_t, completed, inverses, extra)
        else:
            diagonal_mass(gaps, n_missing, resp_t, extra.first)
    return about_shift(sums, extra, tables, kind)
