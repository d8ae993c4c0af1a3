"""The names of every metric resilient records (dashboards and alerts rely on them)."""

from __future__ import annotations

from typing import Final

__all__ = [
    "ACTIVE_REQUESTS",
    "BULKHEAD_ACTIVE",
    "BULKHEAD_REJECTIONS",
    "CALLS_REJECTED",
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
]

CLIENT_HTTP_ERRORS: Final = "client_http_errors_total"
SYNC_FAILURES: Final = "sync_failures_total"
SYNC_SUCCESS: Final = "sync_success_total"
CIRCUIT_BREAKER_OPENS: Final = "circuit_breaker_opens_total"
RETRY_ATTEMPTS: Final = "retry_attempts_total"
FALLBACKS_USED: Final = "fallbacks_used_total"
REQUEST_LATENCY: Final = "request_latency_ms"
ACTIVE_REQUESTS: Final = "active_requests"
PENDING_SYNC_ITEMS: Final = "pending_sync_items"
DEAD_LETTER_ITEMS: Final = "dead_letter_items"
OPEN_CIRCUITS: Final = "open_circuits"
TIMEOUTS: Final = "timeouts_total"
CALLS_REJECTED: Final = "calls_rejected_total"
STORE_ERRORS: Final = "store_errors_total"
METRICS_DROPPED: Final = "metrics_dropped_total"
HOOK_ERRORS: Final = "hook_errors_total"
BULKHEAD_REJECTIONS: Final = "bulkhead_rejections_total"
BULKHEAD_ACTIVE: Final = "bulkhead_active"
HEDGES: Final = "hedges_total"
HEDGE_WINS: Final = "hedge_wins_total"
RATE_LIMITED: Final = "rate_limited_total"
RATE_LIMIT_WAIT: Final = "rate_limit_wait_ms"

COUNTERS: Final = (
    CLIENT_HTTP_ERRORS,
    SYNC_FAILURES,
    SYNC_SUCCESS,
    CIRCUIT_BREAKER_OPENS,
    RETRY_ATTEMPTS,
    FALLBACKS_USED,
    TIMEOUTS,
    CALLS_REJECTED,
    STORE_ERRORS,
    METRICS_DROPPED,
    HOOK_ERRORS,
    BULKHEAD_REJECTIONS,
    HEDGES,
    HEDGE_WINS,
    RATE_LIMITED,
)
GAUGES: Final = (
    ACTIVE_REQUESTS,
    PENDING_SYNC_ITEMS,
    DEAD_LETTER_ITEMS,
    OPEN_CIRCUITS,
    BULKHEAD_ACTIVE,
)
TIMINGS: Final = (REQUEST_LATENCY, RATE_LIMIT_WAIT)
ERROR_COUNTERS: Final = (CLIENT_HTTP_ERRORS, TIMEOUTS, SYNC_FAILURES)
"""The counters whose increments count as errors in the health report."""
