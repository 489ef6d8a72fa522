import time

import pytest
from numba_cache import KINDS_OF_ROWS, fill

from streamgmm.datasets import make_mixture


@pytest.fixture(scope="session")
def mixture_data():
    """3 well-separated components in 3-D: (X, labels, truth)."""
    return make_mixture(6000, n_components=3, n_features=3, separation=5.0, random_state=1)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_setupnodes(config, specs):
    """Before xdist starts its workers on the whole suite, compile the kernels into
    numba's disk cache once (:mod:`numba_cache`), in as many processes as there
    will be workers, instead of in every worker and every process a test starts.
    Runs of chosen files, or in one process, compile what they use as they go."""
    if len(specs) < 2 or config.args_source != pytest.Config.ArgsSource.TESTPATHS:
        return
    started = time.perf_counter()
    failures = fill(min(len(specs), len(KINDS_OF_ROWS)))
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    reporter.write_line(
        f"numba cache filled in {time.perf_counter() - started:.0f} s "
        f"({len(failures)} filling processes failed; their tests compile again)"
    )
    for output in failures:
        reporter.write_line(output[-4000:], red=True)
