import time

import pytest
from numba_cache import KINDS_OF_ROWS, fill

from streamgmm.datasets import make_mixture


@pytest.fixture(scope="session")
def mixture_data():
    """3 well-separated components in 3-D: (X, labels, truth)."""
    return make_mixture(6000, n_components=3, n_features=3, separation=5.0, random_state=1)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session):
    """Before xdist starts its workers on the whole suite, compile the kernels into
    numba's disk cache once (:mod:`numba_cache`), in as many processes as there
    will be workers, instead of in every worker and every process a test starts.
    Runs of chosen files or of one process compile what they use as they go."""
    config = session.config
    workers = getattr(config.option, "numprocesses", None) or 0
    whole_suite = config.args_source == pytest.Config.ArgsSource.TESTPATHS
    if hasattr(config, "workerinput") or workers < 2 or not whole_suite:
        return
    started = time.perf_counter()
    failures = fill(min(workers, len(KINDS_OF_ROWS)))
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    reporter.write_line(
        f"numba cache filled in {time.perf_counter() - started:.0f} s "
        f"({len(failures)} filling processes failed; their tests compile again)"
    )
    for output in failures:
        reporter.write_line(output[-4000:], red=True)
