"""``Outbox``: work that survives being offline, stored first and delivered later.

``enqueue`` stores an item durably before it returns; ``@outbox.deferrable`` stores a
call that failed for want of a network and hands back a ``Deferred`` receipt; handlers
registered with ``@outbox.handler`` deliver items later, from ``drain()`` or a background
drainer (``start()``), at least once each.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import random
import re
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, ParamSpec, TypeVar, overload

from .._degradation import DegradationService, Feature, Features
from .._runtime import config as _config
from .._runtime import validate as _validate
from .._runtime.logs import digest
from .._wrapping.hooks import add_note_once, safe_predicate
from ..exceptions import CircuitOpenError, ConfigError, RequestFailedError
from ..metrics._names import DEAD_LETTER_ITEMS, PENDING_SYNC_ITEMS, SYNC_FAILURES, SYNC_SUCCESS
from ..telemetry import count, set_gauge
from ._items import DeadItem, Deferred, Item, OutboxError
from ._sqlite import SQLiteBackend, default_path

if TYPE_CHECKING:
    from .._retry.decorator import RetryConfig
    from ._backend import Backend

__all__ = ["Drained", "Outbox", "is_network_error"]

P = ParamSpec("P")
R = TypeVar("R")

Handler = Callable[[Item], Any]

_SQLITE: Final = "sqlite:///"
_NAME: Final = re.compile(r"[A-Za-z0-9._:-]+")
_encode = json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode
"""Compact JSON that refuses NaN and infinities (one encoder, reused)."""
MAX_BACKOFF: Final = 30.0
"""Longest wait (seconds) of the background drainer between rounds that keep failing."""
_random = random.Random(os.urandom(16))
os.register_at_fork(after_in_child=lambda: _random.seed(os.urandom(16)))


@dataclass(frozen=True, slots=True)
class Drained:
    """What one ``drain()`` did: items delivered, deliveries that failed (to be tried
    again later) and items set aside as dead letters."""

    delivered: int = 0
    failed: int = 0
    dead: int = 0

    def __add__(self, other: Drained) -> Drained:
        return Drained(
            self.delivered + other.delivered, self.failed + other.failed, self.dead + other.dead
        )


def is_network_error(error: BaseException) -> bool:
    """Whether ``error`` says the network (or a service behind it) is unreachable for
    now: a connection error, a timeout, an open circuit, a failed ``resilient.http``
    request, a name that did not resolve, or an httpx transport error."""
    if isinstance(
        error,
        ConnectionError | TimeoutError | CircuitOpenError | RequestFailedError | socket.gaierror,
    ):
        return True
    httpx = sys.modules.get("httpx")
    return httpx is not None and isinstance(error, httpx.TransportError)


class _Registered:
    __slots__ = ("call", "is_async")

    def __init__(self, call: Handler, is_async: bool) -> None:
        self.call = call
        self.is_async = is_async


class Outbox:
    """A durable queue of work to deliver when the network allows.

    ``url`` is ``"sqlite:///path/to/outbox.db"`` (the default, in the user's data
    folder when ``None``). ``synchronous="FULL"`` makes every stored item survive a
    power cut, ``"NORMAL"`` a crash of the process (faster). An item whose delivery
    keeps failing is tried ``max_attempts`` times, waiting ``backoff.delay(n)`` after
    attempt ``n`` (a ``RetryConfig``: doubling from 1 s up to 5 min, by default), then set
    aside as a dead letter. A handler's open breaker (``CircuitOpenError``) is not the
    item's fault: the item waits for the breaker, its attempts unchanged. A drainer
    leases items for ``lease`` seconds; one that dies leaves them to the others once the
    lease ends, so a handler may see an item again after a crash (at-least-once: the
    item's ``key`` tells a repeat). Times come from the clock configured when the outbox
    is made (``resilient.configure(clock=...)``), counted from the wall clock.

    ``backlog_feature`` (a ``Feature``, for example ``Feature("sync", level=
    DegradationLevel.minor, description="answers sync later")``) is made unavailable
    while ``backlog_threshold`` items or more wait, which raises the degradation level
    and shows in the health report and the status page (the pending and dead-letter
    gauges show there too).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        max_attempts: int = 10,
        backoff: RetryConfig | None = None,
        lease: float = 30.0,
        poll: float = 1.0,
        batch: int = 32,
        synchronous: str = "FULL",
        backlog_feature: Feature | None = None,
        backlog_threshold: int = 100,
        name: str = "default",
    ) -> None:
        from .._retry.decorator import RetryConfig

        given_backoff: object = backoff
        self.max_attempts: int = _validate.integer("max_attempts", max_attempts, minimum=1)
        if backoff is None:
            backoff = RetryConfig(initial_delay=1.0, max_delay=300.0)
        elif not isinstance(given_backoff, RetryConfig):
            raise ConfigError("backoff", backoff, "a RetryConfig or None")
        self.backoff = backoff
        longest = _validate.MAX_SECONDS  # a thread can wait it, Redis can count it in ms
        self.lease: float = _validate.required_duration(
            "lease", lease, allow_zero=False, maximum=longest
        )
        self.poll: float = _validate.required_duration(
            "poll", poll, allow_zero=False, maximum=longest
        )
        self.batch: int = _validate.integer("batch", batch, minimum=1)
        if synchronous not in ("FULL", "NORMAL"):
            raise ConfigError("synchronous", synchronous, "'FULL' or 'NORMAL'")
        _check_name("name", name)
        given: object = backlog_feature
        if given is not None and not isinstance(given, Feature):
            raise ConfigError("backlog_feature", backlog_feature, "a Feature or None")
        self.backlog_feature = backlog_feature
        self.backlog_threshold: int = _validate.integer(
            "backlog_threshold", backlog_threshold, minimum=1
        )
        if backlog_feature is not None:
            Features.register(backlog_feature)
        self._over_threshold = False
        self.url = url
        self._backend = _backend(url, name, synchronous)
        clock = _config.state.clock
        started = clock.monotonic()
        wall = time.time()
        self._now: Callable[[], float] = lambda: wall + (clock.monotonic() - started)
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self._handlers: dict[str, _Registered] = {}
        self._paused: dict[str, float] = {}
        """Kinds whose handler's breaker is open, and until when (outbox time)."""
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"<Outbox {self._backend!r} handlers={sorted(self._handlers)}>"

    # --- storing -----------------------------------------------------------------------

    def enqueue(
        self, kind: str, payload: Any, *, key: str | None = None, group: str | None = None
    ) -> Deferred:
        """Store ``payload`` (JSON-serialisable) for the handler of ``kind``; returns once
        it is on disk. Enqueuing a ``key`` that is already stored stores nothing new (the
        receipt says ``stored=False``). Items of one ``group`` are delivered in order.
        ``OutboxError`` if it cannot be stored (nothing of it is then)."""
        _check_name("kind", kind)
        if key is not None:
            _check_label("key", key)
        if group is not None:
            _check_label("group", group)
        try:
            encoded = _encode(payload)
        except (TypeError, ValueError) as error:
            raise ConfigError("payload", payload, f"a JSON-serialisable value ({error})") from None
        fresh = key is None
        chosen = _new_key() if key is None else key
        position, stored = self._backend.put(chosen, kind, encoded, group, self._now(), fresh)
        if stored and self._thread is not None:  # a drainer of this process: wake it
            self._wake.set()
        return Deferred(chosen, position, kind, stored)

    def deferrable(
        self,
        kind: str,
        *,
        when: Callable[[BaseException], bool] | None = None,
        group: str | None = None,
    ) -> _Deferring:
        """Decorate a function whose failed calls are stored and done later.

        The call runs as usual; when it fails with a network-class error
        (``is_network_error``) or ``when(error)`` says so, its arguments (which must be
        JSON-serialisable) are stored under ``kind`` and the caller gets a ``Deferred``
        receipt instead of the error. Unless a handler is registered for ``kind``, the
        drainer delivers the item by calling the undecorated function with them again.
        Any other error, or arguments that cannot be stored, reach the caller (the
        latter with a note saying why the call was not deferred).
        """
        _check_name("kind", kind)
        _validate.optional_callable("when", when)
        if group is not None:
            _check_label("group", group)
        return _Deferring(self, kind, when, group)

    # --- delivering --------------------------------------------------------------------

    def handler(
        self, kind: str, *, policy: Callable[[Callable[..., Any]], Callable[..., Any]] | None = None
    ) -> Callable[[Callable[[Item], R]], Callable[[Item], R]]:
        """Register the function (sync or async) that delivers items of ``kind``; it gets
        the ``Item`` and succeeds, or raises to have the item tried again later.

        ``policy`` runs each delivery under resilient steps: a ``resilient.Policy``
        (``resilient.policy("grading")`` for one loaded from TOML,
        ``resilient.policy(timeout=10, retry="quick", breaker="grading-api")``) or any
        resilient decorator. While its breaker is open (a delivery raises
        ``CircuitOpenError``) the kind waits without using its items' attempts. The
        function is returned undecorated.
        """
        _check_name("kind", kind)
        guard = _policy_for(policy)

        def register(fn: Callable[[Item], R]) -> Callable[[Item], R]:
            if not callable(fn):
                raise ConfigError("handler", fn, "a function taking an Item")
            call = fn if guard is None else guard(fn)
            self._handlers[kind] = _Registered(call, inspect.iscoroutinefunction(fn))
            self._wake.set()
            return fn

        return register

    def drain(self, *, limit: int | None = None) -> Drained:
        """Deliver the items that are ready now with their sync handlers, on this thread,
        until none is left (or ``limit`` deliveries were tried)."""
        return self._drain(limit, None)

    def _drain(self, limit: int | None, stopping: threading.Event | None) -> Drained:
        """``drain()``; the background drainer's ends after the delivery under way once
        ``stopping`` is set, giving the rest of its batch back."""
        kinds = [k for k, h in self._handlers.items() if not h.is_async]
        total = Drained()
        while items := self._lease(kinds, limit, total, stopping):
            for index, item in enumerate(items):
                if stopping is not None and stopping.is_set():
                    self._hand_back(items[index:])
                    break
                if self._paused.get(item.kind, 0.0) > self._now():  # its breaker opened
                    self._backend.failed(item, "", self._paused[item.kind], count=False)
                    continue
                try:
                    self._handlers[item.kind].call(item)
                except BaseException as error:
                    self._give_back(items[index + 1 :], error)
                    total += self._settle(item, error)
                else:
                    total += self._settle(item, None)
        self.refresh_gauges()
        return total

    async def drain_async(self, *, limit: int | None = None) -> Drained:
        """Deliver the ready items whose handlers are ``async``, awaiting each."""
        return await self._drain_async(limit, None)

    async def _drain_async(self, limit: int | None, stopping: threading.Event | None) -> Drained:
        """``drain_async()``, ended like ``_drain`` once ``stopping`` is set."""
        kinds = [k for k, h in self._handlers.items() if h.is_async]
        total = Drained()
        while items := self._lease(kinds, limit, total, stopping):
            for index, item in enumerate(items):
                if stopping is not None and stopping.is_set():
                    self._hand_back(items[index:])
                    break
                if self._paused.get(item.kind, 0.0) > self._now():
                    self._backend.failed(item, "", self._paused[item.kind], count=False)
                    continue
                try:
                    await self._handlers[item.kind].call(item)
                except BaseException as error:
                    self._give_back(items[index + 1 :], error)
                    total += self._settle(item, error)
                else:
                    total += self._settle(item, None)
        self.refresh_gauges()
        return total

    def _lease(
        self,
        kinds: list[str],
        limit: int | None,
        done: Drained,
        stopping: threading.Event | None = None,
    ) -> list[Item]:
        if stopping is not None and stopping.is_set():
            return []
        now = self._now()
        ready = [k for k in kinds if self._paused.get(k, 0.0) <= now]
        size = self.batch
        if limit is not None:
            size = min(size, limit - done.delivered - done.failed - done.dead)
            if size <= 0:
                return []
        return self._backend.lease(ready, size, self._owner, now, self.lease)

    def _hand_back(self, items: list[Item]) -> None:
        """Release leased items not delivered, ready again now, their attempts unchanged."""
        now = self._now()
        for item in items:
            self._backend.failed(item, "", now, count=False)

    def _give_back(self, items: list[Item], error: BaseException) -> None:
        """An interrupt is on its way out: release the rest of the batch at once rather
        than when its lease ends (a store that cannot take them back leaves them to the
        lease's end; the interrupt goes on)."""
        if not isinstance(error, Exception):
            now = self._now()
            try:
                for item in items:
                    self._backend.failed(item, "", now, count=False)
            except OutboxError as refused:
                add_note_once(error, f"resilient: the outbox keeps items leased: {refused}")

    def _settle(self, item: Item, error: BaseException | None) -> Drained:
        """Record one delivery's outcome; re-raise an interrupt after giving the item back."""
        tags = (("kind", item.kind),)
        if error is None:
            self._backend.done(item)
            count(SYNC_SUCCESS, tags)
            return Drained(delivered=1)
        now = self._now()
        if not isinstance(error, Exception):  # KeyboardInterrupt, SystemExit, cancellation
            try:
                self._backend.failed(item, repr(error), now, count=False)
            except OutboxError as refused:  # its lease ends in time: the interrupt goes on
                add_note_once(error, f"resilient: the outbox keeps the item leased: {refused}")
            raise error
        if isinstance(error, CircuitOpenError):
            until = now + (error.retry_after if error.retry_after is not None else self.poll)
            self._paused[item.kind] = until
            self._backend.failed(item, repr(error), until, count=False)
            return Drained()
        count(SYNC_FAILURES, tags)
        attempts = item.attempts + 1
        if attempts >= self.max_attempts:
            self._backend.bury(item, repr(error))
            return Drained(dead=1)
        self._backend.failed(item, repr(error), now + self.backoff.delay(attempts), count=True)
        return Drained(failed=1)

    # --- the background drainer ------------------------------------------------------------

    def start(self) -> None:
        """Start a background thread delivering items as they become ready (sync handlers
        on it, async ones on an event loop of its own). Idempotent. A round that fails
        (the store unreachable or refusing) is logged, and the thread waits ``poll``,
        doubled after each further failure up to 30 s, then goes on."""
        if self._thread is not None and self._thread.is_alive():
            return
        # each thread its own signal: one that outlived stop() still ends
        self._stopping = stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(stopping,), name="resilient-outbox", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop the background drainer after the delivery under way; wait up to ``timeout``
        seconds for it."""
        self._stopping.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)

    def _run(self, stopping: threading.Event) -> None:
        import asyncio

        failures = 0
        with asyncio.Runner() as runner:
            while not stopping.is_set():
                self._wake.clear()
                try:
                    done = self._drain(None, stopping)
                    if any(h.is_async for h in self._handlers.values()):
                        done += runner.run(self._drain_async(None, stopping))
                    failures = 0
                    if done.delivered or done.failed or done.dead:
                        continue
                    wait = self._idle_wait()
                except Exception as error:  # the store is unreachable for now: try again
                    digest.report("outbox drainer failed", repr(self._backend), repr(error))
                    failures += 1
                    wait = self._backoff_wait(failures)
                self._wake.wait(wait)

    def _backoff_wait(self, failures: int) -> float:
        """Real seconds to wait after ``failures`` rounds in a row failed (the store
        unreachable or refusing): ``poll``, doubling each time up to ``MAX_BACKOFF`` (or
        ``poll`` when that is longer)."""
        return min(self.poll * 2.0 ** min(failures - 1, 32), max(self.poll, MAX_BACKOFF))

    def _idle_wait(self) -> float:
        """Real seconds to wait before looking again: until the next item is due, at most
        ``poll`` (other processes enqueue without waking this one)."""
        now = self._now()
        paused = [until for until in self._paused.values() if until > now]
        kinds = [kind for kind in self._handlers if self._paused.get(kind, 0.0) <= now]
        due = self._backend.next_ready(kinds)
        if paused:  # a paused kind's items are ready when its breaker may close
            due = min(paused) if due is None else min(due, *paused)
        if due is None:
            return self.poll
        return max(0.0, min(self.poll, due - now))

    # --- looking and tidying --------------------------------------------------------------

    def pending(self) -> int:
        """How many items wait for delivery (dead letters not included)."""
        return self._backend.counts()[0]

    def dead(self, *, limit: int = 100) -> list[DeadItem]:
        """The dead letters, oldest first, with their last errors."""
        return self._backend.dead(_validate.integer("limit", limit, minimum=1))

    def retry_dead(self, keys: list[str] | None = None) -> int:
        """Make dead letters (all, or those with ``keys``) pending again with fresh
        attempts; how many were."""
        given: object = keys
        if given is not None and (
            isinstance(given, str)
            or not isinstance(given, list | tuple | set | frozenset)
            or not all(isinstance(key, str) for key in given)
        ):
            raise ConfigError("keys", keys, "a list of item keys or None")
        revived = self._backend.revive(keys)
        if revived:
            self._wake.set()
        self.refresh_gauges()
        return revived

    def purge(
        self, *, dead: bool = True, kind: str | None = None, older_than: float | None = None
    ) -> int:
        """Delete dead letters (or, with ``dead=False``, pending items) of ``kind``, stored
        more than ``older_than`` seconds ago; how many were deleted."""
        _validate.boolean("dead", dead)
        if kind is not None:
            _check_name("kind", kind)
        before = None
        if older_than is not None:
            before = self._now() - _validate.required_duration("older_than", older_than)
        deleted = self._backend.purge(dead, kind, before)
        self.refresh_gauges()
        return deleted

    def refresh_gauges(self) -> None:
        """Report ``pending_sync_items`` and ``dead_letter_items`` as they are now, and
        mark ``backlog_feature`` unavailable while the backlog is at its threshold or
        over (done after every drain, and by ``retry_dead`` and ``purge``)."""
        pending, dead = self._backend.counts()
        set_gauge(PENDING_SYNC_ITEMS, pending)
        set_gauge(DEAD_LETTER_ITEMS, dead)
        feature = self.backlog_feature
        if feature is None:
            return
        over = pending >= self.backlog_threshold
        if over != self._over_threshold:
            self._over_threshold = over
            service = DegradationService.instance
            if over:
                service.disable(feature, f"{pending} items are waiting to sync")
            else:
                service.enable(feature)

    def close(self) -> None:
        """Stop the drainer and close the store (items stay stored)."""
        self.stop()
        self._backend.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Deferring:
    """``@outbox.deferrable(kind)``: the decorator, typed for sync and async functions."""

    def __init__(
        self,
        outbox: Outbox,
        kind: str,
        when: Callable[[BaseException], bool] | None,
        group: str | None,
    ) -> None:
        self.outbox = outbox
        self.kind = kind
        self.when = when
        self.group = group

    @overload
    def __call__(
        self, fn: Callable[P, Coroutine[Any, Any, R]]
    ) -> Callable[P, Coroutine[Any, Any, R | Deferred]]: ...
    @overload
    def __call__(self, fn: Callable[P, R]) -> Callable[P, R | Deferred]: ...
    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        outbox, kind = self.outbox, self.kind
        is_async = inspect.iscoroutinefunction(fn)
        if kind not in outbox._handlers:
            if is_async:

                async def deliver_async(item: Item) -> Any:
                    return await fn(*item.payload["args"], **item.payload["kwargs"])

                outbox._handlers[kind] = _Registered(deliver_async, True)
            else:

                def deliver(item: Item) -> Any:
                    return fn(*item.payload["args"], **item.payload["kwargs"])

                outbox._handlers[kind] = _Registered(deliver, False)

        if is_async:

            @functools.wraps(fn)
            async def deferring_async(*args: Any, **kwargs: Any) -> Any:
                try:
                    return await fn(*args, **kwargs)
                except Exception as error:
                    return self._defer(error, args, kwargs)

            return deferring_async

        @functools.wraps(fn)
        def deferring(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as error:
                return self._defer(error, args, kwargs)

        return deferring

    def _defer(self, error: Exception, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Deferred:
        """Store the call, or re-raise ``error`` (from the caller's ``except``)."""
        wanted = (
            is_network_error(error)
            if self.when is None
            else safe_predicate(self.when, error, "when", self.kind, default=False, error=error)
        )
        if not wanted:
            raise error
        try:
            return self.outbox.enqueue(
                self.kind, {"args": list(args), "kwargs": kwargs}, group=self.group
            )
        except (ConfigError, OutboxError) as refusal:
            note = f"resilient: the call was not deferred: {refusal}"
        add_note_once(error, note)
        raise error  # as it was: its cause and context kept


def _policy_for(spec: object) -> Any:
    """The decorator a handler's deliveries run under (``None``: none)."""
    if spec is None or (callable(spec) and not isinstance(spec, type)):
        return spec
    raise ConfigError(
        "policy",
        spec,
        'a resilient.Policy or decorator, such as resilient.policy("name") for a loaded '
        'policy or resilient.policy(timeout=10, retry="quick"), or None',
    )


def _backend(url: str | None, name: str, synchronous: str) -> Backend:
    if url is None:
        return SQLiteBackend(default_path(), synchronous=synchronous)
    given: object = url
    if isinstance(given, str) and url.startswith(_SQLITE) and len(url) > len(_SQLITE):
        return SQLiteBackend(Path(url[len(_SQLITE) :]), synchronous=synchronous)
    if isinstance(given, str) and url.startswith(("redis://", "rediss://", "unix://")):
        try:
            import redis
        except ImportError:
            raise ConfigError(
                "url", url, "a Redis URL needs redis-py: pip install resilient-toolkit[redis]"
            ) from None
        from ._redis import RedisBackend

        try:
            client = redis.Redis.from_url(url)
        except ValueError as error:  # a port, database or option redis-py cannot read
            raise ConfigError("url", url, f"a Redis URL redis-py can read ({error})") from None
        return RedisBackend(client, name)
    raise ConfigError("url", url, "'sqlite:///path/to/outbox.db', 'redis://host:port/db' or None")


def _new_key() -> str:
    """A key for an item enqueued without one: the time in nanoseconds, then 64 random
    bits (32 hex digits), so new keys sort after older ones and index appends stay cheap."""
    return f"{time.time_ns():016x}{_random.getrandbits(64):016x}"


def _check_label(parameter: str, value: object) -> None:
    """A key or group: any text of 1 to 200 characters without control characters."""
    if (
        not isinstance(value, str)
        or not 1 <= len(value) <= 200
        or any(ord(c) < 32 or ord(c) == 127 for c in value)
    ):
        raise ConfigError(parameter, value, "1 to 200 characters, no control characters")


def _check_name(parameter: str, value: object, longest: int = 100) -> None:
    if not isinstance(value, str) or len(value) > longest or not _NAME.fullmatch(value):
        raise ConfigError(parameter, value, f"1 to {longest} letters, digits, '.', '_', '-' or ':'")
