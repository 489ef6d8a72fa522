"""Every kernel in two tiers: interpreted first, compiled once it pays.

Compiling the kernels costs tens of seconds of CPU in a process that finds
numba's disk cache empty (a first run, a fresh cluster worker), more than most
fits take. So a kernel first runs *interpreted*: its own Python source, loaded
a second time with a decorator that leaves functions as they are
(:mod:`streamgmm.kernels.jit`), with its loops over rows replaced by
the NumPy versions of :mod:`streamgmm.kernels.vectorized`, which do the same
floating-point operations in the same order. A kernel is *compiled* (or loaded
from the disk cache) as soon as

* its interpreted calls have taken :data:`LOAD_AFTER_SECONDS` in this process
  and the disk cache holds it (looked up once: loading the first kernel of a
  process costs about half a second, each further one tens of milliseconds,
  more than a small fit spends in it), or
* its interpreted calls have taken :data:`COMPILE_AFTER_SECONDS`: a fit long
  enough to gain from compiling pays for it at most once more than it had to
  (the ski-rental bound).

Both tiers give the same results to the last bit (``tests/test_kernel_tiers.py``),
so which one ran never changes a fit. ``STREAMGMM_KERNELS=compiled`` compiles
every kernel at its first call (the benchmarks' warm runs), ``interpreted``
never compiles; :func:`compile_all` (``streamgmm compile``) fills the disk cache
ahead, for a deployment image or a cluster's shared environment.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
import time
import types
from collections.abc import Callable
from typing import Any

from . import vectorized

COMPILE_AFTER_SECONDS = 3.0
"""Interpreted time, per kernel, after which a kernel is compiled."""

LOAD_AFTER_SECONDS = 0.25
"""Interpreted time, per kernel, after which a kernel is loaded from the disk
cache if it is there (``benchmarks/cold_start.py --cluster``: loading every
kernel a fit reaches costs each process about 0.8 s, while a fit of 10^5 rows
spends under 0.3 s in each kernel interpreted)."""

MODES = ("tiered", "compiled", "interpreted")
"""Values of the ``STREAMGMM_KERNELS`` environment variable (default ``tiered``)."""

MODULES = (
    "mathfn", "estep", "operands", "mstep", "pairing", "online", "gappy", "patterns", "masked",
)
"""The kernel modules, in the order the interpreted tier loads them."""

FAST_CALL_CHECKS = 4
"""Sets of argument fingerprints a kernel checks against its compiled version
with numba's own typing (slow: tens of microseconds) for its fast call
(:meth:`Tiered.__call__`); calls with other fingerprints take the dispatcher."""

_INTERPRETED_PACKAGE = "streamgmm.kernels._interpreted"
_lock = threading.RLock()
_interpreted: dict[str, types.ModuleType] = {}
_constants: dict[int, Any] = {}
_constant_prints: dict[int, bytes] = {}
_fingerprint: Callable[[Any], bytes] | None = None


def constant(record: Any) -> Any:
    """``record``, registered as a kernel argument made once and never changed
    (a cached plan or settings, the pairing of a fold without a helper thread),
    whose numba fingerprint the fast call (:meth:`Tiered.__call__`) computes
    once rather than at every call (that of the unpaired pairing, 23 arrays,
    took 10 us). The registry keeps ``record`` alive for good, so that its
    ``id`` names it alone. Its fingerprint is taken now if numba's is loaded,
    else when a fast call is first checked with it (:meth:`Tiered._check_fast`)."""
    with _lock:
        _constants.setdefault(id(record), record)
        if _fingerprint is not None and _constants[id(record)] is record:
            try:
                _constant_prints.setdefault(id(record), _fingerprint(record))
            except (ValueError, TypeError):
                pass
    return record


def mode() -> str:
    """The tiering mode (``STREAMGMM_KERNELS``), checked."""
    value = os.environ.get("STREAMGMM_KERNELS", "tiered")
    if value not in MODES:
        raise ValueError(f"STREAMGMM_KERNELS must be one of {MODES}, not {value!r}")
    return value


def interpreted_module(name: str) -> types.ModuleType:
    """The kernel module ``name`` loaded as plain Python functions, its row loops
    replaced by :mod:`~streamgmm.kernels.vectorized`; it shares the real
    :mod:`~streamgmm.kernels.records`, :mod:`~streamgmm.kernels.codes` and
    :mod:`~streamgmm.kernels.atomics`, so records pass between the tiers."""
    with _lock:
        if not _interpreted:
            _load_interpreted()
        return _interpreted[name]


def _load_interpreted() -> None:
    from . import atomics, codes, records

    package = types.ModuleType(_INTERPRETED_PACKAGE)
    package.__path__ = [os.path.dirname(__file__)]
    as_written = types.ModuleType(f"{_INTERPRETED_PACKAGE}.jit")
    as_written.kernel = as_written.shared = as_written.part = lambda function: function
    shared = {"records": records, "codes": codes, "atomics": atomics, "jit": as_written}
    sys.modules[_INTERPRETED_PACKAGE] = package
    for name, module in shared.items():
        sys.modules[f"{_INTERPRETED_PACKAGE}.{name}"] = module
    for name in MODULES:
        _interpreted[name] = importlib.import_module(f"{_INTERPRETED_PACKAGE}.{name}")
    for name, replaced in vectorized.REPLACEMENTS.items():
        for function in replaced:
            setattr(_interpreted[name], function, getattr(vectorized, function))


def load_cached(dispatcher: Any, arguments: tuple) -> bool:
    """Whether ``dispatcher`` has a version for ``arguments``' types, loading it
    from numba's disk cache if it is there; never compiles."""
    import numba
    from numba.core.compiler_lock import global_compiler_lock

    signature = tuple(numba.typeof(argument) for argument in arguments)
    with global_compiler_lock:
        if signature in dispatcher.overloads:
            return True
        result = dispatcher._cache.load_overload(signature, dispatcher.targetctx)
        if result is None:
            return False
        dispatcher.targetctx.insert_user_function(result.entry_point, result.fndesc,
                                                  [result.library])
        dispatcher.add_overload(result)
        return True


_announced = threading.Event()


def announce_compiling(name: str) -> None:
    """Say once per process, on standard error, that kernels are being compiled
    (in the tiered mode, where it happens in the middle of a fit; with
    ``STREAMGMM_KERNELS=compiled`` the caller asked for it)."""
    if not _announced.is_set():
        _announced.set()
        print(f"streamgmm: compiling kernels for this machine (once; starting with {name}); "
              "`streamgmm compile` does this ahead of time", file=sys.stderr, flush=True)


class Tiered:
    """One kernel in both tiers; calling it runs the tier that is due. Every
    argument reaches a kernel in one numba type (rows as float64, the products'
    dtype a field of the plan), so each kernel has one compiled version."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name
        self._ready = False
        self._looked_up = False
        self._compiling = False
        self._spent = 0.0
        self._dispatcher: Any = None
        self._entry: Any = None
        self._fast: frozenset = frozenset()
        self._checks_left = FAST_CALL_CHECKS

    def __repr__(self) -> str:
        return f"Tiered({self.module}.{self.name})"

    @property
    def compiled(self) -> Any:
        """The numba dispatcher."""
        if self._dispatcher is None:
            self._dispatcher = getattr(
                importlib.import_module(f"streamgmm.kernels.{self.module}"), self.name)
        return self._dispatcher

    @property
    def interpreted(self) -> Callable:
        """The plain-Python function of the interpreted tier."""
        return getattr(interpreted_module(self.module), self.name)

    def tier(self, *arguments: Any) -> Callable:
        """The function to run for ``arguments`` now: the compiled version if it
        is ready, in the disk cache or due (compiling it then), else the
        interpreted one, timed."""
        if self._ready:
            return self.compiled
        current = mode()
        with _lock:
            look = not self._looked_up and (current == "compiled" or (
                current == "tiered" and self._spent >= LOAD_AFTER_SECONDS))
            if look:
                self._looked_up = True
            due = current == "compiled" or (
                current == "tiered" and self._spent >= COMPILE_AFTER_SECONDS
                and not self._compiling)
            if due:
                self._compiling = True
        if look and load_cached(self.compiled, arguments):
            self._ready = True
            return self.compiled
        if due:
            if not load_cached(self.compiled, arguments):
                if current == "tiered":
                    announce_compiling(self.name)
                self.compiled.compile(tuple(_typeof(argument) for argument in arguments))
            self._ready = True
            return self.compiled
        return self._timed()

    def _timed(self) -> Callable:
        function = self.interpreted

        def run(*arguments):
            started = time.perf_counter()
            try:
                return function(*arguments)
            finally:
                with _lock:
                    self._spent += time.perf_counter() - started

        return run

    def __call__(self, *arguments: Any) -> Any:
        """Run the tier that is due. Once compiled, a call whose arguments have
        numba fingerprints (the key by which numba's dispatcher finds a
        compiled version; a registered :func:`constant`'s taken from the
        registry) that numba's typing matched to the signature of the one
        compiled version goes straight to that version's entry point, as the
        dispatcher would send it, without the dispatcher fingerprinting every
        record (``online_steps`` with no rows: 24 -> 17 us). Other calls take
        the dispatcher, and the first few of their fingerprints are checked
        (:data:`FAST_CALL_CHECKS`)."""
        if self._fast:
            try:
                prints = tuple([_constant_prints.get(id(argument)) or _fingerprint(argument)
                                for argument in arguments])
            except (ValueError, TypeError):
                prints = None
            if prints in self._fast:
                return self._entry(*arguments)
        function = self.tier(*arguments)
        result = function(*arguments)
        if self._checks_left > 0 and function is self._dispatcher:
            self._check_fast(arguments)
        return result

    def _check_fast(self, arguments: tuple) -> None:
        """Accept the fingerprints of ``arguments`` for the fast call if the
        dispatcher holds a single compiled version and numba types
        ``arguments`` exactly as its signature."""
        global _fingerprint
        from numba._dispatcher import compute_fingerprint

        with _lock:
            _fingerprint = compute_fingerprint
            try:
                for argument in arguments:
                    if _constants.get(id(argument)) is argument:
                        _constant_prints.setdefault(id(argument), compute_fingerprint(argument))
                prints = tuple([_constant_prints.get(id(argument)) or compute_fingerprint(argument)
                                for argument in arguments])
            except (ValueError, TypeError):
                self._checks_left = 0
                return
            if prints in self._fast:
                return
            self._checks_left -= 1
            overloads = list(self.compiled.overloads.items())
            if len(overloads) != 1:
                return
            signature, result = overloads[0]
            if tuple(_typeof(argument) for argument in arguments) == tuple(signature):
                self._entry = result.entry_point
                self._fast = self._fast | {prints}


def _typeof(argument: Any) -> Any:
    import numba

    return numba.typeof(argument)
