"""resilient: timeouts, retries, circuit breakers and fallbacks that survive bad networks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import presets
from ._clock import SystemClock
from ._config import Configuration, configuration, configure
from ._deadline import remaining
from ._retry import RetryConfig, retry
from ._timeout import timeout, timeout_pool_stats
from ._workers import PoolStats
from .exceptions import CircuitOpenError, ConfigError, ResilienceError, TimeoutExceededError
from .presets import Timeouts

__all__ = [
    "CircuitOpenError",
    "ConfigError",
    "Configuration",
    "PoolStats",
    "ResilienceError",
    "RetryConfig",
    "SystemClock",
    "TimeoutExceededError",
    "Timeouts",
    "configuration",
    "configure",
    "presets",
    "remaining",
    "retry",
    "testing",
    "timeout",
    "timeout_pool_stats",
]

__version__ = "0.1.0"

if TYPE_CHECKING:
    from . import testing


def __getattr__(name: str) -> Any:
    # resilient.testing is only for tests: load it on first use, not on every import.
    if name == "testing":
        import importlib

        return importlib.import_module(".testing", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
