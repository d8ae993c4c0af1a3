"""The sink protocol every metrics backend implements."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["MetricsSink", "Tags"]

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
