"""The types every layer shares: durations, error filters, the clock, the metrics sink
and the emitter decorators report through."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "Emit", "ExceptionFilter", "MetricsSink", "OnRetry", "Seconds", "Tags"]

Tags = tuple[tuple[str, str], ...]
"""Labels of one series, as ``(("breaker", "ai"),)``: a tuple, so it is hashable and cheap."""


@runtime_checkable
class MetricsSink(Protocol):
    """Receives counters, gauges and timings. Must be cheap: it runs on callers' hot paths."""

    def increment(self, name: str, value: float = 1, tags: Tags = ()) -> None:
        """Add ``value`` to the counter ``name``."""
        ...

    def gauge(self, name: str, value: float, tags: Tags = ()) -> None:
        """Set the gauge ``name`` to ``value``."""
        ...

    def timing(self, name: str, ms: float, tags: Tags = ()) -> None:
        """Record one duration of ``ms`` milliseconds."""
        ...

    def flush(self) -> None:
        """Send whatever is buffered now."""
        ...


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


class Emit(Protocol):
    """What decorators report through: the telemetry window plus the configured sink."""

    def increment(self, name: str, tags: Tags, value: float = 1) -> None:
        """Add ``value`` to the counter ``name``."""
        ...

    def gauge(self, name: str, value: float, tags: Tags) -> None:
        """Set the gauge ``name`` to ``value``."""
        ...

    def latency(self, ms: float, at: float, tags: Tags) -> None:
        """One call's duration; ``at`` is when it ended, on the configured clock."""
        ...

    def timing(self, name: str, ms: float, tags: Tags) -> None:
        """Another duration (``rate_limit_wait_ms``), in milliseconds."""
        ...
