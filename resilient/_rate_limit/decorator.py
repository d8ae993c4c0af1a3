"""``@rate_limit``: at most ``rate`` calls per ``per`` seconds, waiting or refusing."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any, Literal

from .._runtime import config as _config
from .._runtime import deadline as _deadline
from .._runtime import listeners as _events
from .._runtime import validate as _validate
from .._wrapping.layer import AnyCall, AsyncCall, Decorator, Layer, apply, name_of
from ..exceptions import ConfigError, RateLimitedError
from ..metrics._names import RATE_LIMIT_WAIT, RATE_LIMITED
from ..telemetry import count
from .limiter import FleetRateLimiter, RateLimiter
from .registry import get_or_create

__all__ = ["RateLimitLayer", "rate_limit"]

Mode = Literal["wait", "reject"]
_state = _config.state
_get_deadline = _deadline.get
_INF = float("inf")


def rate_limit(
    rate: float,
    per: float | timedelta = 1.0,
    *,
    burst: int | None = None,
    mode: Mode = "wait",
    name: str | None = None,
    store: object | None = None,
) -> Decorator:
    """Allow at most ``rate`` calls per ``per`` seconds, and ``burst`` at once.

    A token bucket (GCRA): ``burst`` tokens (default: ``rate``, rounded up), one more
    every ``per / rate`` seconds; in any window of ``t`` seconds at most
    ``burst + rate x t / per`` calls start. With ``mode="wait"`` a call without a token
    sleeps (through the configured clock) until its token is free, unless that would
    cross the deadline (``resilient.remaining()``): then it is refused at once. With
    ``mode="reject"`` it is refused at once. A refused call raises ``RateLimitedError``
    with ``retry_after``, which an enclosing ``@retry`` waits before trying again.

    ``name`` (default: the function's ``module.qualname``) shares one bucket between
    every decorator using it; a name claimed with other settings raises ``ConfigError``.
    ``store=RedisStore(...)`` (or ``AsyncRedisStore``) shares the limit with every
    process using that Redis: tokens are leased in batches (see the README for the
    bounded over-admission); a ``MemoryStore`` or ``None`` keeps it in this process.
    """
    rate = _validate.number("rate", rate, minimum=0.0)
    if not rate > 0.0 or math.isinf(rate):
        raise ConfigError("rate", rate, "a finite number of calls > 0")
    seconds = _validate.required_duration("per", per, allow_zero=False)
    if burst is None:
        burst = max(1, math.ceil(rate))
    else:
        burst = _validate.integer("burst", burst, minimum=1)
    if mode not in ("wait", "reject"):
        raise ConfigError("mode", mode, "'wait' or 'reject'")
    if name is not None:
        given: object = name
        if not isinstance(given, str) or not name:
            raise ConfigError("name", name, "a rate limit name (non-empty text) or None")
    if store is not None and not (hasattr(store, "lease_tokens") or hasattr(store, "cell")):
        raise ConfigError("store", store, "a state store (RedisStore shares the limit) or None")
    if name is None:
        return _NamedOnUse(RateLimitLayer(rate, seconds, burst, mode, store, None))
    limiter = get_or_create(name, rate, seconds, burst, store)
    return Decorator(RateLimitLayer(rate, seconds, burst, mode, store, limiter))


class _NamedOnUse(Decorator):
    """``@rate_limit(...)`` without a name: each decorated function gets a limit named
    by its ``module.qualname`` (shown by ``describe``)."""

    __slots__ = ()

    def __call__(self, fn: Any) -> Any:
        layer = self.layer
        assert isinstance(layer, RateLimitLayer)
        target = fn.__func__ if isinstance(fn, classmethod | staticmethod) else fn
        named = RateLimitLayer(
            layer.rate,
            layer.per,
            layer.burst,
            layer.mode,
            layer.store,
            get_or_create(name_of(target), layer.rate, layer.per, layer.burst, layer.store),
        )
        return apply(named, fn)


class RateLimitLayer(Layer):
    """The rate-limit step of a stack."""

    __slots__ = ("burst", "limiter", "mode", "per", "rate", "store")
    kind = "rate_limit"

    def __init__(
        self,
        rate: float,
        per: float,
        burst: int,
        mode: Mode,
        store: object,
        limiter: RateLimiter | None,
    ) -> None:
        self.rate = rate
        self.per = per
        self.burst = burst
        self.mode = mode
        self.store = store
        self.limiter = limiter

    def describe(self) -> dict[str, object]:
        return {
            "layer": self.kind,
            "name": None if self.limiter is None else self.limiter.name,
            "rate": self.rate,
            "per": self.per,
            "burst": self.burst,
            "mode": self.mode,
            "store": self.store,
        }

    def _limiter(self, name: str) -> RateLimiter:
        found = self.limiter
        if found is None:  # named by the function it wraps
            found = get_or_create(name, self.rate, self.per, self.burst, self.store)
        return found

    def wrap_sync(self, call: AnyCall, name: str) -> AnyCall:
        limiter = self._limiter(name)
        state = _state  # read at call time: configure(clock=...) may change the clock
        waits = self.mode == "wait"
        if isinstance(limiter, FleetRateLimiter):
            acquire = limiter.acquire_sync

            def fleet_limited(*args: Any, **kwargs: Any) -> Any:
                try:
                    waited = acquire(_patience() if waits else 0.0)
                except RateLimitedError as error:
                    _rejected(limiter.name, error.retry_after)
                    raise
                if waited:
                    _waited(limiter.name, waited)
                return call(*args, **kwargs)

            return fleet_limited

        lock, bucket, interval, span = limiter.parts()

        def limited(*args: Any, **kwargs: Any) -> Any:
            # Bucket.reserve's answer for a token free now, inlined: the happy path
            # makes no call but the clock's and the lock's.
            now = state.now()
            with lock:
                tat = bucket.tat
                if tat < now:
                    tat = now
                tat += interval
                free = tat - now <= span
                if free:
                    bucket.tat = tat
            if not free:
                _wait_sync(limiter, waits)
            return call(*args, **kwargs)

        return limited

    def wrap_async(self, call: AsyncCall, name: str) -> AsyncCall:
        limiter = self._limiter(name)
        state = _state
        waits = self.mode == "wait"
        if isinstance(limiter, FleetRateLimiter):
            acquire = limiter.acquire_async

            async def fleet_limited(*args: Any, **kwargs: Any) -> Any:
                try:
                    waited = await acquire(_patience() if waits else 0.0)
                except RateLimitedError as error:
                    _rejected(limiter.name, error.retry_after)
                    raise
                if waited:
                    _waited(limiter.name, waited)
                return await call(*args, **kwargs)

            return fleet_limited

        lock, bucket, interval, span = limiter.parts()

        async def limited(*args: Any, **kwargs: Any) -> Any:
            now = state.now()
            with lock:
                tat = bucket.tat
                if tat < now:
                    tat = now
                tat += interval
                free = tat - now <= span
                if free:
                    bucket.tat = tat
            if not free:
                await _wait_async(limiter, waits)
            return await call(*args, **kwargs)

        return limited


def _patience() -> float:
    """How long a call may wait for its token: until the deadline, or without end."""
    when = _get_deadline()
    if when is None:
        return _INF
    left = when - _state.clock.monotonic()
    return left if left > 0.0 else 0.0


def _refuse(limiter: RateLimiter, delay: float) -> None:
    _rejected(limiter.name, delay)
    raise RateLimitedError(limiter.name, delay)


def _wait_sync(limiter: RateLimiter, waits: bool) -> None:
    """No token free now: refuse the call, or take the next token and sleep until it is
    free, unless it comes at the deadline or after (then refuse at once)."""
    patience = _patience() if waits else 0.0
    delay, ticket = limiter.reserve_ticket(_state.now(), patience)
    if not delay:
        return  # one came free meanwhile
    if delay >= patience:
        _refuse(limiter, delay)
    if _state.instant is None:  # resilient.testing.instant(): waits are zero
        try:
            _state.clock.sleep(delay)
        except BaseException:  # interrupted while waiting: the token goes back
            limiter.refund(ticket)
            raise
    _waited(limiter.name, delay)


async def _wait_async(limiter: RateLimiter, waits: bool) -> None:
    patience = _patience() if waits else 0.0
    delay, ticket = limiter.reserve_ticket(_state.now(), patience)
    if not delay:
        return
    if delay >= patience:
        _refuse(limiter, delay)
    if _state.instant is None:
        try:
            await _state.clock.asleep(delay)
        except BaseException:  # cancelled while waiting: the token goes back
            limiter.refund(ticket)
            raise
    _waited(limiter.name, delay)


def _rejected(name: str, retry_after: float) -> None:
    count(RATE_LIMITED, (("rate_limit", name),))
    if _events.hub.active:
        from .._runtime.events import RateLimited

        _events.dispatch((), (RateLimited(name, retry_after, True),))  # type: ignore[arg-type]


def _waited(name: str, seconds: float) -> None:
    emit = _state.emit
    if emit is not None:
        emit.timing(RATE_LIMIT_WAIT, seconds * 1000.0, (("rate_limit", name),))
    if _events.hub.active:
        from .._runtime.events import RateLimited

        _events.dispatch((), (RateLimited(name, seconds, False),))  # type: ignore[arg-type]
