"""One breaker per name: ``CircuitBreakerRegistry`` and ``get_breaker``."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import ClassVar

from . import _config, telemetry
from ._breaker import CircuitBreaker, Store
from ._breaker_config import BreakerConfig, check_name
from .exceptions import ConfigError

__all__ = ["CircuitBreakerRegistry", "get_breaker"]


class CircuitBreakerRegistry:
    """The breakers of this process by name (the seed's ``CircuitBreakerRegistry``).

    ``CircuitBreakerRegistry.instance`` is the one ``@breaker`` uses. Claiming a name
    again with a different configuration or store raises ``ConfigError``: two sets of
    rules on one state would contradict each other.
    """

    instance: ClassVar[CircuitBreakerRegistry]

    def __init__(self) -> None:
        self._breakers: dict[str, CircuitBreaker] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> CircuitBreaker:
        """The breaker called ``name``; ``KeyError`` naming the known ones if there is none."""
        found = self._breakers.get(name)
        if found is None:
            known = ", ".join(sorted(self._breakers)) or "none yet"
            raise KeyError(f"no circuit breaker named {name!r} (known: {known})")
        return found

    def get_or_create(
        self, name: str, config: BreakerConfig | None = None, *, store: Store | None = None
    ) -> CircuitBreaker:
        """The breaker called ``name``, created with ``config`` (default: standard) if new.

        ``config=None`` accepts whatever configuration the name already has.
        """
        check_name(name)
        with self._lock:
            found = self._breakers.get(name)
            if found is None:
                found = self._breakers[name] = CircuitBreaker(name, config, store=store)
                return found
        if config is not None and config != found.config:
            raise ConfigError(
                "config",
                config,
                f"the configuration circuit breaker {name!r} already has ({found.config!r}); "
                "use another name or the same configuration",
            )
        if store is not None and store is not found.store:
            raise ConfigError(
                "store", store, f"the store circuit breaker {name!r} already uses ({found.store!r})"
            )
        return found

    def register(self, breaker: CircuitBreaker) -> CircuitBreaker:
        """Add a breaker built by hand; ``ConfigError`` if its name is taken by another."""
        with self._lock:
            found = self._breakers.setdefault(breaker.name, breaker)
        if found is not breaker:
            raise ConfigError("name", breaker.name, "a name no other registered breaker has")
        return breaker

    @property
    def standard(self) -> CircuitBreaker:
        """The breaker ``"standard"`` (5 failures, 30 s)."""
        return self.get_or_create("standard", BreakerConfig.standard)

    @property
    def ai_service(self) -> CircuitBreaker:
        """The breaker ``"ai_service"`` (3 failures, 60 s)."""
        return self.get_or_create("ai_service", BreakerConfig.ai_service)

    @property
    def critical(self) -> CircuitBreaker:
        """The breaker ``"critical"`` (3 failures, 15 s)."""
        return self.get_or_create("critical", BreakerConfig.critical)

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._breakers)

    def open_names(self) -> list[str]:
        """The names of the breakers rejecting calls now (for health reports)."""
        return sorted(name for name, b in list(self._breakers.items()) if b.opened)

    def clear(self) -> None:
        """Forget every breaker (their states stay in their stores)."""
        with self._lock:
            self._breakers.clear()

    def __contains__(self, name: object) -> bool:
        return name in self._breakers

    def __iter__(self) -> Iterator[CircuitBreaker]:
        return iter(list(self._breakers.values()))

    def __len__(self) -> int:
        return len(self._breakers)

    def __repr__(self) -> str:
        return f"<CircuitBreakerRegistry {self.names()}>"


CircuitBreakerRegistry.instance = CircuitBreakerRegistry()
_config.on_reset(CircuitBreakerRegistry.instance.clear)


def _states() -> dict[str, str]:
    return {b.name: b.state.name.lower() for b in CircuitBreakerRegistry.instance}


telemetry.add_circuit_source(_states)  # open breakers make the health report critical


def get_breaker(name: str) -> CircuitBreaker:
    """The breaker called ``name`` (``CircuitBreakerRegistry.instance.get(name)``)."""
    return CircuitBreakerRegistry.instance.get(name)
