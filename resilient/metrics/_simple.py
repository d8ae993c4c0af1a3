"""Sinks that need no background work: ``NullSink``, ``MemorySink``, ``FanoutSink``."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable

from .._runtime.logs import digest
from .._runtime.types import MetricsSink, Tags
from ..exceptions import ConfigError

__all__ = ["FanoutSink", "MemorySink", "NullSink"]


class NullSink:
    """Accepts everything and keeps nothing (metrics on, destination none)."""

    __slots__ = ()

    def increment(self, name: str, value: float = 1, tags: Tags = ()) -> None:
        pass

    def gauge(self, name: str, value: float, tags: Tags = ()) -> None:
        pass

    def timing(self, name: str, ms: float, tags: Tags = ()) -> None:
        pass

    def flush(self) -> None:
        pass

    def __repr__(self) -> str:
        return "NullSink()"


def _matches(series: Tags, wanted: dict[str, str]) -> bool:
    labels = dict(series)
    return all(labels.get(key) == value for key, value in wanted.items())


class MemorySink:
    """Keeps every value in memory, for tests and for reading back what happened.

    Reading a metric with some tags omitted sums over every series that matches the
    tags given: ``counter("retry_attempts_total")`` counts retries of every policy.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[tuple[str, Tags], float] = defaultdict(float)
        self._gauges: dict[tuple[str, Tags], float] = {}
        self._timings: dict[tuple[str, Tags], list[float]] = defaultdict(list)

    def increment(self, name: str, value: float = 1, tags: Tags = ()) -> None:
        with self._lock:
            self._counters[name, tags] += value

    def gauge(self, name: str, value: float, tags: Tags = ()) -> None:
        with self._lock:
            self._gauges[name, tags] = value

    def timing(self, name: str, ms: float, tags: Tags = ()) -> None:
        with self._lock:
            self._timings[name, tags].append(ms)

    def flush(self) -> None:
        pass

    def counter(self, name: str, **tags: str) -> float:
        """The counter's total over the series matching ``tags``."""
        with self._lock:
            return sum(v for (n, s), v in self._counters.items() if n == name and _matches(s, tags))

    def gauge_value(self, name: str, **tags: str) -> float | None:
        """The gauge's value summed over matching series, or ``None`` if never set."""
        with self._lock:
            values = [v for (n, s), v in self._gauges.items() if n == name and _matches(s, tags)]
        return sum(values) if values else None

    def timings(self, name: str, **tags: str) -> list[float]:
        """Every duration recorded in the matching series (series by series, in order)."""
        with self._lock:
            return [
                ms
                for (n, s), values in self._timings.items()
                if n == name and _matches(s, tags)
                for ms in values
            ]

    def series(self) -> dict[str, list[dict[str, str]]]:
        """Every metric name seen, with the tag sets of its series."""
        with self._lock:
            keys = [*self._counters, *self._gauges, *self._timings]
        found: dict[str, list[dict[str, str]]] = defaultdict(list)
        for name, tags in keys:
            if dict(tags) not in found[name]:
                found[name].append(dict(tags))
        return dict(found)

    def clear(self) -> None:
        with self._lock:
            self._counters.clear()
            self._gauges.clear()
            self._timings.clear()

    def __repr__(self) -> str:
        return f"<MemorySink {len(self._counters)} counters {len(self._timings)} timings>"


class FanoutSink:
    """Sends every value to several sinks; one failing sink does not stop the others."""

    def __init__(self, *sinks: MetricsSink | Iterable[MetricsSink]) -> None:
        flat: list[MetricsSink] = []
        for sink in sinks:
            flat.extend(sink if isinstance(sink, list | tuple) else [sink])  # type: ignore[list-item]
        for sink in flat:
            if not isinstance(sink, MetricsSink):
                raise ConfigError(
                    "sinks", sink, "metrics sinks (with increment(), gauge(), timing(), flush())"
                )
        self.sinks: tuple[MetricsSink, ...] = tuple(flat)

    def increment(self, name: str, value: float = 1, tags: Tags = ()) -> None:
        for sink in self.sinks:
            try:
                sink.increment(name, value, tags)
            except Exception as error:
                _sink_failed(sink, error)

    def gauge(self, name: str, value: float, tags: Tags = ()) -> None:
        for sink in self.sinks:
            try:
                sink.gauge(name, value, tags)
            except Exception as error:
                _sink_failed(sink, error)

    def timing(self, name: str, ms: float, tags: Tags = ()) -> None:
        for sink in self.sinks:
            try:
                sink.timing(name, ms, tags)
            except Exception as error:
                _sink_failed(sink, error)

    def flush(self) -> None:
        for sink in self.sinks:
            try:
                sink.flush()
            except Exception as error:
                _sink_failed(sink, error)

    def __repr__(self) -> str:
        return f"FanoutSink({', '.join(map(repr, self.sinks))})"


def _sink_failed(sink: object, error: Exception) -> None:
    digest.report("metrics sink failed", type(sink).__name__, f"{type(error).__name__}: {error}")
