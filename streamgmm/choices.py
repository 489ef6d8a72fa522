"""The names a user chooses from (covariance types, start methods, algorithms
and accelerations) and the shapes a covariance type gives.

Constants and NumPy-only functions, so that the table of settings
(:mod:`streamgmm.hyperparameters`) and the command line's help load without
NumPy's heavy neighbours. The modules that implement the choices re-export
them (``covariance.COVARIANCE_TYPES``, ``initialization.INIT_METHODS``) and
``tests/test_hyperparameters.py`` checks that each name has its implementation.
"""

import numpy as np

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
INIT_METHODS = ("kmeans", "k-means++", "k-means||", "hierarchical", "random", "random_from_data")
ALGORITHMS = ("batch", "online")
ACCELERATION_METHODS = ("daarem", "squarem")
"""The keys of :data:`streamgmm.acceleration.ACCELERATIONS`, sorted."""
MISSING_OPTIONS = ("raise", "marginalize")
"""Values of the ``missing`` hyper-parameter (:mod:`streamgmm.missing`)."""

WEIGHT_PRIOR_TYPES = ("dirichlet_process", "dirichlet_distribution")
"""The priors on a Bayesian mixture's weights (scikit-learn's
``weight_concentration_prior_type``)."""



def check_covariance_type(covariance_type: str) -> None:
    """Raise ``ValueError`` for a name that is not a covariance type."""
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(f"unknown covariance_type {covariance_type!r}")


def parameter_shape(n_components: int, n_features: int, covariance_type: str) -> tuple:
    """Shape of the covariances (and precisions, factors, scatter) of a type."""
    check_covariance_type(covariance_type)
    return {
        "full": (n_components, n_features, n_features),
        "tied": (n_features, n_features),
        "diag": (n_components, n_features),
        "spherical": (n_components,),
    }[covariance_type]


def variance_totals(
    covariances: np.ndarray, covariance_type: str, n_components: int, n_features: int
) -> np.ndarray:
    """``trace(Sigma_k)`` of every component, shape (K,)."""
    covariances = np.asarray(covariances)
    return {
        "full": lambda: np.trace(covariances, axis1=1, axis2=2),
        "tied": lambda: np.full(n_components, np.trace(covariances)),
        "diag": lambda: covariances.sum(axis=1),
        "spherical": lambda: covariances * n_features,
    }[covariance_type]()


__all__: list[str] = []
"""Nothing here is public API (docs/api.md lists what is)."""

