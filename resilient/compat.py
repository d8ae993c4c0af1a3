"""The TypeScript-style circuit breaker API, for code written against it.

``create_circuit_breaker(fn, name=..., fallback=..., failure_threshold=3)`` returns a
``FiringBreaker``: call the function with ``.fire(*args)``, check ``.opened``.
``CircuitBreakerRegistry.instance`` is the process's registry of breakers by name
(``.standard``, ``.ai_service``, ``.critical``, ``get_or_create(name, config)``, and its
idle eviction: ``idle_timeout``, ``evict_idle()``).

New code uses ``resilient.breaker(name, config)`` (a decorator),
``resilient.CircuitBreaker`` and ``resilient.get_breaker(name)``: the same breakers,
shared by name with everything here.
"""

from __future__ import annotations

from ._breaker.firing import FiringBreaker, create_circuit_breaker
from ._breaker.registry import CircuitBreakerRegistry

__all__ = ["CircuitBreakerRegistry", "FiringBreaker", "create_circuit_breaker"]
