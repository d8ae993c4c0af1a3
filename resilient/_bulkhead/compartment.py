"""A compartment: the slots of one bulkhead, its FIFO queue, and the table of named ones.

The decision is made under one ``threading.Lock`` (a C lock: two uncontended
acquisitions are the whole cost of an admitted call), so one compartment can be shared
by threads, by tasks, and by event loops in different threads. A slot is never freed
while a call waits: it is handed to the oldest waiter (``granted`` is set under the
lock, then the waiter is woken), so the queue is FIFO and a newcomer never overtakes it.
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
    """The slots of one bulkhead: ``active`` calls running, ``waiters`` queued in order."""

    __slots__ = ("__weakref__", "active", "label", "lock", "max_concurrent", "max_queue", "waiters")

    def __init__(self, label: str, max_concurrent: int, max_queue: int) -> None:
        self.label = label
        self.max_concurrent = max_concurrent
        self.max_queue = max_queue
        self.active = 0
        self.waiters: deque[Waiter] = deque()
        self.lock = threading.Lock()
        compartments.add(self)

    def hand_over(self) -> None:
        """Free one slot: to the oldest waiter that can take it, else back to the pool.

        Called with ``lock`` held."""
        waiters = self.waiters
        while waiters:
            if waiters.popleft().grant():
                return
        self.active -= 1

    def leave(self, waiter: Waiter) -> None:
        """The end of a queued call, however it ended: its slot or its place is given up."""
        with self.lock:
            if waiter.granted:
                self.hand_over()
            elif waiter.queued:
                try:
                    self.waiters.remove(waiter)
                except ValueError:  # taken off by a hand-over that could not wake it
                    pass

    def saturated(self) -> bool:
        """Every slot is taken."""
        return self.active >= self.max_concurrent

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
