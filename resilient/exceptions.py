"""The errors resilient raises: one family, each carrying what a caller needs to react."""

from __future__ import annotations

__all__ = [
    "CircuitOpenError",
    "ConfigError",
    "ResilienceError",
    "TimeoutExceededError",
]


class ResilienceError(Exception):
    """Base class of the errors raised by resilient itself (never of the caller's own errors)."""


class ConfigError(ResilienceError, ValueError):
    """A decorator or configuration was given a value it cannot work with.

    Raised when the decorator is applied, never in the middle of a call.
    """

    def __init__(self, parameter: str, value: object, allowed: str) -> None:
        self.parameter = parameter
        self.value = value
        self.allowed = allowed
        super().__init__(f"{parameter}={value!r} is not allowed: expected {allowed}")


class TimeoutExceededError(ResilienceError, TimeoutError):
    """A call ran past its time budget.

    A subclass of the builtin ``TimeoutError``, so ``except TimeoutError`` catches it.
    """

    def __init__(self, name: str, seconds: float) -> None:
        self.name = name
        self.seconds = seconds
        super().__init__(f"{name} did not finish within {seconds:g}s")


class CircuitOpenError(ResilienceError):
    """The circuit breaker guarding a call is open: the call was not attempted.

    ``retry_after`` is the number of seconds until the breaker lets a probe through
    (``None`` when it is open until someone closes it by hand).
    """

    def __init__(self, name: str, retry_after: float | None) -> None:
        self.name = name
        self.retry_after = retry_after
        hint = "until reset" if retry_after is None else f"retry in {retry_after:.3g}s"
        super().__init__(f"circuit {name!r} is open ({hint})")
