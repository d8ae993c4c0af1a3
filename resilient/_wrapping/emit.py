"""What decorators call to report: the telemetry window plus the configured sink, guarded.

A sink that raises is logged once per kind of failure (``resilient._runtime.logs``) and never
reaches the caller.
"""

from __future__ import annotations

from .._runtime.types import MetricsSink, Tags
from ..exceptions import ConfigError
from ..metrics._names import REQUEST_LATENCY
from ..telemetry import TelemetryWindow, window

__all__ = ["Emitter", "emitter_for"]


class Emitter:
    """Feeds one sink and the telemetry window."""

    __slots__ = ("sink", "window")

    def __init__(self, sink: MetricsSink, telemetry: TelemetryWindow = window) -> None:
        self.sink = sink
        self.window = telemetry
        for (name, tags), value in list(telemetry.gauges.items()):
            self.gauge(name, value, tags)  # gauges report their value when created

    def increment(self, name: str, tags: Tags, value: float = 1) -> None:
        self.window.increment(name, value, tags)
        try:
            self.sink.increment(name, value, tags)
        except Exception as error:
            _failed(self.sink, error)

    def gauge(self, name: str, value: float, tags: Tags) -> None:
        self.window.gauge(name, value, tags)
        try:
            self.sink.gauge(name, value, tags)
        except Exception as error:
            _failed(self.sink, error)

    def timing(self, name: str, ms: float, tags: Tags) -> None:
        """A duration other than a call's (``rate_limit_wait_ms``): the sink alone."""
        try:
            self.sink.timing(name, ms, tags)
        except Exception as error:
            _failed(self.sink, error)

    def latency(self, ms: float, at: float, tags: Tags) -> None:
        """One call's duration; ``at`` is when it ended, on the configured clock."""
        self.window.latencies.append((at, ms))
        try:
            self.sink.timing(REQUEST_LATENCY, ms, tags)
        except Exception as error:
            _failed(self.sink, error)


def emitter_for(sink: MetricsSink | None) -> Emitter | None:
    """The emitter of a decorator's ``metrics=`` override (``None``: use the configured one)."""
    if sink is None:
        return None
    if not isinstance(sink, MetricsSink):
        raise ConfigError("metrics", sink, "a sink with increment(), gauge(), timing() and flush()")
    return Emitter(sink)


def _failed(sink: object, error: Exception) -> None:
    from .._runtime.logs import digest

    digest.report("metrics sink failed", repr(sink), f"{type(error).__name__}: {error}")
