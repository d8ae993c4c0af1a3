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
    "checked",
    "dispatch",
    "dispatch_before",
    "dispatch_to",
    "hub",
    "remove_listener",
    "without",
]

logger = logging.getLogger("resilient")


Listener: TypeAlias = "Callable[[BreakerEvent], object]"
"""Called with each event; what it returns is ignored."""


class _Serial:
    """A listener called by one thread at a time (``add_listener(..., serial=True)``).

    Every serial registration of one listener (on several breakers, or on a breaker and
    globally) takes turns on the same lock: the listener is what is not thread-safe.
    Equal to the listener it wraps, so ``remove_listener(listener)`` finds it."""

    __slots__ = ("__weakref__", "_lock", "listener")

    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self._lock = _lock_of(listener, self)

    def __call__(self, event: BreakerEvent) -> object:
        with self._lock:
            return self.listener(event)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _Serial):
            return other.listener == self.listener
        return bool(other == self.listener)

    def __hash__(self) -> int:
        return hash(self.listener)

    def __repr__(self) -> str:
        return f"{self.listener!r} (serial)"


_serial_locks: dict[Any, list[Any]] = {}
"""Each listener registered with ``serial=True``: ``[its lock, live registrations]``."""
_serial_guard = threading.Lock()


def _lock_of(listener: Listener, registration: _Serial) -> Any:
    """The lock of ``listener``, shared by its serial registrations while any is alive.

    Re-entrant: a listener whose work emits another event in the same thread (it calls a
    guarded function) is called again rather than deadlocked.
    """
    try:
        with _serial_guard:
            entry = _serial_locks.get(listener)
            if entry is None:
                entry = _serial_locks[listener] = [threading.RLock(), 0]
            entry[1] += 1
    except TypeError:  # an unhashable callable: a lock of its own registration
        return threading.RLock()
    weakref.finalize(registration, _let_go, listener).atexit = False
    return entry[0]


def _let_go(listener: Listener) -> None:
    """One serial registration of ``listener`` is gone; the last one frees its lock."""
    with _serial_guard:
        entry = _serial_locks.get(listener)
        if entry is not None:
            entry[1] -= 1
            if entry[1] <= 0:
                del _serial_locks[listener]


def checked(listener: object, serial: object, before_call: object) -> Listener:
    """``listener`` as registered: validated, and wrapped in a lock when ``serial``."""
    if not callable(listener):
        from ..exceptions import ConfigError

        raise ConfigError("listener", listener, "a callable taking one event")
    for name, flag in (("serial", serial), ("before_call", before_call)):
        if not isinstance(flag, bool):
            from ..exceptions import ConfigError

            raise ConfigError(name, flag, "True or False")
    return _Serial(listener) if serial else listener


class _Hub:
    """The global listeners, and the emitters to tell when they change."""

    __slots__ = (
        "_broken",
        "_lock",
        "_peak",
        "_watchers",
        "active",
        "before",
        "creation",
        "listeners",
    )

    def __init__(self) -> None:
        self.listeners: tuple[Listener, ...] = ()
        self.before: tuple[Listener, ...] = ()
        """The listeners that also hear ``CallAdmitted`` before each call."""
        self.creation: tuple[Listener, ...] = ()
        """The listeners that also hear ``BreakerCreated``."""
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

    def watchers(self) -> list[Any]:
        """The emitters watched now."""
        with self._lock:
            return list(self._watchers)

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

    def add(self, listener: Listener, before_call: bool = False, created: bool = False) -> None:
        with self._lock:
            self.listeners = (*self.listeners, listener)
            if before_call:
                self.before = (*self.before, listener)
            if created:
                self.creation = (*self.creation, listener)
            self.active = True
        self._changed()

    def remove(self, listener: Listener) -> None:
        with self._lock:
            for index, held in enumerate(self.listeners):
                if held == listener:
                    self._broken.discard(id(held))
                    self.listeners = self.listeners[:index] + self.listeners[index + 1 :]
                    break
            self.before = without(self.before, listener)
            self.creation = without(self.creation, listener)
            self.active = bool(self.listeners)
            self._broken.discard(id(listener))
        self._changed()

    def clear(self) -> None:
        with self._lock:
            self.listeners = ()
            self.before = ()
            self.creation = ()
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


def without(listeners: tuple[Listener, ...], listener: Listener) -> tuple[Listener, ...]:
    """``listeners`` less the first one equal to ``listener`` (if any)."""
    for index, held in enumerate(listeners):
        if held == listener:
            return listeners[:index] + listeners[index + 1 :]
    return listeners


def add_listener(
    listener: Listener, *, serial: bool = False, before_call: bool = False, created: bool = False
) -> Listener:
    """Call ``listener(event)`` for every event resilient emits; returns ``listener``.

    Usable as a decorator. A listener that raises is logged once and never breaks a call.

    Listeners run in the thread of the call that emitted the event, so one listener may
    run in several threads at once: a listener that is not thread-safe (it appends to a
    shared list, writes a file, updates a counter) should be registered with
    ``serial=True``, and its calls then take turns on a lock of its own, one lock
    wherever it is registered serial (globally, on several breakers), so its calls from
    different breakers take turns too (a serial listener that emits events itself, by
    calling a guarded function, is not deadlocked).
    Keep listeners short either way: they run inside the calls they hear about.

    Two events go only to listeners that ask for them, and cost nothing while none
    does: ``before_call=True`` also hands it a ``CallAdmitted`` event before each call a
    breaker lets through (pybreaker's ``before_call``), ``created=True`` a
    ``BreakerCreated`` event each time a breaker is made (purgatory's
    ``circuit_breaker_created``).
    """
    registered = checked(listener, serial, before_call)
    flag: object = created  # checked at run time: annotations are not enforced
    if not isinstance(flag, bool):
        from ..exceptions import ConfigError

        raise ConfigError("created", created, "True or False")
    hub.add(registered, before_call, created)
    return listener


def remove_listener(listener: Listener) -> None:
    """Stop calling ``listener`` (no error if it was not registered)."""
    hub.remove(listener)


def dispatch_before(local: tuple[Listener, ...], event: BreakerEvent) -> None:
    """Hand a ``CallAdmitted`` event to the listeners that asked for it."""
    for listener in (*local, *hub.before):
        try:
            listener(event)
        except Exception:
            hub.report(listener, event)


def dispatch_to(listeners: tuple[Listener, ...], event: BreakerEvent) -> None:
    """Hand ``event`` to ``listeners`` (a broken one is logged once)."""
    for listener in listeners:
        try:
            listener(event)
        except Exception:
            hub.report(listener, event)


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
