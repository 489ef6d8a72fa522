"""Hyper-parameter rules of the estimators, checked when fitting starts, with
scikit-learn's conventions: nothing is checked in ``__init__``; a bad value
raises :class:`InvalidParameterError` (both a ``ValueError`` and a
``TypeError``, as scikit-learn's error of that name) whose message names the
parameter, what it must be, and what it got.

scikit-learn's own constraint machinery (``_parameter_constraints``) lives in a
private module (``sklearn.utils._param_validation``) whose classes have changed
between releases; these rules say the same in the same words without importing it.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np


class InvalidParameterError(ValueError, TypeError):
    """A hyper-parameter has a value of the wrong type or outside its range."""


class Rule(NamedTuple):
    """What a parameter must be, in words, and the test of a value; ``kind``,
    ``bounds`` and ``options`` say the same for a command line's option types
    (``kind`` "int", "float", "choice", "bool", or "other")."""

    description: str
    accepts: Callable[[Any], bool]
    kind: str = "other"
    bounds: tuple = ()
    """``(low, high, low_open, high_open)`` of an int or float."""
    options: tuple = ()
    """The allowed values of a choice."""


def _is_integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def _bound_text(low: float, high: float, low_open: bool, high_open: bool) -> str:
    high_text = "inf" if high == np.inf else repr(high)
    return f"{'(' if low_open else '['}{low!r}, {high_text}{')' if high_open else ']'}"


def _inside(value: float, low: float, high: float, low_open: bool, high_open: bool) -> bool:
    above = value > low if low_open else value >= low
    below = value < high if high_open else value <= high
    return bool(above and below)


def integer_in(low: int, high: float = np.inf) -> Rule:
    """An integer (not a bool) in ``[low, high]``."""
    return Rule(
        f"an int in the range {_bound_text(low, high, False, high == np.inf)}",
        lambda value: _is_integer(value) and _inside(value, low, high, False, False),
        "int",
        (low, high, False, False),
    )


def real_in(
    low: float, high: float = np.inf, low_open: bool = False, high_open: bool = False
) -> Rule:
    """A finite real number (not a bool) in ``[low, high]`` (open at ``low`` if
    ``low_open``, at ``high`` if ``high_open``); NaN and infinity are refused."""
    return Rule(
        f"a finite float in the range "
        f"{_bound_text(low, high, low_open, high_open or high == np.inf)}",
        lambda value: _is_real(value)
        and bool(np.isfinite(value))
        and _inside(value, low, high, low_open, high_open),
        "float",
        (low, high, low_open, high_open),
    )


def one_of(*options: Any) -> Rule:
    """One of ``options`` (compared with ``==``, booleans only with booleans)."""
    def accepts(value: Any) -> bool:
        if isinstance(value, np.ndarray):
            return False
        return any(
            value == option and isinstance(value, bool | np.bool_) == isinstance(option, bool)
            for option in options
        )

    return Rule(f"one of {list(options)!r}", accepts, "choice", (), options)


BOOLEAN = Rule(
    "an instance of 'bool' or an instance of 'numpy.bool'",
    lambda value: isinstance(value, bool | np.bool_),
    "bool",
)
VERBOSE = Rule(
    "an int in the range [0, inf) or a bool",
    lambda value: isinstance(value, bool | np.bool_) or (_is_integer(value) and value >= 0),
)
RANDOM_STATE = Rule(
    "an int in the range [0, 4294967295], an instance of 'numpy.random.RandomState', "
    "an instance of 'numpy.random.Generator' or None",
    lambda value: value is None
    or isinstance(value, np.random.RandomState | np.random.Generator)
    or (_is_integer(value) and 0 <= value <= 2**32 - 1),
    "int",
    (0, 2**32 - 1, False, False),
)
N_JOBS = Rule(
    "an int in the range [1, inf), -1 or None",
    lambda value: value is None or (_is_integer(value) and (value >= 1 or value == -1)),
    "int",
    (-1, np.inf, False, False),
)
OPTIONAL_STRING = Rule(
    "an instance of 'str' or None", lambda value: value is None or isinstance(value, str)
)
OPTIONAL_ARRAY = Rule(
    "an array-like or None",
    lambda value: value is None or (hasattr(value, "__len__") and not isinstance(value, str)),
)


def check_hyperparameters(estimator: Any, rules: dict[str, Rule]) -> None:
    """Raise :class:`InvalidParameterError` for the first parameter of
    ``estimator`` (in ``rules``' order) that its rule refuses."""
    for name, rule in rules.items():
        value = getattr(estimator, name)
        if not rule.accepts(value):
            raise InvalidParameterError(
                f"The {name!r} parameter of {type(estimator).__name__} must be "
                f"{rule.description}. Got {shown(value)} instead."
            )


def shown(value: Any) -> str:
    """A value as a message shows it: NumPy scalars as plain numbers (``17``,
    not ``np.int64(17)``), anything else by its ``repr``."""
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value)


PLAIN_TYPES = (str, int, float, bool, type(None))
"""Types of hyper-parameter values whose rule outcome depends on nothing but
their type and value (:func:`checked_values_key`)."""
_PLAIN_TYPE_SET = frozenset(PLAIN_TYPES)


def checked_values_key(estimator: Any, rules: dict[str, Rule]) -> tuple | None:
    """The values (with their types) of ``estimator``'s parameters in ``rules``,
    for skipping a check of the same values again: equal keys give the same
    outcome of :func:`check_hyperparameters` (NaN never equals itself, so it is
    checked again). None when a value is not of a plain Python type."""
    values = tuple([getattr(estimator, name) for name in rules])
    types = tuple(map(type, values))
    if not _PLAIN_TYPE_SET.issuperset(types):
        return None
    return types, values


def check_changed_hyperparameters(
    estimator: Any, rules: dict[str, Rule], accepted: tuple | None
) -> tuple | None:
    """:func:`check_hyperparameters`, skipped when the values are those of
    ``accepted``, the :func:`checked_values_key` of values accepted before
    (``partial_fit`` checks on every call; the rules cost about a tenth of a
    512-row call). Returns the key of the values now accepted."""
    key = checked_values_key(estimator, rules)
    if key is None or key != accepted:
        check_hyperparameters(estimator, rules)
    return key


def check_n_features(estimator: Any, n_features: int) -> None:
    """Raise scikit-learn's ``ValueError`` unless X has the fitted number of
    features (``estimator.n_features_in_``, or the width of ``means_`` for a
    model rebuilt by setting its fitted parameters, as scikit-learn allows)."""
    expected = getattr(estimator, "n_features_in_", None)
    if expected is None:
        expected = np.shape(estimator.means_)[1]
    if n_features != expected:
        # scikit-learn's words, "1 features" included: check_estimator matches them
        raise ValueError(
            f"X has {n_features} features, but {type(estimator).__name__} "
            f"is expecting {expected} features as input."
        )


def count(number: int, noun: str) -> str:
    """``"1 feature"``, ``"3 features"``: a count of a noun in plain English."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def check_n_samples(n_samples: Any) -> None:
    """Raise ``TypeError``/``ValueError`` unless ``n_samples`` is an integer >= 1."""
    if isinstance(n_samples, bool) or not isinstance(n_samples, numbers.Integral):
        raise TypeError(f"n_samples must be an integer, got {n_samples!r}")
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")


__all__ = [
    "InvalidParameterError",
]
