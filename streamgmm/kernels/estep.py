"""The E-step of a range of rows, compiled: log-densities, responsibilities and
the responsibility-weighted sums that become a chunk's statistics.

A range is processed block by block inside one compiled call that never holds
the GIL, so that Dask's threads run chunks truly in parallel (with NumPy calls
per block, two threads ran no faster than one: every small call takes the GIL).
The products are BLAS calls (``np.dot``); the loops between them run over
contiguous rows and vectorise. The operands come from
:func:`streamgmm.kernels.operands.density_operands` (formulas and choices in
:mod:`streamgmm.estep`).

Layout of a block of ``b`` rows, all arrays C-contiguous:

* ``columns`` (d + 1, b): ``[(x - c)^T; 1]``;
* ``products`` (m, b): the second-order terms the covariance type needs
  (:data:`~streamgmm.kernels.codes.PAIRWISE` and the others).
"""

from __future__ import annotations

import numpy as np

from .codes import LINEAR, NONE, NORM, PAIRWISE, SQUARES, WHITENED
from .jit import kernel, part, shared
from .mathfn import add_into, added, normalise
from .records import Sums


@shared
def fill_columns(rows, start, stop, shift, columns):  # pragma: no cover
    """``columns[:, :b] = [(x_i - shift)^T; 1]`` for the rows ``start:stop`` of
    ``rows`` (:class:`~streamgmm.kernels.records.Rows`), subtracting in float64."""
    X, order = rows.X, rows.order
    d = X.shape[1]
    for i in range(stop - start):
        row = start + i if order.shape[0] == 0 else order[start + i]
        for j in range(d):
            columns[j, i] = X[row, j] - shift[j]
        columns[d, i] = 1.0


@shared
def fill_products(columns, kind, products):  # pragma: no cover
    """The product rows of ``columns`` (d + 1, b) that ``kind`` needs, into
    ``products`` (m, b)."""
    d = columns.shape[0] - 1
    b = columns.shape[1]
    if products.shape[0] == 0:
        return
    if kind == PAIRWISE:
        row = 0
        for first in range(d):
            for second in range(first, d):
                for i in range(b):
                    products[row, i] = columns[first, i] * columns[second, i]
                row += 1
    elif kind == SQUARES:
        for first in range(d):
            for i in range(b):
                products[first, i] = columns[first, i] * columns[first, i]
    elif kind == NORM:
        for i in range(b):
            products[0, i] = 0.0
        for first in range(d):
            for i in range(b):
                products[0, i] += columns[first, i] * columns[first, i]


@shared
def block_log_density(products, columns, operands, chosen):  # pragma: no cover
    """``log pi_k + log N(x_i | k)`` of a block, (K, b) in the dtype of ``columns``,
    with ``chosen`` the :class:`~streamgmm.kernels.records.Products` of that dtype.

    LINEAR: ``linear_products @ products + linear_columns @ columns``.
    WHITENED: ``constant_k - 1/2 |w_k|^2`` with ``w = whitening @ columns``
    (K d, b). TIED: ``reduce @ [|w|^2; w; 1]`` with ``w = whitening @ columns``
    (d, b).
    """
    b = columns.shape[1]
    constant = operands.constant
    n_components = constant.shape[0]
    if operands.density_mode == LINEAR:
        return added(np.dot(chosen.linear_products, products),
                     np.dot(chosen.linear_columns, columns))
    whitened = np.dot(chosen.whitening, columns)
    if operands.density_mode == WHITENED:
        out = np.empty((n_components, b), dtype=columns.dtype)
        d = whitened.shape[0] // n_components
        for k in range(n_components):
            for i in range(b):
                out[k, i] = 0.0
            for j in range(d):
                row = k * d + j
                for i in range(b):
                    out[k, i] += whitened[row, i] * whitened[row, i]
            for i in range(b):
                out[k, i] = constant[k] - 0.5 * out[k, i]
        return out
    d = whitened.shape[0]
    expanded = np.empty((d + 2, b), dtype=whitened.dtype)
    for i in range(b):
        expanded[0, i] = 0.0
        expanded[d + 1, i] = 1.0
    for j in range(d):
        for i in range(b):
            expanded[j + 1, i] = whitened[j, i]
            expanded[0, i] += whitened[j, i] * whitened[j, i]
    return np.dot(chosen.reduce, expanded)


@kernel
def zero_sums(n_products, kind, n_components, d):  # pragma: no cover
    """The :class:`~streamgmm.kernels.records.Sums` of no rows."""
    return Sums(
        np.zeros((n_products, n_components)),
        np.zeros((d + 1, n_components)),
        np.zeros((0 if kind == PAIRWISE else n_products, n_components)),
        np.zeros((d + 1, n_components)),
        np.zeros((n_components if kind == PAIRWISE else 0, d + 1, d + 1)),
        np.zeros((d + 1, d + 1)),
        0.0,
    )


@shared
def accumulate(products, columns, resp_t, kind, own_index, own_offsets, sums):  # pragma: no cover
    """Add a block's sums to ``sums`` (in place; its log-likelihood untouched).

    About the common shift: ``products @ resp_t`` (m, K; skipped when there are
    no product rows) and ``columns @ resp_t`` (d + 1, K); for NONE (tied) the
    pooled ``sum_i (sum_k gamma_ik) columns_i columns_i^T``, the inner sum over
    the components not in ``own_index``.
    About its own shift (``own_offsets[k]`` from the common one), for each
    component k in ``own_index``: for PAIRWISE and NONE, ``sum_i gamma_ik s_i
    s_i^T`` of the shifted columns ``s = [x - mu_k; 1]``, one product holding
    scatter, first sums and weight, into ``own_full[k]`` (PAIRWISE); for NONE
    its scatter is added to the block's pooled scatter (added to ``pooled``
    once, after the shared part and every own component: so a range's sums are
    its blocks' sums added in order, which the online fold's pieces rely on,
    :mod:`streamgmm.kernels.pairing`) and its first sums and weight go to
    column k of ``own_columns``; otherwise the product rows and columns of ``s``
    into column k of ``own_products`` and ``own_columns``.
    """
    d = columns.shape[0] - 1
    b = columns.shape[1]
    n_components = resp_t.shape[1]
    pooled = np.zeros((d + 1, d + 1) if kind == NONE else (0, 0))
    if kind == NONE and own_index.size < n_components:
        shared = np.ones(n_components, dtype=columns.dtype)
        for position in range(own_index.size):
            shared[own_index[position]] = 0.0
        weighted = np.empty_like(columns)
        for i in range(b):
            row_weight = 0.0
            for k in range(n_components):
                row_weight += resp_t[i, k] * shared[k]
            for j in range(d + 1):
                weighted[j, i] = columns[j, i] * row_weight
        pooled = np.dot(weighted, columns.T).astype(np.float64)
    elif products.shape[0] > 0:
        add_into(sums.products, np.dot(products, resp_t))
    add_into(sums.columns, np.dot(columns, resp_t))
    if own_index.size == 0:
        if kind == NONE:
            add_into(sums.pooled, pooled)
        return
    shifted = np.empty_like(columns)
    weighted = np.empty_like(columns)
    shifted_products = np.empty((sums.own_products.shape[0], b), dtype=columns.dtype)
    weights = np.empty(b, dtype=columns.dtype)
    for position in range(own_index.size):
        k = own_index[position]
        for j in range(d):
            offset = own_offsets[k, j]
            for i in range(b):
                shifted[j, i] = columns[j, i] - offset
        for i in range(b):
            shifted[d, i] = 1.0
            weights[i] = resp_t[i, k]
        if kind == PAIRWISE or kind == NONE:
            for j in range(d + 1):
                for i in range(b):
                    weighted[j, i] = shifted[j, i] * weights[i]
            own = np.dot(weighted, shifted.T)
            if kind == PAIRWISE:
                add_into(sums.own_full[k], own)
            else:
                for i in range(d):
                    for j in range(d):
                        pooled[i, j] += own[i, j]
                for j in range(d + 1):
                    sums.own_columns[j, k] += own[d, j]
        else:
            fill_products(shifted, kind, shifted_products)
            own_products = np.dot(shifted_products, weights)
            own_columns = np.dot(shifted, weights)
            for j in range(own_products.shape[0]):
                sums.own_products[j, k] += own_products[j]
            for j in range(d + 1):
                sums.own_columns[j, k] += own_columns[j]
    if kind == NONE:
        add_into(sums.pooled, pooled)


@part
def row_block(values, start, stop):  # pragma: no cover
    """A C-contiguous copy of the rows ``start:stop`` of ``values`` (n, K)."""
    out = np.empty((stop - start, values.shape[1]))
    for i in range(stop - start):
        for k in range(values.shape[1]):
            out[i, k] = values[start + i, k]
    return out


@part
def put_columns(out, start, block):  # pragma: no cover
    """``out[:, start:start + b] = block`` (K, b)."""
    for k in range(block.shape[0]):
        for i in range(block.shape[1]):
            out[k, start + i] = block[k, i]


@shared
def block_weights(rows, start, stop):  # pragma: no cover
    """The weights of the rows ``start:stop`` as :func:`fill_columns` reads them
    (empty for unweighted rows)."""
    weights, order = rows.weights, rows.order
    if weights.shape[0] == 0:
        return weights
    if order.shape[0] == 0:
        return weights[start:stop]
    return weights[order[start:stop]]


@part
def range_sums(rows, begin, end, operands, plan):  # pragma: no cover
    """E-step and shifted sums of the rows ``begin:end`` of ``rows``, ``plan.block``
    rows at a time; weighted rows count their weight times (:func:`normalise`),
    so every sum is weighted. Products are in float32 if ``plan.float32``, else
    in float64; sums add up in float64. (Python calls :func:`typed_range_sums`
    with the products it chose: a compiled wrapper would optimise both of its
    versions again.)"""
    if plan.float32:
        return typed_range_sums(rows, begin, end, operands, operands.single, plan)
    return typed_range_sums(rows, begin, end, operands, operands.double, plan)


@kernel
def typed_range_sums(rows, begin, end, operands, chosen, plan):  # pragma: no cover
    """:func:`range_sums` with products in the dtype of ``chosen`` (the
    :class:`~streamgmm.kernels.records.Products` of ``operands`` to use)."""
    d = rows.X.shape[1]
    n_components = operands.constant.shape[0]
    dtype = chosen.linear_columns.dtype
    n_products = operands.n_products
    sums = zero_sums(n_products, plan.kind, n_components, d)
    log_likelihood = 0.0
    for start in range(begin, end, plan.block):
        stop = min(start + plan.block, end)
        b = stop - start
        columns = np.empty((d + 1, b), dtype=dtype)
        products = np.empty((n_products, b), dtype=dtype)
        fill_columns(rows, start, stop, operands.shift, columns)
        fill_products(columns, plan.kind, products)
        log_weighted = block_log_density(products, columns, operands, chosen)
        resp_t = np.empty((b, n_components), dtype=dtype)
        log_likelihood += normalise(log_weighted, resp_t, block_weights(rows, start, stop))
        accumulate(products, columns, resp_t, plan.kind, operands.own_index,
                   operands.own_offsets, sums)
    return Sums(sums.products, sums.columns, sums.own_products, sums.own_columns,
                sums.own_full, sums.pooled, log_likelihood)


@kernel
def responsibility_sums(rows, resp, operands, plan):  # pragma: no cover
    """Shifted sums of ``rows`` under given responsibilities ``resp`` (n, K),
    in float64, about ``operands.shift`` and each component's own offset; the
    log-likelihood is 0."""
    n, d = rows.X.shape
    n_components = resp.shape[1]
    sums = zero_sums(operands.n_products, plan.kind, n_components, d)
    for start in range(0, n, plan.block):
        stop = min(start + plan.block, n)
        b = stop - start
        columns = np.empty((d + 1, b))
        products = np.empty((operands.n_products, b))
        fill_columns(rows, start, stop, operands.shift, columns)
        fill_products(columns, plan.kind, products)
        resp_t = row_block(resp, start, stop)
        accumulate(products, columns, resp_t, plan.kind, operands.own_index,
                   operands.own_offsets, sums)
    return sums


@kernel
def typed_log_densities(rows, operands, chosen, plan):  # pragma: no cover
    """``log pi_k + log N(x_i | k)`` of ``rows``, (K, n) float64, with products in
    the dtype of ``chosen`` (the :class:`~streamgmm.kernels.records.Products`
    of ``operands`` to use), as in :func:`range_sums`."""
    n, d = rows.X.shape
    n_components = operands.constant.shape[0]
    out = np.empty((n_components, n))
    dtype = chosen.linear_columns.dtype
    for start in range(0, n, plan.block):
        stop = min(start + plan.block, n)
        b = stop - start
        columns = np.empty((d + 1, b), dtype=dtype)
        products = np.empty((operands.n_products, b), dtype=dtype)
        fill_columns(rows, start, stop, operands.shift, columns)
        fill_products(columns, plan.kind, products)
        put_columns(out, start, block_log_density(products, columns, operands, chosen))
    return out
