"""``RateLimiter``: one named token bucket, in this process or shared by a fleet.

``RateLimiter`` keeps its bucket here, behind a lock (a few hundred nanoseconds per
call). ``FleetRateLimiter`` takes its tokens from a store that leases them
(``RedisStore``): one script call takes a *batch* of tokens (those the fleet earns in
``LEASE_SECONDS``), spent here without I/O until used or ``HOLD_SECONDS`` old.

Over-admission of a fleet: the store never grants more than ``burst + rate x t`` tokens
in ``t`` seconds, and a leased token is spent within ``HOLD_SECONDS`` of its grant or
dropped. So the calls admitted in any window of ``t`` seconds are at most
``burst + rate x (t + HOLD_SECONDS)``, and at most ``burst + rate x t`` plus the tokens
the processes held when the window opened (at most one batch each). Over a whole run
the fleet admits no more than the limit. While the store cannot be reached, each
process limits itself alone with a bucket of the same settings.
"""

from __future__ import annotations

import math
import threading
import weakref
from typing import TYPE_CHECKING, Any

from .._runtime import config as _config
from ..exceptions import RateLimitedError
from .bucket import SLACK, Bucket

if TYPE_CHECKING:
    import asyncio

    from ..stores._leases import TokenLeases

__all__ = ["HOLD_SECONDS", "LEASE_SECONDS", "FleetRateLimiter", "RateLimiter"]

LEASE_SECONDS = 0.1
"""A lease takes the tokens the whole fleet earns in this many seconds (at least one)."""
HOLD_SECONDS = 0.5
"""A leased token not spent within this many seconds is dropped."""

_state = _config.state
_INF = float("inf")


class RateLimiter:
    """``rate`` calls per ``per`` seconds, ``burst`` at once, in this process."""

    __slots__ = ("_bucket", "_lock", "burst", "interval", "name", "per", "rate", "store")

    def __init__(self, name: str, rate: float, per: float, burst: int, store: object) -> None:
        self.name: str = name
        self.rate: float = rate
        self.per: float = per
        self.burst: int = burst
        self.store: object = store
        self.interval: float = per / rate
        """Seconds between two tokens."""
        self._bucket = Bucket(self.interval, burst)
        self._lock = threading.Lock()

    def parts(self) -> tuple[threading.Lock, Bucket, float, float]:
        """The lock, the bucket, the interval and how far ahead of now the bucket's
        ``tat`` may go with a token still free (``span`` plus float slack): what a
        wrapper needs to take a free token without a call."""
        return self._lock, self._bucket, self.interval, self._bucket.span + SLACK

    def reserve(self, now: float, patience: float) -> float:
        """Take a token; the wait before using it. A wait of ``patience`` or more takes
        nothing: the answer (at least ``patience``) is then the ``retry_after``."""
        with self._lock:
            return self._bucket.reserve(now, patience)

    def reserve_ticket(self, now: float, patience: float) -> tuple[float, float]:
        """``reserve``, and the ticket that ``refund`` needs to give the token back."""
        with self._lock:
            return self._bucket.reserve(now, patience), self._bucket.tat

    def refund(self, ticket: float) -> None:
        """Give back a token whose wait was cut short (cancelled, interrupted), unless a
        later reservation was made since (see ``Bucket.refund``)."""
        with self._lock:
            self._bucket.refund(ticket)

    def acquire_sync(self, patience: float) -> float:
        """Take a token, sleeping until it is free (through the configured clock); the
        seconds waited. Raises ``RateLimitedError`` when the wait is ``patience`` or more."""
        delay, ticket = self.reserve_ticket(_state.now(), patience)
        if delay:
            if delay >= patience:
                raise RateLimitedError(self.name, delay)
            if _state.instant is None:
                try:
                    _state.clock.sleep(delay)
                except BaseException:
                    self.refund(ticket)
                    raise
        return delay

    async def acquire_async(self, patience: float) -> float:
        """``acquire_sync`` for coroutines (sleeps through the clock's ``asleep``)."""
        delay, ticket = self.reserve_ticket(_state.now(), patience)
        if delay:
            if delay >= patience:
                raise RateLimitedError(self.name, delay)
            if _state.instant is None:
                try:
                    await _state.clock.asleep(delay)
                except BaseException:
                    self.refund(ticket)
                    raise
        return delay

    def forked(self) -> None:
        """In a child process: a lock the parent held at the fork is not the child's."""
        self._lock = threading.Lock()

    def available(self) -> float:
        """Tokens free now in this process's bucket."""
        with self._lock:
            return self._bucket.available(_state.now())

    def __repr__(self) -> str:
        return (
            f"<RateLimiter {self.name!r} {self.rate:g}/{self.per:g}s burst={self.burst} "
            f"available={self.available():.3g}>"
        )


class FleetRateLimiter(RateLimiter):
    """A ``RateLimiter`` whose tokens come from a store shared by many processes."""

    __slots__ = ("_alocks", "_leasing", "_retry", "batch", "expires", "leases", "ready", "tokens")

    def __init__(self, name: str, rate: float, per: float, burst: int, store: TokenLeases) -> None:
        super().__init__(name, rate, per, burst, store)
        self.batch = max(1, min(burst, math.ceil(LEASE_SECONDS / self.interval)))
        """Tokens asked for in one lease."""
        self.tokens = 0
        """Leased tokens not spent yet."""
        self.ready = 0.0
        """When the leased tokens may be used (a lease reserved ahead waits for them)."""
        self.expires = 0.0
        self.leases = 0
        """Round trips made to the store (for the benchmark and ``repr``)."""
        self._retry = 0.0  # after a lease granting nothing: when a token will be free
        # One lease at a time in this process: threads (and, per event loop, tasks) that
        # find no token wait for the lease in flight rather than each making their own.
        self._leasing = threading.Lock()
        self._alocks: weakref.WeakKeyDictionary[Any, asyncio.Lock] = weakref.WeakKeyDictionary()

    def forked(self) -> None:
        """In a child process: the tokens leased are the parent's to spend."""
        super().forked()
        self._leasing = threading.Lock()
        self._alocks = weakref.WeakKeyDictionary()
        self.tokens = 0

    def _take(self, now: float, patience: float) -> float | None:
        """A leased token: the wait before it may be used (one of ``patience`` or more
        is not taken, and returned as it is); ``None`` when none is left."""
        with self._lock:
            if self.tokens > 0 and now < self.expires:
                wait = self.ready - now if self.ready > now else 0.0
                if not wait or wait < patience:
                    self.tokens -= 1
                return wait
            return None

    def _keep(self, now: float, granted: int, wait: float) -> None:
        with self._lock:
            self.tokens = granted - 1
            self.ready = now + wait
            self.expires = now + wait + HOLD_SECONDS

    def acquire_sync(self, patience: float) -> float:
        clock = _state.clock
        start = now = clock.monotonic()
        while True:
            left = patience - (now - start)
            wait = self._take(now, left)
            if wait is None:
                with self._leasing:
                    wait = self._take(now, left)  # another thread's lease came meanwhile
                    if wait is None:
                        self.leases += 1
                        store: Any = self.store
                        lease = store.lease_tokens(
                            self.name, self.interval, self.burst, self.batch, left
                        )
                        wait = self._granted(now, lease, left)
            if wait is None:  # none granted: ``retry`` is when one will be free
                retry = self._retry
                if retry >= left:
                    raise RateLimitedError(self.name, retry)
                if _state.instant is not None:
                    return now - start
                clock.sleep(retry)
                now = clock.monotonic()
                continue
            if wait and wait >= left:
                raise RateLimitedError(self.name, wait)
            if wait and _state.instant is None:
                clock.sleep(wait)
            return now - start + wait

    async def acquire_async(self, patience: float) -> float:
        clock = _state.clock
        start = now = clock.monotonic()
        while True:
            left = patience - (now - start)
            wait = self._take(now, left)
            if wait is None:
                import asyncio  # here: loaded already when a coroutine runs

                loop = asyncio.get_running_loop()
                leasing = self._alocks.get(loop)
                if leasing is None:
                    leasing = self._alocks[loop] = asyncio.Lock()
                async with leasing:
                    now = clock.monotonic()
                    left = patience - (now - start)
                    wait = self._take(now, left)  # another task's lease came meanwhile
                    if wait is None:
                        self.leases += 1
                        store: Any = self.store
                        lease_async = getattr(store, "alease_tokens", None)
                        args = (self.name, self.interval, self.burst, self.batch, left)
                        if lease_async is not None:
                            lease = await lease_async(*args)
                        else:
                            lease = store.lease_tokens(*args)
                        wait = self._granted(now, lease, left)
            if wait is None:
                retry = self._retry
                if retry >= left:
                    raise RateLimitedError(self.name, retry)
                if _state.instant is not None:
                    return now - start
                await clock.asleep(retry)
                now = clock.monotonic()
                continue
            if wait and wait >= left:
                raise RateLimitedError(self.name, wait)
            if wait and _state.instant is None:
                await clock.asleep(wait)
            return now - start + wait

    def _granted(
        self, now: float, lease: tuple[int, float] | None, patience: float
    ) -> float | None:
        """After a lease: the wait before the token got may be used, or ``None`` when
        none was granted (``_retry`` then holds when one will be). With the store
        unreachable, this process's own bucket decides."""
        if lease is None:
            return RateLimiter.reserve(self, now, patience)
        granted, wait = lease
        if granted:
            self._keep(now, granted, wait)
            return wait
        self._retry = wait if wait > 0.0 else self.interval
        return None

    def __repr__(self) -> str:
        return (
            f"<FleetRateLimiter {self.name!r} {self.rate:g}/{self.per:g}s burst={self.burst} "
            f"leased={self.tokens} leases={self.leases} store={self.store!r}>"
        )
