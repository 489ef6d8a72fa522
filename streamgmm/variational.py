"""Variational Bayesian Gaussian mixture: the mathematics, as pure functions.

The model (Bishop, PRML section 10.2; Blei & Jordan 2006 for the
stick-breaking prior) puts a Dirichlet (``"dirichlet_distribution"``) or a
truncated Dirichlet-process (``"dirichlet_process"``) prior on the weights and
a Gaussian-Wishart prior on every component's mean and precision. Its
mean-field posterior is a function of the same centred sufficient statistics
as EM's M-step (:class:`~streamgmm.statistics.SufficientStatistics`: weight
``N_k``, weighted mean ``xbar_k``, scatter ``S_k`` about it):

* weights: ``alpha_k = alpha_0 + N_k`` (Dirichlet), or the stick-breaking
  Betas ``a_k = 1 + N_k``, ``b_k = gamma + sum_{j>k} N_j``;
* ``beta_k = beta_0 + N_k``, ``m_k = (beta_0 m_0 + N_k xbar_k) / beta_k``;
* ``nu_k = nu_0 + N_k``, ``W_k^-1 = W_0^-1 + S_k + N_k r I + (beta_0 N_k /
  beta_k)(xbar_k - m_0)(xbar_k - m_0)^T`` with ``r = reg_covar`` (tied: one
  ``W^-1`` from the sums over components divided by K, ``nu = nu_0 + N / K``;
  diag: the diagonals; spherical: the mean of the diagonal).

The E-step is EM's chunk kernel: the kernel computes ``log w_k + log det P_k -
d/2 log 2 pi - |P_k^T (x - mu_k)|^2 / 2`` for the parameters it is given
(:class:`~streamgmm.estep.GaussianParameters`). The variational E-step needs
``log rho_nk = E[log pi_k] + E[log |Lambda_k|] / 2 - d / (2 beta_k) - d/2 log 2 pi
- nu_k (x - m_k)^T W_k (x - m_k) / 2``. With ``P_k = chol(nu_k W_k)`` (so that
``log det P_k = d/2 log nu_k + log |W_k| / 2``) and ``E[log |Lambda_k|] = sum_i
psi((nu_k - i) / 2) + d log 2 + log |W_k|`` (i = 0 ... d - 1), both agree when

    log w_k = E[log pi_k] - d/2 log nu_k + (sum_i psi((nu_k - i)/2) + d log 2) / 2
              - d / (2 beta_k),

which :func:`estep_parameters` gives the kernel (less their largest value, so
that no "weight" overflows; the responsibilities do not change).

The lower bound is scikit-learn's (the evidence lower bound right after the
update, less the terms that do not depend on the parameters):
``-sum_nk r_nk log r_nk - sum_k log B(W_k, nu_k) - log C(alpha) - d/2 sum_k
log beta_k``. The entropy term ``sum r log r`` comes from the statistics
(:func:`responsibility_entropy`), not from the kernel: ``sum_nk r log r =
sum_k sum_n r_nk log rho_nk - sum_n log sum_k rho_nk``, where the second term is
the chunk's "log-likelihood" the kernel already returns and the first is, per
component, ``N_k (log w_k + log det P_k - d/2 log 2 pi) - tr(P_k^T (S_k + N_k
(xbar_k - mu_k)(xbar_k - mu_k)^T) P_k) / 2``. This keeps the kernels (being
rewritten separately) untouched; the subtraction loses about
``eps * sum_n |log rho|``, 1e-16 relative to the bound.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.linalg import lapack
from scipy.special import betaln, digamma, gammaln

from .choices import WEIGHT_PRIOR_TYPES  # noqa: F401  (re-exported)
from .estep import GaussianParameters
from .statistics import SufficientStatistics

EMPTY_WEIGHT = 10 * np.finfo(np.float64).eps
"""Added to every ``N_k`` before the update (scikit-learn's guard, kept so that
both give the same numbers for empty components)."""

LOG_WEIGHT_FLOOR = -700.0
"""Lowest log "weight" handed to the kernel relative to the largest (``exp``
stays a positive float64); a component that far below the others takes no
responsibility in float64 anyway."""

LOG_2PI = np.log(2 * np.pi)


class Priors(NamedTuple):
    """The prior's values (scikit-learn's ``*_prior_`` attributes).

    Attributes
    ----------
    weight_concentration : float
        ``alpha_0`` (Dirichlet) or ``gamma`` (Dirichlet process).
    mean_precision : float
        ``beta_0``.
    mean : ndarray of shape (d,)
        ``m_0``.
    degrees_of_freedom : float
        ``nu_0``.
    covariance : ndarray or float
        ``W_0^-1``: (d, d) full and tied, (d,) diag, a float spherical.
    """

    weight_concentration: float
    mean_precision: float
    mean: np.ndarray
    degrees_of_freedom: float
    covariance: np.ndarray | float


class VariationalParameters(NamedTuple):
    """The mean-field posterior (scikit-learn's fitted attributes).

    Attributes
    ----------
    weight_concentration : ndarray
        (K,) Dirichlet ``alpha``; (2, K) the stick-breaking ``a`` and ``b``.
    mean_precision : ndarray of shape (K,)
        ``beta``.
    means : ndarray of shape (K, d)
        ``m``.
    degrees_of_freedom : ndarray
        ``nu``: (K,), or shape () for the tied type.
    covariances : ndarray
        ``W^-1 / nu``, shape by covariance type.
    precisions_cholesky : ndarray
        Cholesky factors of ``nu W``, shape by covariance type.
    """

    weight_concentration: np.ndarray
    mean_precision: np.ndarray
    means: np.ndarray
    degrees_of_freedom: np.ndarray
    covariances: np.ndarray
    precisions_cholesky: np.ndarray


def precision_factors(covariances: np.ndarray, covariance_type: str) -> np.ndarray:
    """Upper triangular factors ``P = L^-T`` (``L L^T = covariance``), so that
    ``P P^T = covariances^-1``.

    LAPACK's ``potrf`` and ``trtri`` directly: ``scipy.linalg.solve_triangular``
    went through threaded BLAS and took 11 ms per 8 x 8 factor on a loaded
    2-core machine (0.4 s per update with K = 50) against 20 us here.
    Raises ``ValueError`` if a covariance is not positive definite (it cannot
    happen with a positive definite ``W_0^-1``; kept as a guard against NaN).
    """
    if covariance_type in ("full", "tied"):
        stacked = covariances if covariance_type == "full" else covariances[None]
        factors = np.empty_like(stacked)
        for k, covariance in enumerate(stacked):
            cov_chol, info = lapack.dpotrf(covariance, lower=1, clean=1)
            if info == 0:
                inverse, info = lapack.dtrtri(cov_chol, lower=1)
            if info != 0 or not np.all(np.isfinite(covariance)):
                raise ValueError(
                    f"The posterior covariance of component {k} is not positive definite; "
                    "check covariance_prior and reg_covar"
                )
            factors[k] = inverse.T
        return factors if covariance_type == "full" else factors[0]
    if not np.all(covariances > 0):
        raise ValueError("A posterior variance is not positive; check covariance_prior")
    return 1.0 / np.sqrt(covariances)


def update(
    stats: SufficientStatistics,
    priors: Priors,
    reg_covar: float,
    covariance_type: str,
    weight_prior_type: str,
) -> VariationalParameters:
    """The variational parameters from reduced statistics (module docs)."""
    counts = np.asarray(stats.weight, dtype=np.float64)
    n = counts + EMPTY_WEIGHT
    xbar = stats.mean * (counts / n)[:, None]
    K, d = xbar.shape
    if weight_prior_type == "dirichlet_process":
        tail = np.concatenate([np.cumsum(n[::-1])[-2::-1], [0.0]])
        concentration = np.stack([1.0 + n, priors.weight_concentration + tail])
    else:
        concentration = priors.weight_concentration + n
    beta = priors.mean_precision + n
    means = (priors.mean_precision * priors.mean + n[:, None] * xbar) / beta[:, None]
    diff = xbar - priors.mean
    shrink = n * priors.mean_precision / beta
    scatter = np.asarray(stats.scatter, dtype=np.float64)
    if covariance_type == "full":
        nu = priors.degrees_of_freedom + n
        inverse_w = (priors.covariance + scatter + (n * reg_covar)[:, None, None] * np.eye(d)
                     + shrink[:, None, None] * diff[:, :, None] * diff[:, None, :])
        covariances = inverse_w / nu[:, None, None]
    elif covariance_type == "tied":
        nu = np.float64(priors.degrees_of_freedom + n.sum() / K)
        inverse_w = (priors.covariance + (scatter + n.sum() * reg_covar * np.eye(d)) / K
                     + (shrink * diff.T) @ diff / K)
        covariances = inverse_w / nu
    elif covariance_type == "diag":
        nu = priors.degrees_of_freedom + n
        inverse_w = (priors.covariance + scatter + n[:, None] * reg_covar
                     + shrink[:, None] * diff**2)
        covariances = inverse_w / nu[:, None]
    else:
        nu = priors.degrees_of_freedom + n
        inverse_w = (priors.covariance + scatter / d + n * reg_covar
                     + shrink * np.mean(diff**2, axis=1))
        covariances = inverse_w / nu
    return VariationalParameters(
        weight_concentration=concentration,
        mean_precision=beta,
        means=means,
        degrees_of_freedom=nu,
        covariances=covariances,
        precisions_cholesky=precision_factors(covariances, covariance_type),
    )


def expected_log_weights(concentration: np.ndarray, weight_prior_type: str) -> np.ndarray:
    """``E[log pi_k]`` (K,) under the weights' posterior.

    Dirichlet: ``psi(alpha_k) - psi(sum alpha)``. Stick-breaking: ``E[log v_k] +
    sum_{j<k} E[log(1 - v_j)]`` with ``v_k ~ Beta(a_k, b_k)``.
    """
    if weight_prior_type == "dirichlet_process":
        a, b = concentration
        total = digamma(a + b)
        log_rest = digamma(b) - total
        return digamma(a) - total + np.concatenate([[0.0], np.cumsum(log_rest)[:-1]])
    return digamma(concentration) - digamma(np.sum(concentration))


def mean_weights(concentration: np.ndarray, weight_prior_type: str) -> np.ndarray:
    """The weights' posterior means ``E[pi_k]`` (K,), normalised to sum to one."""
    if weight_prior_type == "dirichlet_process":
        a, b = concentration
        rest = b / (a + b)
        weights = a / (a + b) * np.concatenate([[1.0], np.cumprod(rest[:-1])])
    else:
        weights = np.asarray(concentration, dtype=np.float64)
    return weights / weights.sum()


def log_det_factors(precisions_cholesky: np.ndarray, covariance_type: str,
                    n_features: int) -> np.ndarray:
    """``log det P_k`` of the precision factors: (K,), or shape () tied."""
    if covariance_type == "full":
        return np.log(np.diagonal(precisions_cholesky, axis1=1, axis2=2)).sum(axis=1)
    if covariance_type == "tied":
        return np.log(np.diag(precisions_cholesky)).sum()
    if covariance_type == "diag":
        return np.log(precisions_cholesky).sum(axis=1)
    return n_features * np.log(precisions_cholesky)


def expected_log_det_terms(degrees_of_freedom: np.ndarray, n_features: int) -> np.ndarray:
    """``sum_i psi((nu - i) / 2) + d log 2`` for i = 0 ... d - 1: ``E[log |Lambda|]``
    less ``log |W|``."""
    nu = np.atleast_1d(degrees_of_freedom)
    halves = 0.5 * (nu[:, None] - np.arange(n_features)[None, :])
    return digamma(halves).sum(axis=1) + n_features * np.log(2.0)


def log_weight_offsets(vp: VariationalParameters, weight_prior_type: str) -> np.ndarray:
    """The per-component constants ``log w_k`` of the module docs (K,)."""
    K, d = vp.means.shape
    nu = np.broadcast_to(vp.degrees_of_freedom, (K,))
    return (expected_log_weights(vp.weight_concentration, weight_prior_type)
            - 0.5 * d * np.log(nu)
            + 0.5 * np.broadcast_to(expected_log_det_terms(vp.degrees_of_freedom, d), (K,))
            - 0.5 * d / vp.mean_precision)


def estep_parameters(vp: VariationalParameters, covariance_type: str,
                     weight_prior_type: str) -> GaussianParameters:
    """The parameters that make EM's chunk kernel compute the variational E-step:
    ``nu_k W_k``'s Cholesky factors and ``w_k = exp(log w_k - max_j log w_j)``
    (module docs; floored at :data:`LOG_WEIGHT_FLOOR` below the largest)."""
    offsets = log_weight_offsets(vp, weight_prior_type)
    shifted = np.maximum(offsets - offsets.max(), LOG_WEIGHT_FLOOR)
    return GaussianParameters(np.exp(shifted), np.asarray(vp.means, dtype=np.float64),
                              np.asarray(vp.precisions_cholesky, dtype=np.float64),
                              covariance_type)


def quadratic_sums(stats: SufficientStatistics, params: GaussianParameters) -> np.ndarray:
    """``sum_n r_nk |P_k^T (x_n - mu_k)|^2`` (K,) from centred statistics: the
    trace of ``P_k^T (S_k + N_k delta_k delta_k^T) P_k``, ``delta_k = xbar_k - mu_k``
    (tied: the pooled scatter's trace with the shared factor, plus every
    component's ``N_k |P^T delta_k|^2``; returned on the first component)."""
    P, cov_type = params.precisions_cholesky, params.covariance_type
    delta = stats.mean - params.means
    n = np.asarray(stats.weight, dtype=np.float64)
    S = np.asarray(stats.scatter, dtype=np.float64)
    if cov_type == "full":
        scatter_term = np.einsum("kji,kjl,kli->k", P, S, P)
        distance = np.einsum("kj,kji->ki", delta, P)
        return scatter_term + n * np.sum(distance**2, axis=1)
    if cov_type == "tied":
        sums = n * np.sum((delta @ P) ** 2, axis=1)
        sums[0] += np.einsum("ji,jl,li->", P, S, P)
        return sums
    if cov_type == "diag":
        return np.sum(P**2 * (S + n[:, None] * delta**2), axis=1)
    return P**2 * (S + n * np.sum(delta**2, axis=1))


def responsibility_entropy(stats: SufficientStatistics, params: GaussianParameters) -> float:
    """``sum_nk r_nk log r_nk`` of the rows whose statistics ``stats`` were taken
    under ``params`` (module docs), from the statistics and their
    log-likelihood alone."""
    K, d = params.means.shape
    log_det = np.broadcast_to(
        log_det_factors(params.precisions_cholesky, params.covariance_type, d), (K,))
    constants = np.log(params.weights) + log_det - 0.5 * d * LOG_2PI
    n = np.asarray(stats.weight, dtype=np.float64)
    weighted = float(n @ constants - 0.5 * quadratic_sums(stats, params).sum())
    return weighted - stats.log_likelihood


def log_wishart_norm(degrees_of_freedom: np.ndarray, half_log_det_w: np.ndarray,
                     n_features: int) -> np.ndarray:
    """``log B(W, nu)`` of the Wishart's normaliser, less its constant
    ``-d (d - 1)/4 log pi``: ``-(nu/2 log |W| + nu d/2 log 2 + sum_i log
    Gamma((nu - i)/2))``."""
    nu = np.atleast_1d(degrees_of_freedom)
    halves = 0.5 * (nu[:, None] - np.arange(n_features)[None, :])
    return -(nu * np.atleast_1d(half_log_det_w) + 0.5 * n_features * np.log(2.0) * nu
             + gammaln(halves).sum(axis=1))


def log_weight_norm(concentration: np.ndarray, weight_prior_type: str) -> float:
    """Log-normaliser of the weights' posterior: ``log C(alpha)`` of the
    Dirichlet, or the sum of ``-log B(a_k, b_k)`` of the sticks."""
    if weight_prior_type == "dirichlet_process":
        return float(-np.sum(betaln(*concentration)))
    return float(gammaln(np.sum(concentration)) - np.sum(gammaln(concentration)))


def lower_bound(entropy: float, vp: VariationalParameters, covariance_type: str,
                weight_prior_type: str) -> float:
    """scikit-learn's lower bound (module docs) from ``sum r log r`` of the
    E-step and the parameters updated from its statistics."""
    K, d = vp.means.shape
    half_log_det_w = (log_det_factors(vp.precisions_cholesky, covariance_type, d)
                      - 0.5 * d * np.log(vp.degrees_of_freedom))
    wishart = log_wishart_norm(vp.degrees_of_freedom, half_log_det_w, d)
    log_wishart = K * float(wishart[0]) if covariance_type == "tied" else float(wishart.sum())
    return float(-entropy - log_wishart
                 - log_weight_norm(vp.weight_concentration, weight_prior_type)
                 - 0.5 * d * np.sum(np.log(vp.mean_precision)))


def data_priors(
    n_samples: float,
    mean: np.ndarray,
    scatter: np.ndarray,
    covariance_type: str,
    n_components: int,
    weight_concentration: float | None = None,
    mean_precision: float | None = None,
    mean_prior: np.ndarray | None = None,
    degrees_of_freedom: float | None = None,
    covariance: np.ndarray | float | None = None,
) -> Priors:
    """The priors, with scikit-learn's defaults for those not given: ``1/K``,
    1, the data's mean, ``d`` and the data's covariance (``scatter / (n - 1)``;
    diag: its diagonal; spherical: the diagonal's mean). ``mean`` and
    ``scatter`` (full (d, d) or diag (d,)) are the data's centred statistics."""
    d = mean.shape[0]
    if covariance is None:
        denominator = max(n_samples - 1.0, np.finfo(np.float64).tiny)
        if covariance_type in ("full", "tied"):
            covariance = np.atleast_2d(scatter) / denominator
        else:
            variances = (np.diag(scatter) if np.ndim(scatter) == 2 else scatter) / denominator
            covariance = variances if covariance_type == "diag" else float(np.mean(variances))
    return Priors(
        weight_concentration=float(
            1.0 / n_components if weight_concentration is None else weight_concentration),
        mean_precision=float(1.0 if mean_precision is None else mean_precision),
        mean=np.asarray(mean if mean_prior is None else mean_prior, dtype=np.float64),
        degrees_of_freedom=float(d if degrees_of_freedom is None else degrees_of_freedom),
        covariance=covariance,
    )


def check_priors(model_values: dict, covariance_type: str, n_features: int) -> dict:
    """The user's priors in float64, checked: ``ValueError`` naming the parameter
    for a non-positive or non-finite concentration or mean precision, degrees
    of freedom not above ``d - 1``, a mean of the wrong shape or not finite,
    a covariance prior of the wrong shape, not symmetric positive definite
    (full, tied) or not positive (diag, spherical). ``None`` stays None."""
    d = n_features
    checked: dict = {}
    for name in ("weight_concentration_prior", "mean_precision_prior"):
        value = model_values.get(name)
        if value is not None:
            if not np.isscalar(value) or not np.isfinite(value) or not value > 0:
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
            value = float(value)
        checked[name] = value
    nu = model_values.get("degrees_of_freedom_prior")
    if nu is not None:
        if not np.isscalar(nu) or not np.isfinite(nu) or not nu > d - 1:
            raise ValueError(
                f"degrees_of_freedom_prior must be a finite number greater than "
                f"n_features - 1 = {d - 1}, got {nu!r}")
        nu = float(nu)
    checked["degrees_of_freedom_prior"] = nu
    mean = model_values.get("mean_prior")
    if mean is not None:
        mean = np.array(mean, dtype=np.float64)
        if mean.shape != (d,):
            raise ValueError(f"mean_prior must have shape ({d},), got {mean.shape}")
        if not np.all(np.isfinite(mean)):
            raise ValueError("mean_prior must be finite")
    checked["mean_prior"] = mean
    covariance = model_values.get("covariance_prior")
    if covariance is not None:
        covariance = np.array(covariance, dtype=np.float64)
        expected = {"full": (d, d), "tied": (d, d), "diag": (d,), "spherical": ()}[covariance_type]
        if covariance.shape != expected:
            raise ValueError(
                f"covariance_prior must have shape {expected} for covariance_type "
                f"{covariance_type!r}, got {covariance.shape}")
        if not np.all(np.isfinite(covariance)):
            raise ValueError("covariance_prior must be finite")
        if covariance_type in ("full", "tied"):
            if not np.allclose(covariance, covariance.T, rtol=1e-12, atol=0):
                raise ValueError("covariance_prior must be symmetric")
            if np.linalg.eigvalsh(covariance).min() <= 0:
                raise ValueError("covariance_prior must be positive definite")
        elif not np.all(covariance > 0):
            raise ValueError(f"covariance_prior must be positive for covariance_type "
                             f"{covariance_type!r}")
        if covariance_type == "spherical":
            covariance = float(covariance)
    checked["covariance_prior"] = covariance
    return checked


def merge_components(stats: SufficientStatistics, pairs, covariance_type: str
                     ) -> SufficientStatistics:
    """Statistics with component ``j`` merged into ``k`` for every ``(j, k)`` of
    ``pairs`` (disjoint): ``N = N_j + N_k``, ``xbar = xbar_k + (N_j / N)(xbar_j -
    xbar_k)``, ``S = S_j + S_k + (N_j N_k / N) delta delta^T`` (the tied type adds
    the last term to its pooled scatter; diag its diagonal, spherical its trace);
    ``j`` is left empty (its update then gives the prior)."""
    weight = np.array(stats.weight, dtype=np.float64)
    mean = np.array(stats.mean, dtype=np.float64)
    scatter = np.array(stats.scatter, dtype=np.float64)
    for j, k in pairs:
        total = weight[j] + weight[k]
        if total <= 0:
            continue
        delta = mean[j] - mean[k]
        cross = weight[j] * weight[k] / total
        outer = {"full": np.outer(delta, delta), "tied": np.outer(delta, delta),
                 "diag": delta**2, "spherical": delta @ delta}[covariance_type]
        if covariance_type == "tied":
            scatter += cross * outer
        else:
            scatter[k] = scatter[j] + scatter[k] + cross * outer
            scatter[j] = 0.0
        mean[k] = mean[k] + (weight[j] / total) * delta
        weight[k], weight[j] = total, 0.0
        mean[j] = 0.0
    return stats._replace(weight=weight, mean=mean, scatter=scatter)


def _log_det_ml(weight: float, scatter: np.ndarray, covariance_type: str,
                n_features: int) -> float:
    """``log |S / N|`` of one component's maximum-likelihood covariance (diag:
    its diagonal; spherical: its mean variance in every direction)."""
    if covariance_type == "full":
        return float(np.linalg.slogdet(scatter / weight)[1])
    if covariance_type == "diag":
        return float(np.sum(np.log(scatter / weight)))
    return float(n_features * np.log(scatter / (weight * n_features)))


def merge_candidates(stats: SufficientStatistics, covariance_type: str, min_weight: float,
                     n_pairs: int) -> list[tuple[int, int]]:
    """Up to ``n_pairs`` disjoint ``(j, k)`` pairs of components holding at least
    ``min_weight`` each, the most redundant first: those whose merge loses the
    least Gaussian log-likelihood, ``(N_jk log|S_jk / N_jk| - N_j log|S_j / N_j|
    - N_k log|S_k / N_k|) / 2`` (tied: ``N_j N_k / N_jk delta^T (S / N)^-1
    delta / 2``, the growth of the pooled scatter). Only a ranking: the
    estimator keeps a merge only if the lower bound rises. ``j`` is the
    lighter of the two (it is emptied into ``k``)."""
    n = np.asarray(stats.weight, dtype=np.float64)
    used = np.flatnonzero(n >= min_weight)
    d = stats.mean.shape[1]
    scatter = np.asarray(stats.scatter, dtype=np.float64)
    if covariance_type == "tied":
        pooled_precision = np.linalg.inv(scatter / n.sum() + 1e-12 * np.eye(d))
    else:
        own = {k: _log_det_ml(n[k], scatter[k], covariance_type, d) for k in used}
    costs = []
    for a, j in enumerate(used):
        for k in used[a + 1:]:
            total = n[j] + n[k]
            delta = stats.mean[j] - stats.mean[k]
            if covariance_type == "tied":
                loss = 0.5 * n[j] * n[k] / total * delta @ pooled_precision @ delta
            else:
                merged = merge_components(stats, [(j, k)], covariance_type)
                loss = 0.5 * (total * _log_det_ml(total, merged.scatter[k], covariance_type, d)
                              - n[j] * own[j] - n[k] * own[k])
            costs.append((float(loss), int(j), int(k)))
    costs.sort()
    pairs: list[tuple[int, int]] = []
    taken: set[int] = set()
    for _, j, k in costs:
        if j in taken or k in taken:
            continue
        pairs.append((j, k) if n[j] <= n[k] else (k, j))
        taken.update((j, k))
        if len(pairs) == n_pairs:
            break
    return pairs


__all__: list[str] = []
"""Nothing here is public API (docs/api.md lists what is)."""
