"""Every public parameter refuses a bad value with a ConfigError naming the parameter typed.

One row per (callable, parameter, bad value): the value is passed by keyword (or as the
only positional argument of a ``*args`` parameter), a returned decorator is applied to a
plain ``def`` (some checks happen when decorating), and the ``ConfigError`` must name the
parameter as the user typed it and mention each listed substring. A meta-test reads every
callable's signature and fails when a parameter has no row and no commented exemption, so
a new parameter cannot skip validation.
"""

from __future__ import annotations

import atexit
import inspect
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

import resilient
from resilient import asgi, chaos, wsgi
from resilient.asgi import StatusApp, status_app
from resilient.stores.redis import AsyncRedisStore, RedisStore


async def _async_fallback(*args: object, **kwargs: object) -> str:
    return "offline"


def _plain() -> str:
    return "ok"


def _wsgi_app(environ: object, start_response: object) -> list[bytes]:
    return [b"ok"]


_OUTBOX_FOLDER = tempfile.mkdtemp(prefix="resilient-config-errors-")
atexit.register(shutil.rmtree, _OUTBOX_FOLDER, True)
_OUTBOX_URL = f"sqlite:///{_OUTBOX_FOLDER}/outbox.db"
_OUTBOX = resilient.Outbox(_OUTBOX_URL)


def _starlette_app() -> Any:
    from starlette.applications import Starlette

    return Starlette()


def _flask_app() -> Any:
    from flask import Flask

    return Flask("config-errors")


async def _async_predicate(value: object) -> bool:
    """A predicate written async by mistake (a coroutine is always truthy)."""
    return False


@dataclass(frozen=True)
class Row:
    """One bad value for one parameter of one public callable."""

    target: Callable[..., Any]
    parameter: str
    """The keyword the value is passed as (or the name of the ``*args`` it fills)."""
    value: object
    mentions: tuple[str, ...] = ()
    """Substrings the message must contain (besides the parameter and the value)."""
    base: dict[str, Any] = field(default_factory=dict)
    """Other arguments the call needs to get as far as this parameter."""
    named: str | None = None
    """The ``.parameter`` expected when it is not ``parameter`` (``retry.attempts``)."""
    args: tuple[Any, ...] = ()
    """Positional arguments the call needs first (a fallback's values)."""

    def call(self) -> object:
        kind = inspect.signature(self.target).parameters[self.parameter].kind
        if kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.POSITIONAL_ONLY):
            return self.target(*self.args, self.value, **self.base)
        return self.target(*self.args, **{**self.base, self.parameter: self.value})

    def __str__(self) -> str:
        return f"{getattr(self.target, '__name__', self.target)}-{self.parameter}={self.value!r}"


def owned_elsewhere(row: Row, what: str) -> Any:
    """A row the module that owns the parameter does not pass yet (fixed there, not here)."""
    return pytest.param(
        row, id=str(row), marks=pytest.mark.xfail(reason=f"owned elsewhere: {what}", strict=True)
    )


def ok(row: Row) -> Any:
    return pytest.param(row, id=str(row))


REDIS_URL = "redis://127.0.0.1:1/0"  # never contacted: construction only
BreakerConfig = resilient.BreakerConfig
CircuitBreaker = resilient.CircuitBreaker
RetryConfig = resilient.RetryConfig
FallbackCache = resilient.FallbackCache
Feature = resilient.Feature
DegradationService = resilient.DegradationService
create_circuit_breaker = resilient.compat.create_circuit_breaker
_OPERATED = CircuitBreaker("cfg-operated")  # its methods' parameters need rows too

ROWS = [
    # timeout
    ok(Row(resilient.timeout, "seconds", -1, ("> 0",))),
    ok(Row(resilient.timeout, "seconds", "ai_operaton", ("did you mean 'ai_operation'?",))),
    ok(Row(resilient.timeout, "strategy", "fork", ("thread",), base={"seconds": 1})),
    ok(Row(resilient.timeout, "metrics", "statsd", base={"seconds": 1})),
    ok(Row(resilient.timeout, "max_threads", 0, base={"seconds": 1})),
    ok(Row(resilient.timeout, "per_item", -1, ("> 0",), base={"seconds": 1})),
    ok(Row(resilient.timeout, "per_item", "2s", ("seconds",), base={"seconds": 1})),
    # retry
    ok(Row(resilient.retry, "config", 3)),
    ok(Row(resilient.retry, "config", "standrad", ("did you mean 'standard'?",))),
    ok(Row(resilient.retry, "on", 3)),
    ok(Row(resilient.retry, "on", KeyboardInterrupt)),
    ok(Row(resilient.retry, "on", (ValueError, KeyboardInterrupt))),
    ok(Row(resilient.retry, "attempts", 0, (">= 1",))),
    ok(Row(resilient.retry, "initial_delay", -1)),
    ok(Row(resilient.retry, "max_delay", float("nan"))),
    ok(Row(resilient.retry, "multiplier", 0.5, (">= 1",))),
    ok(Row(resilient.retry, "jitter", 2, ("[0, 1]",))),
    ok(Row(resilient.retry, "on_retry", 3, ("callable",))),
    ok(Row(resilient.retry, "on_result", 3, ("callable",))),
    ok(Row(resilient.retry, "on_result", _async_predicate, ("not async",))),
    ok(Row(resilient.retry, "before", "log", ("callable",))),
    ok(Row(resilient.retry, "after", 1.5, ("callable",))),
    ok(Row(resilient.retry, "stop", 3, ("callable",))),
    ok(Row(resilient.retry, "wait", 3, ("callable",))),
    ok(Row(resilient.retry, "metrics", "statsd")),
    ok(Row(resilient.retry, "budget", 0.1, ("RetryBudget",))),
    ok(Row(resilient.retry, "max_retry_after", -1)),
    ok(Row(resilient.retry, "max_retry_after", 1e10, ("1e+09",))),
    ok(Row(resilient.retry, "restart_stream", "yes", ("True or False",))),
    # retrying()/aretrying(): the block form takes retry()'s settings, and a name
    *(
        ok(Row(block, parameter, value))
        for block in (resilient.retrying, resilient.aretrying)
        for parameter, value in (
            ("config", 3),
            ("name", ""),
            ("on", KeyboardInterrupt),
            ("attempts", 0),
            ("initial_delay", -1),
            ("max_delay", float("nan")),
            ("multiplier", 0.5),
            ("jitter", 2),
            ("max_retry_after", -1),
            ("on_retry", 3),
            ("before", 3),
            ("after", 3),
            ("stop", 3),
            ("wait", 3),
            ("metrics", "statsd"),
            ("budget", 0.1),
        )
    ),
    ok(Row(resilient.stats, "fn", print, ("@resilient.retry",))),
    # RetryConfig
    ok(Row(RetryConfig, "attempts", 0)),
    ok(Row(RetryConfig, "initial_delay", -1)),
    ok(Row(RetryConfig, "max_delay", "30")),
    ok(Row(RetryConfig, "multiplier", 0)),
    ok(Row(RetryConfig, "jitter", -0.1)),
    ok(Row(RetryConfig, "max_retry_after", float("inf"))),
    # breaker
    ok(Row(resilient.breaker, "name", 3)),
    ok(Row(resilient.breaker, "name", "")),
    ok(Row(resilient.breaker, "config", 3, ("BreakerConfig",))),
    ok(Row(resilient.breaker, "config", "ai_operaton", ("did you mean 'ai_operation'?",))),
    ok(Row(resilient.breaker, "store", 3, base={"name": "cfg-store"})),
    ok(Row(resilient.breaker, "critical", "yes", ("True or False",), base={"name": "cfg-crit"})),
    # BreakerConfig
    ok(Row(BreakerConfig, "failure_threshold", 0)),
    ok(Row(BreakerConfig, "failure_rate", 1.5)),
    ok(Row(BreakerConfig, "window_size", 0, base={"failure_rate": 0.5})),
    ok(Row(BreakerConfig, "window_duration", -1, base={"failure_rate": 0.5})),
    ok(Row(BreakerConfig, "minimum_calls", 0, base={"failure_rate": 0.5})),
    ok(Row(BreakerConfig, "slow_call_duration", 0)),
    ok(Row(BreakerConfig, "slow_call_rate", 2, base={"slow_call_duration": 1})),
    ok(Row(BreakerConfig, "reset_timeout", 0)),
    ok(Row(BreakerConfig, "reset_backoff", 0.5)),
    ok(Row(BreakerConfig, "max_reset_timeout", 1, base={"reset_timeout": 30})),
    ok(Row(BreakerConfig, "half_open_max_calls", 0)),
    ok(Row(BreakerConfig, "success_threshold", 0)),
    ok(Row(BreakerConfig, "probe_timeout", 0)),
    ok(Row(BreakerConfig, "record", 3)),
    ok(Row(BreakerConfig, "record", SystemExit)),
    ok(Row(BreakerConfig, "record", (ValueError, KeyboardInterrupt), ("KeyboardInterrupt",))),
    ok(Row(BreakerConfig, "ignore", "ValueError")),
    ok(Row(BreakerConfig, "ignore", (ValueError, SystemExit), ("SystemExit",))),
    ok(Row(BreakerConfig, "failure_result", 3)),
    ok(Row(BreakerConfig, "error_on_trip", "raise", ("'call'", "'open'"))),
    # CircuitBreaker and create_circuit_breaker
    ok(Row(CircuitBreaker, "name", 3)),
    ok(Row(CircuitBreaker, "config", "standard", base={"name": "cfg-cb"})),
    ok(Row(CircuitBreaker, "store", 3, base={"name": "cfg-cb"})),
    ok(Row(CircuitBreaker, "critical", "yes", base={"name": "cfg-cb"})),
    ok(Row(create_circuit_breaker, "fn", 3)),
    ok(Row(create_circuit_breaker, "name", 3, base={"fn": _plain})),
    ok(Row(create_circuit_breaker, "fallback", 3, base={"fn": _plain})),
    ok(Row(create_circuit_breaker, "config", 3, base={"fn": _plain})),
    ok(Row(create_circuit_breaker, "store", 3, base={"fn": _plain})),
    ok(
        Row(
            create_circuit_breaker,
            "fn",
            _plain,
            base={"failure_threshold": 0},
            named="failure_threshold",
        )
    ),
    # fallback
    ok(Row(resilient.fallback, "values", _async_fallback)),
    ok(Row(resilient.fallback, "on", 3, args=("x",))),
    ok(Row(resilient.fallback, "on", (ValueError, SystemExit), args=("x",))),
    ok(Row(resilient.fallback, "when", 3, args=("x",))),
    ok(Row(resilient.fallback, "cache", "yes")),
    ok(Row(resilient.fallback, "key", 3, args=("x",))),
    ok(Row(resilient.fallback, "metrics", "statsd", args=("x",))),
    ok(Row(FallbackCache, "maxsize", 0)),
    ok(Row(FallbackCache, "ttl", -1)),
    ok(Row(FallbackCache, "max_bytes", 0)),
    ok(Row(FallbackCache, "sizeof", 3, ("callable",), base={"max_bytes": 1024})),
    # degradation
    ok(Row(resilient.degradable, "feature", 3)),
    ok(Row(resilient.degradable, "feature", "ai_asistant", ("did you mean 'ai_assistant'?",))),
    ok(Row(resilient.degradable, "fallback", _async_fallback, base={"feature": "ai_assistant"})),
    ok(Row(resilient.degradable, "service", "x", base={"feature": "ai_assistant"})),
    ok(Row(resilient.degradable, "service", 3, base={"feature": "ai_assistant"})),
    ok(Row(DegradationService, "store", 3)),
    ok(Row(Feature, "name", "")),
    ok(Row(Feature, "depends_on", 3, base={"name": "cfg-f"})),
    ok(Row(Feature, "level", 3, base={"name": "cfg-f"})),
    ok(Row(Feature, "description", 3, base={"name": "cfg-f"})),
    ok(Row(Feature, "critical", "yes", base={"name": "cfg-f"})),
    # bulkhead
    ok(Row(resilient.bulkhead, "max_concurrent", 0, (">= 1",))),
    ok(Row(resilient.bulkhead, "max_queue", -1, (">= 0",), base={"max_concurrent": 1})),
    ok(Row(resilient.bulkhead, "queue_timeout", -1, (">= 0",), base={"max_concurrent": 1})),
    ok(Row(resilient.bulkhead, "name", "", ("bulkhead name",), base={"max_concurrent": 1})),
    ok(Row(resilient.bulkhead, "metrics", "statsd", base={"max_concurrent": 1})),
    # hedge
    ok(Row(resilient.hedge, "delay", "p99", ("'p95'",))),
    ok(Row(resilient.hedge, "delay", float("nan"))),
    ok(Row(resilient.hedge, "max_hedges", 0, (">= 1",), base={"delay": 1})),
    ok(Row(resilient.hedge, "metrics", "statsd", base={"delay": 1})),
    # policy
    ok(Row(resilient.policy, "name", 3)),
    ok(Row(resilient.policy, "timeout", -1)),
    ok(Row(resilient.policy, "timeout", "ai_operaton", ("did you mean 'ai_operation'?",))),
    ok(Row(resilient.policy, "total_timeout", float("inf"))),
    ok(
        Row(
            resilient.policy,
            "retry",
            {"attemps": 3},
            ("did you mean 'attempts'?",),
            named="retry.attemps",
        )
    ),
    ok(Row(resilient.policy, "retry", "standrad", ("did you mean 'standard'?",))),
    ok(Row(resilient.policy, "breaker", -1)),
    ok(
        Row(
            resilient.policy,
            "breaker",
            {"name": "cfg-p", "failure_threshold": 0},
            named="breaker.failure_threshold",
        )
    ),
    ok(Row(resilient.policy, "fallback", {"value": "x", "on": 3}, named="fallback.on")),
    ok(Row(resilient.policy, "degradable", 3)),
    ok(Row(resilient.policy, "bulkhead", 0)),
    ok(Row(resilient.policy, "bulkhead", {"max_concurent": 2}, named="bulkhead.max_concurent")),
    ok(Row(resilient.policy, "hedge", "slow")),
    ok(Row(resilient.policy, "hedge", {"delay": 1, "max_hedges": 0}, named="hedge.max_hedges")),
    ok(Row(resilient.policy, "rate_limit", "fast", ("calls per second",))),
    ok(Row(resilient.policy, "rate_limit", {"rate": 5, "mode": "x"}, named="rate_limit.mode")),
    ok(Row(resilient.load_policies, "source", 42)),
    ok(Row(resilient.load_policies, "imports", 42, base={"source": {"x": {"timeout": 1}}})),
    # rate_limit
    ok(Row(resilient.rate_limit, "rate", 0, ("> 0",))),
    ok(Row(resilient.rate_limit, "rate", float("inf"))),
    ok(Row(resilient.rate_limit, "per", -1, base={"rate": 1})),
    ok(Row(resilient.rate_limit, "burst", 0, (">= 1",), base={"rate": 1})),
    ok(Row(resilient.rate_limit, "mode", "block", ("'wait' or 'reject'",), base={"rate": 1})),
    ok(Row(resilient.rate_limit, "name", "", base={"rate": 1})),
    ok(Row(resilient.rate_limit, "store", 3, ("state store",), base={"rate": 1})),
    # configure
    ok(Row(resilient.configure, "clock", 3)),
    ok(Row(resilient.configure, "metrics", 3)),
    ok(Row(resilient.configure, "store", 3)),
    ok(Row(resilient.configure, "breaker_defaults", "standard", ("BreakerConfig",))),
    # operating a breaker and listening to it
    ok(Row(_OPERATED.force_open, "for_", -1)),
    ok(Row(_OPERATED.force_open, "for_", 0)),
    ok(Row(_OPERATED.reconfigure, "config", "standard", ("BreakerConfig",))),
    ok(Row(_OPERATED.add_listener, "listener", 3)),
    ok(Row(_OPERATED.add_listener, "serial", "yes", ("True or False",), base={"listener": print})),
    ok(Row(_OPERATED.add_listener, "before_call", 1, base={"listener": print})),
    ok(Row(resilient.add_listener, "listener", 3)),
    ok(Row(resilient.add_listener, "serial", "yes", ("True or False",), base={"listener": print})),
    ok(Row(resilient.add_listener, "before_call", 1, base={"listener": print})),
    ok(Row(resilient.add_listener, "created", None, base={"listener": print})),
    # stores
    ok(Row(RedisStore, "url", 3)),
    ok(Row(RedisStore, "prefix", "", base={"url": REDIS_URL})),
    ok(Row(RedisStore, "timeout", 0, base={"url": REDIS_URL})),
    ok(Row(RedisStore, "cache_ttl", -1, base={"url": REDIS_URL})),
    ok(Row(RedisStore, "key_ttl", 1e-9, base={"url": REDIS_URL})),
    ok(Row(RedisStore, "clock", "ntp", base={"url": REDIS_URL})),
    ok(Row(RedisStore, "on_store_error", "raise", base={"url": REDIS_URL})),
    ok(Row(RedisStore, "retry_interval", -1, base={"url": REDIS_URL})),
    ok(Row(RedisStore, "trip", "sometimes", base={"url": REDIS_URL})),
    ok(Row(RedisStore, "trip_quorum", 0, base={"url": REDIS_URL})),
    ok(Row(RedisStore, "check", "yes", base={"url": REDIS_URL})),
    ok(Row(AsyncRedisStore, "url", 3)),
    ok(Row(AsyncRedisStore, "prefix", "", base={"url": REDIS_URL})),
    ok(Row(AsyncRedisStore, "timeout", 0, base={"url": REDIS_URL})),
    ok(Row(AsyncRedisStore, "cache_ttl", -1, base={"url": REDIS_URL})),
    ok(Row(AsyncRedisStore, "key_ttl", 1e-9, base={"url": REDIS_URL})),
    ok(Row(AsyncRedisStore, "clock", "ntp", base={"url": REDIS_URL})),
    ok(Row(AsyncRedisStore, "on_store_error", "raise", base={"url": REDIS_URL})),
    ok(Row(AsyncRedisStore, "retry_interval", -1, base={"url": REDIS_URL})),
    ok(Row(AsyncRedisStore, "trip", "sometimes", base={"url": REDIS_URL})),
    ok(Row(AsyncRedisStore, "trip_quorum", 0, base={"url": REDIS_URL})),
    ok(Row(AsyncRedisStore, "check", "yes", base={"url": REDIS_URL})),
    # metrics sinks
    ok(Row(resilient.metrics.StatsdSink, "host", 3)),
    ok(Row(resilient.metrics.StatsdSink, "port", 70000)),
    ok(Row(resilient.metrics.StatsdSink, "prefix", "x:5|c\ninjected")),
    ok(Row(resilient.metrics.StatsdSink, "sample_rate", 2)),
    ok(Row(resilient.metrics.StatsdSink, "tag_style", "influx")),
    ok(Row(resilient.metrics.StatsdSink, "protocol", "quic")),
    ok(Row(resilient.metrics.StatsdSink, "max_udp_size", 70000)),
    ok(Row(resilient.metrics.StatsdSink, "flush_interval", 0)),
    ok(Row(resilient.metrics.StatsdSink, "batch_size", 0)),
    ok(Row(resilient.metrics.StatsdSink, "max_buffer", 0)),
    ok(Row(resilient.metrics.LoggingSink, "logger", 3)),
    ok(Row(resilient.metrics.LoggingSink, "level", "loud")),
    ok(Row(resilient.metrics.LoggingSink, "flush_interval", -1)),
    ok(Row(resilient.metrics.LoggingSink, "max_buffer", 0)),
    ok(Row(resilient.metrics.FanoutSink, "sinks", 3)),
    ok(Row(resilient.metrics.PrometheusSink, "registry", 3)),
    ok(Row(resilient.metrics.PrometheusSink, "namespace", "bad name!")),
    ok(Row(resilient.metrics.OpenTelemetrySink, "meter", "meter")),
    ok(Row(resilient.metrics.OpenTelemetrySink, "meter_provider", "provider")),
    ok(Row(resilient.metrics.OpenTelemetrySink, "prefix", "bad prefix")),
    # retry budget
    ok(Row(resilient.RetryBudget, "ratio", -1)),
    ok(Row(resilient.RetryBudget, "window", 0)),
    ok(Row(resilient.RetryBudget, "min_per_second", -1)),
    ok(Row(resilient.RetryBudget, "name", "")),
    ok(Row(resilient.RetryBudget, "store", 3)),
    # chaos injectors
    ok(Row(chaos.inject_fault, "error", 3)),
    ok(Row(chaos.inject_fault, "rate", 2, base={"error": ConnectionError})),
    ok(Row(chaos.inject_fault, "seed", [1], base={"error": ConnectionError})),
    ok(Row(chaos.inject_fault, "enabled", "yes", base={"error": ConnectionError})),
    ok(Row(chaos.inject_latency, "seconds", -1)),
    ok(Row(chaos.inject_latency, "rate", -0.5, base={"seconds": 1})),
    ok(Row(chaos.inject_latency, "seed", [1], base={"seconds": 1})),
    ok(Row(chaos.inject_latency, "enabled", "yes", base={"seconds": 1})),
    ok(Row(chaos.inject_result, "rate", 2, base={"value": None})),
    ok(Row(chaos.inject_result, "seed", [1], base={"value": None})),
    ok(Row(chaos.inject_result, "enabled", "yes", base={"value": None})),
    # the status page (the factory and the class take the same settings)
    *[
        ok(Row(target, parameter, value, mentions))
        for target in (status_app, StatusApp)
        for parameter, value, mentions in (
            ("path", "status", ("'/'",)),
            ("token", "short", ("16",)),
            ("actions", "yes", ("True or False",)),
            ("public_detail", 1, ("True or False",)),
            ("limit", 0, ("1 to 10000",)),
            ("refresh", 0.1, ("0.5 to 300",)),
            ("title", "", ("non-empty",)),
            ("bulkheads", [1], ("callable",)),
        )
    ],
    # the outbox: its settings, and what enqueue, deferrable and handler take
    ok(Row(resilient.Outbox, "url", "postgres://db/x", ("sqlite:///",))),
    *[
        ok(Row(resilient.Outbox, parameter, value, mentions, {"url": _OUTBOX_URL}))
        for parameter, value, mentions in (
            ("max_attempts", 0, (">= 1",)),
            ("backoff", 3, ("RetryConfig",)),
            ("lease", 0, ()),
            ("poll", -1, ()),
            ("batch", 0, (">= 1",)),
            ("synchronous", "OFF", ("'FULL'",)),
            ("backlog_feature", "sync", ("Feature",)),
            ("backlog_threshold", 0, (">= 1",)),
            ("name", "a b", ("letters",)),
        )
    ],
    ok(Row(_OUTBOX.enqueue, "kind", "", ("letters",), {"payload": 1})),
    ok(Row(_OUTBOX.enqueue, "payload", {1, 2}, ("JSON",), {"kind": "k"})),
    ok(Row(_OUTBOX.enqueue, "key", "", ("200 characters",), {"kind": "k", "payload": 1})),
    ok(Row(_OUTBOX.enqueue, "group", 7, ("200 characters",), {"kind": "k", "payload": 1})),
    ok(Row(_OUTBOX.deferrable, "kind", "a b", ("letters",))),
    ok(Row(_OUTBOX.deferrable, "when", 3, base={"kind": "k"})),
    ok(Row(_OUTBOX.deferrable, "group", "a\nb", ("control",), {"kind": "k"})),
    ok(Row(_OUTBOX.handler, "kind", None, ("letters",))),
    ok(Row(_OUTBOX.handler, "policy", 42, ("Policy or decorator",), {"kind": "k"})),
    ok(Row(_OUTBOX.dead, "limit", 0, (">= 1",))),
    ok(Row(_OUTBOX.retry_dead, "keys", "k1", ("list",))),
    ok(Row(_OUTBOX.purge, "dead", "yes", ("True or False",))),
    ok(Row(_OUTBOX.purge, "kind", "", ("letters",))),
    ok(Row(_OUTBOX.purge, "older_than", -1)),
    # web glue: ASGI problem details, the WSGI middlewares and the installers
    ok(Row(asgi.ProblemDetailsMiddleware, "app", 42, ("ASGI",))),
    ok(Row(asgi.ProblemDetailsMiddleware, "expose", "yes", base={"app": _wsgi_app})),
    ok(Row(asgi.ProblemDetailsMiddleware, "internal_errors", 1, base={"app": _wsgi_app})),
    ok(Row(asgi.install, "app", object(), ("Starlette",))),
    ok(Row(asgi.install, "expose", "yes", base={"app": _starlette_app()})),
    ok(Row(asgi.install, "correlation_ids", 1, base={"app": _starlette_app()})),
    ok(Row(wsgi.CorrelationIdMiddleware, "app", 42, ("WSGI",))),
    ok(Row(wsgi.CorrelationIdMiddleware, "trust_incoming", 1, base={"app": _wsgi_app})),
    ok(Row(wsgi.RequestTimeoutMiddleware, "app", 42, ("WSGI",))),
    ok(Row(wsgi.RequestTimeoutMiddleware, "timeout", -1, base={"app": _wsgi_app})),
    ok(Row(wsgi.RequestTimeoutMiddleware, "routes", {"x": 1}, ("'/'",), {"app": _wsgi_app})),
    ok(Row(wsgi.ProblemDetailsMiddleware, "app", 42, ("WSGI",))),
    ok(Row(wsgi.ProblemDetailsMiddleware, "expose", "yes", base={"app": _wsgi_app})),
    ok(Row(wsgi.ProblemDetailsMiddleware, "internal_errors", 1, base={"app": _wsgi_app})),
    ok(Row(wsgi.HealthMiddleware, "app", 42, ("WSGI",))),
    ok(Row(wsgi.HealthMiddleware, "health", "x", ("HealthApp",), {"app": _wsgi_app})),
    ok(Row(wsgi.StatusMiddleware, "app", 42, ("WSGI",), {"status": status_app()})),
    ok(Row(wsgi.StatusMiddleware, "status", "x", ("StatusApp",), {"app": _wsgi_app})),
    ok(Row(wsgi.install, "app", object(), ("Flask",))),
    *[
        ok(Row(wsgi.install, parameter, value, mentions, {"app": _flask_app()}))
        for parameter, value, mentions in (
            ("expose", "yes", ("True or False",)),
            ("timeout", -1, ()),
            ("routes", {"x": 1}, ("'/'",)),
            ("health", "yes", ("HealthApp",)),
            ("status", "page", ("StatusApp",)),
        )
    ],
]

PUBLIC = [
    resilient.timeout,
    resilient.retry,
    resilient.retrying,
    resilient.aretrying,
    resilient.stats,
    RetryConfig,
    resilient.breaker,
    BreakerConfig,
    CircuitBreaker,
    create_circuit_breaker,
    resilient.fallback,
    FallbackCache,
    resilient.degradable,
    DegradationService,
    Feature,
    resilient.bulkhead,
    resilient.hedge,
    resilient.policy,
    resilient.load_policies,
    resilient.rate_limit,
    resilient.configure,
    resilient.stores.MemoryStore,
    RedisStore,
    AsyncRedisStore,
    resilient.metrics.StatsdSink,
    resilient.metrics.MemorySink,
    resilient.metrics.LoggingSink,
    resilient.metrics.NullSink,
    resilient.metrics.FanoutSink,
    resilient.metrics.PrometheusSink,
    resilient.metrics.OpenTelemetrySink,
    resilient.RetryBudget,
    _OPERATED.force_open,
    _OPERATED.reconfigure,
    _OPERATED.add_listener,
    resilient.add_listener,
    chaos.inject_fault,
    chaos.inject_latency,
    chaos.inject_result,
    status_app,
    StatusApp,
    resilient.Outbox,
    _OUTBOX.enqueue,
    _OUTBOX.deferrable,
    _OUTBOX.handler,
    _OUTBOX.dead,
    _OUTBOX.retry_dead,
    _OUTBOX.purge,
    asgi.ProblemDetailsMiddleware,
    asgi.install,
    wsgi.CorrelationIdMiddleware,
    wsgi.RequestTimeoutMiddleware,
    wsgi.ProblemDetailsMiddleware,
    wsgi.HealthMiddleware,
    wsgi.StatusMiddleware,
    wsgi.install,
]
"""The public decorators and constructors whose every parameter the table must cover."""

EXEMPT = {
    # Any object is a valid static fallback answer or injected result: nothing to refuse.
    (chaos.inject_result, "value"),
    # Extra keyword arguments are BreakerConfig fields: each has its BreakerConfig row
    # (the create_circuit_breaker row with base={"failure_threshold": 0} checks they are
    # named as typed).
    (create_circuit_breaker, "overrides"),
    # The same for reconfigure(**changes): BreakerConfig fields, each with its row (tests/
    # breaker/test_breaker_reconfigure.py checks a bad one is named as typed).
    (_OPERATED.reconfigure, "changes"),
}


def _close(made: object) -> None:
    """Release what a construction that wrongly succeeded started (threads, sockets)."""
    close = getattr(made, "close", None)
    if callable(close) and not inspect.iscoroutinefunction(close):
        close()


def _made_and_applied(row: Row, made: list[object]) -> None:
    """Call the row; apply a returned decorator or policy to a def (some checks run then)."""
    made.append(row.call())
    if _is_decorator(made[-1]) or isinstance(made[-1], resilient.Policy):
        made.append(made[-1](_plain))  # type: ignore[operator]


def _is_decorator(made: object) -> bool:
    from resilient._wrapping.layer import Decorator

    return isinstance(made, Decorator)


@pytest.mark.parametrize("row", ROWS)
def test_a_bad_value_is_refused_naming_the_parameter(row: Row) -> None:
    """The call (or applying the decorator it returns) raises ConfigError naming the parameter."""
    made: list[object] = []
    try:
        with pytest.raises(resilient.ConfigError) as caught:
            _made_and_applied(row, made)
    finally:
        for thing in made:
            _close(thing)
    error = caught.value
    assert error.parameter == (row.named or row.parameter)
    message = str(error)
    assert message.startswith(f"{row.named or row.parameter}=")
    for text in row.mentions:
        assert text in message


def test_every_public_parameter_has_a_row() -> None:
    """A parameter of a public callable with no row (and no exemption) fails this test."""
    covered = {(row.values[0].target, row.values[0].parameter) for row in ROWS}
    missing = [
        f"{getattr(target, '__qualname__', target)}({name})"
        for target in PUBLIC
        for name in inspect.signature(target).parameters
        if (target, name) not in covered and (target, name) not in EXEMPT
    ]
    assert missing == []
