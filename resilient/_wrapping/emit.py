"""What decorators call to report: the telemetry window plus the configured sink, guarded.

A sink that raises is logged once per kind of failure (``resilient._runtime.logs``) and never
reaches the caller.
"""

from __future__ import annotations

from collections.abc import Callable

from .._runtime.types import MetricsSink, Tags
from ..exceptions import ConfigError
from ..metrics._names import REQUEST_LATENCY
from ..telemetry import TelemetryWindow, window

__all__ = ["Emitter", "emitter_for"]


_MAX_TIMERS = 10_000  # latency series with a recorder of their own; series are few


class Emitter:
    """Feeds one sink and the telemetry window.

    A sink with ``timing_recorder(name, tags)`` (the buffered sinks) hands out one recorder per
    latency series; the emitter keeps it by the series' tags, so timing a call neither
    builds a tuple nor looks the series up in the sink. A subclass that overrides
    ``timing`` (to rename or retag) is called through its ``timing``, as any sink.
    """

    __slots__ = ("_timers", "latency", "sink", "window")

    def __init__(self, sink: MetricsSink, telemetry: TelemetryWindow = window) -> None:
        self.sink: MetricsSink = sink
        self.window: TelemetryWindow = telemetry
        recorders = _records_directly(sink)
        self._timers: dict[Tags, Callable[[float], object]] | None = {} if recorders else None
        self.latency: Callable[[float, float, Tags], None] = self._latency()
        """``latency(ms, at, tags)``: one call's duration; ``at`` is when it ended, on the
        configured clock."""
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

    def _latency(self) -> Callable[[float, float, Tags], None]:
        """``latency``, made once per emitter: a plain function (no bound method per call)
        with what it reads bound in."""
        sink, window, timers = self.sink, self.window, self._timers
        if timers is None:
            timing = sink.timing

            def latency(ms: float, at: float, tags: Tags) -> None:
                window.latencies.append((at, ms))
                try:
                    timing(REQUEST_LATENCY, ms, tags)
                except Exception as error:
                    _failed(sink, error)

            return latency
        get = timers.get

        def recorded(ms: float, at: float, tags: Tags) -> None:
            window.latencies.append((at, ms))
            try:
                record = get(tags)
                if record is None:
                    record = _recorder(sink, timers, tags)
                record(ms)
            except Exception as error:
                _failed(sink, error)

        return recorded


def _records_directly(sink: MetricsSink) -> bool:
    """Whether ``sink``'s recorders do what its ``timing`` does: it has ``timing_recorder``,
    and its ``timing`` is the one defined beside it (not a subclass's override)."""
    kind = type(sink)
    if not callable(getattr(kind, "timing_recorder", None)):
        return False
    for klass in kind.__mro__:
        if "timing_recorder" in vars(klass):
            return vars(klass).get("timing") is getattr(kind, "timing", None)
    return False


def _recorder(
    sink: MetricsSink, timers: dict[Tags, Callable[[float], object]], tags: Tags
) -> Callable[[float], object]:
    """The sink's recorder of the latency series ``tags``, kept while there are few series."""
    record: Callable[[float], object] = sink.timing_recorder(REQUEST_LATENCY, tags)  # type: ignore[attr-defined]
    if len(timers) < _MAX_TIMERS:
        timers[tags] = record
    return record


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
