"""``RedisStore`` and ``AsyncRedisStore``."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import redis
import redis.asyncio as aredis
import redis.asyncio.cluster as acluster
import redis.cluster as rcluster
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff

from ..._circuit.rules import BreakerState, Decision, Event
from ..._runtime import config as _config
from ...exceptions import ConfigError
from .. import _lua

if TYPE_CHECKING:
    from ..._circuit.config import BreakerConfig

from ._base import (
    ClockSource,
    OnStoreError,
    Trip,
    _count_error,
    _RedisBase,
)
from ._cells import (
    _ACQUIRE,
    _CALLS,
    _CLOSED,
    _WAITING,
    _begin,
    _Cell,
    _end,
    _refused_here,
)
from ._clients import (
    _NO_SETINFO,
    _URLS,
    AsyncClusterScript,
    _async_client_like,
    _drop_connections,
    _plain_url,
)


class RedisStore(_RedisBase):
    """Breaker states and flags in Redis, shared by every process and host using it.

    ``RedisStore("redis://host:6379/0")`` or ``RedisStore(redis.Redis(...))`` (its
    connection settings are copied; this store keeps its own connections, with its own
    ``timeout``). For asyncio applications use ``AsyncRedisStore``, which never blocks
    the event loop. See the module's documentation for costs, staleness and outages.

    ``prefix`` namespaces every key (``<prefix>:{<name>}:state``); ``timeout`` bounds
    every Redis command a call may wait for; ``cache_ttl`` is how often the listener
    re-reads what it holds; ``key_ttl`` (at least ``MIN_KEY_TTL``, 1 s) is how long an
    idle breaker's key lives (an open one lives until it would reopen, a half-open one
    until its last probe's lease ends, counts in a time window for the whole window, plus
    ``key_ttl``: no state is cut short);
    ``retry_interval`` is how often Redis is retried during an outage.

    When made, the store runs one script that writes (a few milliseconds; at most
    ``timeout`` per round trip): wrong credentials, an ACL that denies the store's
    commands, keys (``<prefix>:*``) or channel (``<prefix>:events``), an unknown database
    or a host name that does not resolve raise ``ConfigError``; Redis down or read-only
    starts an outage instead. ``check=False`` skips it, for applications that must start
    whatever the state of Redis (the first use then finds out, as an outage).
    """

    def __init__(
        self,
        url: str | redis.Redis | rcluster.RedisCluster,
        *,
        prefix: str = "resilient",
        timeout: float = 0.05,
        cache_ttl: float = 1.0,
        key_ttl: float = 24 * 3600.0,
        clock: ClockSource = "redis",
        on_store_error: OnStoreError = "local",
        retry_interval: float = 1.0,
        trip: Trip = "fleet",
        trip_quorum: int = 2,
        check: bool = True,
    ) -> None:
        super().__init__(
            url,
            prefix=prefix,
            timeout=timeout,
            cache_ttl=cache_ttl,
            key_ttl=key_ttl,
            clock=clock,
            on_store_error=on_store_error,
            retry_interval=retry_interval,
            trip=trip,
            trip_quorum=trip_quorum,
            check=check,
        )
        self._check(check)


class AsyncRedisStore(_RedisBase):
    """``RedisStore`` for asyncio: breakers in coroutines apply transitions through
    ``redis.asyncio`` (``aapply``), never a blocking call in the event loop.

    Sync code sharing the store (sync functions, ``breaker.reset()``) uses ``apply``,
    which blocks for at most ``timeout``. Given a URL, the store opens one asyncio client
    per event loop it meets; given a ``redis.asyncio.Redis``, it uses that client in its
    own loop. ``await store.aclose()`` (or ``close()``) releases the connections.

    The check made when the store is made (see ``RedisStore``; ``check=False`` skips it)
    runs in the constructor, through a blocking connection with the same settings: made
    inside a running event loop, the store blocks it for that one round trip.
    """

    def __init__(
        self,
        url: str | aredis.Redis | acluster.RedisCluster,
        *,
        prefix: str = "resilient",
        timeout: float = 0.05,
        cache_ttl: float = 1.0,
        key_ttl: float = 24 * 3600.0,
        clock: ClockSource = "redis",
        on_store_error: OnStoreError = "local",
        retry_interval: float = 1.0,
        trip: Trip = "fleet",
        trip_quorum: int = 2,
        check: bool = True,
    ) -> None:
        given: object = url  # checked at run time too: annotations are not enforced
        if not isinstance(given, str | aredis.Redis | acluster.RedisCluster) and not (
            _async_client_like(given)
        ):
            raise ConfigError(
                "url",
                url,
                f"{_URLS}, or a redis.asyncio.Redis or redis.asyncio.cluster.RedisCluster client",
            )
        super().__init__(
            url,
            prefix=prefix,
            timeout=timeout,
            cache_ttl=cache_ttl,
            key_ttl=key_ttl,
            clock=clock,
            on_store_error=on_store_error,
            retry_interval=retry_interval,
            trip=trip,
            trip_quorum=trip_quorum,
            check=check,
        )
        self._url = url if isinstance(url, str) else None
        self._given = None if isinstance(url, str) else url
        self._aclients: dict[asyncio.AbstractEventLoop, tuple[Any, Any]] = {}
        # Per loop: a cluster client learning the cluster's nodes (in the background, so
        # that a call cut short by its timeout does not cut the learning short too).
        self._ready: dict[asyncio.AbstractEventLoop, asyncio.Task[Any]] = {}
        # Per (loop, breaker) while a script call is in flight: the events waiting for it.
        self._batches: dict[tuple[asyncio.AbstractEventLoop, str], list[Any]] = {}
        self._orphans: list[Any] = []  # clients of a parent process, kept from collection
        self._check(check)

    def _aclient(self) -> tuple[Any, Any]:
        """The asyncio client of the running loop, and the script registered on it."""
        loop = asyncio.get_running_loop()
        found = self._aclients.get(loop)
        if found is None:
            self._forget_closed_loops()
            if self._given is not None:
                client = self._given
            else:
                assert self._url is not None
                options: dict[str, Any] = {
                    "socket_timeout": self.timeout,
                    "socket_connect_timeout": self.timeout,
                    "retry": AsyncRetry(NoBackoff(), 0),
                    **_NO_SETINFO,
                }
                if self._cluster:
                    client = acluster.RedisCluster.from_url(
                        _plain_url(self._url), require_full_coverage=False, **options
                    )
                else:
                    client = aredis.Redis.from_url(self._url, **options)
            if isinstance(client, acluster.RedisCluster):
                script: Any = AsyncClusterScript(client, _lua.TRANSITION)
            else:
                script = client.register_script(_lua.TRANSITION)
            found = self._aclients[loop] = (client, script)
        return found

    async def aapply(
        self, name: str, event: Event, now: float, config: BreakerConfig
    ) -> tuple[BreakerState, Decision]:
        """``apply`` without blocking the event loop: at most ``timeout`` of waiting.

        While a script call for this breaker is in flight, events from other tasks wait
        for it and then go together in one script call: a herd of tasks costs two round
        trips and one connection, not one each.
        """
        cell = self._cells.get(name) or self.cell(name)
        cell.config = config
        if cell.own is not None and event.kind in _CALLS and cell.shared.mode is _CLOSED:
            own, decision, tripped = self._apply_own(cell, event, now, config)
            if tripped:
                await self._ahint(cell, own, now)
            return own, decision
        if self._local(cell, event):
            return self._fallback(cell, event, now, config)
        cell.recent = True
        if event.kind is _ACQUIRE and cell.state.mode in _WAITING:
            refused = _refused_here(cell.state, event, now, config)
            if refused is not None:
                return refused
        loop = asyncio.get_running_loop()
        key = (loop, name)
        waiting = self._batches.get(key)
        if waiting is not None:  # a call is in flight: join the next batch
            future: asyncio.Future[tuple[BreakerState, Decision]] = loop.create_future()
            waiting.append((event, now, future))
            return await future
        self._batches[key] = []
        try:
            return (await self._send(cell, [(event, now)], config))[0]
        finally:
            self._next_batch(key, cell, config)

    def _next_batch(
        self, key: tuple[asyncio.AbstractEventLoop, str], cell: _Cell, config: BreakerConfig
    ) -> None:
        followers = self._batches.pop(key, None)
        if followers:
            self._batches[key] = []
            key[0].create_task(self._send_batch(key, cell, followers, config))

    async def _send_batch(
        self,
        key: tuple[asyncio.AbstractEventLoop, str],
        cell: _Cell,
        batch: list[tuple[Event, float, asyncio.Future[tuple[BreakerState, Decision]]]],
        config: BreakerConfig,
    ) -> None:
        try:
            results = await self._send(cell, [(event, now) for event, now, _ in batch], config)
            for (_, _, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
        finally:
            for _, _, future in batch:
                if not future.done():
                    future.cancel()
            self._next_batch(key, cell, config)

    async def _send(
        self, cell: _Cell, events: list[tuple[Event, float]], config: BreakerConfig
    ) -> list[tuple[BreakerState, Decision]]:
        """Apply ``events`` in order in one script call (locally during an outage, or
        while the breaker holds a state of its own)."""
        if not any(self._local(cell, event) for event, _ in events):
            args = self._args(cell, config)
            for event, now in events:
                args.extend(self._event_args(event, now))
            _begin(cell)
            try:
                reply = await self._acall(cell, args)
                if reply is not None:
                    now = (events[0][1] + _config.state.now()) / 2
                    results = self._accept(cell, reply, now, config)
                    if len(results) == len(events):
                        return results
            finally:
                _end(cell)
        return [self._fallback(cell, event, now, config) for event, now in events]

    async def _acall(self, cell: _Cell, args: list[str]) -> list[Any] | None:
        """``_call`` on the running loop's asyncio client."""
        where, clock = self._server_of(cell)
        for _ in range(2):
            sent = time.monotonic()
            try:
                client, script = self._aclient()
                async with asyncio.timeout(self.timeout):
                    await self._connected(client)
                    reply: list[Any] = await script(
                        keys=self._script_keys(cell.name), args=args, client=client
                    )
            except Exception as error:  # TimeoutError included: the caller must not see it
                self._failed(error, cell, where)
                return None
            if not self._late(clock, reply, sent, args):
                return reply
        late = TimeoutError("Redis ran the script after its deadline twice")
        self._failed(late, cell, where)
        return None

    async def _connected(self, client: Any) -> None:
        """Wait until a cluster client knows the cluster's nodes (started once per loop;
        a call that stops waiting leaves it going)."""
        if not isinstance(client, acluster.RedisCluster) or not getattr(client, "_initialize", 1):
            return
        loop = asyncio.get_running_loop()
        task = self._ready.get(loop)
        if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
            task = self._ready[loop] = loop.create_task(client.initialize())
            task.add_done_callback(_retrieved)
        await asyncio.shield(task)

    async def aconnect(self) -> bool:
        """Connect the running loop's client now (a cluster client also learns the
        cluster's nodes, several round trips), so that the first call needing Redis does
        not spend its ``timeout`` on it. Waits at most ``max(timeout, 1 s)``; returns
        whether Redis answered (if not, an outage starts, as for any call)."""
        client, _ = self._aclient()
        try:
            async with asyncio.timeout(max(self.timeout, 1.0)):
                await self._connected(client)
                await client.ping()
        except Exception as error:  # the caller must not see it
            self._failed(error)
            return False
        return True

    async def _ahint(self, cell: _Cell, own: BreakerState, now: float) -> None:
        args = self._hint_args(cell, own, now)
        if args is None or cell.config is None:
            return
        _begin(cell)
        try:
            reply = await self._acall(cell, args)
            if reply is None:
                _count_error()
                return
            self._accept(cell, reply, now, cell.config)
        finally:
            _end(cell)

    def _forget_closed_loops(self) -> None:
        for loop in [loop for loop in self._ready if loop.is_closed()]:
            del self._ready[loop]
        for loop in [loop for loop in self._aclients if loop.is_closed()]:
            client, _ = self._aclients.pop(loop)
            _drop_connections(client)

    async def aclose(self) -> None:
        """Close the connections of the running loop's client, then everything else."""
        loop = asyncio.get_running_loop()
        found = self._aclients.pop(loop, None)
        if found is not None:
            _stop_relearning(found[1])
            if self._given is None:
                await found[0].aclose()
        self.close()

    def close(self) -> None:
        for loop, (client, script) in list(self._aclients.items()):
            if not loop.is_closed():
                loop.call_soon_threadsafe(_stop_relearning, script)
            if client is self._given:
                continue
            if loop.is_closed():
                _drop_connections(client)
            elif not loop.is_running():
                loop.run_until_complete(client.aclose())
            else:
                loop.call_soon_threadsafe(_close_later, loop, client)
        self._aclients.clear()
        self._ready.clear()
        super().close()

    def _after_fork(self) -> None:
        self._orphans.extend(self._aclients.values())
        self._aclients = {}
        self._ready = {}
        super()._after_fork()


def _retrieved(task: asyncio.Task[Any]) -> None:
    """Mark a background task's failure as seen (the next call finds out again)."""
    if not task.cancelled():
        task.exception()


def _stop_relearning(script: Any) -> None:
    if isinstance(script, AsyncClusterScript):
        script.cancel()


def _close_later(loop: asyncio.AbstractEventLoop, client: Any) -> None:
    loop.create_task(client.aclose())
