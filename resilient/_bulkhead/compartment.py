"""A compartment: the slots of one bulkhead, its FIFO queue, and the table of named ones.

The free slots are tokens in a ``deque``, whose ``pop`` and ``append`` are atomic (they
are documented thread-safe): an admitted call pops a token and appends it back, with no
lock, so one compartment can be shared by threads, by tasks and by event loops in other
threads for the cost of two C calls. The queue is kept under a ``threading.Lock``, taken
only when a call finds no token or leaves while calls wait. A freed slot goes straight
to the oldest waiter (``granted`` is set under the lock, then the waiter is woken), so
waiters are served in arrival order; the only race, a slot appended back as the first
waiter queues, is closed on both sides: the waiter tries once more for a token after it
has queued, and the releaser looks at the queue again after its append.

A waiter that gives up (its wait ran out, it was cancelled, a ``KeyboardInterrupt``)
looks at ``granted`` under the lock: granted, it hands the slot on; else it leaves the
queue. No path leaves a slot taken by nobody.
"""

from __future__ import annotations

import threading
import weakref
from collections import deque
from typing import Any

from .._runtime import config as _config

__all__ = ["Compartment", "Waiter", "compartments", "named", "shared"]


class Waiter:
    """One queued call: woken with its ``granted`` flag set when a slot is handed to it."""

    __slots__ = ("future", "granted", "loop", "queued", "signal")

    def __init__(self) -> None:
        self.granted = False
        self.queued = False  # it joined the queue (else it was admitted or refused at once)
        self.signal: threading.Lock | None = None  # a thread waits on it (held until woken)
        self.future: Any = None  # a task waits on it
        self.loop: Any = None

    def grant(self) -> bool:
        """Give this waiter the slot and wake it; ``False`` if it cannot be woken."""
        self.granted = True
        if self.signal is not None:
            self.signal.release()
            return True
        try:
            self.loop.call_soon_threadsafe(_wake, self.future)
        except RuntimeError:  # its event loop is closed: nobody will take the slot
            self.granted = False
            return False
        return True


def _wake(future: Any) -> None:
    if not future.done():
        future.set_result(None)


class Compartment:
    """The slots of one bulkhead: ``tokens`` free, ``waiters`` queued in order."""

    __slots__ = (
        "__weakref__",
        "label",
        "lock",
        "max_concurrent",
        "max_queue",
        "tokens",
        "waiters",
    )

    def __init__(self, label: str, max_concurrent: int, max_queue: int) -> None:
        self.label = label
        self.max_concurrent = max_concurrent
        self.max_queue = max_queue
        self.tokens: deque[None] = deque([None] * max_concurrent)
        self.waiters: deque[Waiter] = deque()
        self.lock = threading.Lock()
        compartments.add(self)

    @property
    def active(self) -> int:
        """The slots taken now."""
        return self.max_concurrent - len(self.tokens)

    def hand_over(self) -> None:
        """Free one slot the caller holds: to the oldest waiter that can take it, else back
        to the tokens. Called with ``lock`` held."""
        waiters = self.waiters
        while waiters:
            if waiters.popleft().grant():
                return
        self.tokens.append(None)

    def release(self) -> None:
        """Free one slot the caller holds (the way out of an admitted call)."""
        if self.waiters:
            with self.lock:
                self.hand_over()
            return
        self.tokens.append(None)
        if self.waiters:  # one queued as the token went back: it must not wait for it
            self.rescue()

    def rescue(self) -> None:
        """Give free tokens to waiters that queued as they were appended back."""
        with self.lock:
            tokens = self.tokens
            while self.waiters:
                try:
                    tokens.pop()
                except IndexError:
                    return
                self.hand_over()

    def enqueue(self, waiter: Waiter, room: int) -> bool:
        """Take a free slot for ``waiter`` or queue it if fewer than ``room`` wait; ``False``
        when it can neither. Called with ``lock`` held."""
        tokens = self.tokens
        waiter.granted = True  # before the pop: an interrupt after it finds it granted
        try:
            tokens.pop()
            return True
        except IndexError:
            waiter.granted = False
        if len(self.waiters) >= room:
            return False
        waiter.queued = True  # before the append: an interrupt after it finds it queued
        self.waiters.append(waiter)
        waiter.granted = True  # a token came back as it queued: take it
        try:
            tokens.pop()
        except IndexError:
            waiter.granted = False
            return True
        self.waiters.remove(waiter)
        waiter.queued = False
        return True

    def leave(self, waiter: Waiter) -> None:
        """The end of a queued call, however it ended: its slot or its place is given up."""
        with self.lock:
            if waiter.queued:
                try:
                    self.waiters.remove(waiter)
                except ValueError:  # granted (or taken off by a grant that failed)
                    pass
            if waiter.granted:
                self.hand_over()

    def saturated(self) -> bool:
        """Every slot is taken."""
        return not self.tokens

    def __repr__(self) -> str:
        return (
            f"<resilient.bulkhead {self.label!r} active={self.active}/{self.max_concurrent} "
            f"queued={len(self.waiters)}/{self.max_queue}>"
        )


compartments: weakref.WeakSet[Compartment] = weakref.WeakSet()
"""Every compartment alive, for the health report."""
named: dict[str, Compartment] = {}
"""The compartments shared by name (``@bulkhead(name="ai", ...)``)."""
_named_lock = threading.Lock()
_config.on_reset(named.clear)


def shared(name: str, max_concurrent: int, max_queue: int) -> Compartment:
    """The compartment called ``name``, made with these limits if it is new.

    Raises ``ValueError`` naming the existing limits when they differ (the decorator
    turns it into a ``ConfigError``).
    """
    with _named_lock:
        found = named.get(name)
        if found is None:
            found = named[name] = Compartment(name, max_concurrent, max_queue)
        elif (found.max_concurrent, found.max_queue) != (max_concurrent, max_queue):
            raise ValueError(
                f"the limits of bulkhead {name!r} (max_concurrent={found.max_concurrent}, "
                f"max_queue={found.max_queue}): one name is one compartment"
            )
        return found
