"""streamgmm: Gaussian mixture models by exact out-of-core and stepwise online EM."""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_HOMES = {
    "BayesianGaussianMixture": "bayesian",
    "GaussianMixture": "mixture",
    "ConvergenceWarning": "mixture",
    "NotFittedError": "mixture",
    "InvalidParameterError": "validation",
    "load": "io",
    "save": "io",
    "save_predictions": "io",
    "select": "selection",
}
"""Where each public name lives. They are imported on first use (PEP 562), so
that ``import streamgmm`` and the command line start without scikit-learn,
Dask, xarray or numba (tests/test_startup.py)."""

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


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'streamgmm' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
