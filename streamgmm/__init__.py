"""streamgmm: Gaussian mixture models by exact out-of-core and stepwise online EM."""

from .bayesian import BayesianGaussianMixture
from .io import load, save, save_predictions
from .mixture import ConvergenceWarning, GaussianMixture, NotFittedError
from .selection import select
from .validation import InvalidParameterError

__version__ = "0.1.0"

__all__ = [
    "BayesianGaussianMixture",
    "GaussianMixture",
    "ConvergenceWarning",
    "InvalidParameterError",
    "NotFittedError",
    "load",
    "save",
    "save_predictions",
    "select",
]
