"""``configure()``: the process-wide defaults (clock, metrics sink, state store)."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

from ._circuit.store import AsyncStateStore, StateStore
from ._runtime import config as _config
from ._runtime.clock import SYSTEM_CLOCK
from ._runtime.config import state
from ._runtime.types import Clock, MetricsSink
from ._wrapping.emit import Emitter
from .exceptions import ConfigError

if TYPE_CHECKING:
    from ._circuit.config import BreakerConfig

__all__ = ["Configuration", "configuration", "configure"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Configuration:
    """A snapshot of the defaults every decorator uses unless told otherwise."""

    clock: Clock = SYSTEM_CLOCK
    metrics: MetricsSink | None = None
    store: object | None = None
    breaker_defaults: BreakerConfig | None = None


class _Unchanged(enum.Enum):
    """The default of a ``configure()`` parameter left out: its current value is kept."""

    UNCHANGED = "unchanged"

    def __repr__(self) -> str:
        return "<unchanged>"  # as help(configure) and inspect.signature show the default


_UNSET: Final = _Unchanged.UNCHANGED
_Keep = Literal[_Unchanged.UNCHANGED]


def configure(
    *,
    clock: Clock | None = None,
    metrics: MetricsSink | _Keep | None = _UNSET,
    store: StateStore | AsyncStateStore | _Keep | None = _UNSET,
    breaker_defaults: BreakerConfig | _Keep | None = _UNSET,
) -> Configuration:
    """Set the process-wide defaults; parameters left out (shown as ``<unchanged>``) keep
    their current value.

    ``metrics`` is a sink (``StatsdSink``, ``MemorySink``, ``NullSink``...), or ``None`` to
    switch recording off entirely (the default: decorated calls then read no clock).

    ``breaker_defaults`` is the ``BreakerConfig`` of every breaker that names no config
    (``@breaker("name")``, ``CircuitBreaker("name")``), those made before this call
    included (their state is kept); ``None`` goes back to ``BreakerConfig.standard``.
    """
    if clock is not None:
        if not isinstance(clock, Clock):
            raise ConfigError("clock", clock, "an object with monotonic(), sleep() and asleep()")
        state.clock = clock
        state.now = time.monotonic if clock is SYSTEM_CLOCK else clock.monotonic
    if metrics is not _UNSET:
        if metrics is not None and not isinstance(metrics, MetricsSink):
            raise ConfigError(
                "metrics", metrics, "a sink with increment(), gauge(), timing() and flush()"
            )
        emit = None if metrics is None else Emitter(metrics)
        with _config.lock:  # the last caller's sink and the functions' code agree
            state.metrics = metrics
            state.emit = emit
            state.refresh()
    if store is not _UNSET:
        if store is not None and not isinstance(store, StateStore | AsyncStateStore):
            raise ConfigError("store", store, "a state store (MemoryStore, RedisStore...) or None")
        state.store = store
    if breaker_defaults is not _UNSET:
        # Imported here: ``import resilient`` does not load the breaker's config class.
        from ._circuit.config import BreakerConfig

        if breaker_defaults is not None and not isinstance(breaker_defaults, BreakerConfig):
            raise ConfigError("breaker_defaults", breaker_defaults, "a BreakerConfig or None")
        with _config.lock:
            state.breaker_defaults = breaker_defaults
        for hook in _config.defaults_hooks:  # breakers following the defaults take them
            hook(breaker_defaults)
    return configuration()


def configuration() -> Configuration:
    """The defaults in force now."""
    defaults: BreakerConfig | None = state.breaker_defaults  # type: ignore[assignment]
    return Configuration(
        clock=state.clock, metrics=state.metrics, store=state.store, breaker_defaults=defaults
    )
