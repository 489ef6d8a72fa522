"""The fold of stepwise EM over a range of rows, compiled: every mini-batch's
E-step, the step of the running statistics, the M-step and the averaging, in
one call without the GIL (the update and the burn-in are described in
:mod:`streamgmm.online`)."""

from __future__ import annotations

import numpy as np

from .atomics import load_acquire
from .codes import (
    NONE,
    OVERFLOWED,
    PAIRWISE,
    STEPS_DONE,
    STEPS_NOT_POSITIVE_DEFINITE,
    STEPS_OVERFLOWED,
    STEPS_UNUSABLE_ROWS,
    SYNC_DONE,
    SYNC_HOLDS,
    SYNC_POSTED,
)
from .estep import block_weights
from .jit import kernel, part
from .mathfn import scaled
from .mstep import centred_statistics, parameters_blocks, stepwise_blocks
from .operands import density_operands, variances_of
from .pairing import batch_sums, help_online_steps, post_batch, split_row
from .records import Outcome, Running, Statistics


@kernel
def step_size(step, learning_decay, learning_offset, step_floor):  # pragma: no cover
    """``rho_t``: 1 for ``t <= 1``, else ``max((t + t0) ** -alpha, floor)``."""
    if step <= 1:
        return 1.0
    return max((step + learning_offset) ** -learning_decay, step_floor)


@kernel
def burn_in_mass(kind, d):  # pragma: no cover
    """Rows of responsibility mass every component needs before the burn-in ends:
    ``d + 1`` (full, tied: a scatter of full rank), else 2."""
    return d + 1 if kind == PAIRWISE or kind == NONE else 2


@kernel
def burn_in_complete(weight, n_rows, needed, cap):  # pragma: no cover
    """Whether burn-in statistics (per-row weights (K,)) over ``n_rows`` rows give
    every component a mass of ``needed`` rows, or ``n_rows`` reached ``cap``."""
    if n_rows >= cap:
        return True
    for k in range(weight.shape[0]):
        if not weight[k] * n_rows >= needed:
            return False
    return True


@part
def batch_weight(rows, begin, end):  # pragma: no cover
    """What the rows ``begin:end`` count for: their number, or the sum of their
    weights."""
    if rows.weights.shape[0] == 0:
        return float(end - begin)
    return block_weights(rows, begin, end).sum()


@part
def blended(old, new, step):  # pragma: no cover
    """``old (1 - step) + new step`` of two totals (2,)."""
    out = np.empty(2)
    for i in range(2):
        out[i] = old[i] * (1.0 - step) + new[i] * step
    return out


@kernel
def online_steps(rows, running, settings, plan, pairing):  # pragma: no cover
    """Stepwise EM over ``rows`` (:class:`~streamgmm.kernels.records.Rows`),
    ``settings.batch_size`` rows per step (the last batch may be shorter), from
    the :class:`~streamgmm.kernels.records.Running` state ``running``.

    Weighted rows: a batch counts the sum of its rows' weights wherever it would
    count its rows (its statistics are weighted and divided by that sum;
    ``n_seen`` and the burn-in add weights), and a batch of weight 0 takes no
    step. With ``pairing.paired``, the pieces of each batch are shared with a
    helper thread, which calls this same fold with ``pairing.helping`` (and
    the same arguments otherwise) to run
    :func:`~streamgmm.kernels.pairing.help_online_steps`, returning an
    ``Outcome`` of no batches when told to stop. A
    batch with a value above ``settings.limit`` in magnitude, or NaN, stops the
    steps (``STEPS_UNUSABLE_ROWS``). Nothing passed in is modified. Returns an
    :class:`~streamgmm.kernels.records.Outcome`.
    """
    if pairing.helping:
        help_online_steps(rows, plan, settings.limit, pairing)
        return Outcome(STEPS_DONE, -1, -1, np.zeros(0), running)
    order = rows.order
    n_rows = rows.X.shape[0] if order.shape[0] == 0 else order.shape[0]
    kind = plan.kind
    mixture = running.mixture
    statistics, totals = running.statistics, running.totals.copy()
    averaged, averaged_totals = running.averaged, running.averaged_totals.copy()
    n_steps, n_seen, n_averaged = running.n_steps, running.n_seen, running.n_averaged
    n_components, n_features = mixture.means.shape
    needed = burn_in_mass(kind, n_features)
    batch_size = settings.batch_size
    n_batches = (n_rows + batch_size - 1) // batch_size
    batch_log_likelihoods = np.zeros(n_batches)
    sync = pairing.sync
    generation = load_acquire(sync, SYNC_POSTED) if pairing.paired else 0
    for batch in range(n_batches):
        begin = batch * batch_size
        end = min(begin + batch_size, n_rows)
        parity = (generation + 1) % 2
        posted = 0
        if (pairing.paired and split_row(begin, end) < end and (
                sync[SYNC_HOLDS + parity] == 0
                or load_acquire(sync, SYNC_DONE) >= sync[SYNC_HOLDS + parity])):
            if post_batch(pairing, generation + 1, rows, begin, end, plan.block, mixture):
                generation += 1
                sync[SYNC_HOLDS + parity] = 0
                posted = generation
        operands = density_operands(
            mixture.weights, mixture.means, mixture.factors,
            variances_of(mixture.covariances, kind, n_components, n_features), plan)
        sums, usable, joined = batch_sums(rows, begin, end, operands, plan, settings.limit,
                                          pairing, posted)
        if joined:
            sync[SYNC_HOLDS + parity] = posted
        if not usable:
            return Outcome(STEPS_UNUSABLE_ROWS, batch, -1, batch_log_likelihoods, running)
        batch_statistics = centred_statistics(sums, operands.shift, mixture.means,
                                              operands.own_shift, kind)
        batch_log_likelihoods[batch] = sums.log_likelihood
        size = batch_weight(rows, begin, end)
        if size == 0:
            continue
        factor = 1.0 / size
        batch_statistics = Statistics(scaled(batch_statistics.weight, factor),
                                      batch_statistics.mean,
                                      scaled(batch_statistics.scatter, factor))
        batch_totals = np.array([sums.log_likelihood * factor, size * factor])
        seen = n_seen + size
        rho = size / seen if n_steps == 0 else step_size(
            n_steps + 1, settings.learning_decay, settings.learning_offset, settings.step_floor)
        statistics = stepwise_blocks(statistics, batch_statistics, rho, kind)
        totals = blended(totals, batch_totals, rho)
        n_seen = seen
        if n_steps == 0 and not burn_in_complete(statistics.weight, seen, needed,
                                                 settings.burn_in_cap):
            continue
        n_steps += 1
        step = parameters_blocks(statistics, settings.reg_covar, kind)
        if step.failed != -1:
            status = STEPS_OVERFLOWED if step.failed == OVERFLOWED else STEPS_NOT_POSITIVE_DEFINITE
            return Outcome(status, batch, step.failed, batch_log_likelihoods, Running(
                step.mixture, statistics, totals, n_steps, n_seen, averaged, averaged_totals,
                n_averaged))
        mixture = step.mixture
        if settings.averaging:
            n_averaged += 1
            if n_averaged == 1:
                averaged = Statistics(statistics.weight.copy(), statistics.mean.copy(),
                                      statistics.scatter.copy())
                averaged_totals = totals.copy()
            else:
                share = 1.0 / n_averaged
                averaged = stepwise_blocks(averaged, statistics, share, kind)
                averaged_totals = blended(averaged_totals, totals, share)
    return Outcome(STEPS_DONE, -1, -1, batch_log_likelihoods, Running(
        mixture, statistics, totals, n_steps, n_seen, averaged, averaged_totals, n_averaged))
