"""resilient: timeouts, retries, circuit breakers and fallbacks that survive bad networks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import metrics, presets, telemetry
from ._configure import Configuration, configuration, configure
from ._policy import Description, Policy, describe, load_policies, policy
from ._retry.budget import RetryBudget
from ._retry.decorator import RetryConfig, retry
from ._runtime.clock import SystemClock
from ._runtime.deadline import remaining
from ._runtime.listeners import add_listener, remove_listener
from ._timeout.decorator import timeout, timeout_pool_stats
from ._timeout.workers import PoolStats
from ._wrapping.lint import ResilienceWarning
from .exceptions import CircuitOpenError, ConfigError, ResilienceError, TimeoutExceededError
from .metrics import FanoutSink, MemorySink, NullSink
from .presets import Timeouts

__all__ = [
    "AsyncRedisStore",
    "BreakerClosed",
    "BreakerConfig",
    "BreakerDisabled",
    "BreakerEvent",
    "BreakerForcedOpen",
    "BreakerHalfOpened",
    "BreakerMode",
    "BreakerOpened",
    "BreakerState",
    "CallRecorded",
    "CallRejected",
    "CircuitBreaker",
    "CircuitBreakerRegistry",
    "CircuitOpenError",
    "ConfigError",
    "Configuration",
    "DegradationLevel",
    "DegradationService",
    "Description",
    "FallbackCache",
    "FallbackResponses",
    "FallbackUsed",
    "FanoutSink",
    "Feature",
    "FeatureUnavailableError",
    "Features",
    "FiringBreaker",
    "LoggingSink",
    "MemorySink",
    "MemoryStore",
    "NullSink",
    "Policy",
    "PoolStats",
    "PrometheusSink",
    "RedisStore",
    "ResilienceError",
    "ResilienceWarning",
    "RetryBudget",
    "RetryConfig",
    "StatsdSink",
    "SystemClock",
    "TimeoutExceededError",
    "Timeouts",
    "add_listener",
    "breaker",
    "configuration",
    "configure",
    "correlation",
    "create_circuit_breaker",
    "degradable",
    "describe",
    "fallback",
    "get_breaker",
    "last_fallback",
    "load_policies",
    "metrics",
    "policy",
    "presets",
    "remaining",
    "remove_listener",
    "retry",
    "stores",
    "telemetry",
    "testing",
    "timeout",
    "timeout_pool_stats",
]

__version__ = "0.1.0"

if TYPE_CHECKING:
    from . import correlation, testing
    from ._breaker.breaker import CircuitBreaker
    from ._breaker.decorator import breaker
    from ._breaker.firing import FiringBreaker, create_circuit_breaker
    from ._breaker.registry import CircuitBreakerRegistry, get_breaker
    from ._circuit.config import BreakerConfig
    from ._circuit.rules import BreakerMode, BreakerState
    from ._degradation import (
        DegradationLevel,
        DegradationService,
        Feature,
        Features,
        FeatureUnavailableError,
        degradable,
    )
    from ._fallback import (
        FallbackCache,
        FallbackResponses,
        FallbackUsed,
        fallback,
        last_fallback,
    )
    from ._runtime.events import (
        BreakerClosed,
        BreakerDisabled,
        BreakerEvent,
        BreakerForcedOpen,
        BreakerHalfOpened,
        BreakerOpened,
        CallRecorded,
        CallRejected,
    )
    from .metrics import LoggingSink, PrometheusSink, StatsdSink
    from .stores import MemoryStore
    from .stores.redis import AsyncRedisStore, RedisStore

# Loaded on first use: defining the event dataclasses costs import time (see _runtime.listeners).
_LAZY = dict.fromkeys(
    (
        "BreakerClosed",
        "BreakerDisabled",
        "BreakerEvent",
        "BreakerForcedOpen",
        "BreakerHalfOpened",
        "BreakerOpened",
        "CallRecorded",
        "CallRejected",
    ),
    "._runtime.events",
)
# The batching sinks start a thread and open sockets: loaded when first named.
_LAZY.update(dict.fromkeys(("LoggingSink", "PrometheusSink", "StatsdSink"), ".metrics"))
# The circuit breaker, fallbacks and degradation (dataclasses, enums, presets validated
# when built) load when first named too:
# ``import resilient`` stays within a few milliseconds of wrapt's own import.
_LAZY.update(
    {
        "BreakerConfig": "._circuit.config",
        "BreakerMode": "._circuit.rules",
        "BreakerState": "._circuit.rules",
        "CircuitBreaker": "._breaker.breaker",
        "CircuitBreakerRegistry": "._breaker.registry",
        "FiringBreaker": "._breaker.firing",
        "MemoryStore": ".stores",
        "breaker": "._breaker.decorator",
        "create_circuit_breaker": "._breaker.firing",
        "get_breaker": "._breaker.registry",
    }
)
_LAZY.update(
    dict.fromkeys(
        ("FallbackCache", "FallbackResponses", "FallbackUsed", "fallback", "last_fallback"),
        "._fallback",
    )
)
_LAZY.update(
    dict.fromkeys(
        (
            "DegradationLevel",
            "DegradationService",
            "Feature",
            "FeatureUnavailableError",
            "Features",
            "degradable",
        ),
        "._degradation",
    )
)
# The Redis stores import redis-py: loaded when first named.
_LAZY.update(dict.fromkeys(("AsyncRedisStore", "RedisStore"), ".stores.redis"))


def __getattr__(name: str) -> Any:
    # resilient.testing is only for tests: load it on first use, not on every import.
    if name in ("testing", "correlation"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
