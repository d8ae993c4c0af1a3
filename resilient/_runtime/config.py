"""The process-wide state decorators read at call time: the clock, the metrics emitter,
the default state store and the testing and chaos switches.

Decorators read ``state`` at call time, so ``configure`` also affects functions that were
decorated before it ran.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .clock import SYSTEM_CLOCK
from .types import Clock, Emit, MetricsSink

__all__ = ["defaults_hooks", "lock", "on_reset", "on_switch", "reset", "state"]


class _State:
    """The live defaults; one attribute read per call on the hot path."""

    __slots__ = (
        "active",
        "breaker_defaults",
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
        self.emit: Emit | None = None  # None: metrics off, decorators record nothing
        self.store: object | None = None
        self.breaker_defaults: object | None = None  # a BreakerConfig (configure())
        self.bypass = False  # resilient.testing.disabled(): decorators pass straight through
        self.instant: int | None = None  # resilient.testing.instant(): attempt cap, no waits
        self.chaos = 0  # resilient.chaos injectors active as context managers
        self.active = False  # any of the above on: wrapped functions run their observed chain

    def refresh(self) -> None:
        """Recompute ``active`` after changing what it summarises; when it changes, the
        hooks given to :func:`on_switch` run (they switch the wrapped functions over).

        Callers change the summarised fields and refresh under :data:`lock`, so two
        threads cannot leave ``active`` (and the functions' code) disagreeing with them.
        """
        with lock:
            active = self.emit is not None or self.bypass or self.chaos > 0
            if active != self.active:
                self.active = active
                for hook in _switch_hooks:
                    hook()


lock = threading.RLock()
"""Held while ``emit``, ``bypass`` or ``chaos`` change and ``active`` follows them (and the
wrapped functions switch). Re-entrant: a finalizer run by the collector may switch."""
state = _State()
_reset_hooks: list[Callable[[], None]] = []
_switch_hooks: list[Callable[[], None]] = []
defaults_hooks: list[Callable[[object], None]] = []
"""Called by ``configure(breaker_defaults=...)`` with the new config (the breaker layer
registers one that sets ``state.breaker_defaults`` and updates the breakers following it)."""


def on_switch(hook: Callable[[], None]) -> Callable[[], None]:
    """Register ``hook`` to run each time ``state.active`` changes (``_wrapping.switch``)."""
    _switch_hooks.append(hook)
    return hook


def on_reset(hook: Callable[[], None]) -> Callable[[], None]:
    """Register ``hook`` to run on ``resilient.testing.reset()`` (for module-level state)."""
    _reset_hooks.append(hook)
    return hook


def reset() -> None:
    """Return every global to a fresh state."""
    with lock:
        state.clock = SYSTEM_CLOCK
        state.now = time.monotonic
        state.metrics = None
        state.emit = None
        state.store = None
        state.breaker_defaults = None
        state.bypass = False
        state.instant = None
        state.chaos = 0
        state.refresh()
    for hook in _reset_hooks:
        hook()
