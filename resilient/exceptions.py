"""The errors resilient raises: one family, each carrying what a caller needs to react."""

from __future__ import annotations

from typing import TYPE_CHECKING

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
    ``name`` is the function, ``seconds`` the budget it had. ``late_by`` is how many
    seconds after the deadline the caller was released when that was measured (``None``
    when the timeout fired on time), and ``reason`` says why it came that late, when it
    came late enough to need a reason (C code holding the GIL, a blocking C call).
    """

    # No Python __init__: the exception is built in C, the values live in ``args`` and the
    # message is formatted only when read. These errors are raised on hot paths. (Being an
    # OSError, it keeps only two ``args``: a late error sets ``late_by`` and ``reason`` as
    # attributes, which pickle with the instance's ``__dict__``.)
    late_by: float | None = None
    reason: str | None = None

    if TYPE_CHECKING:

        def __init__(self, name: str, seconds: float) -> None: ...

    @property
    def name(self) -> str:
        return str(self.args[0])

    @name.setter
    def name(self, value: str) -> None:
        self.args = (value, *self.args[1:])

    @property
    def seconds(self) -> float:
        return float(self.args[1])

    @seconds.setter
    def seconds(self, value: float) -> None:
        self.args = (self.args[0], value, *self.args[2:])

    def __str__(self) -> str:
        message = f"{self.name} did not finish within {self.seconds:g}s"
        late, reason = self.late_by, self.reason
        if reason is None:
            return message
        if late is not None:
            message += f"; the caller was released {late:.3g}s after the deadline"
        return f"{message}: {reason}"


class CircuitOpenError(ResilienceError):
    """The circuit breaker guarding a call is open: the call was not attempted.

    ``retry_after`` is the number of seconds until the breaker lets a probe through
    (``None`` when it is open until someone closes it by hand).
    """

    if TYPE_CHECKING:

        def __init__(self, name: str, retry_after: float | None) -> None: ...

    @property
    def name(self) -> str:
        return str(self.args[0])

    @name.setter
    def name(self, value: str) -> None:
        self.args = (value, *self.args[1:])

    @property
    def retry_after(self) -> float | None:
        value: float | None = self.args[1]
        return value

    @retry_after.setter
    def retry_after(self, value: float | None) -> None:
        self.args = (self.args[0], value, *self.args[2:])

    def __str__(self) -> str:
        retry_after = self.retry_after
        hint = "until reset" if retry_after is None else f"retry in {retry_after:.3g}s"
        return f"circuit {self.name!r} is open ({hint})"
