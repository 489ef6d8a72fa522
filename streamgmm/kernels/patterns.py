"""The missingness patterns of a chunk, and their conditional covariances.

A row's conditional covariance ``C = Lambda_MM^-1`` and ``log det
Lambda_MM`` depend only on its pattern M and the component
(:mod:`streamgmm.kernels.masked`): they are computed once per pattern of a
chunk, for all K components at once, the components innermost (the
precisions laid out (d, d, K)),
so that the small factorisations of the K components run side by side
instead of one after another.
"""

from __future__ import annotations

import math

import numpy as np

from .jit import kernel, part, shared
from .records import PatternTable


@part
def chunk_patterns(X, n_rows):  # pragma: no cover
    """The missingness patterns of the first ``n_rows`` rows of X with a gap
    and something observed, numbered in the order of their first row: each
    row's pattern number (n,), -1 for the others; the patterns' missing
    ``columns`` (P, d) and ``n_missing`` (P,).

    Each row's pattern is looked up by its key in an open-addressing table of
    (pattern, key) pairs, kept at most a quarter full (it grows with the
    patterns, so that it stays in cache). Up to 62 features the key is the
    mask of the missing coordinates itself, so equal keys are equal patterns;
    with more, it is a sum of the columns' hashes, and a pattern found under
    the row's key is checked against its column list. The rows go through
    :func:`find_patterns` until the table or the patterns found are full,
    which are then grown outside the loop over rows (arrays reassigned
    inside a compiled loop made it three times slower). Plain loops
    throughout: NumPy's slice assignments and fills cost seconds to compile."""
    n, d = X.shape
    hashes = np.empty(d, dtype=np.int64)
    for j in range(d):
        hashes[j] = (1 << j) if d <= 62 else column_hash(j)
    place = np.zeros(2, dtype=np.int64)
    table = grown_table(np.empty((16, 2), dtype=np.int64), place[1])
    found = np.zeros((16, d + 1), dtype=np.int64)
    ids = np.empty(n, dtype=np.int64)
    for row in range(n):
        ids[row] = -1
    while place[0] < n_rows:
        find_patterns(X, n_rows, hashes, ids, table, found, place)
        if place[1] == found.shape[0]:
            found = grown(found)
        if 4 * (place[1] + 1) > table.shape[0]:
            table = grown_table(table, place[1])
    count = place[1]
    columns = np.empty((count, d), dtype=np.int64)
    n_missing = np.empty(count, dtype=np.int64)
    for p in range(count):
        n_missing[p] = found[p, 0]
        for j in range(d):
            columns[p, j] = found[p, 1 + j]
    return ids, columns, n_missing


@part
def find_patterns(X, n_rows, hashes, ids, table, found, place):  # pragma: no cover
    """:func:`chunk_patterns`' loop over the rows, from row ``place[0]`` with
    ``place[1]`` patterns found (``found[p]``: pattern p's number of missing
    values, then its missing columns), until ``n_rows`` or a new pattern that
    would fill ``table`` past a quarter or overflow ``found``; ``place`` then
    holds the next row and the patterns found. Keys are computed without
    branching on the values (a row's NaN are unpredictable)."""
    d = X.shape[1]
    exact = d <= 62
    mask = table.shape[0] - 1
    count = place[1]
    row = place[0]
    while row < n_rows:
        key = 0
        m = 0
        for j in range(d):
            gap = math.isnan(X[row, j])
            key += hashes[j] if gap else 0
            m += 1 if gap else 0
        if m == 0 or m == d:
            row += 1
            continue
        slot = key_slot(key) & mask
        p = table[slot, 0]
        while p >= 0 and not (table[slot, 1] == key and (exact or same_columns(
                X, row, found[p], m))):
            slot = (slot + 1) & mask
            p = table[slot, 0]
        if p < 0:
            if count == found.shape[0] or 4 * (count + 1) > table.shape[0]:
                break
            p = count
            table[slot, 0] = p
            table[slot, 1] = key
            found[p, 0] = m
            a = 1
            for j in range(d):
                if math.isnan(X[row, j]):
                    found[p, a] = j
                    a += 1
            count += 1
        ids[row] = p
        row += 1
    place[0] = row
    place[1] = count


@part
def same_columns(X, row, pattern, m):  # pragma: no cover
    """Whether row ``row`` of X, missing m values, misses the columns of
    ``pattern`` (its number of missing values, then its columns)."""
    if pattern[0] != m:
        return False
    for a in range(m):
        if not math.isnan(X[row, pattern[1 + a]]):
            return False
    return True


@part
def key_slot(key):  # pragma: no cover
    """A key's first slot (the table's size masks it): its bits mixed by two
    multiplications that stay below 2^62."""
    return ((key & 0x7FFFFFFF) * 0x2C1B3C6D + (key >> 31) * 0x297A2D39) >> 7


@part
def grown_table(table, count):  # pragma: no cover
    """The (pattern, key) table of :func:`chunk_patterns` four times as large,
    with the entries of its first ``count`` patterns (empty slots -1)."""
    size = 4 * table.shape[0]
    out = np.empty((size, 2), dtype=np.int64)
    for slot in range(size):
        out[slot, 0] = -1
        out[slot, 1] = -1
    for old in range(table.shape[0] if count > 0 else 0):
        if table[old, 0] >= 0:
            slot = key_slot(table[old, 1]) & (size - 1)
            while out[slot, 0] >= 0:
                slot = (slot + 1) & (size - 1)
            out[slot, 0] = table[old, 0]
            out[slot, 1] = table[old, 1]
    return out


@part
def column_hash(j):  # pragma: no cover
    """A 31-bit hash of column j (multiplications and shifts that stay below
    2^62); a pattern's key is the sum of its columns' hashes."""
    x = ((j + 1) * 0x2C1B3C6D) & 0x7FFFFFFF
    x ^= x >> 12
    x = (x * 0x297A2D39) & 0x7FFFFFFF
    return x ^ (x >> 15)


@part
def grown(values):  # pragma: no cover
    """``values`` (c, w) copied into an array of twice as many rows (zeros)."""
    out = np.zeros((2 * values.shape[0], values.shape[1]), dtype=values.dtype)
    for row in range(values.shape[0]):
        for j in range(values.shape[1]):
            out[row, j] = values[row, j]
    return out


@part
def small_inverses(precisions, columns, m, start, inverses, half_log_dets):  # pragma: no cover
    """One or two missing values (``columns[:m]``): ``Lambda_MM^-1`` into
    ``inverses[start:start + m^2]`` and ``log det Lambda_MM / 2`` into
    ``half_log_dets`` (K,), per component, in closed form; ``precisions``
    (d, d, K)."""
    a = columns[0]
    c = columns[m - 1]
    for k in range(precisions.shape[2]):
        if m == 1:
            inverses[start, k] = 1.0 / precisions[a, a, k]
            half_log_dets[k] = 0.5 * math.log(precisions[a, a, k])
        else:
            det = (precisions[a, a, k] * precisions[c, c, k]
                   - precisions[a, c, k] * precisions[a, c, k])
            inverses[start, k] = precisions[c, c, k] / det
            inverses[start + 1, k] = -precisions[a, c, k] / det
            inverses[start + 2, k] = inverses[start + 1, k]
            inverses[start + 3, k] = precisions[a, a, k] / det
            half_log_dets[k] = 0.5 * math.log(det)


@part
def ldl_inverses(precisions, columns, m, start, inverses, half_log_dets,
                 scratch):  # pragma: no cover
    """:func:`small_inverses` for any m, through ``Lambda_MM = L D L^T`` (L
    unit lower triangular below the diagonal of ``scratch[0]``, D on it; ``L^-1``
    in ``scratch[1]``; ``1 / D`` in ``scratch[2, 0]``, the running product of
    D in ``scratch[2, 1]``, a running value in ``scratch[2, 2]``; each (d, d,
    K)) as ``L^-T D^-1 L^-1``."""
    n_components = precisions.shape[2]
    factor, unit = scratch[0], scratch[1]
    reciprocal, product, value = scratch[2, 0], scratch[2, 1, 0], scratch[2, 2, 0]
    for k in range(n_components):
        product[k] = 1.0
    for a in range(m):
        for c in range(a + 1):
            for k in range(n_components):
                value[k] = precisions[columns[a], columns[c], k]
            for e in range(c):
                for k in range(n_components):
                    value[k] -= factor[a, e, k] * factor[c, e, k] * factor[e, e, k]
            for k in range(n_components):
                if c < a:
                    factor[a, c, k] = value[k] * reciprocal[c, k]
                else:
                    factor[a, a, k] = value[k]
                    reciprocal[a, k] = 1.0 / value[k]
                    product[k] *= value[k]
    for k in range(n_components):
        half_log_dets[k] = 0.5 * math.log(product[k])
        if not 1e-150 < product[k] < 1e150:
            half_log_dets[k] = 0.0
            for a in range(m):
                half_log_dets[k] += 0.5 * math.log(factor[a, a, k])
    for c in range(m):
        for k in range(n_components):
            unit[c, c, k] = 1.0
        for a in range(c + 1, m):
            for k in range(n_components):
                value[k] = 0.0
            for e in range(c, a):
                for k in range(n_components):
                    value[k] -= factor[a, e, k] * unit[e, c, k]
            for k in range(n_components):
                unit[a, c, k] = value[k]
    for a in range(m):
        for c in range(a, m):
            for k in range(n_components):
                value[k] = 0.0
            for e in range(c, m):
                for k in range(n_components):
                    value[k] += unit[e, a, k] * unit[e, c, k] * reciprocal[e, k]
            for k in range(n_components):
                inverses[start + a * m + c, k] = value[k]
                inverses[start + c * m + a, k] = value[k]


@kernel
def pattern_table(X, n_rows, precisions, n_components):  # pragma: no cover
    """Each row's pattern number (:func:`chunk_patterns`) and the
    :class:`~streamgmm.kernels.records.PatternTable` of the patterns of the
    first ``n_rows`` rows of X under the precisions (d, d, F) (the components
    last; F = K, or 1 shared by the ``n_components`` components). Called
    once per chunk from Python (:func:`streamgmm.missing.gappy_statistics`),
    outside the kernels that use the table, so that they do not compile
    it again inside themselves."""
    ids, columns, n_missing = chunk_patterns(X, n_rows)
    d, n_factors = precisions.shape[0], precisions.shape[2]
    n_patterns = n_missing.shape[0]
    offsets = np.zeros(n_patterns + 1, dtype=np.int64)
    for p in range(n_patterns):
        offsets[p + 1] = offsets[p] + n_missing[p] * n_missing[p]
    inverses = np.empty((offsets[n_patterns], n_factors))
    half_log_dets = np.empty((n_patterns, n_factors))
    scratch = np.empty((3, d, d, n_factors))
    for p in range(n_patterns):
        if n_missing[p] <= 2:
            small_inverses(precisions, columns[p], n_missing[p], offsets[p], inverses,
                           half_log_dets[p])
        else:
            ldl_inverses(precisions, columns[p], n_missing[p], offsets[p], inverses,
                         half_log_dets[p], scratch)
    return ids, PatternTable(columns, n_missing, offsets, inverses, half_log_dets,
                             np.zeros((n_patterns, n_components)))


@shared
def pattern_covariances(table, second):  # pragma: no cover
    """Add each pattern's ``mass C`` to ``second`` (K, d, d), the conditional
    covariances' part of the second sums."""
    n_components = second.shape[0]
    shared = table.inverses.shape[1] == 1
    for p in range(table.n_missing.shape[0]):
        m = table.n_missing[p]
        square = table.offsets[p]
        for a in range(m):
            for c in range(m):
                j, e = table.columns[p, a], table.columns[p, c]
                for k in range(n_components):
                    second[k, j, e] += table.mass[p, k] * table.inverses[
                        square + a * m + c, 0 if shared else k]


@shared
def add_pattern_mass(ids, resp_t, mass):  # pragma: no cover
    """``mass[p] +=`` the responsibilities (b, K) of the rows of pattern p
    (``ids``, -1 for none), one row after the other."""
    for i in range(ids.shape[0]):
        if ids[i] >= 0:
            for k in range(resp_t.shape[1]):
                mass[ids[i], k] += resp_t[i, k]
