"""``@bulkhead``: at most ``max_concurrent`` calls run at once; a few wait, the rest are refused.

An admitted call takes no lock (``compartment`` says how). A call that finds
every slot taken joins the FIFO queue when it has room (``max_queue``) and time: it
waits at most ``queue_timeout`` and never past the deadline (``resilient.remaining()``);
otherwise it is refused at once with ``BulkheadFullError``. Threads wait on a lock,
tasks on a future of their event loop (so the pytest plugin's virtual loop time drives
their ``queue_timeout``). Under ``resilient.testing.instant()`` nothing waits: a call
that would queue is refused at once.
"""

from __future__ import annotations

import threading
from threading import TIMEOUT_MAX
from typing import Any

from .._runtime import config as _config
from .._runtime import deadline as _deadline
from .._runtime import validate as _validate
from .._runtime.clock import SYSTEM_CLOCK
from .._runtime.types import MetricsSink, Seconds
from .._wrapping.emit import Emitter, emitter_for
from .._wrapping.layer import AnyCall, AsyncCall, Decorator, Layer
from ..exceptions import BulkheadFullError, ConfigError
from ..metrics._names import BULKHEAD_ACTIVE, BULKHEAD_REJECTIONS
from ..telemetry import add_bulkhead_source, count
from .compartment import Compartment, Waiter, compartments, named, shared

__all__ = ["bulkhead", "saturated_bulkheads"]

_SLICE = 0.005  # real seconds between two looks at a clock other than the system clock
_FULL = "the queue is full"
_NO_QUEUE = "every slot is taken and it has no queue"
_NO_TIME = "the deadline left no time to wait in the queue"
_NO_PATIENCE = "every slot is taken and queue_timeout=0 lets no call wait"
_INSTANT = "every slot is taken (resilient.testing.instant(): nothing waits)"


def bulkhead(
    max_concurrent: int,
    *,
    max_queue: int = 0,
    queue_timeout: Seconds | None = None,
    name: str | None = None,
    metrics: MetricsSink | None = None,
) -> Decorator:
    """Let at most ``max_concurrent`` calls run at once; refuse the rest with ``BulkheadFullError``.

    Up to ``max_queue`` calls wait for a slot, first come first served, each at most
    ``queue_timeout`` seconds (``None``: no limit of its own) and never past the deadline
    of an enclosing ``@timeout``. ``name`` shares one compartment between every function
    decorated with it (the limits must then agree); without it each function has its
    own. ``metrics`` overrides the configured sink for this function
    (``bulkhead_rejections_total``, ``bulkhead_active``).
    """
    limit = _validate.integer("max_concurrent", max_concurrent, minimum=1)
    queue = _validate.integer("max_queue", max_queue, minimum=0)
    patience = _validate.duration("queue_timeout", queue_timeout, allow_none=True)
    given: object = name  # checked at run time: annotations are not enforced
    if name is not None and (not isinstance(given, str) or not name):
        raise ConfigError("name", name, "a bulkhead name (non-empty text) or None")
    compartment = None
    if name is not None:
        try:
            compartment = shared(name, limit, queue)
        except ValueError as error:
            if named[name].max_concurrent == limit:  # the queue is what differs
                raise ConfigError("max_queue", max_queue, str(error)) from None
            raise ConfigError("max_concurrent", max_concurrent, str(error)) from None
    layer = _Bulkhead(limit, queue, patience, name, compartment)
    layer.emitter = emitter_for(metrics)
    return Decorator(layer)


class _Bulkhead(Layer):
    __slots__ = ("compartment", "emitter", "max_concurrent", "max_queue", "name", "own", "patience")
    kind = "bulkhead"

    def __init__(
        self,
        max_concurrent: int,
        max_queue: int,
        patience: float | None,
        name: str | None,
        compartment: Compartment | None,
    ) -> None:
        self.max_concurrent = max_concurrent
        self.max_queue = max_queue
        self.patience = patience
        self.name = name
        self.compartment = compartment
        self.own: dict[str, Compartment] = {}  # without a name: one per function
        self.emitter: Emitter | None = None

    def describe(self) -> dict[str, object]:
        described: dict[str, object] = {
            "layer": self.kind,
            "max_concurrent": self.max_concurrent,
            "max_queue": self.max_queue,
            "queue_timeout": self.patience,
        }
        if self.name is not None:
            described["name"] = self.name
        return described

    def _compartment(self, function: str) -> Compartment:
        if self.compartment is not None:
            return self.compartment
        found = self.own.get(function)
        if found is None:  # the plain and chaos chains of one function share it
            found = self.own[function] = Compartment(function, self.max_concurrent, self.max_queue)
        return found

    # --- the shells ----------------------------------------------------------------

    def wrap_sync(self, call: AnyCall, name: str) -> AnyCall:
        compartment = self._compartment(name)
        take, put, waiters = compartment.tokens.pop, compartment.tokens.append, compartment.waiters
        layer, state, override = self, _config.state, self.emitter

        def bounded(*args: Any, **kwargs: Any) -> Any:
            held = True  # before the pop: a signal can only come after it
            try:
                try:
                    take()
                except IndexError:
                    held = False
                if not held:  # out of the except: the caller's errors get no context
                    return layer.queued_sync(compartment, call, args, kwargs)
                if override is not None or state.emit is not None:
                    layer.report(compartment)
                return call(*args, **kwargs)
            finally:
                if held:
                    if waiters:
                        compartment.release()
                    else:
                        put(None)
                        if waiters:
                            compartment.rescue()
                    if override is not None or state.emit is not None:
                        layer.report(compartment)

        return bounded

    def wrap_async(self, call: AsyncCall, name: str) -> AsyncCall:
        compartment = self._compartment(name)
        take, put, waiters = compartment.tokens.pop, compartment.tokens.append, compartment.waiters
        layer, state, override = self, _config.state, self.emitter

        async def bounded(*args: Any, **kwargs: Any) -> Any:
            held = True
            try:
                try:
                    take()
                except IndexError:
                    held = False
                if not held:
                    return await layer.queued_async(compartment, call, args, kwargs)
                if override is not None or state.emit is not None:
                    layer.report(compartment)
                return await call(*args, **kwargs)
            finally:
                if held:
                    if waiters:
                        compartment.release()
                    else:
                        put(None)
                        if waiters:
                            compartment.rescue()
                    if override is not None or state.emit is not None:
                        layer.report(compartment)

        return bounded

    # --- every slot taken ----------------------------------------------------------

    def _patience(self) -> float | None:
        """How long a call may wait for a slot now: ``queue_timeout``, the deadline, or 0
        under ``instant()``; ``None`` for no limit."""
        if _config.state.instant is not None:
            return 0.0
        wait = self.patience
        left = _deadline.remaining()
        if left is not None and (wait is None or left < wait):
            wait = left
        return wait

    def _enqueue(self, compartment: Compartment, waiter: Waiter, wait: float | None) -> str | None:
        """Admit or queue ``waiter``; the reason it is refused, if it is."""
        with compartment.lock:
            room = compartment.max_queue
            if wait is not None and wait <= 0.0:
                room = 0  # a free slot is still taken; no waiting
            if compartment.enqueue(waiter, room):
                return None
            if compartment.max_queue == 0:
                return _NO_QUEUE
            if room == 0:
                if _config.state.instant is not None:
                    return _INSTANT
                return _NO_PATIENCE if self.patience == 0.0 else _NO_TIME
            return _FULL

    def _gave_up(self, compartment: Compartment, waiter: Waiter, wait: float | None) -> str | None:
        """After the wait: ``None`` if a slot was handed over, else why the call gives up."""
        with compartment.lock:
            if waiter.granted:
                return None
        if wait is not None and wait == self.patience:
            return f"it waited queue_timeout={wait:g}s in the queue"
        return "the deadline came while it waited in the queue"

    def queued_sync(self, compartment: Compartment, call: AnyCall, args: Any, kwargs: Any) -> Any:
        waiter = Waiter()
        waiter.signal = signal = threading.Lock()
        signal.acquire()
        try:
            wait = self._patience()
            refused = self._enqueue(compartment, waiter, wait)
            if refused is not None:
                raise self.rejected(compartment, refused)
            if not waiter.granted:
                _wait_sync(signal, wait)
                refused = self._gave_up(compartment, waiter, wait)
                if refused is not None:
                    raise self.rejected(compartment, refused)
            self.report(compartment)
            return call(*args, **kwargs)
        finally:
            compartment.leave(waiter)  # granted: the slot goes on; else: out of the queue
            self.report(compartment)

    async def queued_async(
        self, compartment: Compartment, call: AsyncCall, args: Any, kwargs: Any
    ) -> Any:
        import asyncio

        loop = asyncio.get_running_loop()
        waiter = Waiter()
        waiter.loop = loop
        waiter.future = future = loop.create_future()
        try:
            wait = self._patience()
            refused = self._enqueue(compartment, waiter, wait)
            if refused is not None:
                raise self.rejected(compartment, refused)
            if not waiter.granted:
                timer = None if wait is None else loop.call_later(wait, _expire, future)
                try:
                    await future
                finally:
                    if timer is not None:
                        timer.cancel()
                refused = self._gave_up(compartment, waiter, wait)
                if refused is not None:
                    raise self.rejected(compartment, refused)
            self.report(compartment)
            return await call(*args, **kwargs)
        finally:
            compartment.leave(waiter)
            self.report(compartment)

    def rejected(self, compartment: Compartment, reason: str) -> BulkheadFullError:
        """The error for a refused call, counted and heard by listeners."""
        label = compartment.label
        count(BULKHEAD_REJECTIONS, (("bulkhead", label),), emitter=self.emitter)
        from .._runtime.listeners import dispatch, hub

        if hub.active:
            from .._runtime.events import BulkheadRejected

            event = BulkheadRejected(
                label, compartment.max_concurrent, compartment.max_queue, reason
            )
            dispatch((), (event,))  # type: ignore[arg-type]
        return BulkheadFullError(label, compartment.max_concurrent, compartment.max_queue, reason)

    def report(self, compartment: Compartment) -> None:
        """Set the ``bulkhead_active`` gauge (only with metrics on, or an override)."""
        emit = self.emitter or _config.state.emit
        if emit is not None:
            emit.gauge(BULKHEAD_ACTIVE, compartment.active, (("bulkhead", compartment.label),))


def _expire(future: Any) -> None:
    """The queue wait ran out: wake the task (its ``granted`` flag stays false)."""
    if not future.done():
        future.set_result(None)


def _wait_sync(signal: threading.Lock, wait: float | None) -> None:
    """Block until ``signal`` is released or ``wait`` seconds pass on the configured clock."""
    clock = _config.state.clock
    if clock is SYSTEM_CLOCK:
        signal.acquire(True, -1 if wait is None else min(wait, TIMEOUT_MAX))
        return
    give_up = None if wait is None else clock.monotonic() + wait
    while not signal.acquire(True, _SLICE):  # a clock another thread moves: look often
        if give_up is not None and clock.monotonic() >= give_up:
            return


def bulkhead_figures() -> dict[str, dict[str, int]]:
    """Every live compartment's use and limits, by name."""
    return {compartment.label: _figures(compartment) for compartment in list(compartments)}


def saturated_bulkheads() -> dict[str, dict[str, int]]:
    """Every compartment whose slots are all taken: its use and limits, by name."""
    return {
        compartment.label: _figures(compartment)
        for compartment in list(compartments)
        if compartment.saturated()
    }


def _figures(compartment: Compartment) -> dict[str, int]:
    return {
        "active": compartment.active,
        "max_concurrent": compartment.max_concurrent,
        "queued": len(compartment.waiters),
        "max_queue": compartment.max_queue,
    }


add_bulkhead_source(saturated_bulkheads)
