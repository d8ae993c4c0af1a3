"""Process-wide defaults: the clock, the metrics sink and the state store.

Decorators read ``state`` at call time, so ``configure`` also affects functions that were
decorated before it ran.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..exceptions import ConfigError
from ..typing import Clock
from .clock import SYSTEM_CLOCK

if TYPE_CHECKING:
    from .._wrapping.emit import Emitter
    from ..metrics import MetricsSink

__all__ = ["Configuration", "configuration", "configure", "on_reset", "reset", "state"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Configuration:
    """A snapshot of the defaults every decorator uses unless told otherwise."""

    clock: Clock = SYSTEM_CLOCK
    metrics: MetricsSink | None = None
    store: object | None = None


class _State:
    """The live defaults; one attribute read per call on the hot path."""

    __slots__ = (
        "active",
        "bypass",
        "chaos",
        "clock",
        "emit",
        "instant",
        "metrics",
        "now",
        "store",
    )

    def __init__(self) -> None:
        self.clock: Clock = SYSTEM_CLOCK
        self.now: Callable[[], float] = time.monotonic  # clock.monotonic, bound once
        self.metrics: MetricsSink | None = None
        self.emit: Emitter | None = None  # None: metrics off, decorators record nothing
        self.store: object | None = None
        self.bypass = False  # resilient.testing.disabled(): decorators pass straight through
        self.instant: int | None = None  # resilient.testing.instant(): attempt cap, no waits
        self.chaos = 0  # resilient.chaos injectors active as context managers
        self.active = False  # any of the above on: the outermost step leaves its fast path

    def refresh(self) -> None:
        """Recompute ``active`` after changing what it summarises."""
        self.active = self.emit is not None or self.bypass or self.chaos > 0


state = _State()
_reset_hooks: list[Callable[[], None]] = []

_UNSET: object = object()


def configure(
    *, clock: Clock | None = None, metrics: object = _UNSET, store: object = _UNSET
) -> Configuration:
    """Set the process-wide defaults; parameters left out keep their current value.

    ``metrics`` is a sink (``StatsdSink``, ``MemorySink``, ``NullSink``...), or ``None`` to
    switch recording off entirely (the default: decorated calls then read no clock).
    """
    if clock is not None:
        if not isinstance(clock, Clock):
            raise ConfigError("clock", clock, "an object with monotonic(), sleep() and asleep()")
        state.clock = clock
        state.now = time.monotonic if clock is SYSTEM_CLOCK else clock.monotonic
    if metrics is not _UNSET:
        from .._wrapping.emit import Emitter
        from ..metrics import MetricsSink

        if metrics is not None and not isinstance(metrics, MetricsSink):
            raise ConfigError(
                "metrics", metrics, "a sink with increment(), gauge(), timing() and flush()"
            )

        state.metrics = metrics
        state.emit = None if metrics is None else Emitter(metrics)
        state.refresh()
    if store is not _UNSET:
        if store is not None:
            from ..typing import AsyncStateStore, StateStore

            if not isinstance(store, StateStore | AsyncStateStore):
                raise ConfigError(
                    "store", store, "a state store (MemoryStore, RedisStore...) or None"
                )
        state.store = store
    return configuration()


def configuration() -> Configuration:
    """The defaults in force now."""
    return Configuration(clock=state.clock, metrics=state.metrics, store=state.store)


def on_reset(hook: Callable[[], None]) -> Callable[[], None]:
    """Register ``hook`` to run on ``resilient.testing.reset()`` (for module-level state)."""
    _reset_hooks.append(hook)
    return hook


def reset() -> None:
    """Return every global to a fresh state."""
    state.clock = SYSTEM_CLOCK
    state.now = time.monotonic
    state.metrics = None
    state.emit = None
    state.store = None
    state.bypass = False
    state.instant = None
    state.chaos = 0
    state.refresh()
    for hook in _reset_hooks:
        hook()
