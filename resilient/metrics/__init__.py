"""Metrics sinks: where every decorator's counters, gauges and timings go.

Install one with ``resilient.configure(metrics=...)``; every metric's name
(``retry_attempts_total``, ``request_latency_ms``...) is listed in ``resilient.metrics.names``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._runtime.types import MetricsSink, Tags
from . import _names as names
from ._simple import FanoutSink, MemorySink, NullSink

if TYPE_CHECKING:
    from ._buffered import Batch, BufferedSink
    from ._logging import LoggingSink
    from ._otel import OpenTelemetrySink
    from ._prometheus import PrometheusSink
    from ._statsd import StatsdSink

_LAZY = {
    "Batch": "._buffered",
    "BufferedSink": "._buffered",
    "LoggingSink": "._logging",
    "OpenTelemetrySink": "._otel",
    "PrometheusSink": "._prometheus",
    "StatsdSink": "._statsd",
}


def __getattr__(name: str) -> Any:
    # The batching sinks (a thread, sockets) load when first named, not on import.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module, __name__), name)


__all__ = [
    "Batch",
    "BufferedSink",
    "FanoutSink",
    "LoggingSink",
    "MemorySink",
    "MetricsSink",
    "NullSink",
    "OpenTelemetrySink",
    "PrometheusSink",
    "StatsdSink",
    "Tags",
    "names",
]
