"""Metrics sinks: where every decorator's counters, gauges and timings go.

Install one with ``resilient.configure(metrics=...)``; the names are the seed's
(``retry_attempts_total``, ``request_latency_ms``...), listed in ``resilient.metrics.names``.
"""

from __future__ import annotations

from . import _names as names
from ._buffered import Batch, BufferedSink
from ._logging import LoggingSink
from ._prometheus import PrometheusSink
from ._protocol import MetricsSink, Tags
from ._simple import FanoutSink, MemorySink, NullSink
from ._statsd import StatsdSink

__all__ = [
    "Batch",
    "BufferedSink",
    "FanoutSink",
    "LoggingSink",
    "MemorySink",
    "MetricsSink",
    "NullSink",
    "PrometheusSink",
    "StatsdSink",
    "Tags",
    "names",
]
