"""One breaker per name: ``CircuitBreakerRegistry`` and ``get_breaker``."""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import ClassVar

from .. import telemetry
from .._circuit.config import BreakerConfig, check_name
from .._circuit.rules import BreakerMode, is_idle
from .._runtime import config as _config
from .._runtime import listeners as _events
from .._runtime import validate as _validate
from ..exceptions import ConfigError
from ..metrics._names import OPEN_CIRCUITS
from . import metrics as _breaker_metrics
from .breaker import CircuitBreaker, Store, default_store

__all__ = ["DEFAULT_IDLE_TIMEOUT", "SWEEP_BATCH", "CircuitBreakerRegistry", "get_breaker"]


DEFAULT_IDLE_TIMEOUT = 600.0
"""Seconds a breaker must be idle and unused before the registry lets go of it."""

_OPEN_MODES = (BreakerMode.OPEN, BreakerMode.FORCED_OPEN)

_adopting: ContextVar[list[tuple[CircuitBreaker, BreakerConfig, bool]] | None] = ContextVar(
    "resilient_adopting_configs", default=None
)

SWEEP_BATCH = 2_000
"""The most breakers one automatic sweep evicts (about 20 ms); the next one goes on."""


class CircuitBreakerRegistry:
    """The breakers of this process by name.

    ``CircuitBreakerRegistry.instance`` is the one ``@breaker`` uses. Claiming a name
    again with a different configuration or store raises ``ConfigError``: two sets of
    rules on one state would contradict each other.

    Breakers left idle (closed, no failure or slow call counted, no probe) and unused for
    ``idle_timeout`` seconds (default 10 minutes; ``None`` keeps every breaker) are
    evicted: the registry stops listing them (``names()``, iteration, the health report),
    their in-process state cell and their ``open_circuits`` gauge are freed, and a
    breaker nothing else holds is freed too. State kept in a shared store stays there.
    A use is a call through the breaker (decorated function, ``call``, ``acall``, ``with``)
    or a lookup with ``get_or_create``; ``get`` and reading a breaker's state are not.
    An evicted breaker that something still holds keeps working, is still found by
    ``get(name)``, and is listed again, with its gauge, on its next use.

    A breaker in use is never evicted, yet its calls do no bookkeeping: each sweep marks
    the listed breakers, a marked breaker's next call takes the full path once and clears
    the mark (noting the time), and a sweep evicts only breakers still marked since at
    least ``idle_timeout`` ago. So a breaker unused for ``idle_timeout`` goes at the first
    sweep after that, up to a sweep interval later than that if it was used after it was
    last marked. Sweeps run on the configured clock when a breaker is created or the
    health report is read: as soon as the longest-unused marked breaker has been unused
    for ``idle_timeout``, else a quarter of ``idle_timeout`` after the last sweep. One such
    sweep evicts at most ``SWEEP_BATCH`` breakers (about 10 µs each), and the next trigger
    goes on where it stopped; ``evict_idle()`` sweeps everything at once.
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

        ``config=None`` accepts whatever configuration the name already has. The name is
        checked when a breaker is created (every listed name passed that check).
        """
        try:
            found = self._breakers.get(name)
        except TypeError:  # unhashable, so not a name: check_name says why
            found = None
        if found is None:
            check_name(name)
            now = _config.state.now()
            with self._lock:
                found = self._breakers.get(name) or self._find_evicted(name, now)
                if found is None:
                    found = self._breakers[name] = CircuitBreaker(name, config, store=store)
                    self._watch(found, now)
                    created = True
                else:
                    created = False
            if created:
                self.sweep_if_due(now)
                return found
        elif found._watcher is self:  # watched: a lookup is a use, note when
            self._looked_up(found)
        if config is not None and config != found.config:
            adopted = _adopting.get()
            # Inside adopting(), the new config wins, once: a second claim with yet
            # another config contradicts the first, as outside it.
            if adopted is not None and all(held is not found for held, _, _ in adopted):
                adopted.append((found, found.config, found._follows))
                found.reconfigure(config)
                return found
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
        now = _config.state.now()
        with self._lock:
            found = self._find_evicted(breaker.name, now)
            if found is None:
                found = self._breakers.setdefault(breaker.name, breaker)
                if found is breaker and breaker._watcher is not self:
                    self._watch(breaker, now)
        if found is not breaker:
            raise ConfigError("name", breaker.name, "a name no other registered breaker has")
        return breaker

    @staticmethod
    @contextmanager
    def adopting() -> Iterator[None]:
        """Within this block, claiming a name with another config reconfigures the breaker
        (``CircuitBreaker.reconfigure``: its state is kept) instead of raising
        ``ConfigError``, once per breaker (claiming it again with a third config raises);
        if the block raises, every breaker reconfigured in it gets its old config back.
        For reloading policies at run time."""
        adopted: list[tuple[CircuitBreaker, BreakerConfig, bool]] = []
        token = _adopting.set(adopted)
        try:
            yield
        except BaseException:
            for breaker, old, follows in reversed(adopted):
                breaker._use_config(old)
                breaker._follows = follows
            raise
        finally:
            _adopting.reset(token)

    # --- noting use and evicting idle breakers ------------------------------------------

    def _watch(self, breaker: CircuitBreaker, now: float) -> None:
        """Mark ``breaker`` (under the lock): unused since ``now`` until its next use."""
        breaker._seen = now
        breaker._watcher = self
        breaker.listeners_changed()  # its next call takes the full path and tells us

    def note_use(self, breaker: CircuitBreaker) -> None:
        """``breaker``, which this registry watches, is being used: note the time, clear
        the mark (its calls are quiet again) and list it again if it was evicted."""
        now = _config.state.now()
        with self._lock:
            if breaker._watcher is not self:
                return  # another thread noted it first
            breaker._seen = now
            breaker._watcher = None
            breaker.listeners_changed()
            self._relist(breaker)

    def _looked_up(self, breaker: CircuitBreaker) -> None:
        """A lookup found a watched breaker: it stays marked, unused from now on."""
        now = _config.state.now()
        with self._lock:
            if breaker._watcher is self:
                breaker._seen = now
                self._relist(breaker)

    def _find_evicted(self, name: str, now: float) -> CircuitBreaker | None:
        """An evicted breaker still held elsewhere, listed again (it is being looked up)."""
        found = self._evicted.get(name)
        if found is not None:
            self._relist(found)
            if found._watcher is self:
                found._seen = now
        return found

    def _relist(self, breaker: CircuitBreaker) -> None:
        """List ``breaker`` again if it was evicted, with its ``open_circuits`` gauge."""
        name = breaker.name
        if self._evicted.get(name) is not breaker:
            return
        del self._evicted[name]
        self._breakers.setdefault(name, breaker)
        mode = breaker._cell.state.mode
        telemetry.set_gauge(OPEN_CIRCUITS, 1 if mode in _OPEN_MODES else 0, breaker=name)

    def sweep_if_due(self, now: float) -> None:
        """Evict idle breakers (a batch at most) if a sweep is due at ``now``."""
        timeout = self._idle_timeout
        if timeout is None:
            return
        due = self._next_sweep
        if now >= due or now < due - timeout:  # due, or the clock was replaced
            self.evict_idle(at_most=SWEEP_BATCH)

    def was_evicted(self, name: str) -> bool:
        """Whether a breaker of that name was evicted (idle) and is still alive."""
        return self._evicted.get(name) is not None

    def evict_idle(self, idle_for: float | None = None, *, at_most: int | None = None) -> int:
        """Evict the breakers idle and unused for ``idle_for`` seconds (default
        ``idle_timeout``), the longest-listed first, at most ``at_most`` of them (default:
        all); return how many were evicted.

        A breaker used since the last sweep counts as unused from now on: its calls are
        not timed one by one (see the class docstring)."""
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
                watched = breaker._watcher is self
                if not is_idle(breaker._cell.state):
                    if watched:  # kept anyway: let its calls go quiet
                        breaker._watcher = None
                        breaker.listeners_changed()
                    continue
                if not watched or not breaker._loud:  # used since the last sweep
                    self._watch(breaker, now)
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
            if not idle:
                return 0
            for breaker in idle:  # still watched: the next use lists it again
                del self._breakers[breaker.name]
                self._evicted[breaker.name] = breaker
            names = [breaker.name for breaker in idle]
            # Under the lock, so a use listing one of them again cannot come in between.
            _breaker_metrics.forget(names)
        evicted = len(idle)
        by_store: dict[int, tuple[Store, list[str]]] = {}
        for breaker in idle:
            home = breaker.store if breaker.store is not None else default_store()
            by_store.setdefault(id(home), (home, []))[1].append(breaker.name)
        del idle, breaker  # what nothing else holds is freed here
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
        return self.get_or_create("ai_service", BreakerConfig.ai_operation)

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
            for breaker in [*self._breakers.values(), *self._evicted.values()]:
                if breaker._watcher is self:
                    breaker._watcher = None
                    breaker.listeners_changed()
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
    registry.sweep_if_due(_config.state.now())
    return {b.name: b.mode.name.lower() for b in registry}


telemetry.add_circuit_source(_states)  # open breakers make the health report critical


def get_breaker(name: str) -> CircuitBreaker:
    """The breaker called ``name`` (``CircuitBreakerRegistry.instance.get(name)``)."""
    return CircuitBreakerRegistry.instance.get(name)
