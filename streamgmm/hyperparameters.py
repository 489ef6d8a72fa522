"""The estimator's hyper-parameters: defaults, the rules every value must meet,
and the user-given starting parameters (``weights_init``, ``means_init``,
``precisions_init``) checked against the data."""

from __future__ import annotations

from typing import Any

import numpy as np

from .acceleration import ACCELERATIONS
from .covariance import COVARIANCE_TYPES, parameter_shape, precision_cholesky_from_precisions
from .initialization import INIT_METHODS
from .missing import MISSING_OPTIONS
from .validation import (
    BOOLEAN,
    OPTIONAL_ARRAY,
    OPTIONAL_STRING,
    RANDOM_STATE,
    VERBOSE,
    integer_in,
    one_of,
    real_in,
)

ALGORITHMS = ("batch", "online")
PERSIST_OPTIONS = ("auto", True, False)

BATCH_SIZE = 512
LEARNING_DECAY = 0.6
LEARNING_OFFSET = 0.0
"""Defaults of online EM, chosen by ``benchmarks/online_vs_batch.py`` (docs/online.md)."""

ONLINE_CHECKPOINT_BATCHES = 100
"""Mini-batches between two checkpoints of an online fit (``fit(checkpoint_every=)``),
which are written at chunk ends."""

PARTIAL_FIT_RECORD = 1000
"""``partial_fit`` keeps the last this many entries of ``lower_bounds_`` and
``history_``: a model kept current for a long time must not grow, nor copy an
ever longer record on every call (at 10^5 entries that copy took 9 ms, 3.6 times
a 512-row ``partial_fit``)."""

HYPERPARAMETER_RULES = {
    "n_components": integer_in(1),
    "covariance_type": one_of(*COVARIANCE_TYPES),
    "tol": real_in(0.0),
    "reg_covar": real_in(0.0),
    "max_iter": integer_in(0),
    "n_init": integer_in(1),
    "init_params": one_of(*INIT_METHODS),
    "weights_init": OPTIONAL_ARRAY,
    "means_init": OPTIONAL_ARRAY,
    "precisions_init": OPTIONAL_ARRAY,
    "random_state": RANDOM_STATE,
    "warm_start": BOOLEAN,
    "verbose": VERBOSE,
    "verbose_interval": integer_in(1),
    "algorithm": one_of(*ALGORITHMS),
    "batch_size": integer_in(1),
    # (0.5, 1]: the online steps then sum to infinity and their squares do not
    "learning_decay": real_in(0.5, 1.0, low_open=True),
    "learning_offset": real_in(0.0),
    "step_floor": real_in(0.0, 1.0, high_open=True),
    "averaging": BOOLEAN,
    "shuffle": BOOLEAN,
    "init_sample_size": integer_in(1),
    "sample_dim": OPTIONAL_STRING,
    "persist": one_of(*PERSIST_OPTIONS),
    "float32_products": BOOLEAN,
    "acceleration": one_of(None, *sorted(ACCELERATIONS)),
    "n_online_passes": integer_in(0),
    "missing": one_of(*MISSING_OPTIONS),
}
"""What every constructor parameter must be, checked when fitting starts."""

PARTIAL_FIT_RULES = {
    name: HYPERPARAMETER_RULES[name]
    for name in ("covariance_type", "reg_covar", "batch_size", "learning_decay",
                 "learning_offset", "step_floor", "averaging", "float32_products", "missing")
}
"""The parameters a ``partial_fit`` of a fitted model uses, checked on every call
(all of them, and the ``*_init`` arrays, are checked by the first)."""


def make_rng(random_state: Any) -> np.random.Generator:
    """A NumPy Generator from None, an int, a Generator or a legacy RandomState."""
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(2**31 - 1))
    return np.random.default_rng(random_state)


def user_parameters(model: Any, n_features: int):
    """``(weights, means, precision factors)`` from the ``*_init`` arrays of
    ``model`` in float64 (None where not given), checked for shape and values
    (``ValueError`` naming the array)."""
    K, cov_type = model.n_components, model.covariance_type
    weights = means = prec_chol = None
    if model.weights_init is not None:
        weights = np.array(model.weights_init, dtype=np.float64)
        if weights.shape != (K,):
            raise ValueError(f"weights_init must have shape ({K},), got {weights.shape}")
        if not np.all(np.isfinite(weights)) or np.any(weights < 0) or np.any(weights > 1):
            raise ValueError("weights_init must hold finite values in [0, 1]")
        if not np.allclose(weights.sum(), 1.0):
            raise ValueError(f"weights_init must sum to 1, got {weights.sum()}")
    if model.means_init is not None:
        means = np.array(model.means_init, dtype=np.float64)
        if means.shape != (K, n_features):
            raise ValueError(
                f"means_init must have shape ({K}, {n_features}), got {means.shape}"
            )
        if not np.all(np.isfinite(means)):
            raise ValueError("means_init must be finite")
    if model.precisions_init is not None:
        precisions = np.array(model.precisions_init, dtype=np.float64)
        expected = parameter_shape(K, n_features, cov_type)
        if precisions.shape != expected:
            raise ValueError(
                f"precisions_init must have shape {expected} for covariance_type "
                f"{cov_type!r}, got {precisions.shape}"
            )
        if not np.all(np.isfinite(precisions)):
            raise ValueError("precisions_init must be finite")
        prec_chol = precision_cholesky_from_precisions(precisions, cov_type)
    return weights, means, prec_chol
