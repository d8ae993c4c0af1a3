"""Public protocols and aliases, for annotating code that plugs into resilient."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "ExceptionFilter", "OnRetry", "Seconds"]

Seconds = float | int | timedelta
"""A duration: seconds as a number, or a ``timedelta``."""

ExceptionFilter = (
    type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]
)
"""Which errors a decorator reacts to: exception types, or a predicate on the error."""

OnRetry = Callable[[int, BaseException, float], object]
"""``on_retry(attempt, error, delay)``: ``attempt`` is the number of the attempt that failed."""


@runtime_checkable
class Clock(Protocol):
    """Where every decorator reads time and sleeps, so tests can swap in a fake."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block the calling thread for ``seconds``."""
        ...

    async def asleep(self, seconds: float) -> None:
        """Suspend the calling task for ``seconds``."""
        ...
