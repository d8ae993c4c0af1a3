"""Telemetry: a sliding window of latencies and errors, and the health report built on it.

Every decorated call feeds the window while metrics are on (``resilient.configure(
metrics=...)``); the ``record_*`` functions feed it by hand. ``generate_report`` reads it:

- **critical**: any circuit breaker open;
- **unhealthy**: more than 50 errors, or p95 latency above 2 s;
- **degraded**: 10 to 50 errors, or p95 latency from 1 s to 2 s;
- **healthy**: otherwise.

"Errors" and "latency" cover the last ``window`` seconds (default 5 minutes), or the last
``max_samples`` calls when more happened; errors are ``client_http_errors_total``,
``timeouts_total`` and ``sync_failures_total``. Bulkheads whose every slot is taken are
listed (``saturated_bulkheads``) without changing the status: a full bulkhead is doing
its job, and its refusals show in ``bulkhead_rejections_total``.

With metrics off, errors still reach the window: the failure paths (a timeout raised, an
HTTP error, a call an open breaker rejected) call ``count``, which costs nothing on
the success path. Latency needs a clock read around every call, so it is measured only
while metrics are on (or recorded by hand): otherwise the report says
``latency_measured: false`` and ``requests: null`` rather than implying it is fine.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from ._runtime import config as _config
from ._runtime.types import Emit, Tags
from .metrics._names import (
    CLIENT_HTTP_ERRORS,
    ERROR_COUNTERS,
    FALLBACKS_USED,
    REQUEST_LATENCY,
    RETRY_ATTEMPTS,
    SYNC_FAILURES,
    SYNC_SUCCESS,
    TIMEOUTS,
)

__all__ = [
    "HealthStatus",
    "TelemetryWindow",
    "count",
    "count_error",
    "generate_report",
    "record_fallback",
    "record_http_error",
    "record_request_latency",
    "record_retry_attempt",
    "record_sync",
    "saturated_bulkheads",
    "set_gauge",
    "window",
    "window_figures",
]


class HealthStatus:
    """The four health statuses, as plain strings (they go into JSON)."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"
    CRITICAL = "critical"


_OPEN = ("open", "forced_open")
_ERROR_KIND = {TIMEOUTS: "timeout", SYNC_FAILURES: "sync_failure"}


class TelemetryWindow:
    """Latency samples and error events of the recent past, bounded in memory."""

    def __init__(self, seconds: float = 300.0, max_samples: int = 10_000) -> None:
        self.seconds = seconds
        self.latencies: deque[tuple[float, float]] = deque(maxlen=max_samples)
        self.errors: deque[tuple[float, str, float]] = deque(maxlen=max_samples)
        self.totals: dict[str, float] = {}
        self.gauges: dict[tuple[str, Tags], float] = {}
        self._dropped = 0  # gauges dropped since ``gauges`` was last compacted
        self._lock = threading.Lock()

    # The MetricsSink protocol, so the window can also be used as a sink on its own.

    def increment(self, name: str, value: float = 1, tags: Tags = ()) -> None:
        with self._lock:
            self.totals[name] = self.totals.get(name, 0) + value
        if name in ERROR_COUNTERS:
            kind = dict(tags).get("type") or _ERROR_KIND.get(name, name)
            self.errors.append((_config.state.now(), kind, value))

    def gauge(self, name: str, value: float, tags: Tags = ()) -> None:
        with self._lock:
            self.gauges[name, tags] = value

    def drop_gauges(self, name: str, tag_sets: Iterable[Tags]) -> None:
        """Forget the gauges ``name`` of ``tag_sets`` (their subject is gone)."""
        with self._lock:
            gauges = self.gauges
            for tags in tag_sets:
                if gauges.pop((name, tags), None) is not None:
                    self._dropped += 1
            if self._dropped >= len(gauges):
                # A dict keeps its size after deletions: a copy gives the memory back
                # (once dead slots outnumber live ones, so the cost is amortised).
                self.gauges = dict(gauges)
                self._dropped = 0

    def timing(self, name: str, ms: float, tags: Tags = ()) -> None:
        if name == REQUEST_LATENCY:
            self.latencies.append((_config.state.now(), ms))

    def flush(self) -> None:
        pass

    def clear(self) -> None:
        self.latencies.clear()
        self.errors.clear()
        self.totals.clear()
        self.gauges.clear()


window: TelemetryWindow = TelemetryWindow()
_config.on_reset(window.clear)

_circuit_sources: list[Callable[[], dict[str, str]]] = []


_bulkhead_sources: list[Callable[[], dict[str, dict[str, int]]]] = []


def add_bulkhead_source(source: Callable[[], dict[str, dict[str, int]]]) -> None:
    """Register a function returning the saturated bulkheads, ``{name: {"active": ...}}``."""
    _bulkhead_sources.append(source)


def saturated_bulkheads() -> dict[str, dict[str, int]]:
    """Bulkheads whose every slot is taken, with their use and limits (by name)."""
    found: dict[str, dict[str, int]] = {}
    for source in _bulkhead_sources:
        found.update(source())
    return found


def add_circuit_source(source: Callable[[], dict[str, str]]) -> None:
    """Register a function returning ``{breaker name: state}`` for the report."""
    _circuit_sources.append(source)


def count(name: str, tags: Tags = (), value: float = 1, emitter: Emit | None = None) -> None:
    """Count ``value`` of counter ``name``: through ``emitter`` (default: the configured
    one), which feeds the telemetry window too, or with metrics off in the window alone,
    so the health report sees it either way."""
    emit = emitter or _config.state.emit
    if emit is not None:
        emit.increment(name, tags, value)
    else:
        window.increment(name, value, tags)


def count_error(name: str, tags: Tags = ()) -> None:
    """Count one failure-path event (``timeouts_total``, ``calls_rejected_total``...) in the
    telemetry window, for code running with no emitter: with metrics on, the emitter
    feeds the window already, so callers call this only when they have none."""
    window.increment(name, 1, tags)


def record_request_latency(endpoint: str, ms: float) -> None:
    """Record one request's latency, in milliseconds, under ``endpoint``."""
    tags = (("endpoint", endpoint),)
    emit = _config.state.emit
    if emit is not None:
        emit.latency(ms, _config.state.now(), tags)
    else:
        window.timing(REQUEST_LATENCY, ms, tags)


def record_http_error(kind: str, endpoint: str = "") -> None:
    """Count one HTTP error of ``kind`` (timeout, connect, 5xx, captive_portal...)."""
    count(CLIENT_HTTP_ERRORS, (("type", kind), ("endpoint", endpoint)))


def record_retry_attempt(policy: str = "") -> None:
    """Count one retry (not a first attempt)."""
    count(RETRY_ATTEMPTS, (("policy", policy),))


def record_fallback(policy: str = "") -> None:
    """Count one fallback answer."""
    count(FALLBACKS_USED, (("policy", policy),))


def record_sync(success: bool, items: int = 1) -> None:
    """Count items an offline queue synced (``sync_success_total``) or failed to."""
    count(SYNC_SUCCESS if success else SYNC_FAILURES, (), items)


def set_gauge(name: str, value: float, **tags: str) -> None:
    """Set a gauge such as ``pending_sync_items`` or ``active_requests``."""
    labels = tuple(tags.items())
    emit = _config.state.emit
    if emit is not None:
        emit.gauge(name, value, labels)
    else:
        window.gauge(name, value, labels)


def _percentile(ordered: list[float], fraction: float) -> float | None:
    if not ordered:
        return None
    rank = max(0, min(len(ordered) - 1, int(fraction * len(ordered) + 0.999999) - 1))
    return ordered[rank]


def _circuits() -> dict[str, str]:
    states: dict[str, str] = {}
    for source in _circuit_sources:
        states.update(source())
    return states


def generate_report(services: Iterable[str] | None = None) -> dict[str, Any]:
    """A JSON-serialisable health report, by the status rules at the top of this module.

    ``services`` names breakers whose state the report should list (all known ones when
    omitted); an open breaker anywhere makes the status critical.
    """
    latencies, errors_by_type, measured = window_figures()
    total_errors = sum(errors_by_type.values())
    p95 = _percentile(latencies, 0.95)
    circuits = _circuits()
    saturated = saturated_bulkheads()
    open_circuits = sorted(name for name, state in circuits.items() if state in _OPEN)
    status, reason = _status(total_errors, p95, open_circuits, measured)
    wanted = list(services) if services is not None else sorted(circuits)
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "window_seconds": window.seconds,
        "summary": {
            "health_status": status,
            "reason": reason,
            "total_errors": total_errors,
            "latency_p95_ms": p95,
            "latency_measured": measured,
            "open_circuits": len(open_circuits),
            "requests": len(latencies) if measured else None,
            "saturated_bulkheads": len(saturated),
        },
        "latency_ms": {
            "count": len(latencies),
            "p50": _percentile(latencies, 0.50),
            "p95": p95,
            "p99": _percentile(latencies, 0.99),
            "max": latencies[-1] if latencies else None,
        },
        "errors_by_type": errors_by_type,
        "open_circuits": open_circuits,
        "services": {name: circuits.get(name, "unknown") for name in wanted},
        "saturated_bulkheads": saturated,
        "counters": dict(window.totals),
        "gauges": {
            name + "".join(f",{k}={v}" for k, v in tags): value
            for (name, tags), value in list(window.gauges.items())
        },
        "uptime_seconds": round(time.monotonic() - _STARTED, 3),
    }


_STARTED = time.monotonic()


def window_figures() -> tuple[list[float], dict[str, float], bool]:
    """The window's latencies (sorted), its errors by type, and whether latency is measured.

    Latency counts as measured while metrics are on, or when samples were recorded by hand.
    """
    since = _config.state.now() - window.seconds
    latencies = sorted(ms for at, ms in list(window.latencies) if at >= since)
    errors_by_type: dict[str, float] = {}
    for at, kind, value in list(window.errors):
        if at >= since:
            errors_by_type[kind] = errors_by_type.get(kind, 0) + value
    measured = _config.state.emit is not None or bool(latencies)
    return latencies, errors_by_type, measured


def _status(
    errors: float, p95: float | None, open_circuits: list[str], measured: bool = True
) -> tuple[str, str]:
    latency = p95 or 0.0
    if open_circuits:
        return HealthStatus.CRITICAL, f"circuit open: {', '.join(open_circuits)}"
    if errors > 50:
        return HealthStatus.UNHEALTHY, f"{errors:g} errors > 50"
    if latency > 2000:
        return HealthStatus.UNHEALTHY, f"p95 latency {latency:g} ms > 2000 ms"
    if errors >= 10:
        return HealthStatus.DEGRADED, f"{errors:g} errors (10 to 50)"
    if latency >= 1000:
        return HealthStatus.DEGRADED, f"p95 latency {latency:g} ms (1000 to 2000 ms)"
    if not measured:
        return HealthStatus.HEALTHY, (
            "fewer than 10 errors, no open circuit; latency not measured (metrics are off)"
        )
    return HealthStatus.HEALTHY, "fewer than 10 errors, p95 latency under 1 s, no open circuit"
