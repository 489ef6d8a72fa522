"""Information criteria for choosing among fitted mixtures (lower is better)."""

from __future__ import annotations

import numpy as np

CRITERIA = ("bic", "aic", "icl")


def information_criterion(
    name: str,
    total_log_likelihood: float,
    n_samples: float,
    n_parameters: int,
    classification_log_likelihood: float = 0.0,
) -> float:
    """BIC ``-2 log L + p log n``, AIC ``-2 log L + 2 p`` or ICL ``BIC - 2 sum_i
    log z_i,map(i)`` (mclust's ICL; ``classification_log_likelihood`` is that sum,
    from :func:`~streamgmm.estep.chunk_likelihood_terms`), in scikit-learn's
    signs: lower is better. For weighted rows ``n_samples`` is the sum of the
    weights (the rows they stand for; docs/user-guide.md)."""
    if name == "bic":
        return -2 * total_log_likelihood + n_parameters * np.log(n_samples)
    if name == "aic":
        return -2 * total_log_likelihood + 2 * n_parameters
    if name == "icl":
        bic = information_criterion("bic", total_log_likelihood, n_samples, n_parameters)
        return bic - 2 * classification_log_likelihood
    raise ValueError(f"criterion must be one of {CRITERIA}, got {name!r}")


__all__: list[str] = []
"""Nothing here is public API (docs/api.md lists what is)."""
