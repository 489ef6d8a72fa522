import pytest

from streamgmm.datasets import make_mixture


@pytest.fixture(scope="session")
def mixture_data():
    """3 well-separated components in 3-D: (X, labels, truth)."""
    return make_mixture(6000, n_components=3, n_features=3, separation=5.0, random_state=1)
