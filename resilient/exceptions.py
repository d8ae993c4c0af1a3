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
        super().__init__(parameter, value, allowed)  # args as given: the error pickles
        self.parameter = parameter
        self.value = value
        self.allowed = allowed

    def __str__(self) -> str:
        return f"{self.parameter}={self.value!r} is not allowed: expected {self.allowed}"


class TimeoutExceededError(ResilienceError, TimeoutError):
    """A call ran past its time budget.

    A subclass of the builtin ``TimeoutError``, so ``except TimeoutError`` catches it.
    """

    def __init__(self, name: str, seconds: float) -> None:
        super().__init__(name, seconds)
        self.name = name
        self.seconds = seconds

    def __str__(self) -> str:
        return f"{self.name} did not finish within {self.seconds:g}s"


class CircuitOpenError(ResilienceError):
    """The circuit breaker guarding a call is open: the call was not attempted.

    ``retry_after`` is the number of seconds until the breaker lets a probe through
    (``None`` when it is open until someone closes it by hand).
    """

    def __init__(self, name: str, retry_after: float | None) -> None:
        # Raised on every rejected call: the message is only formatted if someone reads it.
        super().__init__(name, retry_after)
        self.name = name
        self.retry_after = retry_after

    def __str__(self) -> str:
        retry_after = self.retry_after
        hint = "until reset" if retry_after is None else f"retry in {retry_after:.3g}s"
        return f"circuit {self.name!r} is open ({hint})"
