"""Checks run when a decorator is applied, so bad input fails early and says why."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from .exceptions import ConfigError

Seconds = float | int | timedelta


def duration(
    name: str, value: object, *, allow_zero: bool = True, allow_none: bool = False
) -> float | None:
    """Return ``value`` as float seconds, or raise ``ConfigError`` naming ``name``."""
    if value is None and allow_none:
        return None
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float):
        kind = "a number of seconds or a timedelta" + (" or None" if allow_none else "")
        raise ConfigError(name, value, kind)
    seconds = float(value)
    if (
        math.isnan(seconds)
        or math.isinf(seconds)
        or seconds < 0
        or (seconds == 0 and not allow_zero)
    ):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(name, value, f"a finite number of seconds {bound}")
    return seconds


def required_duration(name: str, value: object, *, allow_zero: bool = True) -> float:
    """Like :func:`duration` for a parameter that cannot be ``None``."""
    seconds = duration(name, value, allow_zero=allow_zero)
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


def error_filter(name: str, value: object) -> Callable[[BaseException], bool]:
    """Like :func:`exception_filter`, refusing types that are not ``Exception`` subclasses.

    Cancellation and exits pass through a decorator untouched, so naming them would
    silently do nothing.
    """
    types = value if isinstance(value, tuple) else (value,)
    for kind in types:
        if isinstance(kind, type) and not issubclass(kind, Exception):
            raise ConfigError(
                name, value, "Exception subclasses (cancellation and exits never count)"
            )
    return exception_filter(name, value)
