"""The names of every metric resilient records (dashboards and alerts rely on them).

Each metric is declared once, with :func:`declare`: its name (what StatsD, ``MemorySink``
and ``LoggingSink`` show), its kind, the one label set every recorder of it uses, and a
help text. Sinks with a schema (Prometheus, OpenTelemetry) read the declaration from
:data:`CATALOG`: a label a recorder leaves out is sent empty, never as a second label set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "ACTIVE_REQUESTS",
    "BULKHEAD_ACTIVE",
    "BULKHEAD_REJECTIONS",
    "CALLS_REJECTED",
    "CATALOG",
    "CHAOS_INJECTIONS",
    "CIRCUIT_BREAKER_OPENS",
    "CLIENT_HTTP_ERRORS",
    "COUNTERS",
    "DEAD_LETTER_ITEMS",
    "ERROR_COUNTERS",
    "FALLBACKS_USED",
    "GAUGES",
    "HEDGES",
    "HEDGE_WINS",
    "HOOK_ERRORS",
    "LATENCY_BUCKETS_SECONDS",
    "METRICS_DROPPED",
    "OPEN_CIRCUITS",
    "PENDING_SYNC_ITEMS",
    "RATE_LIMITED",
    "RATE_LIMIT_WAIT",
    "REQUEST_LATENCY",
    "RETRY_ATTEMPTS",
    "STORE_ERRORS",
    "SYNC_FAILURES",
    "SYNC_SUCCESS",
    "TIMEOUTS",
    "TIMINGS",
    "Metric",
    "declare",
]

Kind = Literal["counter", "gauge", "timing"]


@dataclass(frozen=True, slots=True)
class Metric:
    """One metric as every sink sees it.

    ``name`` is what decorators record under; ``base`` is that name without its type or
    unit suffix (``retry_attempts``, ``request_latency``), from which Prometheus
    (``_total``, ``_seconds``) and OpenTelemetry (unit ``s``) build theirs. Timings are
    recorded in milliseconds and reported in seconds where the backend expects it.
    """

    name: str
    kind: Kind
    labels: tuple[str, ...]
    help: str

    @property
    def base(self) -> str:
        suffix = {"counter": "_total", "timing": "_ms"}.get(self.kind, "")
        return self.name.removesuffix(suffix) if suffix else self.name

    @property
    def unit(self) -> str:
        """The OpenTelemetry unit: ``s`` for timings, ``1`` for counts."""
        return "s" if self.kind == "timing" else "1"

    @property
    def prometheus_name(self) -> str:
        """``<base>_total`` for counters, ``<base>_seconds`` for timings, the name for gauges."""
        if self.kind == "counter":
            return f"{self.base}_total"
        if self.kind == "timing":
            return f"{self.base}_seconds"
        return self.name


LATENCY_BUCKETS_SECONDS: Final = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
"""Histogram bucket bounds for latencies in seconds: in-process calls to slow AI services."""

CATALOG: dict[str, Metric] = {}
"""Every declared metric by its name."""


def declare(name: str, kind: Kind, labels: tuple[str, ...], help: str) -> str:
    """Declare a metric once and return its name (the constant recorders use)."""
    if name in CATALOG:
        raise ValueError(f"metric {name!r} is declared twice")
    CATALOG[name] = Metric(name, kind, labels, help)
    return name


CLIENT_HTTP_ERRORS: Final = declare(
    "client_http_errors_total",
    "counter",
    ("type", "endpoint"),
    "HTTP requests of the resilient client that failed, by kind of failure and endpoint.",
)
SYNC_FAILURES: Final = declare(
    "sync_failures_total",
    "counter",
    ("kind",),
    "Deliveries of outbox items that failed (the item is tried again later), by kind.",
)
SYNC_SUCCESS: Final = declare(
    "sync_success_total", "counter", ("kind",), "Outbox items delivered, by kind."
)
CIRCUIT_BREAKER_OPENS: Final = declare(
    "circuit_breaker_opens_total",
    "counter",
    ("breaker",),
    "Times a circuit breaker tripped open (closed or half-open to open).",
)
RETRY_ATTEMPTS: Final = declare(
    "retry_attempts_total",
    "counter",
    ("policy",),
    "Retries made by a retry policy (attempts after the first).",
)
FALLBACKS_USED: Final = declare(
    "fallbacks_used_total",
    "counter",
    ("policy",),
    "Calls answered by a fallback instead of the decorated function.",
)
REQUEST_LATENCY: Final = declare(
    "request_latency_ms",
    "timing",
    ("policy", "endpoint"),
    "Duration of calls through a decorated function (policy) or the HTTP client (endpoint), "
    "retries and waits included.",
)
ACTIVE_REQUESTS: Final = declare(
    "active_requests", "gauge", (), "HTTP requests of the resilient client in flight now."
)
PENDING_SYNC_ITEMS: Final = declare(
    "pending_sync_items", "gauge", (), "Items waiting in an outbox to be delivered."
)
DEAD_LETTER_ITEMS: Final = declare(
    "dead_letter_items",
    "gauge",
    (),
    "Outbox items set aside after their last attempt failed (see Outbox.dead()).",
)
OPEN_CIRCUITS: Final = declare(
    "open_circuits", "gauge", ("breaker",), "1 while the circuit breaker is open, else 0."
)
TIMEOUTS: Final = declare(
    "timeouts_total", "counter", ("policy",), "Calls whose time budget ran out."
)
CALLS_REJECTED: Final = declare(
    "calls_rejected_total",
    "counter",
    ("breaker",),
    "Calls an open circuit breaker refused without running them.",
)
STORE_ERRORS: Final = declare(
    "store_errors_total",
    "counter",
    ("store",),
    "State store operations that failed (the breaker used local state instead).",
)
METRICS_DROPPED: Final = declare(
    "metrics_dropped_total",
    "counter",
    (),
    "Metric values a sink could not send (full buffer, value or name it cannot encode).",
)
HOOK_ERRORS: Final = declare(
    "hook_errors_total",
    "counter",
    ("name", "hook"),
    "User hooks and predicates that raised (the call's own outcome was kept).",
)
BULKHEAD_REJECTIONS: Final = declare(
    "bulkhead_rejections_total",
    "counter",
    ("bulkhead",),
    "Calls a full bulkhead refused (no free slot, no place or no time to queue).",
)
BULKHEAD_ACTIVE: Final = declare(
    "bulkhead_active", "gauge", ("bulkhead",), "Calls running inside the bulkhead now."
)
HEDGES: Final = declare(
    "hedges_total",
    "counter",
    ("policy",),
    "Hedge attempts started because the first attempt had not answered in time.",
)
HEDGE_WINS: Final = declare(
    "hedge_wins_total",
    "counter",
    ("policy",),
    "Hedged calls answered first by a hedge rather than by the first attempt.",
)
RATE_LIMITED: Final = declare(
    "rate_limited_total",
    "counter",
    ("rate_limit",),
    "Calls a rate limit held back (waited for a token) or refused.",
)
RATE_LIMIT_WAIT: Final = declare(
    "rate_limit_wait_ms",
    "timing",
    ("rate_limit",),
    "Time calls waited for a rate limit's token.",
)
CHAOS_INJECTIONS: Final = declare(
    "chaos_injections_total",
    "counter",
    ("kind", "policy"),
    "Faults, latencies and results injected by resilient.chaos (never in production "
    "unless RESILIENT_CHAOS is set).",
)

# Derived from the catalogue: keep these last, after every declare().
COUNTERS: Final = tuple(m.name for m in CATALOG.values() if m.kind == "counter")
GAUGES: Final = tuple(m.name for m in CATALOG.values() if m.kind == "gauge")
TIMINGS: Final = tuple(m.name for m in CATALOG.values() if m.kind == "timing")
ERROR_COUNTERS: Final = (CLIENT_HTTP_ERRORS, TIMEOUTS, SYNC_FAILURES)
"""The counters whose increments count as errors in the health report."""
