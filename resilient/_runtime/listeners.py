"""Listeners: who hears about events, and how a broken one is kept from doing harm.

The events themselves (frozen dataclasses) live in ``_breaker_events``, imported on the
first event built: building dataclasses costs import time that callers without
listeners should not pay. Listeners are plain callables, registered on one breaker or
globally. A listener that raises is logged once (then silenced) and never breaks the
call that emitted the event.

Nothing is built unless someone listens: an emitter keeps one flag saying whether it or
the hub has listeners, and the hub refreshes the flags of its watchers when the global
listeners change, so the hot path reads one attribute.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from .events import BreakerEvent

__all__ = [
    "Listener",
    "add_listener",
    "dispatch",
    "hub",
    "remove_listener",
]

logger = logging.getLogger("resilient")


Listener: TypeAlias = "Callable[[BreakerEvent], object]"
"""Called with each event; what it returns is ignored."""


class _Hub:
    """The global listeners, and the emitters to tell when they change."""

    __slots__ = ("_broken", "_lock", "_peak", "_watchers", "active", "listeners")

    def __init__(self) -> None:
        self.listeners: tuple[Listener, ...] = ()
        self.active = False
        self._broken: set[int] = set()
        self._lock = threading.Lock()
        self._watchers: weakref.WeakSet[Any] = weakref.WeakSet()
        self._peak = 0  # the most watchers since the set was last compacted

    def watch(self, emitter: Any) -> None:
        """Call ``emitter.listeners_changed()`` whenever the global listeners change."""
        with self._lock:
            watchers = self._watchers
            watchers.add(emitter)
            if len(watchers) > self._peak:
                self._peak = len(watchers)

    def compact(self) -> None:
        """Give back the memory of watchers that are gone, once at most half of the most
        ever watched are left (a set keeps its size after deletions; a copy does not)."""
        with self._lock:
            if len(self._watchers) * 2 <= self._peak:
                self._watchers = weakref.WeakSet(list(self._watchers))
                self._peak = len(self._watchers)

    def _changed(self) -> None:
        for emitter in list(self._watchers):
            emitter.listeners_changed()

    def add(self, listener: Listener) -> None:
        with self._lock:
            self.listeners = (*self.listeners, listener)
            self.active = True
        self._changed()

    def remove(self, listener: Listener) -> None:
        with self._lock:
            listeners = list(self.listeners)
            if listener in listeners:
                listeners.remove(listener)
            self.listeners = tuple(listeners)
            self.active = bool(listeners)
            self._broken.discard(id(listener))
        self._changed()

    def clear(self) -> None:
        with self._lock:
            self.listeners = ()
            self.active = False
            self._broken.clear()
        self._changed()

    def report(self, listener: Listener, event: BreakerEvent) -> None:
        """Log a listener's failure the first time only: a broken sink must not flood logs."""
        key = id(listener)
        if key in self._broken:
            return
        self._broken.add(key)
        logger.exception(
            "resilient: listener %r raised on %s; it stays registered, further errors "
            "from it are not logged",
            listener,
            type(event).__name__,
        )


hub = _Hub()


def add_listener(listener: Listener) -> Listener:
    """Call ``listener(event)`` for every event resilient emits; returns ``listener``.

    Usable as a decorator. A listener that raises is logged once and never breaks a call.
    """
    given: object = listener  # checked at run time too: annotations are not enforced
    if not callable(given):
        from ..exceptions import ConfigError

        raise ConfigError("listener", listener, "a callable taking one event")
    hub.add(listener)
    return listener


def remove_listener(listener: Listener) -> None:
    """Stop calling ``listener`` (no error if it was not registered)."""
    hub.remove(listener)


def dispatch(local: Iterable[Listener], events: Iterable[BreakerEvent]) -> None:
    """Hand each event to the breaker's own listeners, then to the global ones."""
    for event in events:
        for listener in (*local, *hub.listeners):
            try:
                listener(event)
            except Exception:
                hub.report(listener, event)


def _reset() -> None:
    hub.clear()


from . import config as _config  # noqa: E402 - after hub exists; _config imports nothing of ours

_config.on_reset(_reset)
