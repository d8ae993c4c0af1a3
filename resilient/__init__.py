"""resilient: timeouts, retries, circuit breakers and fallbacks that survive bad networks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import metrics, presets, telemetry
from ._configure import Configuration, configuration, configure
from ._retry.decorator import RetryConfig, retry
from ._retry.outcome import RejectedResultError
from ._retry.stats import RetryStats, stats
from ._runtime.clock import SystemClock
from ._runtime.deadline import remaining
from ._runtime.listeners import add_listener, remove_listener
from ._timeout.decorator import timeout, timeout_pool_stats
from ._timeout.workers import PoolStats
from ._wrapping.lint import ResilienceWarning
from .exceptions import (
    BulkheadFullError,
    CircuitOpenError,
    ConfigError,
    FeatureUnavailableError,
    RateLimitedError,
    ResilienceError,
    TimeoutExceededError,
)
from .presets import Timeouts

__all__ = [
    "BreakerClosed",
    "BreakerConfig",
    "BreakerCreated",
    "BreakerDisabled",
    "BreakerEvent",
    "BreakerForcedOpen",
    "BreakerHalfOpened",
    "BreakerMode",
    "BreakerOpened",
    "BreakerState",
    "BulkheadFullError",
    "BulkheadRejected",
    "CallAdmitted",
    "CallRecorded",
    "CallRejected",
    "CircuitBreaker",
    "CircuitOpenError",
    "ConfigError",
    "Configuration",
    "Deferred",
    "DegradationLevel",
    "DegradationService",
    "Description",
    "FallbackCache",
    "FallbackResponses",
    "FallbackUsed",
    "Feature",
    "FeatureUnavailableError",
    "Features",
    "HedgeStarted",
    "HedgeWon",
    "LastFailure",
    "Outbox",
    "Policy",
    "PoolStats",
    "RateLimited",
    "RateLimitedError",
    "RateLimiter",
    "RejectedResultError",
    "ResilienceError",
    "ResilienceWarning",
    "RetryBudget",
    "RetryConfig",
    "RetryGaveUp",
    "RetryScheduled",
    "RetryStats",
    "SystemClock",
    "TimeoutExceeded",
    "TimeoutExceededError",
    "Timeouts",
    "add_listener",
    "aretrying",
    "breaker",
    "bulkhead",
    "configuration",
    "configure",
    "correlation",
    "degradable",
    "describe",
    "fallback",
    "get_breaker",
    "get_rate_limiter",
    "hedge",
    "last_fallback",
    "load_policies",
    "metrics",
    "policy",
    "presets",
    "rate_limit",
    "reload_policies",
    "remaining",
    "remove_listener",
    "retry",
    "retrying",
    "stats",
    "stores",
    "telemetry",
    "testing",
    "timeout",
    "timeout_pool_stats",
]

__version__ = "0.2.0"

if TYPE_CHECKING:
    from . import correlation, stores, testing
    from ._breaker.breaker import CircuitBreaker
    from ._breaker.core import LastFailure
    from ._breaker.decorator import breaker
    from ._breaker.registry import get_breaker
    from ._bulkhead.decorator import bulkhead
    from ._circuit.config import BreakerConfig
    from ._circuit.rules import BreakerMode, BreakerState
    from ._degradation import (
        DegradationLevel,
        DegradationService,
        Feature,
        Features,
        degradable,
    )
    from ._fallback import (
        FallbackCache,
        FallbackResponses,
        FallbackUsed,
        fallback,
        last_fallback,
    )
    from ._hedge.decorator import hedge
    from ._policy import Description, Policy, describe, load_policies, policy, reload_policies
    from ._rate_limit.decorator import rate_limit
    from ._rate_limit.limiter import RateLimiter
    from ._rate_limit.registry import get_rate_limiter
    from ._retry.block import aretrying, retrying
    from ._retry.budget import RetryBudget
    from ._runtime.events import (
        BreakerClosed,
        BreakerCreated,
        BreakerDisabled,
        BreakerEvent,
        BreakerForcedOpen,
        BreakerHalfOpened,
        BreakerOpened,
        BulkheadRejected,
        CallAdmitted,
        CallRecorded,
        CallRejected,
        HedgeStarted,
        HedgeWon,
        RateLimited,
        RetryGaveUp,
        RetryScheduled,
        TimeoutExceeded,
    )
    from .outbox import Deferred, Outbox

# Loaded on first use: defining the event dataclasses costs import time (see _runtime.listeners).
_LAZY = dict.fromkeys(
    (
        "BreakerClosed",
        "BreakerCreated",
        "BreakerDisabled",
        "BreakerEvent",
        "BreakerForcedOpen",
        "BreakerHalfOpened",
        "BreakerOpened",
        "BulkheadRejected",
        "CallAdmitted",
        "CallRecorded",
        "CallRejected",
        "HedgeStarted",
        "HedgeWon",
        "RetryGaveUp",
        "RetryScheduled",
        "TimeoutExceeded",
    ),
    "._runtime.events",
)
# The circuit breaker, fallbacks and degradation (dataclasses, enums, presets validated
# when built) load when first named too:
# ``import resilient`` stays within a few milliseconds of wrapt's own import.
_LAZY.update(
    {
        "BreakerConfig": "._circuit.config",
        "BreakerMode": "._circuit.rules",
        "BreakerState": "._circuit.rules",
        "CircuitBreaker": "._breaker.breaker",
        "breaker": "._breaker.decorator",
        "get_breaker": "._breaker.registry",
        "LastFailure": "._breaker.core",
    }
)
_LAZY.update(
    dict.fromkeys(
        ("FallbackCache", "FallbackResponses", "FallbackUsed", "fallback", "last_fallback"),
        "._fallback",
    )
)
# Policies (their parser, the TOML loader) and the shared retry budget: when first named.
_LAZY.update(
    dict.fromkeys(
        ("Description", "Policy", "describe", "load_policies", "policy", "reload_policies"),
        "._policy",
    )
)
_LAZY["RetryBudget"] = "._retry.budget"
_LAZY.update(dict.fromkeys(("aretrying", "retrying"), "._retry.block"))  # the block forms
_LAZY["bulkhead"] = "._bulkhead.decorator"
_LAZY["hedge"] = "._hedge.decorator"
_LAZY.update(dict.fromkeys(("Deferred", "Outbox"), ".outbox"))
_LAZY.update(
    {
        "rate_limit": "._rate_limit.decorator",
        "RateLimiter": "._rate_limit.limiter",
        "get_rate_limiter": "._rate_limit.registry",
    }
)
_LAZY["RateLimited"] = "._runtime.events"
_LAZY.update(
    dict.fromkeys(
        (
            "DegradationLevel",
            "DegradationService",
            "Feature",
            "Features",
            "degradable",
        ),
        "._degradation",
    )
)
# Names with one home elsewhere, still answered here for one release with a warning.
_MOVED = dict.fromkeys(
    ("CircuitBreakerRegistry", "FiringBreaker", "create_circuit_breaker"), "compat"
)
_MOVED.update(
    dict.fromkeys(
        ("FanoutSink", "LoggingSink", "MemorySink", "NullSink", "PrometheusSink", "StatsdSink"),
        "metrics",
    )
)
_MOVED.update(dict.fromkeys(("AsyncRedisStore", "MemoryStore", "RedisStore"), "stores"))


def __getattr__(name: str) -> Any:
    # Subpackages load on first use, not on every import (resilient.testing is only for
    # tests; the stores and the compat API load the breaker).
    if name in ("compat", "correlation", "outbox", "stores", "testing"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    if name in _MOVED:
        import importlib
        import warnings

        home = f"{__name__}.{_MOVED[name]}"
        warnings.warn(
            f"{__name__}.{name} is deprecated: use {home}.{name} (from {home} import {name})",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(home), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
