"""``RedisStore`` and ``AsyncRedisStore``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import redis
import redis.asyncio as aredis
import redis.asyncio.cluster as acluster
import redis.cluster as rcluster

from ...exceptions import ConfigError

if TYPE_CHECKING:
    from ._base import ClockSource, OnStoreError, Trip

from ._calls_async import _AsyncCalls
from ._calls_sync import _SyncCalls
from ._clients import _URLS, _async_client_like
from ._leases import _TokenLeases


class RedisStore(_TokenLeases, _SyncCalls):
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


class AsyncRedisStore(_TokenLeases, _AsyncCalls, _SyncCalls):
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
        self._check(check)
