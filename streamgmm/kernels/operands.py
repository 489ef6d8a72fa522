"""The E-step's operands for one set of parameters, compiled (the choices are
explained in :mod:`streamgmm.estep`): the common shift, which components are
summed about their own mean, and the linear or whitening maps that give all
components' log-densities of a block in one or two products."""

from __future__ import annotations

import math

import numpy as np

from .codes import LINEAR, LOG_2PI, NONE, PAIRWISE, SQUARES, TIED, WHITENED
from .jit import kernel, part
from .records import Operands, Products


@part
def expanded_distance(centres, scale, constant, out):  # pragma: no cover
    """``out`` (K, d + 2) turns ``[|z|^2; z; 1]`` into
    ``constant_k - scale_k / 2 |z - centre_k|^2``."""
    n_components, d = centres.shape
    for k in range(n_components):
        out[k, 0] = -0.5 * scale[k]
        norm = 0.0
        for j in range(d):
            out[k, 1 + j] = centres[k, j] * scale[k]
            norm += centres[k, j] * centres[k, j]
        out[k, d + 1] = constant[k] - 0.5 * scale[k] * norm


@kernel
def n_product_rows(kind, d, shared_products_max_features):  # pragma: no cover
    """``m``, the product rows of a block: ``d (d + 1) / 2`` (full, none beyond
    ``shared_products_max_features`` features), ``d`` (diag), 1 (spherical) or
    0 (tied)."""
    if kind == PAIRWISE:
        return d * (d + 1) // 2 if d <= shared_products_max_features else 0
    return d if kind == SQUARES else (0 if kind == NONE else 1)


@part
def variances_of(covariances, kind, n_components, d):  # pragma: no cover
    """The diagonals (K, d) of covariances in blocks form."""
    variances = np.empty((n_components, d))
    for k in range(n_components):
        for j in range(d):
            if kind == PAIRWISE:
                variances[k, j] = covariances[k, j, j]
            elif kind == NONE:
                variances[k, j] = covariances[0, j, j]
            elif kind == SQUARES:
                variances[k, j] = covariances[k, 0, j]
            else:
                variances[k, j] = covariances[k, 0, 0]
    return variances


@part
def log_constants(weights, factors, kind, d):  # pragma: no cover
    """``log pi_k + log det P_k - d/2 log 2 pi`` (K,)."""
    n_components = weights.shape[0]
    constant = np.empty(n_components)
    for k in range(n_components):
        block = 0 if kind == NONE else k
        log_det = 0.0
        if kind == PAIRWISE or kind == NONE:
            for j in range(d):
                log_det += math.log(factors[block, j, j])
        elif kind == SQUARES:
            for j in range(d):
                log_det += math.log(factors[k, 0, j])
        else:
            log_det = d * math.log(factors[k, 0, 0])
        constant[k] = math.log(weights[k]) + log_det - 0.5 * d * LOG_2PI
    return constant


@part
def is_upper_triangular(factor):  # pragma: no cover
    """Whether ``factor`` (d, d) is finite with exact zeros below its diagonal
    (what the M-step makes)."""
    d = factor.shape[0]
    for i in range(d):
        for j in range(d):
            if not (math.isfinite(factor[i, j]) and (j >= i or factor[i, j] == 0.0)):
                return False
    return True


@part
def full_precisions(factors):  # pragma: no cover
    """``Lambda_k = P_k P_k^T`` (K, d, d) from the full type's factors, each
    entry summed over ``p`` in order from 0. All entries of a component are
    summed side by side (``p`` outer, from a transposed copy of the factor), so
    that the loops vectorise instead of waiting on one sum at a time.

    For an upper-triangular factor (:func:`is_upper_triangular`) the terms
    ``p < i`` of row i are products with 0, each added to a sum that is still
    +0.0: they are skipped, which gives the same bits from about half the
    products."""
    n_components, d = factors.shape[0], factors.shape[1]
    precisions = np.zeros((n_components, d, d))
    transposed = np.empty((d, d))
    for k in range(n_components):
        for p in range(d):
            for j in range(d):
                transposed[p, j] = factors[k, j, p]
        upper = is_upper_triangular(factors[k])
        for p in range(d):
            for i in range(p + 1 if upper else d):
                value = factors[k, i, p]
                for j in range(d):
                    precisions[k, i, j] += value * transposed[p, j]
    return precisions


@part
def expansion_error(centred, variances, precisions):  # pragma: no cover
    """``max_k u_k^T |Lambda_k| u_k`` with ``u_k = |mu_k - c| + sqrt(Sigma_k,jj)``:
    how large the expanded quadratic form's terms get relative to its value."""
    n_components, d = centred.shape
    error_factor = 0.0
    spread = np.empty(d)
    for k in range(n_components):
        for j in range(d):
            spread[j] = abs(centred[k, j]) + math.sqrt(variances[k, j])
        size = 0.0
        for i in range(d):
            for j in range(d):
                size += spread[i] * abs(precisions[k, i, j]) * spread[j]
        error_factor = max(error_factor, size)
    return error_factor


@part
def surely_whitened(centred, variances, factors, expansion_limit):  # pragma: no cover
    """Whether :func:`expansion_error` of the full type's ``factors`` is sure to
    exceed ``expansion_limit`` from its diagonal terms alone (each formed with
    the same operations), so that the whitened form is chosen without forming
    the precisions. Its ``d^2`` terms are at least 0, so a component's rounded
    sum is at least the rounded sum of its ``d`` diagonal terms times
    ``1 - (d^2 + d) 2^-53``; the margin asked here is ten times that. Every term
    is then a number (no infinity times 0) if every spread is at most ``1e50``
    and every diagonal precision at most ``1e200``; else False (decide in full)."""
    n_components, d = centred.shape
    sure = False
    for k in range(n_components):
        size = 0.0
        for i in range(d):
            spread = abs(centred[k, i]) + math.sqrt(variances[k, i])
            diagonal = 0.0
            for p in range(d):
                diagonal += factors[k, i, p] * factors[k, i, p]
            if not (diagonal <= 1e200 and spread <= 1e50):
                return False
            size += spread * abs(diagonal) * spread
        sure = sure or size > expansion_limit * (1.0 + 1e-15 * (d * d + d))
    return sure


@part
def full_whitening(factors, centred):  # pragma: no cover
    """Stacked ``[P_k^T | -P_k^T (mu_k - c)]`` (K d, d + 1)."""
    n_components, d = centred.shape
    whitening = np.empty((n_components * d, d + 1))
    for k in range(n_components):
        for i in range(d):
            row = k * d + i
            offset = 0.0
            for j in range(d):
                whitening[row, j] = factors[k, j, i]
                offset += centred[k, j] * factors[k, j, i]
            whitening[row, d] = -offset
    return whitening


@part
def full_linear(precisions, centred, constant, m, linear):  # pragma: no cover
    """The expanded quadratic form of the full type into ``linear`` (K, m + d + 1)."""
    n_components, d = centred.shape
    row = 0
    for first in range(d):
        for second in range(first, d):
            weight = -0.5 if first == second else -1.0
            for k in range(n_components):
                linear[k, row] = precisions[k, first, second] * weight
            row += 1
    for k in range(n_components):
        quadratic = 0.0
        for i in range(d):
            weighted_centre = 0.0
            for j in range(d):
                weighted_centre += precisions[k, i, j] * centred[k, j]
            linear[k, m + i] = weighted_centre
            quadratic += weighted_centre * centred[k, i]
        linear[k, m + d] = constant[k] - 0.5 * quadratic


@part
def in_dtype(array, probe):  # pragma: no cover
    """A C-contiguous copy of ``array`` (2-D) in the dtype of ``probe``."""
    out = np.empty(array.shape, dtype=probe.dtype)
    for i in range(array.shape[0]):
        for j in range(array.shape[1]):
            out[i, j] = array[i, j]
    return out


@part
def product_operands(linear, m, whitening, reduce, probe):  # pragma: no cover
    """The :class:`~streamgmm.kernels.records.Products` in the dtype of
    ``probe`` from ``linear`` (K, m + d + 1), ``whitening`` and ``reduce``."""
    return Products(in_dtype(linear[:, :m], probe), in_dtype(linear[:, m:], probe),
                    in_dtype(whitening, probe), in_dtype(reduce, probe))


@part
def no_products(probe):  # pragma: no cover
    """Empty :class:`~streamgmm.kernels.records.Products` in the dtype of ``probe``."""
    empty = np.empty((0, 0), dtype=probe.dtype)
    return Products(empty, empty, empty, empty)


@kernel
def density_operands(weights, means, factors, variances, plan):  # pragma: no cover
    """The :class:`~streamgmm.kernels.records.Operands` of one set of parameters:
    ``weights`` (K,), ``means`` (K, d), precision ``factors`` (blocks form) and
    ``variances`` (K, d) the diagonals of the covariances (which decide the
    own shifts and the full type's form, :mod:`streamgmm.estep`)."""
    n_components, d = means.shape
    kind = plan.kind
    shift = np.zeros(d)
    for k in range(n_components):
        for j in range(d):
            shift[j] += means[k, j]
    shift /= n_components
    centred = np.empty((n_components, d))
    for k in range(n_components):
        for j in range(d):
            centred[k, j] = means[k, j] - shift[j]
    constant = log_constants(weights, factors, kind, d)
    own_shift = np.zeros(n_components, dtype=np.bool_)
    for k in range(n_components):
        for j in range(d):
            if not centred[k, j] * centred[k, j] / variances[k, j] <= plan.shared_shift_limit:
                own_shift[k] = True
    m = n_product_rows(kind, d, plan.shared_products_max_features)
    mode = LINEAR
    linear = np.zeros((n_components, m + d + 1))
    whitening = np.zeros((0, d + 1))
    reduce = np.zeros((0, d + 2))
    if kind == PAIRWISE:
        if m == 0:
            own_shift[:] = True
        mode = WHITENED
        if m > 0 and not surely_whitened(centred, variances, factors, plan.expansion_limit):
            precisions = full_precisions(factors)
            if not expansion_error(centred, variances, precisions) > plan.expansion_limit:
                mode = LINEAR
                full_linear(precisions, centred, constant, m, linear)
        if mode == WHITENED:
            whitening = full_whitening(factors, centred)
    elif kind == NONE:
        mode = TIED
        whitening = np.zeros((d, d + 1))
        for i in range(d):
            for j in range(d):
                whitening[i, j] = factors[0, j, i]
        reduce = np.empty((n_components, d + 2))
        expanded_distance(np.dot(centred, factors[0]), np.ones(n_components), constant, reduce)
    elif kind == SQUARES:
        for k in range(n_components):
            quadratic = 0.0
            for j in range(d):
                squared = factors[k, 0, j] * factors[k, 0, j]
                linear[k, j] = -0.5 * squared
                linear[k, d + j] = centred[k, j] * squared
                quadratic += centred[k, j] * centred[k, j] * squared
            linear[k, 2 * d] = constant[k] - 0.5 * quadratic
    else:
        squared = np.empty(n_components)
        for k in range(n_components):
            squared[k] = factors[k, 0, 0] * factors[k, 0, 0]
        expanded_distance(centred, squared, constant, linear)
    double, single = np.empty(0), np.empty(0, dtype=np.float32)
    if plan.float32:
        chosen = (no_products(double), product_operands(linear, m, whitening, reduce, single))
    else:
        chosen = (product_operands(linear, m, whitening, reduce, double), no_products(single))
    return Operands(shift, mode, m, chosen[0], chosen[1], constant, own_shift,
                    np.flatnonzero(own_shift), centred)
