import warnings

import pytest

from streamgmm.datasets import make_mixture


@pytest.fixture(autouse=True)
def _quiet_convergence_warnings():
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="Best performing initialization did not converge"
        )
        yield


@pytest.fixture(scope="session")
def mixture_data():
    """3 well-separated components in 3-D: (X, labels, truth)."""
    return make_mixture(6000, n_components=3, n_features=3, separation=5.0, random_state=1)
