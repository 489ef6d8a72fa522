"""Fewer passes to the same answer: SQUAREM, damped Anderson acceleration
(DAAREM) and incremental EM.

Both keep batch EM's fixed points and only change how the parameters get
there. Nothing here computes responsibilities, statistics or an M-step: one
EM step is always :func:`streamgmm.estep.chunk_statistics` reduced over the
data and :func:`streamgmm.mstep.parameters_from_statistics`, whoever drives it.

Parameterisation
----------------
SQUAREM extrapolates ``theta0 - 2 a r + a^2 v`` with ``a`` as low as -100 and
more, far outside the segment between EM iterates; the extrapolated point must
still be a mixture. It is taken in an unconstrained vector
(:func:`to_vector`, :func:`from_vector`) in which every point is valid:

* weights through their logarithms, normalised again by a softmax;
* means as they are;
* covariances through the Cholesky factor ``P`` of the precision
  (``Sigma^-1 = P P^T``, upper triangular, the E-step's own form), its
  diagonal by its logarithm (log-Cholesky, Pinheiro & Bates 1996): any real
  vector gives a positive diagonal, so ``P P^T`` is positive definite and no
  covariance needs to be factorised or inverted to evaluate the point. The
  diagonal of ``P`` is ``1 / diag(L)`` for ``Sigma = L L^T``, so this is the
  log-Cholesky parameterisation of the covariance up to the inverse. Diag and
  spherical factors are positive numbers, taken by their logarithms; tied has
  one triangular factor.

SQUAREM
-------
Varadhan & Roland (2008), scheme S3, with the safeguards of the paper and of the
R package SQUAREM (learnt from, not copied). From an accepted point ``t0``,
``t1 = F(t0)``, ``t2 = F(t1)``, ``r = t1 - t0``, ``v = t2 - 2 t1 + t0``,
``a = -|r| / |v|`` and the point ``t' = t0 - 2 a r + a^2 v``:

* ``a >= -1`` means no extrapolation: ``a = -1`` gives ``t' = t2``, two plain
  EM steps;
* ``a`` is bounded below by ``-step_max``; ``step_max`` starts at
  :data:`STEP_MAX_START`, grows by :data:`STEP_FACTOR` after an accepted step
  that used it all and shrinks by the same factor after a rejected one;
* ``t'`` is accepted only if its mean log-likelihood is at least that of
  ``t1`` and its M-step succeeds; otherwise ``a`` moves half way towards -1
  (at most :data:`MAX_BACKTRACKS` times), and at last the plain point ``t2``
  is taken, which EM itself never makes worse than ``t1``;
* the pass that evaluates ``t'`` also gives ``F(t')``, the stabilising EM step,
  which starts the next cycle.

Each pass over the data evaluates one point: its mean log-likelihood and its
EM image come from the same statistics. An accepted cycle costs three passes.
The mean log-likelihoods of the accepted points never decrease; a fit is
converged, as plain EM, when one EM step from an accepted point changes the
mean log-likelihood by less than ``tol``.

DAAREM
------
Henderson & Varadhan (2019), learnt from the R package daarem. Every pass
evaluates one point ``x`` and gives its residual ``f = F(x) - x``. From the
last accepted point, the next proposal is the Anderson mixing of the last
:data:`DAAREM_ORDER` differences of accepted points ``X`` and of their
residuals ``R``: ``x - X g + f - R g`` with ``g`` the ridge solution of
``min |f - R g|`` whose squared norm is the share ``1 / (1 + 1.2^(-s))`` of
the least-squares one after ``s`` accepted proposals (damping that relaxes as
proposals succeed: a half at first, 0.86 after 10). daarem starts from
``1.2^(25 - s)``, a share of 1/96, because it lets the objective fall by up to
0.01 per step; here no step may lower it, so an overshooting proposal costs one
pass and no more. On the five data sets of ``docs/benchmarks.md``, from cold
and warm starts, the weaker start took fewer passes in most runs and at most 5%
more in any. A proposal stands if its mean log-likelihood is
no lower than the current point's; otherwise the next pass evaluates the
current point's EM image, which EM never makes worse.

Where EM's steps grow, as where it leaves a plateau near a saddle of the
likelihood, the Anderson model's fixed point lies behind and its proposal
points against the EM step (:func:`follows_em`). Such a proposal is not
evaluated; the history restarts and the next pass evaluates the over-relaxed
EM step ``x + eta f`` instead (adaptive over-relaxation, Salakhutdinov &
Roweis 2003): ``eta`` starts at :data:`RELAXATION_START`, doubles after each
such step that stands and starts again after one that does not. Neither is in
daarem; on the separated benchmark data, where plain EM spends thousands of
passes near a saddle, they are what lets DAAREM cross it. The history restarts
after :data:`DAAREM_ORDER` differences, as daarem's. An accepted proposal costs
one pass, a rejected one two. Convergence is measured on EM steps, as in plain
EM: a proposal that stands but gains less than ``tol`` is followed by the EM
step from it, and the fit ends when that gains less than ``tol`` too.

Incremental EM (Neal & Hinton 1998), measured against these by
``benchmarks/time_to_converge.py``, lives with that benchmark
(``benchmarks/incremental_em.py``): nothing in the package uses it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from .engine import PLAIN_EM, EMRun, EMSettings, EMStep, StepResult
from .estep import GaussianParameters
from .mstep import CholeskyError, parameters_from_statistics
from .statistics import SufficientStatistics

STEP_MAX_START = 4.0
"""Largest ``|a|`` of the first SQUAREM cycle."""

STEP_FACTOR = 4.0
"""``step_max`` grows by this factor after an accepted extrapolation that used
it all, and shrinks by it (not below 1) after a rejected one."""

MAX_BACKTRACKS = 1
"""Rejected extrapolations retried half way towards plain EM before the plain
point is taken (each retry costs a pass)."""


# ----------------------------------------------------------- parameterisation
def _triangle(n_features: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(n_features)


def _factor_to_vector(factor: np.ndarray, covariance_type: str) -> np.ndarray:
    """Log-Cholesky coordinates of precision factors, flattened."""
    if covariance_type in ("diag", "spherical"):
        return np.log(factor).ravel()
    blocks = factor if covariance_type == "full" else factor[None]
    rows, columns = _triangle(blocks.shape[1])
    upper = blocks[:, rows, columns].copy()
    on_diagonal = rows == columns
    upper[:, on_diagonal] = np.log(upper[:, on_diagonal])
    return upper.ravel()


def _factor_from_vector(values: np.ndarray, n_components: int, n_features: int,
                        covariance_type: str) -> np.ndarray:
    if covariance_type == "diag":
        return np.exp(values).reshape(n_components, n_features)
    if covariance_type == "spherical":
        return np.exp(values)
    n_blocks = n_components if covariance_type == "full" else 1
    rows, columns = _triangle(n_features)
    upper = values.reshape(n_blocks, rows.size).copy()
    on_diagonal = rows == columns
    upper[:, on_diagonal] = np.exp(upper[:, on_diagonal])
    blocks = np.zeros((n_blocks, n_features, n_features))
    blocks[:, rows, columns] = upper
    return blocks if covariance_type == "full" else blocks[0]


def to_vector(params: GaussianParameters) -> np.ndarray:
    """Mixture parameters as one unconstrained float64 vector (module docs):
    ``[log weights (K), means (K d), log-Cholesky precision factors]``."""
    return np.concatenate([
        np.log(np.asarray(params.weights, dtype=np.float64)),
        np.asarray(params.means, dtype=np.float64).ravel(),
        _factor_to_vector(np.asarray(params.precisions_cholesky, dtype=np.float64),
                          params.covariance_type),
    ])


def from_vector(vector: np.ndarray, n_components: int, n_features: int,
                covariance_type: str) -> GaussianParameters:
    """The mixture of a vector of :func:`to_vector`; any finite vector gives one
    (weights positive and summing to 1, precision factors nonsingular)."""
    log_weights = vector[:n_components]
    means_end = n_components * (1 + n_features)
    means = vector[n_components:means_end].reshape(n_components, n_features).copy()
    with np.errstate(over="ignore", invalid="ignore"):  # told apart by usable()
        weights = np.exp(log_weights - log_weights.max())
        weights /= weights.sum()
        factor = _factor_from_vector(vector[means_end:], n_components, n_features,
                                     covariance_type)
    return GaussianParameters(weights, means, factor, covariance_type)


def usable(params: GaussianParameters) -> bool:
    """Whether unpacked parameters are finite with positive precision factors
    on the diagonal (an extrapolation can overflow ``exp``)."""
    factor = np.asarray(params.precisions_cholesky)
    if params.covariance_type in ("full", "tied"):
        diagonal = np.diagonal(factor, axis1=-2, axis2=-1)
    else:
        diagonal = factor
    return bool(
        np.all(np.isfinite(params.weights)) and np.all(params.weights > 0)
        and np.all(np.isfinite(params.means)) and np.all(np.isfinite(factor))
        and np.all(diagonal > 0)
    )


# ------------------------------------------------------------------- SQUAREM
EVALUATE_START, EVALUATE_FIRST, EVALUATE_EXTRAPOLATED = 0, 1, 2
"""What the next pass evaluates: an accepted point ``t0``, its EM image ``t1``,
or the extrapolated ``t'``."""


class SquaremState(NamedTuple):
    """Where a SQUAREM cycle stands between two passes (all a checkpoint needs).

    Attributes
    ----------
    stage : int
        :data:`EVALUATE_START`, :data:`EVALUATE_FIRST` or
        :data:`EVALUATE_EXTRAPOLATED`: what ``point`` is.
    point : ndarray of shape (p,)
        The vector the next pass evaluates.
    start, first, second : ndarray of shape (p,)
        ``t0``, ``t1 = F(t0)``, ``t2 = F(t1)`` of the cycle (valid from the
        stage that computed them on).
    start_score, first_score : float
        Mean log-likelihoods of ``t0`` and ``t1``.
    step : float
        ``a`` of the extrapolation under evaluation (<= -1).
    step_max : float
        Largest ``|a|`` allowed now.
    backtracks : int
        Rejections of this cycle so far.
    """

    stage: int
    point: np.ndarray
    start: np.ndarray
    first: np.ndarray
    second: np.ndarray
    start_score: float
    first_score: float
    step: float
    step_max: float
    backtracks: int

    def proposing(self) -> bool:
        """Whether the next pass evaluates a point that may be rejected."""
        return self.stage == EVALUATE_EXTRAPOLATED


class StepOutcome(NamedTuple):
    """What one evaluated pass means for the fit.

    Attributes
    ----------
    accepted : bool
        The evaluated point is on the fit's path: its mean log-likelihood goes
        into the history, and its EM image is the fit's current result.
    em_step : bool
        The evaluated point is the plain EM image of the previous accepted
        point, so that the change of mean log-likelihood measures convergence
        as in plain EM.
    """

    accepted: bool
    em_step: bool


def squarem_start(vector: np.ndarray, step_max: float | None = None) -> SquaremState:
    """The state before the first pass, which evaluates ``vector`` (``step_max``
    by default :data:`STEP_MAX_START`)."""
    empty = np.empty(0)
    step_max = STEP_MAX_START if step_max is None else step_max
    return SquaremState(EVALUATE_START, vector, empty, empty, empty, -np.inf, -np.inf,
                        -1.0, float(step_max), 0)


def extrapolation_step(start: np.ndarray, first: np.ndarray, second: np.ndarray,
                       step_max: float) -> float:
    """S3's ``a = -|r| / |v|``, bounded to ``[-step_max, -1]`` (-1 when ``v`` is 0)."""
    change = first - start
    curvature = second - 2.0 * first + start
    curvature_norm = float(np.linalg.norm(curvature))
    if not curvature_norm > 0:
        return -1.0
    step = -float(np.linalg.norm(change)) / curvature_norm
    return float(min(-1.0, max(step, -step_max)))


def extrapolate(start: np.ndarray, first: np.ndarray, second: np.ndarray,
                step: float) -> np.ndarray:
    """``t0 - 2 a r + a^2 v``; ``a = -1`` gives ``second`` exactly."""
    if step == -1.0:
        return second
    change = first - start
    curvature = second - 2.0 * first + start
    return start - 2.0 * step * change + step * step * curvature


def accept_extrapolation(score: float, mapped: np.ndarray | None, first_score: float) -> bool:
    """The safeguard: an extrapolated point stands only if its M-step succeeded
    (``mapped`` not None and finite) and its mean log-likelihood is no lower
    than that of ``t1``."""
    return (
        mapped is not None and bool(np.all(np.isfinite(mapped)))
        and math.isfinite(score) and score >= first_score
    )


def _backtracked(state: SquaremState, valid: Callable[[np.ndarray], bool]) -> SquaremState:
    """After a rejection: ``a`` half way towards -1 while retries remain (and
    the point is valid), else the plain point ``t2``; ``step_max`` shrinks."""
    step, backtracks = state.step, state.backtracks
    step_max = state.step_max
    if step <= -step_max:
        step_max = max(1.0, step_max / STEP_FACTOR)
    while backtracks < MAX_BACKTRACKS:
        backtracks += 1
        step = (step - 1.0) / 2.0
        point = extrapolate(state.start, state.first, state.second, step)
        if valid(point):
            return state._replace(stage=EVALUATE_EXTRAPOLATED, point=point, step=step,
                                  step_max=step_max, backtracks=backtracks)
    return state._replace(stage=EVALUATE_START, point=state.second, step=-1.0,
                          step_max=step_max, backtracks=backtracks)


def squarem_update(
    state: SquaremState,
    score: float,
    mapped: np.ndarray | None,
    valid: Callable[[np.ndarray], bool],
    tol: float = 0.0,
) -> tuple[SquaremState, StepOutcome]:
    """The state after a pass evaluated ``state.point``: ``score`` its mean
    log-likelihood, ``mapped`` the vector of its EM image (None when that
    M-step failed). ``valid(vector)`` says whether a vector unpacks to usable
    parameters (checked before spending a pass on an extrapolated point).
    ``tol`` is the fit's (SQUAREM measures convergence on its EM steps only
    and needs no more)."""
    if state.stage == EVALUATE_START:
        if mapped is None:
            raise ValueError("the EM step of an accepted point failed")
        new = state._replace(stage=EVALUATE_FIRST, start=state.point, start_score=score,
                             first=mapped, point=mapped, backtracks=0)
        return new, StepOutcome(accepted=True, em_step=True)
    if state.stage == EVALUATE_FIRST:
        if mapped is None:
            raise ValueError("the EM step of an accepted point failed")
        step = extrapolation_step(state.start, state.first, mapped, state.step_max)
        point = extrapolate(state.start, state.first, mapped, step)
        new = state._replace(first_score=score, second=mapped, step=step)
        if step == -1.0:
            new = new._replace(stage=EVALUATE_START, point=mapped)
        elif valid(point):
            new = new._replace(stage=EVALUATE_EXTRAPOLATED, point=point)
        else:
            new = _backtracked(new, valid)
        return new, StepOutcome(accepted=True, em_step=True)
    if accept_extrapolation(score, mapped, state.first_score):
        step_max = state.step_max
        if state.step <= -step_max:
            step_max *= STEP_FACTOR
        new = state._replace(stage=EVALUATE_START, point=mapped, step_max=step_max)
        return new, StepOutcome(accepted=True, em_step=False)
    return _backtracked(state, valid), StepOutcome(accepted=False, em_step=False)


# -------------------------------------------------------------------- DAAREM
DAAREM_ORDER = 5
"""Differences of past iterates that an Anderson step combines (daarem's default)
before it restarts from the newest one."""

DAMPING_BASE, DAMPING_OFFSET = 1.2, 0.0
"""``delta = 1 / (1 + base^(offset - s))``, the share of the undamped Anderson
step's squared norm allowed after ``s`` accepted steps (daarem's alpha and
kappa; its kappa is 25, see the module docs for why not here)."""

RELAXATION_START, RELAXATION_FACTOR = 2.0, 2.0
"""Where an Anderson proposal points against the EM step, DAAREM proposes
``x + eta (F(x) - x)`` instead: ``eta`` starts at ``RELAXATION_START``, is
multiplied by ``RELAXATION_FACTOR`` after each accepted such step and starts
again after a rejected one (adaptive over-relaxation)."""

EVALUATE_EM, EVALUATE_PROPOSAL, EVALUATE_RELAXED = 0, 1, 2
"""What the next DAAREM pass evaluates: a point accepted in advance (the start
or the EM image of the current point), an Anderson proposal, or an
over-relaxed EM step."""


class DaaremState(NamedTuple):
    """Where damped Anderson acceleration stands between two passes.

    Attributes
    ----------
    stage : int
        :data:`EVALUATE_EM`, :data:`EVALUATE_PROPOSAL` or :data:`EVALUATE_RELAXED`.
    point : ndarray of shape (p,)
        The vector the next pass evaluates.
    current, current_map : ndarray of shape (p,)
        The last accepted point ``x`` and its EM image ``F(x)`` (empty before the
        first pass).
    current_score : float
        Mean log-likelihood of ``current``.
    point_differences, residual_differences : ndarray of shape (p, n)
        Differences of consecutive accepted points and of their residuals
        ``F(x) - x``, newest last (``n <= DAAREM_ORDER``).
    accepted_steps : int
        Anderson proposals accepted so far (``s`` of the damping).
    relaxation : float
        ``eta`` of the next over-relaxed EM step (:data:`RELAXATION_START`).
    """

    stage: int
    point: np.ndarray
    current: np.ndarray
    current_map: np.ndarray
    current_score: float
    point_differences: np.ndarray
    residual_differences: np.ndarray
    accepted_steps: int
    relaxation: float = RELAXATION_START

    def proposing(self) -> bool:
        """Whether the next pass evaluates a point that may be rejected."""
        return self.stage != EVALUATE_EM


def daarem_start(vector: np.ndarray) -> DaaremState:
    """The state before the first pass, which evaluates ``vector``."""
    empty = np.empty(0)
    none = np.empty((vector.size, 0))
    return DaaremState(EVALUATE_EM, vector, empty, empty, -np.inf, none, none, 0)


def damped_coefficients(residual_differences: np.ndarray, residual: np.ndarray,
                        share: float) -> np.ndarray:
    """Ridge coefficients ``gamma`` of the Anderson least squares
    ``min |residual - R gamma|`` with the ridge chosen so that
    ``|gamma|^2 = share |gamma_ls|^2`` (found by bisection on its logarithm;
    ``|gamma(lambda)|`` decreases with lambda)."""
    left, singular, right = np.linalg.svd(residual_differences, full_matrices=False)
    keep = singular > singular[0] * 1e-14 if singular.size else singular > 0
    left, singular, right = left[:, keep], singular[keep], right[keep]
    projected = left.T @ residual
    if singular.size == 0 or not np.any(projected):
        return np.zeros(residual_differences.shape[1])

    def norm(ridge):
        return float(np.linalg.norm(singular * projected / (singular**2 + ridge)))

    target = math.sqrt(share) * norm(0.0)
    low, high = math.log(singular[-1] ** 2) - 40.0, math.log(singular[0] ** 2) + 40.0
    for _ in range(100):
        middle = (low + high) / 2
        if norm(math.exp(middle)) > target:
            low = middle
        else:
            high = middle
    ridge = math.exp((low + high) / 2)
    return right.T @ (singular * projected / (singular**2 + ridge))


def anderson_proposal(state: DaaremState) -> np.ndarray:
    """``x - X gamma + f - R gamma`` for the current point ``x``, its residual
    ``f = F(x) - x`` and the damped coefficients ``gamma``."""
    residual = state.current_map - state.current
    share = 1.0 / (1.0 + DAMPING_BASE ** (DAMPING_OFFSET - state.accepted_steps))
    gamma = damped_coefficients(state.residual_differences, residual, share)
    return (state.current - state.point_differences @ gamma
            + residual - state.residual_differences @ gamma)


def follows_em(candidate: np.ndarray, state: DaaremState) -> bool:
    """Whether a proposal moves with the EM step from the current point: its
    step has a positive component along ``F(x) - x``.

    Anderson mixing models ``F`` as linear through the history and jumps to
    that model's fixed point. Where EM's steps grow, as when it slides off a
    plateau near a saddle of the likelihood, that fixed point lies behind
    (a fixed point EM is leaving) and the proposal points against the EM step;
    the likelihood check would reject it, spending a pass for nothing."""
    residual = state.current_map - state.current
    return float(np.dot(candidate - state.current, residual)) > 0.0


def daarem_update(
    state: DaaremState,
    score: float,
    mapped: np.ndarray | None,
    valid: Callable[[np.ndarray], bool],
    tol: float = 0.0,
) -> tuple[DaaremState, StepOutcome]:
    """The state after a pass evaluated ``state.point`` (arguments as
    :func:`squarem_update`). A proposal stands if :func:`accept_extrapolation`
    says so (compared with the current point); otherwise the next pass
    evaluates the current point's EM image, which always stands.

    Convergence is measured on EM steps only, as in plain EM: a proposal that
    stands but gains less than ``tol`` does not end the fit; the next pass
    takes the EM step from it, and the fit ends if that gains less than
    ``tol`` too."""
    proposal = state.stage != EVALUATE_EM
    relaxed = state.stage == EVALUATE_RELAXED
    if proposal and not accept_extrapolation(score, mapped, state.current_score):
        new = state._replace(stage=EVALUATE_EM, point=state.current_map,
                             relaxation=RELAXATION_START if relaxed else state.relaxation)
        return new, StepOutcome(accepted=False, em_step=False)
    if mapped is None:
        raise ValueError("the EM step of an accepted point failed")
    point_differences, residual_differences = state.point_differences, state.residual_differences
    if state.current.size:
        if point_differences.shape[1] == DAAREM_ORDER:
            point_differences = point_differences[:, :0]
            residual_differences = residual_differences[:, :0]
        point_differences = np.column_stack([point_differences, state.point - state.current])
        residual_differences = np.column_stack([
            residual_differences,
            (mapped - state.point) - (state.current_map - state.current),
        ])
    new = state._replace(
        current=state.point, current_map=mapped, current_score=score,
        point_differences=point_differences, residual_differences=residual_differences,
        accepted_steps=state.accepted_steps + int(proposal and not relaxed),
        relaxation=state.relaxation * RELAXATION_FACTOR if relaxed else state.relaxation,
    )
    outcome = StepOutcome(accepted=True, em_step=not proposal)
    check_convergence = proposal and abs(score - state.current_score) < tol
    if check_convergence or not point_differences.shape[1]:
        return new._replace(stage=EVALUATE_EM, point=mapped), outcome
    candidate = anderson_proposal(new)
    usable_candidate = valid(candidate)
    if usable_candidate and follows_em(candidate, new):
        new = new._replace(stage=EVALUATE_PROPOSAL, point=candidate,
                           relaxation=RELAXATION_START)
        return new, outcome
    new = new._replace(point_differences=point_differences[:, :0],
                       residual_differences=residual_differences[:, :0])
    relaxed_step = new.current + new.relaxation * (mapped - new.current)
    if usable_candidate and valid(relaxed_step):
        new = new._replace(stage=EVALUATE_RELAXED, point=relaxed_step)
    else:
        new = new._replace(stage=EVALUATE_EM, point=mapped, relaxation=RELAXATION_START)
    return new, outcome


# -------------------------------------------------------------------- driver
ACCELERATIONS = {
    "squarem": (squarem_start, squarem_update),
    "daarem": (daarem_start, daarem_update),
}
"""Each acceleration's ``start(vector) -> state`` and ``update(state, score,
mapped, valid, tol) -> (state, outcome)``; every state has ``point``, the vector
the next pass evaluates."""


def start_acceleration(method: str, params: GaussianParameters):
    """The state of ``method`` (a key of :data:`ACCELERATIONS`) before its first
    pass, which evaluates ``params``."""
    return ACCELERATIONS[method][0](to_vector(params))


def point_parameters(state, n_components: int, n_features: int,
                     covariance_type: str) -> GaussianParameters:
    """The parameters the next pass of an accelerated run evaluates."""
    return from_vector(state.point, n_components, n_features, covariance_type)


class PassOutcome(NamedTuple):
    """What one pass of an accelerated run gave.

    Attributes
    ----------
    state
        The acceleration's state for the next pass.
    accepted, em_step : bool
        As :class:`StepOutcome`.
    score : float
        Mean log-likelihood of the evaluated point.
    params, covariances
        The evaluated point's EM image (None when its M-step failed, which only
        a proposal may).
    """

    state: SquaremState | DaaremState
    accepted: bool
    em_step: bool
    score: float
    params: GaussianParameters | None
    covariances: np.ndarray | None


def advance(method: str, state, statistics: SufficientStatistics, reg_covar: float,
            covariance_type: str, tol: float = 0.0) -> PassOutcome:
    """One pass of an accelerated run: the statistics reduced at
    :func:`point_parameters`, their M-step and the acceleration's update
    (``tol`` the fit's, for DAAREM's convergence check).

    A failed M-step (no positive definite covariance, overflow) rejects a
    proposal and raises for any other point, as in plain EM."""
    score = statistics.log_likelihood / statistics.n_samples
    try:
        params, covariances = parameters_from_statistics(statistics, reg_covar, covariance_type)
    except (CholeskyError, ValueError):
        if not state.proposing():
            raise
        params = covariances = None
    n_components, n_features = statistics.mean.shape

    def valid(vector):
        return bool(np.all(np.isfinite(vector))) and usable(
            from_vector(vector, n_components, n_features, covariance_type))

    mapped = None if params is None else to_vector(params)
    new, outcome = ACCELERATIONS[method][1](state, score, mapped, valid, tol)
    return PassOutcome(new, outcome.accepted, outcome.em_step, score, params, covariances)


class AcceleratedEM:
    """The engine's step strategy (:class:`streamgmm.engine.EMStep`) for an
    acceleration ``method``: each run's state lives in ``run.step_state``
    (None before its first pass, which evaluates ``run.params``); an accepted
    point's EM image becomes the run's parameters, a rejected proposal leaves
    them as they were."""

    def __init__(self, method: str) -> None:
        if method not in ACCELERATIONS:
            raise ValueError(f"acceleration must be one of {sorted(ACCELERATIONS)}, "
                             f"got {method!r}")
        self.method = method

    def __repr__(self) -> str:
        return f"AcceleratedEM({self.method!r})"

    def evaluation_point(self, run: EMRun) -> GaussianParameters:
        """The parameters the run's next pass evaluates."""
        if run.step_state is None:
            return run.params
        n_components, n_features = run.params.means.shape
        return point_parameters(run.step_state, n_components, n_features,
                                run.params.covariance_type)

    def __call__(self, run: EMRun, statistics: SufficientStatistics,
                 settings: EMSettings) -> StepResult:
        state = run.step_state
        if state is None:
            state = start_acceleration(self.method, run.params)
        outcome = advance(self.method, state, statistics, settings.reg_covar,
                          run.params.covariance_type, settings.tol)
        run.step_state = outcome.state
        return StepResult(outcome.params, outcome.covariances, outcome.score,
                          accepted=outcome.accepted, measures_convergence=outcome.em_step)


def step_strategy(acceleration: str | None) -> EMStep:
    """The engine's step for an ``acceleration`` setting: plain EM for None,
    else :class:`AcceleratedEM` (``ValueError`` for an unknown method)."""
    return PLAIN_EM if acceleration is None else AcceleratedEM(acceleration)


STATE_TYPES = {"squarem": SquaremState, "daarem": DaaremState}


def method_of(state) -> str:
    """The method whose state ``state`` is."""
    return next(name for name, kind in STATE_TYPES.items() if isinstance(state, kind))


def state_to_arrays(state) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """An acceleration state as named float64 arrays and plain scalars (for a
    checkpoint; :func:`state_from_arrays` gives it back exactly)."""
    arrays, scalars = {}, {}
    for name, value in state._asdict().items():
        if isinstance(value, np.ndarray):
            arrays[name] = value
        else:
            scalars[name] = int(value) if isinstance(value, int) else float(value)
    return arrays, scalars


def state_from_arrays(method: str, arrays: dict, scalars: dict):
    """The inverse of :func:`state_to_arrays` for ``method``'s state."""
    state_type = STATE_TYPES[method]
    values = state_type._field_defaults | scalars
    return state_type(**{
        name: np.asarray(arrays[name], dtype=np.float64) if name in arrays else values[name]
        for name in state_type._fields
    })


__all__: list[str] = []
"""Nothing here is public API (docs/api.md lists what is)."""
