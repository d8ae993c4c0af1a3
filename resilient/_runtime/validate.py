"""Checks run when a decorator is applied, so bad input fails early and says why."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Final

from ..exceptions import ConfigError

Seconds = float | int | timedelta

MAX_SECONDS: Final = 1e9
"""The longest wait resilient accepts (about 31.7 years): every platform can sleep this
long, and a deadline this far ahead stays representable."""


def duration(
    name: str,
    value: object,
    *,
    allow_zero: bool = True,
    allow_none: bool = False,
    maximum: float | None = None,
) -> float | None:
    """Return ``value`` as float seconds, or raise ``ConfigError`` naming ``name``.

    ``maximum`` (seconds) refuses longer durations, for values that are slept on.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float):
        kind = "a number of seconds or a timedelta" + (" or None" if allow_none else "")
        raise ConfigError(name, value, kind)
    allowed = "a finite number of seconds " + (">= 0" if allow_zero else "> 0")
    if maximum is not None:
        allowed += f" and <= {maximum:g}"
    try:
        seconds = float(value)
    except OverflowError:  # an int too large for a float
        seconds = math.inf
    if (
        math.isnan(seconds)
        or math.isinf(seconds)
        or seconds < 0
        or (seconds == 0 and not allow_zero)
    ):
        raise ConfigError(name, value, allowed)
    if maximum is not None and seconds > maximum:
        raise ConfigError(name, value, allowed)
    return seconds


def required_duration(
    name: str, value: object, *, allow_zero: bool = True, maximum: float | None = None
) -> float:
    """Like :func:`duration` for a parameter that cannot be ``None``."""
    seconds = duration(name, value, allow_zero=allow_zero, maximum=maximum)
    assert seconds is not None
    return seconds


def integer(name: str, value: object, *, minimum: int) -> int:
    """Return ``value`` if it is an int ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(name, value, f"an integer >= {minimum}")
    return value


def fraction(name: str, value: object) -> float:
    """Return ``value`` if it is a number within [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ConfigError(name, value, "a number within [0, 1]")
    return float(value)


def number(name: str, value: object, *, minimum: float) -> float:
    """Return ``value`` if it is a finite number ``>= minimum``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < minimum
    ):
        raise ConfigError(name, value, f"a finite number >= {minimum:g}")
    return float(value)


def optional_callable(name: str, value: object) -> Callable[..., Any] | None:
    """Return ``value`` if it is callable or ``None``."""
    if value is not None and not callable(value):
        raise ConfigError(name, value, "a callable or None")
    return value


def exception_filter(name: str, value: object) -> Callable[[BaseException], bool]:
    """Turn an exception type, a tuple of them, or a predicate into one predicate."""
    if isinstance(value, type) and issubclass(value, BaseException):
        value = (value,)
    if isinstance(value, tuple) and value:
        if all(isinstance(t, type) and issubclass(t, BaseException) for t in value):
            types: tuple[type[BaseException], ...] = value
            return lambda error: isinstance(error, types)
    elif callable(value) and not isinstance(value, type):
        return value
    raise ConfigError(name, value, "an exception type, a non-empty tuple of them, or a predicate")


def rate(name: str, value: object) -> float:
    """Return ``value`` if it is a number within (0, 1] (a rate of 0 would always trip)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise ConfigError(name, value, "a number within (0, 1]")
    return float(value)


def exception_types(
    parameter: str, value: object, *, or_predicate: bool = False
) -> tuple[type[Exception], ...]:
    """Return ``value`` (an ``Exception`` subclass or a non-empty tuple of them) as a tuple.

    ``BaseException`` types that are not ``Exception`` subclasses (``KeyboardInterrupt``,
    ``SystemExit``, ``GeneratorExit``, ``asyncio.CancelledError``, ``BaseException``
    itself) are refused wherever they appear, inside a tuple too: decorators let them
    pass untouched, so naming one would silently do nothing. ``or_predicate`` says in the
    message that the parameter also takes a predicate.
    """
    types = value if isinstance(value, tuple) else (value,)
    allowed = (
        "an Exception subclass, a non-empty tuple of them, or a predicate"
        if or_predicate
        else "an Exception subclass or a non-empty tuple of them"
    )
    if not types:
        raise ConfigError(parameter, value, allowed)
    for kind in types:
        if not isinstance(kind, type) or not issubclass(kind, BaseException):
            if kind is not value:  # name the odd one out of a tuple
                allowed = f"{allowed}; {kind!r} is not an exception type"
            raise ConfigError(parameter, value, allowed)
        if not issubclass(kind, Exception):
            raise ConfigError(
                parameter,
                value,
                "Exception subclasses (cancellation and exits never count); "
                f"{kind.__name__} is not one",
            )
    return types


def error_filter(name: str, value: object) -> Callable[[BaseException], bool]:
    """Like :func:`exception_filter`, refusing types that are not ``Exception`` subclasses.

    Cancellation and exits pass through a decorator untouched, so naming them would
    silently do nothing (see :func:`exception_types`).
    """
    if isinstance(value, type | tuple):
        types = exception_types(name, value, or_predicate=True)
        return lambda error: isinstance(error, types)
    return exception_filter(name, value)


def boolean(name: str, value: object) -> bool:
    """``value`` if it is ``True`` or ``False``; ``ConfigError`` naming ``name`` otherwise."""
    if not isinstance(value, bool):
        raise ConfigError(name, value, "True or False")
    return value
