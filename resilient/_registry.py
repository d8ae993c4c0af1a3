"""One breaker per name: ``CircuitBreakerRegistry`` and ``get_breaker``."""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Iterator
from typing import ClassVar

from . import _breaker_metrics, _config, _events, _validate, telemetry
from ._breaker import CircuitBreaker, Store, default_store
from ._breaker_config import BreakerConfig, check_name
from ._circuit import is_idle
from .exceptions import ConfigError

__all__ = ["DEFAULT_IDLE_TIMEOUT", "SWEEP_BATCH", "CircuitBreakerRegistry", "get_breaker"]


DEFAULT_IDLE_TIMEOUT = 600.0
"""Seconds a breaker must be idle and unused before the registry lets go of it."""

SWEEP_BATCH = 2_000
"""The most breakers one automatic sweep evicts (about 20 ms); the next one goes on."""


class CircuitBreakerRegistry:
    """The breakers of this process by name (the seed's ``CircuitBreakerRegistry``).

    ``CircuitBreakerRegistry.instance`` is the one ``@breaker`` uses. Claiming a name
    again with a different configuration or store raises ``ConfigError``: two sets of
    rules on one state would contradict each other.

    Breakers left idle (closed, no failure or slow call counted, no probe) and not looked
    up for ``idle_timeout`` seconds (default 10 minutes; ``None`` keeps every breaker) are
    evicted: the registry stops listing them (``names()``, iteration, the health report),
    their in-process state cell and their ``open_circuits`` gauge are freed, and a
    breaker nothing else holds is freed too. State kept in a shared store stays there.
    An evicted breaker that something still holds (a decorated function) keeps working,
    is still found by ``get(name)``, and is listed again as soon as its state changes.
    Sweeps run on the configured clock when a breaker is created or the health report is
    read: as soon as the longest-unused listed breaker has been idle for ``idle_timeout``,
    else a quarter of ``idle_timeout`` after the last sweep. One such sweep evicts at most
    ``SWEEP_BATCH`` breakers (about 10 µs each), and the next trigger goes on where it
    stopped; ``evict_idle()`` sweeps everything at once.
    """

    instance: ClassVar[CircuitBreakerRegistry]

    def __init__(self, *, idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT) -> None:
        self._breakers: dict[str, CircuitBreaker] = {}
        self._evicted: weakref.WeakValueDictionary[str, CircuitBreaker] = (
            weakref.WeakValueDictionary()
        )
        self._lock = threading.Lock()
        self._idle_timeout: float | None = None
        self._next_sweep = 0.0
        self._dropped = 0  # evicted since the containers were last compacted
        self.idle_timeout = idle_timeout

    @property
    def idle_timeout(self) -> float | None:
        """Seconds of idleness after which a breaker is evicted (``None``: never)."""
        return self._idle_timeout

    @idle_timeout.setter
    def idle_timeout(self, seconds: float | None) -> None:
        self._idle_timeout = _validate.duration(
            "idle_timeout", seconds, allow_zero=False, allow_none=True
        )
        self._next_sweep = 0.0 if seconds is None else _config.state.now()

    def get(self, name: str) -> CircuitBreaker:
        """The breaker called ``name``, evicted or not; ``KeyError`` naming the listed ones
        if there is none."""
        found = self._breakers.get(name) or self._evicted.get(name)
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
        now = _config.state.now()
        with self._lock:
            found = self._breakers.get(name) or self._find_evicted(name)
            if found is None:
                found = self._breakers[name] = CircuitBreaker(name, config, store=store)
                created = True
            else:
                found._seen = now
                created = False
        if created:
            self._maybe_sweep(now)
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
            found = self._find_evicted(breaker.name)
            if found is None:
                found = self._breakers.setdefault(breaker.name, breaker)
        if found is not breaker:
            raise ConfigError("name", breaker.name, "a name no other registered breaker has")
        breaker._seen = _config.state.now()
        return breaker

    # --- evicting idle breakers ---------------------------------------------------------

    def _find_evicted(self, name: str) -> CircuitBreaker | None:
        """An evicted breaker still held elsewhere, listed again (it is being used)."""
        found = self._evicted.get(name)
        if found is not None:
            self._list_again(found)
        return found

    def _list_again(self, breaker: CircuitBreaker) -> None:
        name = breaker.name
        if self._evicted.get(name) is breaker:
            del self._evicted[name]
        self._breakers.setdefault(name, breaker)
        breaker._evicted_from = None
        breaker._seen = _config.state.now()

    def readmit(self, breaker: CircuitBreaker) -> None:
        """``breaker`` was evicted and its state is changing: list it again."""
        with self._lock:
            if breaker._evicted_from is self:
                self._list_again(breaker)

    def _maybe_sweep(self, now: float) -> None:
        timeout = self._idle_timeout
        if timeout is None:
            return
        due = self._next_sweep
        if now >= due or now < due - timeout:  # due, or the clock was replaced
            self.evict_idle(at_most=SWEEP_BATCH)

    def evict_idle(self, idle_for: float | None = None, *, at_most: int | None = None) -> int:
        """Evict the breakers idle and unused for ``idle_for`` seconds (default
        ``idle_timeout``), the longest-listed first, at most ``at_most`` of them (default:
        all); return how many were evicted."""
        if idle_for is not None:
            idle_for = _validate.duration("idle_for", idle_for)
        if at_most is not None:
            _validate.integer("at_most", at_most, minimum=1)
        limit = self._idle_timeout if idle_for is None else idle_for
        if limit is None:
            return 0
        now = _config.state.now()
        idle: list[CircuitBreaker] = []
        soonest = math.inf  # when the next idle breaker would be due, for the next sweep
        with self._lock:
            for breaker in list(self._breakers.values()):
                breaker._follow_default()
                if is_idle(breaker._cell.state):
                    seen = breaker._seen
                    if now - seen >= limit:
                        idle.append(breaker)
                        if len(idle) == at_most:
                            soonest = -math.inf  # more may be due: sweep again next time
                            break
                    elif seen < soonest:
                        soonest = seen
            timeout = self._idle_timeout
            if timeout is not None:
                self._next_sweep = min(now + timeout / 4, soonest + timeout)
            for breaker in idle:
                del self._breakers[breaker.name]
                self._evicted[breaker.name] = breaker
                breaker._evicted_from = self
        if not idle:
            return 0
        evicted = len(idle)
        by_store: dict[int, tuple[Store, list[str]]] = {}
        for breaker in idle:
            home = breaker.store if breaker.store is not None else default_store()
            by_store.setdefault(id(home), (home, []))[1].append(breaker.name)
        names = [breaker.name for breaker in idle]
        del idle, breaker  # what nothing else holds is freed here
        _breaker_metrics.forget(names)
        for home, held in by_store.values():
            release = getattr(home, "release", None)  # stores with in-process cells
            if release is not None:
                release(held)
        self._dropped += evicted
        if self._dropped >= len(self._breakers):  # as many dead slots as live ones
            self._compact()
        return evicted

    def _compact(self) -> None:
        """Give back the memory of evicted entries: dicts and sets keep their size after
        deletions, a copy does not. Amortised: done once the dead slots outnumber the
        live ones."""
        with self._lock:
            self._breakers = dict(self._breakers)
            self._evicted = weakref.WeakValueDictionary(self._evicted)
            self._dropped = 0
        _events.hub.compact()

    # --- presets and listings -----------------------------------------------------------

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
        """The listed names, sorted (evicted breakers are not listed)."""
        return sorted(self._breakers)

    def open_names(self) -> list[str]:
        """The names of the breakers rejecting calls now (for health reports)."""
        return sorted(name for name, b in list(self._breakers.items()) if b.opened)

    def clear(self) -> None:
        """Forget every breaker (their states stay in their stores)."""
        with self._lock:
            for breaker in self._evicted.values():
                breaker._evicted_from = None
            self._breakers = {}
            self._evicted = weakref.WeakValueDictionary()
            self._dropped = 0

    def __contains__(self, name: object) -> bool:
        """Whether ``name`` is listed (an evicted breaker is idle, so closed, and only
        ``get`` still finds it)."""
        return name in self._breakers

    def __iter__(self) -> Iterator[CircuitBreaker]:
        return iter(list(self._breakers.values()))

    def __len__(self) -> int:
        return len(self._breakers)

    def __repr__(self) -> str:
        return f"<CircuitBreakerRegistry {self.names()}>"


CircuitBreakerRegistry.instance = CircuitBreakerRegistry()


def _reset() -> None:
    registry = CircuitBreakerRegistry.instance
    registry.clear()
    registry.idle_timeout = DEFAULT_IDLE_TIMEOUT


_config.on_reset(_reset)


def _states() -> dict[str, str]:
    registry = CircuitBreakerRegistry.instance
    registry._maybe_sweep(_config.state.now())
    return {b.name: b.state.name.lower() for b in registry}


telemetry.add_circuit_source(_states)  # open breakers make the health report critical


def get_breaker(name: str) -> CircuitBreaker:
    """The breaker called ``name`` (``CircuitBreakerRegistry.instance.get(name)``)."""
    return CircuitBreakerRegistry.instance.get(name)
