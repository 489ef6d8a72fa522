"""Progress display and iteration history shared by the fitting loops.

Every loop (batch EM, online EM) makes one :class:`FitProgress` per run, calls
:meth:`FitProgress.record` after each iteration or mini-batch step, and
:meth:`FitProgress.close` at the end; ``history`` then holds what was recorded
and becomes the fitted model's ``history_``.

What is shown depends on ``verbose`` and on whether standard error is a terminal:

* ``verbose=0``: nothing;
* ``verbose>=1`` on a terminal: a tqdm progress bar (one step per ``record``)
  showing the current mean log-likelihood and its change;
* ``verbose>=2`` elsewhere (logs, batch jobs): one plain line every
  ``verbose_interval`` records; ``verbose=1`` elsewhere stays silent.
"""

from __future__ import annotations

import math
import sys
import time
from typing import IO, Any

HISTORY_KEYS = ("passes", "log_likelihood", "elapsed")
"""Keys of a history: passes over the data so far (float), per-sample mean
log-likelihood, and seconds since the run started."""


def empty_history() -> dict[str, list[float]]:
    """A history with no records: ``{"passes": [], "log_likelihood": [], "elapsed": []}``."""
    return {key: [] for key in HISTORY_KEYS}


def history_from_lower_bounds(lower_bounds: list[float]) -> dict[str, list[float]]:
    """A history for a run that recorded only its per-pass log-likelihoods: one
    pass per value, elapsed times unknown (NaN)."""
    return {
        "passes": [float(index) for index in range(1, len(lower_bounds) + 1)],
        "log_likelihood": [float(value) for value in lower_bounds],
        "elapsed": [float("nan")] * len(lower_bounds),
    }


def is_terminal(stream: IO[str]) -> bool:
    """Whether ``stream`` is an interactive terminal."""
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # closed stream
        return False


class FitProgress:
    """Records the history of one fitting run and shows it as it goes.

    Parameters
    ----------
    verbose : int
        0 silent; 1 a progress bar on a terminal; 2 also plain lines elsewhere.
    total : int or None
        Expected number of records (e.g. ``max_iter``), for the bar's length.
    description : str
        Label of the bar and of the lines, e.g. ``"batch EM"``.
    verbose_interval : int
        Records between plain lines (``verbose>=2`` off a terminal).
    stream : text stream, optional
        Where to write (default: ``sys.stderr`` at the time of the call).
    """

    def __init__(
        self,
        verbose: int,
        total: int | None,
        description: str,
        *,
        verbose_interval: int = 10,
        stream: IO[str] | None = None,
    ) -> None:
        self.history = empty_history()
        self.description = description
        self.verbose_interval = verbose_interval
        self._stream = sys.stderr if stream is None else stream
        self._started = time.perf_counter()
        self._bar: Any = None
        self._lines = False
        if verbose >= 1 and is_terminal(self._stream):
            from tqdm import tqdm

            self._bar = tqdm(
                total=total, desc=readable(description), unit="it", file=self._stream, leave=True
            )
        elif verbose >= 2:
            self._lines = True

    def resume(self, history: dict[str, list[float]]) -> None:
        """Continue ``history``, the record of the same run before an interruption:
        later records follow it, their elapsed times counted on from its last one."""
        self.history = {key: list(history.get(key, [])) for key in HISTORY_KEYS}
        finished = [value for value in self.history["elapsed"] if math.isfinite(value)]
        if finished:
            self._started = time.perf_counter() - finished[-1]

    def record(self, log_likelihood: float, passes: float) -> None:
        """Add one record: the per-sample mean log-likelihood after ``passes``
        passes over the data (fractional for mini-batches)."""
        previous = self.history["log_likelihood"][-1] if self.history["log_likelihood"] else None
        elapsed = time.perf_counter() - self._started
        self.history["passes"].append(float(passes))
        self.history["log_likelihood"].append(float(log_likelihood))
        self.history["elapsed"].append(elapsed)
        change = "" if previous is None else f", change {log_likelihood - previous:+.3g}"
        if self._bar is not None:
            self._bar.set_postfix_str(f"loglik {log_likelihood:.6g}{change}", refresh=False)
            self._bar.update(1)
        elif self._lines and len(self.history["passes"]) % self.verbose_interval == 0:
            print(
                f"{self.description}: step {len(self.history['passes'])}, "
                f"passes {passes:.3g}, {elapsed:.2f} s, "
                f"loglik {log_likelihood:.6g}{change}",
                file=self._stream,
                flush=True,
            )

    def note(self, text: str) -> None:
        """Advance the bar by one step showing ``text`` (off a terminal, a line
        every ``verbose_interval`` steps), without adding to the history."""
        self._notes = getattr(self, "_notes", 0) + 1
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=False)
            self._bar.update(1)
        elif self._lines and self._notes % self.verbose_interval == 0:
            elapsed = time.perf_counter() - self._started
            print(f"{self.description}: {text}, {elapsed:.2f} s", file=self._stream, flush=True)

    def close(self, finished: bool = True) -> None:
        """Finish the bar (if any); the history stays available. A run that
        ``finished`` before its ``total`` (EM converged) ends the bar at 100%
        saying so, rather than at 30% as if it had stalled."""
        if self._bar is not None:
            bar = self._bar
            if finished and bar.total and bar.n < bar.total:
                bar.set_description_str(
                    f"{readable(self.description)}: done after {bar.n} of at most {bar.total}",
                    refresh=False,
                )
                bar.total = bar.n
                bar.refresh()
            bar.close()
            self._bar = None

    def __enter__(self) -> FitProgress:
        return self

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        self.close(finished=exc_type is None)


def say(message: str, verbose: int) -> None:
    """One progress line on standard error where a progress display shows
    (``verbose`` 1 on a terminal, 2 anywhere): e.g. what a fit does before its
    first iteration, which has no bar yet."""
    if verbose >= 2 or (verbose >= 1 and is_terminal(sys.stderr)):
        print(message, file=sys.stderr, flush=True)


def readable(description: str) -> str:
    """A run's label for people: the fitting loops number their starts from 0
    ("batch EM, init 0"); the bar says "batch EM, start 1"."""
    head, separator, index = description.rpartition(", init ")
    if separator and index.isdigit():
        return f"{head}, start {int(index) + 1}"
    return description


__all__ = [
    "FitProgress",
    "HISTORY_KEYS",
]
