"""``RedisStore`` and ``AsyncRedisStore``: breaker state shared by every process and host.

Where. One Redis server (``redis://``, ``rediss://``, ``unix://`` or a ``redis.Redis``),
or a Redis Cluster (``redis+cluster://`` any node, or a cluster client, sync or asyncio):
every key of a breaker carries one hash tag, so each script runs on one slot.

What a call costs. A breaker reads its state from a local cell, never from Redis, so a
success on a healthy closed breaker makes no round trip, and a call the cell already
refuses (open, or half-open with every probe leased elsewhere) makes none either. A
failure, a success that ends a run of failures, a manual operation: each is one script
call (``EVALSHA``) that applies the breaker's rules atomically on the server and returns
the new state; a half-open probe is two (its permit, its outcome). ``AsyncRedisStore``
sends the events of concurrent tasks on one breaker together in one script call. Every
change of state a script makes (mode, open times, probes; not counts, which travel in
the replies) is published, and each process's listener thread copies it into its cells.
Rate-window rules (``failure_rate``, slow calls) record every call, so with them every
call is a script call.

How stale a cell can be. A change made anywhere reaches every listening process as fast
as Redis delivers a pub/sub message (well under a millisecond on one network). The
listener also re-reads, every ``cache_ttl`` seconds (default 1 s), the breakers used
through the store since its last pass and those not closed; an idle closed breaker
follows messages alone. When the subscription breaks, it is renewed (on a cluster, on
another node) and everything re-read. A message is only a hint that a breaker changed:
the listener reads the state from Redis itself (one round trip for all the messages that
arrived together), so a message published by anyone else (forged, replayed, malformed)
never sets a state. Until a stale cell catches up, a process may let through calls the
fleet has stopped, at most those it starts in that window, and the first failure it
reports brings back the fleet's state: past an open breaker, a process makes at most one
call per concurrent caller.

When Redis is unreachable, slow or restarting. No call waits more than ``timeout``
(default 50 ms) for Redis, and no call sees a Redis error. The first error starts an
outage: one warning line is logged, and every breaker carries on in this process alone
with the same rules, from the last state it saw (``on_store_error="local"``, the default),
or lets every call through and counts nothing (``"allow"``). Each operation served
without Redis counts in ``store_errors_total``. The listener retries every
``retry_interval`` seconds. A Redis that answers reads but refuses the scripts or their
writes (a read-only replica, ``READONLY``; an ACL denial, ``NOPERM``; ``NOSCRIPT``;
``OOM``, ``MISCONF``) is an outage too, logged once with its reason: Redis counts as back
only once a script has written. A breaker that changed here without Redis keeps its own
state, and applies its calls here, until Redis holds one written after that change (a
state never written, or older, never replaces it; but a breaker that never saw Redis's
state takes one that is not closed, which the fleet or an operator decided), or until
its own state is closed with nothing counted; then it follows the shared state again.
Manual operations (``reset``, ``force_open``, ``disable``) always go to Redis.

An error that belongs to one breaker's keys (a key of the wrong type, a field a script
cannot read, a name that cannot be encoded) is not an outage: that breaker goes on
locally, one line is logged for it, and every other breaker keeps using Redis.

Configuration. The store checks, when it is made, that it can run its scripts: wrong
credentials, an ACL denial, an unknown database, a host name that does not resolve, a
URL of another scheme or an argument that is not a client raise ``ConfigError`` at once.
Redis being down, slow or read-only at that moment is not a configuration error: the
store starts in an outage and recovers as above. ``check=False`` skips the round trip
(the first use of a breaker then finds out, as an outage).

Time. By default the scripts decide with the Redis server's clock (``clock="redis"``),
so hosts whose clocks disagree still agree on when a breaker reopens; states are moved
into this process's clock when they arrive. ``clock="local"`` uses the time the breaker
passes (the configured clock): right for processes on one host, and for tests with a
``FakeClock``.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import inspect
import logging
import os
import re
import socket
import threading
import time
import uuid
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal

from cachetools import TTLCache

from .. import _config, _validate
from .._circuit import (
    BUCKETS,
    INITIAL,
    BreakerMode,
    BreakerState,
    Decision,
    Event,
    Kind,
    Verdict,
    is_idle,
    transition,
)
from .._logs import digest
from .._validate import required_duration as _duration
from ..exceptions import ConfigError
from ..metrics._names import STORE_ERRORS
from . import _lua

try:
    import redis
    import redis.asyncio as aredis
    import redis.asyncio.cluster as acluster
    import redis.cluster as rcluster
    import redis.connection
    from redis import exceptions as rx
    from redis.asyncio.retry import Retry as AsyncRetry
    from redis.backoff import NoBackoff
    from redis.retry import Retry
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "RedisStore needs the redis package: pip install 'resilient-toolkit[redis]'"
    ) from error

if TYPE_CHECKING:
    from .._breaker_config import BreakerConfig
    from .._budget import RetryBudget

__all__ = ["AsyncRedisStore", "RedisStore"]

logger = logging.getLogger("resilient")

ClockSource = Literal["redis", "local"]
OnStoreError = Literal["local", "allow"]
Trip = Literal["fleet", "local"]

_CLOSED, _OPEN = BreakerMode.CLOSED, BreakerMode.OPEN
_WAITING = frozenset((BreakerMode.OPEN, BreakerMode.HALF_OPEN))
_REJECT = Verdict.REJECT
_ACQUIRE = Kind.ACQUIRE
_CALLS = frozenset((Kind.ACQUIRE, Kind.SUCCESS, Kind.FAILURE, Kind.RELEASE))
# With trip="local", this process's own states count from here: their tickets never
# equal a shared state's (which count up from 0), so a report is never applied to the
# wrong one.
_OWN = BreakerState(gen=-(1 << 50))
_POLL = 0.05
"""Seconds the listener waits for a message before it looks at its other work."""
_TAGS = (("store", "redis"),)
_stores: weakref.WeakSet[_RedisBase] = weakref.WeakSet()
# No CLIENT SETINFO when a connection opens: two round trips less for each new connection
# (redis-py 5 to 7 spell it lib_name=None, later versions driver_info=None).
_NO_SETINFO: dict[str, Any] = (
    {"driver_info": None}
    if "driver_info" in inspect.signature(redis.Redis.__init__).parameters
    else {"lib_name": None, "lib_version": None}
)
MIN_KEY_TTL = 1.0
"""The shortest ``key_ttl`` accepted, in seconds."""

# What an error means for the store. _OUTAGE: Redis cannot be reached or used at all.
# _REFUSED: Redis answers but refuses this store's scripts or their writes. _KEY: the
# trouble is one breaker's keys (or one flag's, one budget's); the rest of the store works.
_OUTAGE, _REFUSED, _KEY = "store unreachable", "store refuses writes", "key"
_REFUSED_ERRORS = (rx.ReadOnlyError, rx.NoPermissionError, rx.NoScriptError, rx.OutOfMemoryError)
_OUTAGE_CODES = frozenset(("LOADING", "BUSY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN"))
_REFUSED_CODES = frozenset(("READONLY", "NOPERM", "NOSCRIPT", "OOM", "MISCONF"))
# Refusals Redis reports as plain ERR: an ACL denial met inside a script, no scripting,
# or (Redis 6) a refusal met inside a script, quoted with its code.
_REFUSED_TEXTS = (
    "script can't",
    "no permissions",
    "unknown command",
    "-READONLY",
    "-NOPERM",
    "-OOM",
    "-MISCONF",
)
_UNRESOLVED = frozenset(
    code
    for code in (getattr(socket, "EAI_NONAME", None), getattr(socket, "EAI_NODATA", None))
    if code is not None
)


class _Cell:
    """One breaker as this process knows it, in this process's clock.

    ``state`` is what calls read, lock-free: the shared state, or with ``trip="local"``
    this process's ``own`` state while the shared one is closed. ``version`` orders
    shared states from script replies and re-reads, which may arrive out of order: one
    replaces ``shared`` only if it is newer. ``-1`` means the cell takes the next shared
    state whatever its version (a new cell, or one that was local and has nothing left
    to keep).

    ``local_at`` is set (to this process's monotonic time) when ``shared`` last changed
    here without Redis: during an outage, or after an error of this breaker's keys.
    Until Redis holds a state written after that moment, the cell keeps its own state
    and applies its events here. ``broken`` says why this breaker's keys cannot be used
    (``None`` when they can); ``keyless`` marks a name that can never be a Redis key.
    ``inflight`` counts script calls under way for this breaker; ``recent`` says it
    was used through the store since the listener's last periodic re-read.
    """

    __slots__ = (
        "__weakref__",
        "broken",
        "config",
        "inflight",
        "keyless",
        "local_at",
        "lock",
        "name",
        "own",
        "recent",
        "shared",
        "state",
        "version",
    )

    def __init__(self, name: str, own: BreakerState | None) -> None:
        self.name = name
        self.shared: BreakerState = INITIAL
        self.own = own
        self.state: BreakerState = INITIAL if own is None else own
        self.version = -1
        self.lock = threading.Lock()
        self.config: BreakerConfig | None = None
        self.local_at: float | None = None
        self.broken: str | None = None
        self.keyless = False
        self.inflight = 0
        self.recent = True  # used through the store since the listener last re-read it

    def set_shared(self, state: BreakerState) -> None:
        """Take ``state`` as the shared state (the caller holds ``lock``)."""
        previous, self.shared = self.shared, state
        own = self.own
        if own is None or state.mode is not _CLOSED:
            self.state = state
        else:
            if state.gen != previous.gen:  # reset, or recovered: start counting afresh
                own = self.own = BreakerState(gen=own.gen + 1)
            self.state = own

    def __repr__(self) -> str:
        return f"<cell {self.name!r} {self.state.mode.name} gen={self.state.gen}>"


@functools.lru_cache(maxsize=256)
def _rules(config: BreakerConfig) -> tuple[str, ...]:
    return tuple(_lua.rules_args(config))


def _rules_of(config: BreakerConfig) -> tuple[str, ...]:
    try:
        return _rules(config)
    except TypeError:  # a config holding an unhashable filter: format it every time
        return tuple(_lua.rules_args(config))


_URLS = "a redis://, rediss://, unix://, redis+cluster:// or rediss+cluster:// URL"
_CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")
# Connection settings a client of one kind may pass on to one of another kind.
_PORTABLE = (
    "username",
    "password",
    "client_name",
    "credential_provider",
    "ssl_keyfile",
    "ssl_certfile",
    "ssl_cert_reqs",
    "ssl_ca_certs",
    "ssl_check_hostname",
)


def _options(timeout: float) -> dict[str, Any]:
    """Connection settings under which a command gives up after ``timeout``, untried."""
    return {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 0),
        **_NO_SETINFO,
    }


def _sync_client(target: object, timeout: float) -> Any:
    """A client whose every command gives up after ``timeout`` and is never retried."""
    options: dict[str, Any] = {**_options(timeout), "retry_on_timeout": False}
    if isinstance(target, str):
        try:
            if target.startswith(_CLUSTER_SCHEMES):
                return _Cluster.from_url(target, timeout)
            return redis.Redis.from_url(target, **options)
        except (ValueError, TypeError) as error:
            raise ConfigError("url", _redacted(target), f"{_URLS} ({error})") from None
    if isinstance(target, rcluster.RedisCluster | acluster.RedisCluster):
        return _Cluster.like(target, timeout)
    if not isinstance(target, redis.Redis | aredis.Redis) and not _client_like(target):
        raise ConfigError("url", target, f"{_URLS}, or a redis.Redis client")
    pool = getattr(target, "connection_pool", None)
    if pool is None:
        return target  # a test's stand-in: its own timeouts apply
    if "Sentinel" in type(pool).__name__:
        raise ConfigError(
            "url",
            target,
            f"{_URLS}, or a redis.Redis client not managed by Sentinel (Sentinel's "
            "failover is not followed: give the master's URL, or use Redis Cluster)",
        )
    kwargs = {**pool.connection_kwargs, **options}
    connection_class = getattr(redis, pool.connection_class.__name__, redis.Connection)
    if not isinstance(target, redis.Redis):  # an asyncio client: the sync twin of its class
        allowed = ("host", "port", "db", "path", *_PORTABLE)
        kwargs = {k: v for k, v in kwargs.items() if k in allowed or k in options}
    else:
        connection_class = pool.connection_class
    return redis.Redis(
        connection_pool=redis.ConnectionPool(connection_class=connection_class, **kwargs)
    )


def _plain_url(url: str) -> str:
    """``redis+cluster://...`` as the ``redis://...`` URL redis-py's cluster client reads."""
    scheme, rest = url.split("://", 1)
    return f"{scheme.replace('+cluster', '')}://{rest}"


class _Cluster:
    """A blocking Redis Cluster client, made on first use (a store can be made while the
    cluster is down: it starts in an outage), with the store's timeout on every node
    and no retries of its own (the store decides what a failure means).

    Scripts run with ``EVALSHA`` on the node owning their keys' slot (``EVAL`` the first
    time a node has not seen them). Subscriptions go to any live node, replicas
    included: a plain ``PUBLISH`` reaches every node of a cluster.
    """

    def __init__(self, make: Any, where: str) -> None:
        self._make = make
        self.where = where
        self._client: Any = None
        self._lock = threading.Lock()
        self._turn = 0  # which node the next subscription tries first

    @classmethod
    def from_url(cls, url: str, timeout: float) -> _Cluster:
        plain = _plain_url(url)
        parsed = redis.connection.parse_url(plain)  # type: ignore[no-untyped-call]
        where = f"cluster {parsed.get('host', '?')}:{parsed.get('port', 6379)}"

        def make() -> Any:
            return rcluster.RedisCluster.from_url(
                plain, require_full_coverage=False, **_options(timeout)
            )

        return cls(make, where)

    @classmethod
    def like(cls, given: Any, timeout: float) -> _Cluster:
        """The blocking twin of a cluster client (sync or asyncio): its nodes and
        credentials, this store's timeouts."""
        startup = getattr(given, "startup_nodes", None) or []
        if isinstance(startup, dict):
            startup = list(startup.values())
        nodes = [(n.host, n.port) for n in [*given.get_nodes(), *startup]]
        manager = getattr(given, "nodes_manager", None)
        kwargs = getattr(manager, "connection_kwargs", None) or getattr(
            given, "connection_kwargs", {}
        )
        portable = {k: v for k, v in kwargs.items() if k in _PORTABLE and v is not None}
        where = f"cluster {nodes[0][0]}:{nodes[0][1]}" if nodes else "cluster"

        def make() -> Any:
            startup = [rcluster.ClusterNode(host, port) for host, port in nodes]  # type: ignore[no-untyped-call]
            return rcluster.RedisCluster(
                startup_nodes=startup,
                require_full_coverage=False,
                **portable,
                **_options(timeout),
            )

        return cls(make, where)

    def client(self) -> Any:
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._make()
                client = self._client
        return client

    def register_script(self, source: str) -> _ClusterScript:
        return _ClusterScript(self, source)

    def pipeline(self, transaction: bool = False) -> Any:
        return self.client().pipeline(transaction=transaction)

    def get(self, key: str) -> Any:
        return self.client().get(key)

    def subscribe(self, channel: str) -> Any:
        """A subscription to ``channel`` on the first node that takes it, starting from a
        different node each time (a dead or frozen node is skipped)."""
        client = self.client()
        nodes = client.get_nodes()
        error: BaseException = rx.ConnectionError("no cluster node known")
        for i in range(len(nodes)):
            node = nodes[(self._turn + i) % len(nodes)]
            connection = node.redis_connection
            if connection is None:
                continue
            pubsub = client.pubsub(node=node, ignore_subscribe_messages=True)
            try:
                # Straight to the node: a frozen one fails here, and the cluster client
                # does not go and rediscover the cluster over one dead node.
                connection.ping()
                pubsub.subscribe(channel)
            except Exception as failed:
                error = failed
                _close_quietly(pubsub)
                continue
            self._turn += i + 1
            return pubsub
        self._turn += 1
        raise error

    def refresh(self) -> None:
        """Learn again which node serves which slot (after a failover), quietly."""
        client = self._client
        if client is None:
            return
        try:
            client.nodes_manager.initialize()
        except Exception:
            pass  # the next command finds out, and says why

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()


class _ClusterScript:
    """A Lua script run on the cluster node owning its keys' slot."""

    def __init__(self, cluster: _Cluster, source: str) -> None:
        self.cluster = cluster
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def __call__(self, keys: Any = (), args: Any = (), client: Any = None) -> Any:
        real = self.cluster.client()
        try:
            return real.evalsha(self.sha, len(keys), *keys, *args)
        except rx.NoScriptError:  # this node has not seen it yet: send it whole once
            return real.eval(self.source, len(keys), *keys, *args)


def _client_like(target: object) -> bool:
    """Whether ``target`` can stand for a client (a cluster client, a test's stand-in)."""
    return all(callable(getattr(target, name, None)) for name in ("register_script", "pipeline"))


def _redacted(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    url = re.sub(r"(//[^/@]*?:)[^/@]*@", r"\1***@", url, count=1)
    return re.sub(r"(?i)(password=)[^&#]*", r"\1***", url)


def _describe(client: Any) -> str:
    """``host:port/db`` of a client, never its password."""
    if isinstance(client, _Cluster):
        return client.where
    pool = getattr(client, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", {})
    if "path" in kwargs:
        return f"unix:{kwargs['path']}"
    if "host" in kwargs:
        return f"{kwargs['host']}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"
    return type(client).__name__


class _RedisBase:
    """What both stores share: cells, the listener thread, outages, flags."""

    def __init__(
        self,
        client: object,
        *,
        prefix: str,
        timeout: float,
        cache_ttl: float,
        key_ttl: float,
        clock: ClockSource,
        on_store_error: OnStoreError,
        retry_interval: float,
        trip: Trip,
        trip_quorum: int,
        check: bool,
    ) -> None:
        given: object = prefix
        if (
            not isinstance(given, str)
            or not prefix
            or "{" in prefix
            or "}" in prefix
            or not _encodable(prefix)
        ):
            raise ConfigError("prefix", prefix, "a non-empty UTF-8 string without braces")
        if clock not in ("redis", "local"):
            raise ConfigError("clock", clock, "'redis' or 'local'")
        if on_store_error not in ("local", "allow"):
            raise ConfigError("on_store_error", on_store_error, "'local' or 'allow'")
        if trip not in ("fleet", "local"):
            raise ConfigError("trip", trip, "'fleet' or 'local'")
        self.trip = trip
        self.trip_quorum = _validate.integer("trip_quorum", trip_quorum, minimum=1)
        self.prefix = prefix
        self.timeout = _duration("timeout", timeout, allow_zero=False)
        self.cache_ttl = _duration("cache_ttl", cache_ttl, allow_zero=False)
        self.key_ttl = _duration("key_ttl", key_ttl, allow_zero=False)
        if self.key_ttl < MIN_KEY_TTL:
            raise ConfigError(
                "key_ttl",
                key_ttl,
                f"a number of seconds >= {MIN_KEY_TTL:g} (how long an idle breaker's key "
                "lives; an open one lives until it reopens, a half-open one until its "
                "last probe's lease ends, time-window counts for the window, plus key_ttl)",
            )
        self.retry_interval = _duration("retry_interval", retry_interval, allow_zero=False)
        if not isinstance(check, bool):
            raise ConfigError("check", check, "True or False")
        self.clock = clock
        self.on_store_error = on_store_error
        self._shown = _redacted(client) if isinstance(client, str) else client
        self._sync = _sync_client(client, self.timeout)
        self._cluster = isinstance(self._sync, _Cluster)
        self._owns_client = self._sync is not client  # a client we made, we close
        self._source = f"{type(self).__name__} {_describe(self._sync)} prefix={prefix!r}"
        self._script = self._sync.register_script(_lua.TRANSITION)
        self._flag_script = self._sync.register_script(_lua.SET_FLAG)
        self._budget_script = self._sync.register_script(_lua.BUDGET)
        self._probe_script = self._sync.register_script(_lua.PROBE)
        self._probe_key = f"{prefix}:probe"
        self._budgets: weakref.WeakSet[RetryBudget] = weakref.WeakSet()
        self._channel = f"{prefix}:events"
        self._ttl_ms = str(max(1, int(self.key_ttl * 1000)))
        self._cells: dict[str, _Cell] = {}
        # Cells let go of while idle (``release``): kept while a breaker holds them, found
        # again by name, updated by messages, never re-read periodically.
        self._loose: weakref.WeakValueDictionary[str, _Cell] = weakref.WeakValueDictionary()
        self._released = 0  # since the containers were last compacted
        self._lock = threading.Lock()
        self._offset = 0.0  # the server's clock minus this process's (clock="redis")
        # The server's clock minus time.monotonic(), once Redis has answered, taken from
        # the start of the round trip that read it: never less than the true difference,
        # so a deadline is never early and a state is never taken for newer than it is.
        self._skew: float | None = None
        self._skew_low: float | None = None  # the same, from the end of the round trip
        self._down_since: float | None = None
        self._down_kind = _OUTAGE
        self._flag_lock = threading.Lock()
        self._flags: TTLCache[str, str | None] = TTLCache(
            maxsize=4096, ttl=self.cache_ttl, timer=time.monotonic
        )
        self._known_flags: dict[str, str | None] = {}
        self._pending_flags: dict[str, str | None] = {}
        self._watcher: threading.Thread | None = None
        self._stop = threading.Event()
        self.listening = threading.Event()
        """Set once the listener has subscribed, read its cells and found Redis writable
        (for tests to wait on)."""
        self._unread: set[str] = set()  # cells created inside an event loop, not yet read
        self._closed = False
        self._id = _process_id()
        _stores.add(self)

    # --- keys --------------------------------------------------------------------------

    def key(self, name: str) -> str:
        """The hash holding breaker ``name``: ``<prefix>:{<name>}:state`` (one Cluster slot
        per breaker: every key of a breaker carries the same ``{name}`` hash tag). A name
        that cannot be a hash tag as it is (empty, or holding ``}``) is written
        ``<prefix>:%{<name, with % and } percent-encoded>}:state``."""
        return f"{self.prefix}:{_tagged(name)}:state"

    def keys(self, name: str) -> list[str]:
        """Every key breaker ``name`` may use (the trip hints only with ``trip="local"``)."""
        return [self.key(name), self._hints_key(name)]

    def _hints_key(self, name: str) -> str:
        return f"{self.prefix}:{_tagged(name)}:hints"

    def _flag_key(self, key: str) -> str:
        return f"{self.prefix}:flag:{key}"

    def _budget_key(self, name: str) -> str:
        return f"{self.prefix}:{_tagged('budget:' + name)}:counts"

    # --- cells -------------------------------------------------------------------------

    def cell(self, name: str) -> _Cell:
        """The cell holding the state of ``name``, read from Redis when first asked for.

        Inside a running event loop the read is left to the listener thread (a few
        milliseconds), so the loop never blocks on it. A name that cannot be a Redis key
        (it does not encode as UTF-8) gets a cell that never leaves this process.
        """
        cell = self._cells.get(name)
        if cell is not None:
            return cell
        with self._lock:
            cell = self._cells.get(name)
            if cell is not None:
                return cell
            cell = self._loose.pop(name, None)
            if cell is None:
                cell = _Cell(name, _OWN if self.trip == "local" else None)
            cell.recent = True
            self._cells[name] = cell
        if cell.keyless:
            return cell
        if not _encodable(name):
            cell.keyless = True
            self._key_failed(cell, UnicodeError("the name does not encode as UTF-8"))
            return cell
        if _in_event_loop() or self._down_since is not None:
            with self._lock:
                self._unread.add(name)
        else:
            try:
                self._reload([name])
            except Exception as error:
                self._failed(error)
        self._ensure_watcher()
        return cell

    def get(self, name: str) -> BreakerState:
        """The state of ``name`` as this process knows it (the initial state if unused)."""
        return self.cell(name).state

    def release(self, names: Iterable[str]) -> int:
        """Let go of the cells of ``names`` whose state is idle; return how many.

        Idle means closed with nothing counted, nothing of this process's own to keep and
        no script call under way. A released cell is no longer re-read by the listener;
        it lives on while a breaker still holds it (messages still update it, and
        ``cell(name)`` finds it again and re-reads it); otherwise its memory is freed.
        The registry calls this for the breakers it evicts while idle.
        """
        released = 0
        with self._lock:
            cells = self._cells
            for name in names:
                cell = cells.get(name)
                if cell is None:
                    continue
                with cell.lock:
                    own = cell.own
                    if (
                        not is_idle(cell.shared)
                        or (own is not None and not is_idle(own))
                        or cell.local_at is not None
                        or cell.inflight
                    ):
                        continue
                    del cells[name]
                    self._loose[name] = cell
                released += 1
                cell = None  # the last reference held here: an unheld cell goes now
            self._released += released
            if self._released and self._released >= len(self._cells):
                # Dicts keep their size after deletions: a copy gives the memory back.
                self._cells = dict(cells)
                self._loose = weakref.WeakValueDictionary(self._loose)
                self._released = 0
        return released

    def _held(self, name: str) -> _Cell | None:
        """The cell of ``name``, listed or released but still held, if any."""
        return self._cells.get(name) or self._loose.get(name)

    def names(self) -> list[str]:
        """The names of the breakers this process holds, sorted."""
        return sorted(self._cells)

    @property
    def reachable(self) -> bool:
        """Whether Redis answered the last time it was asked and accepts this store's
        writes (no outage in progress; a read-only Redis is an outage)."""
        return self._down_since is None

    # --- transitions -------------------------------------------------------------------

    def apply(
        self, name: str, event: Event, now: float, config: BreakerConfig
    ) -> tuple[BreakerState, Decision]:
        """Apply ``event`` to the shared state of ``name`` in one script call (or, during
        an outage, to this process's own copy); return the result."""
        cell = self._cells.get(name) or self.cell(name)
        cell.config = config
        if cell.own is not None and event.kind in _CALLS and cell.shared.mode is _CLOSED:
            own, decision, tripped = self._apply_own(cell, event, now, config)
            if tripped:
                self._hint(cell, own, now)
            return own, decision
        if self._local(cell, event):
            return self._fallback(cell, event, now, config)
        cell.recent = True
        if event.kind is _ACQUIRE and cell.state.mode in _WAITING:
            refused = _refused_here(cell.state, event, now, config)
            if refused is not None:
                return refused
        args = [*self._args(name, config), *self._event_args(event, now)]
        _begin(cell)
        try:
            reply = self._call(cell, args)
            if reply is not None:
                results = self._accept(cell, reply, (now + _config.state.now()) / 2, config)
                if results:
                    return results[0]
            return self._fallback(cell, event, now, config)
        finally:
            _end(cell)

    def _local(self, cell: _Cell, event: Event) -> bool:
        """Whether ``event`` is applied here: during an outage, for a breaker whose keys
        cannot be used, and for the calls of one holding a state of its own (a manual
        operation, meant for the fleet, goes to Redis)."""
        if self._down_since is not None or cell.broken is not None:
            return True
        return cell.local_at is not None and event.kind in _CALLS

    def _call(self, cell: _Cell, args: list[str]) -> list[Any] | None:
        """One script call for ``cell``: the reply, or ``None`` when Redis did not apply
        it (the error is dealt with: an outage, or trouble of this breaker alone)."""
        for _ in range(2):
            sent = time.monotonic()
            try:
                reply: list[Any] = self._script(keys=self._script_keys(cell.name), args=args)
            except Exception as error:  # whatever went wrong, the caller must not see it
                self._failed(error, cell)
                return None
            if not self._late(reply, sent, args):
                return reply
        self._failed(TimeoutError("Redis ran the script after its deadline twice"), cell)
        return None

    def _late(self, reply: list[Any], sent: float, args: list[str]) -> bool:
        """Learn the server's clock from ``reply``; whether the script found its deadline
        past. A reply that came back in time says the deadline was misjudged (the
        server's clock moved): ``args`` gets one judged anew, for one more try."""
        try:
            server = float(_lua.as_text(reply[0]))
            self._skew, self._skew_low = server - sent, server - time.monotonic()
            late = _lua.as_text(reply[1]) == "late"
        except (ValueError, TypeError, IndexError):
            return False  # not a reply of this script: _accept finds out
        if late:
            args[_lua.DEADLINE_ARG] = self._deadline()
        return late

    def _deadline(self) -> str:
        """When a script sent now must have run, in the server's microseconds."""
        skew = self._skew
        if skew is None:
            return ""
        return str(int((time.monotonic() + skew + self.timeout) * 1_000_000))

    def _script_keys(self, name: str) -> tuple[str, ...]:
        if self.trip == "fleet":
            return (self.key(name),)
        return (self.key(name), self._hints_key(name))

    def _args(
        self, name: str, config: BreakerConfig, hint: tuple[str, ...] = ("",) * 3
    ) -> list[str]:
        """The script's arguments before the events (see ``_lua.TRANSITION``)."""
        return [self._ttl_ms, self._channel, name, *_rules_of(config), *hint, self._deadline()]

    def _event_args(self, event: Event, now: float, kind: str = "") -> tuple[str, ...]:
        return (
            kind or str(event.kind),
            str(event.ticket),
            _lua.number(event.duration),
            "" if self.clock == "redis" else _lua.number(now),
        )

    def _accept(
        self, cell: _Cell, reply: list[Any], now: float, config: BreakerConfig
    ) -> list[tuple[BreakerState, Decision]]:
        """The script's answers to each event; the cell takes the last state. ``now`` is
        this process's time while the script ran (for ``clock="redis"``). None, when the
        reply holds a state no script could have written: that breaker goes on locally."""
        try:
            return self._read_reply(cell, reply, now, config)
        except (ValueError, TypeError, IndexError) as error:  # a state no script wrote
            self._key_failed(cell, error)
            return []

    def _read_reply(
        self, cell: _Cell, reply: list[Any], now: float, config: BreakerConfig
    ) -> list[tuple[BreakerState, Decision]]:
        text = _lua.as_text
        if self.clock == "redis":
            self._offset = float(text(reply[0])) - now
        results = []
        for start in range(2, len(reply), 14):
            verdict, ticket, retry_after, prior = (text(v) for v in reply[start : start + 4])
            state = self._to_local(_lua.decode(reply[start + 4 : start + 14])[0], config)
            decision = Decision(
                Verdict(verdict),
                int(float(ticket)),
                float(retry_after) if retry_after else None,
                BreakerMode(prior),
            )
            results.append((state, decision))
        if results:
            version = int(float(text(reply[1])))  # negative: never written
            self._adopt(cell, results[-1][0], abs(version), written=version >= 0, converted=True)
        return results

    # --- trip="local": this process counts, a quorum of processes opens the fleet --------

    def _apply_own(
        self, cell: _Cell, event: Event, now: float, config: BreakerConfig
    ) -> tuple[BreakerState, Decision, bool]:
        """The event applied to this process's own state; whether it just tripped."""
        with cell.lock:
            before = cell.own
            assert before is not None
            own, decision = transition(before, event, now, config)
            cell.own = own
            if cell.shared.mode is _CLOSED:
                cell.state = own
        return own, decision, before.mode is _CLOSED and own.mode is _OPEN

    def _hint_args(self, cell: _Cell, own: BreakerState, now: float) -> list[str] | None:
        """The script's arguments for telling the fleet this process's breaker tripped."""
        if self._down_since is not None or cell.broken is not None or cell.config is None:
            _count_error()
            return None
        hint = (self._id, str(self.trip_quorum), _lua.number(own.open_until - now))
        return [
            *self._args(cell.name, cell.config, hint),
            *self._event_args(Event(Kind.ACQUIRE), now, "hint"),
        ]

    def _hint(self, cell: _Cell, own: BreakerState, now: float) -> None:
        """Tell the fleet this process's breaker tripped (one script call); with a quorum
        of live hints the shared breaker opens, and the reply brings it here."""
        args = self._hint_args(cell, own, now)
        if args is None or cell.config is None:
            return
        _begin(cell)
        try:
            reply = self._call(cell, args)
            if reply is None:
                _count_error()
                return
            self._accept(cell, reply, now, cell.config)
        finally:
            _end(cell)

    def _to_local(self, state: BreakerState, config: BreakerConfig | None) -> BreakerState:
        """``state`` moved from the server's clock to this process's."""
        off = self._offset
        if not off:
            return state
        buckets = state.buckets
        if buckets and config is not None and config.window_duration:
            shift = round(off * BUCKETS / config.window_duration)
            buckets = tuple((i - shift, c, f, s) for i, c, f, s in buckets)
        return state._replace(
            opened_at=state.opened_at - off,
            open_until=state.open_until - off,
            probes=tuple((t, e - off) for t, e in state.probes),
            buckets=buckets,
        )

    def _adopt(
        self,
        cell: _Cell,
        state: BreakerState,
        version: int,
        *,
        written: bool = True,
        converted: bool = False,
    ) -> None:
        """Take ``state`` (at ``version``, the server's microseconds when it was written)
        if it is newer than what the cell holds. A cell holding its own state takes only
        a state written after its own last change, or, if it never saw Redis's, one that
        is not closed (what the fleet or an operator decided, which it could not know)."""
        if not converted:
            state = self._to_local(state, cell.config)
        with cell.lock:
            local_at = cell.local_at
            if local_at is not None:
                if not written:
                    return
                skew = self._skew
                newer = skew is not None and version / 1_000_000 - skew > local_at
                if not newer and (cell.version >= 0 or state.mode is _CLOSED):
                    return
                cell.local_at = None
            elif version <= cell.version and cell.version >= 0:
                return
            cell.set_shared(state)
            cell.version = version

    def _fallback(
        self, cell: _Cell, event: Event, now: float, config: BreakerConfig
    ) -> tuple[BreakerState, Decision]:
        """The event applied without Redis: this process's own breaker, same rules."""
        up = self._down_since is None and cell.broken is None
        if not up:
            _count_error()  # Redis is not used but would have been
        with cell.lock:
            state = cell.shared
            if self.on_store_error == "local":
                before = state
                state, decision = transition(state, event, now, config)
                if state != before:
                    cell.set_shared(state)
                    if up and _settled(state):  # back to closed, nothing counted: follow Redis
                        cell.local_at, cell.version = None, -1
                    else:
                        cell.local_at = time.monotonic()
                return state, decision
            cell.version = -1  # the next shared state replaces this one, whatever it is
            prior = state.mode
            if prior is not _CLOSED or state.failures:
                cell.set_shared(BreakerState(gen=state.gen + 1))
            state = cell.state
            if event.kind is _ACQUIRE:
                return state, Decision(Verdict.ALLOW, state.gen, prior=prior)
            return state, Decision(Verdict.DONE, prior=prior)

    # --- reading everything, and the listener --------------------------------------------

    def _reload(self, names: list[str]) -> None:
        """Read the shared state of ``names`` in one round trip (raises when Redis cannot
        be read; trouble with one breaker's key is that breaker's alone)."""
        held = self._held
        names = [n for n in names if (c := held(n)) is not None and not c.keyless]
        if not names:
            return
        cluster = self._cluster
        if cluster and self._skew_low is None:
            self._probe()  # learns the server's clock
        pipe = self._sync.pipeline(transaction=False)
        key = self.key
        for name in names:
            pipe.hmget(key(name), _lua.FIELDS)
        if not cluster:  # a cluster pipeline takes only commands on keys
            pipe.time()
        now = _config.state.now
        started, before = time.monotonic(), now()
        try:
            replies = pipe.execute(raise_on_error=False)
        except Exception as error:
            if _kind_of(error) != _KEY:
                raise
            if len(names) == 1:  # this key alone cannot even be sent
                only = held(names[0])
                if only is not None:
                    self._key_failed(only, error)
            else:
                for name in names:  # one at a time, so one bad key hides no other
                    self._reload([name])
            return
        after = now()
        if cluster:
            # The server's clock as last learned from a script's reply (every script
            # returns it): the nodes of a cluster keep one time, give or take NTP.
            # The lower bound, so that a breaker never written is never taken for newer
            # than a state a script writes afterwards.
            low = self._skew_low
            assert low is not None
            server_us = int((started + low) * 1_000_000)
        else:
            clock = replies[-1]
            if isinstance(clock, Exception):
                raise clock
            seconds, micros = clock
            server_us = int(seconds) * 1_000_000 + int(micros)
            self._skew = server_us / 1_000_000 - started
        if self.clock == "redis":
            self._offset = server_us / 1_000_000 - (before + after) / 2
        for name, values in zip(names, replies, strict=False):
            cell = held(name)
            if cell is None:
                continue
            if isinstance(values, Exception):
                if _kind_of(values) != _KEY:
                    raise values
                self._key_failed(cell, values)
                continue
            try:
                state, version = _lua.decode(values)
            except (ValueError, TypeError, IndexError) as error:  # fields no script wrote
                self._key_failed(cell, error)
                continue
            cell.broken = None  # readable again: the next event tries Redis
            written = values[10] is not None
            # A breaker never written (or expired) is the initial state as of now.
            self._adopt(cell, state, version if written else server_us, written=written)

    def _ensure_watcher(self) -> None:
        if self._closed:
            return
        with self._lock:
            if self._watcher is not None and self._watcher.is_alive():
                return
            self._stop = threading.Event()
            self._watcher = threading.Thread(
                target=self._watch,
                args=(self._stop,),
                name=f"resilient-redis-{self.prefix}",
                daemon=True,
            )
            self._watcher.start()

    def _watch(self, stop: threading.Event) -> None:
        """The listener: re-read the breakers that messages say changed, re-read them all
        every ``cache_ttl`` seconds, and during an outage, retry until Redis answers and
        accepts a script's writes."""
        pubsub: Any = None
        next_read = 0.0
        hints: dict[str, tuple[int, float]] = {}
        while not stop.is_set():
            try:
                if self._down_since is not None and pubsub is not None:
                    _close_quietly(pubsub)
                    pubsub = None
                if pubsub is None:
                    if self._down_since is not None:
                        if stop.wait(self.retry_interval):
                            break
                        if isinstance(self._sync, _Cluster):
                            self._sync.refresh()  # a replica may have taken over
                    # Subscribe first, then read: a change made in between is not missed.
                    pubsub = self._subscribe()
                    self._reload(list(self._cells))
                    if self._down_since is not None:
                        self._probe()  # raises while Redis refuses writes
                        self._recovered()
                        # Read again: cells changed by calls served locally until now.
                        self._reload(list(self._cells))
                    self._sync_budgets()
                    self.listening.set()
                    next_read = time.monotonic() + self.cache_ttl
                try:
                    message = pubsub.get_message(timeout=0.001 if hints else _POLL)
                    while message is not None:
                        self._on_message(message.get("data"), hints)
                        message = pubsub.get_message(timeout=0.0)
                except Exception:
                    if not self._cluster:
                        raise
                    # One node of a cluster went away: subscribe on another and read
                    # everything again (the first failed read starts an outage).
                    _close_quietly(pubsub)
                    pubsub = None
                    continue
                if hints:
                    self._reload(self._due(hints))
                if self._unread:
                    with self._lock:
                        unread, self._unread = list(self._unread), set()
                    self._reload(unread)
                if time.monotonic() >= next_read:
                    self._reload(self._due_periodically())
                    self._sync_budgets()
                    next_read = time.monotonic() + self.cache_ttl
            except Exception as error:
                if stop.is_set():
                    break  # closed under our feet: not an outage
                if pubsub is not None:
                    _close_quietly(pubsub)
                    pubsub = None
                if not self._failed(error) and stop.wait(self.retry_interval):
                    break  # not an outage, yet the loop failed: never spin on it
        if pubsub is not None:
            _close_quietly(pubsub)

    def _subscribe(self) -> Any:
        """A subscription to this store's channel (on any live node of a cluster)."""
        sync = self._sync
        if isinstance(sync, _Cluster):
            return sync.subscribe(self._channel)
        pubsub = sync.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(self._channel)
        return pubsub

    def _on_message(self, data: object, hints: dict[str, tuple[int, float]]) -> None:
        """Note what a message says changed; never take a state from it (anyone allowed
        to publish could have sent it)."""
        try:
            text = data.decode() if isinstance(data, bytes) else data
        except UnicodeDecodeError:
            return
        if not isinstance(text, str):
            return
        if text.startswith("s|"):
            parts = text.split("|", 12)
            cell = self._held(parts[-1])
            if cell is None or len(parts) != 13:
                return
            try:
                version = int(parts[1])
            except ValueError:
                return
            if version > cell.version:
                seen = hints.get(cell.name)
                hints[cell.name] = (max(version, seen[0] if seen else 0), time.monotonic())
        elif text.startswith("f|"):
            with self._flag_lock:
                self._flags.pop(text[2:], None)

    def _due_periodically(self) -> list[str]:
        """The breakers the listener re-reads every ``cache_ttl``: those used through
        the store since the last time, and those not idle. An idle closed breaker that
        no call has reported to the store is kept fresh by messages alone (and re-read
        with every other one whenever the subscription is renewed), so the cost of this
        stays with the breakers in use, not with every breaker ever used."""
        due = []
        for cell in list(self._cells.values()):
            if cell.recent or not is_idle(cell.state):
                cell.recent = False
                due.append(cell.name)
        return due

    def _due(self, hints: dict[str, tuple[int, float]]) -> list[str]:
        """The breakers to re-read for ``hints`` (taken out of it). A breaker with a
        script call of this process under way waits for its reply, which may be the
        very change announced, for at most ``timeout`` plus a poll."""
        due: list[str] = []
        patience = self.timeout + _POLL
        now = time.monotonic()
        for name, (version, seen) in list(hints.items()):
            cell = self._held(name)
            if cell is not None and cell.version < version:
                if cell.inflight and now - seen < patience:
                    continue
                due.append(name)
            del hints[name]
        return due

    # --- outages -------------------------------------------------------------------------

    def _failed(self, error: BaseException, cell: _Cell | None = None) -> bool:
        """Deal with an error of Redis; whether it is an outage of the whole store.

        An outage (Redis unreachable, or refusing this store's scripts or their writes)
        is logged once and retried by the listener. Trouble with one key is that
        breaker's (``cell``) alone, or the flag's or budget's that was asked for.
        """
        kind = _kind_of(error)
        if kind == _KEY:
            if cell is not None:
                self._key_failed(cell, error)
            else:
                digest.report("key unusable", self._source, f"{_reason(error)}; skipped")
            return False
        with self._lock:
            if self._down_since is not None and self._down_kind == kind:
                return True
            if self._down_since is None:
                self._down_since = time.monotonic()
            self._down_kind = kind
            cells = len(self._cells)
        until = "Redis answers again" if kind == _OUTAGE else "Redis accepts writes again"
        digest.report(
            kind,
            self._source,
            f"{_reason(error)}; {cells} breaker(s) go on with local state "
            f"(on_store_error={self.on_store_error!r}) until {until}",
        )
        self._ensure_watcher()
        return True

    def _key_failed(self, cell: _Cell, error: BaseException) -> None:
        """One breaker's keys cannot be used: it goes on locally, the store does not."""
        cell.broken = _reason(error)
        digest.report(
            "breaker state unusable in Redis",
            f"{self._source} breaker {cell.name!r}",
            f"{cell.broken}; this breaker goes on with local state, the others use Redis",
        )

    def _probe(self) -> None:
        """Run a script that writes and publishes (raises unless Redis lets it); learn
        the server's clock from its reply."""
        sent = time.monotonic()
        reply = self._probe_script(
            keys=(self._probe_key,), args=(self._id, self._channel), client=self._sync
        )
        try:
            server = int(reply[0]) + int(reply[1]) / 1_000_000
        except (TypeError, ValueError, IndexError):
            return  # a stand-in's reply
        self._skew, self._skew_low = server - sent, server - time.monotonic()

    def _check(self, check: bool) -> None:
        """The check made when the store is made: a configuration error raises
        ``ConfigError``; Redis down, slow or read-only starts an outage."""
        if not check or _async_client_like(self._sync):  # no blocking call to make on it
            return
        try:
            self._probe()
        except Exception as error:
            problem = _config_problem(error, self.prefix, self._channel)
            if problem is None:
                self._failed(error)
                return
            self._closed = True
            if self._owns_client:
                self._sync.close()
            raise ConfigError("url", self._shown, problem) from error

    def _recovered(self) -> None:
        with self._lock:
            since, self._down_since = self._down_since, None
            pending, self._pending_flags = self._pending_flags, {}
        if since is None:
            return
        for cell in list(self._cells.values()):
            with cell.lock:  # nothing of its own left to keep: follow Redis again
                if cell.local_at is not None and cell.broken is None and _settled(cell.shared):
                    cell.local_at, cell.version = None, -1
        for key, value in pending.items():
            self._write_flag(key, value)
        logger.info(
            "%s: Redis answers again after %.1fs; breakers follow the shared state",
            self._source,
            time.monotonic() - since,
        )

    # --- retry budgets -------------------------------------------------------------------

    def track_budget(self, budget: RetryBudget) -> None:
        """Share ``budget`` with every process using this Redis: the listener adds this
        process's counts to the fleet's every ``cache_ttl`` and brings back the totals."""
        self._budgets.add(budget)
        self._ensure_watcher()

    def _sync_budgets(self) -> None:
        for budget in list(self._budgets):
            calls, retries = budget.take_unsynced(max(3 * self.cache_ttl, 1.0))
            args = (str(calls), str(retries), _lua.number(budget.window))
            try:
                reply = self._budget_script(keys=(self._budget_key(budget.name),), args=args)
            except Exception as error:
                if _kind_of(error) != _KEY:
                    raise
                self._failed(error)  # this budget's key alone: logged, the others go on
                continue
            budget.synced(int(reply[0]), int(reply[1]))

    # --- flags (degradation overrides) ----------------------------------------------------

    def get_flag(self, key: str) -> str | None:
        """A named flag shared by every process using this Redis (e.g. a feature switched
        off); cached for ``cache_ttl`` seconds and dropped from the cache when it changes."""
        with self._flag_lock:
            try:
                return self._flags[key]
            except KeyError:
                pass
        if self._down_since is None:
            try:
                raw = self._sync.get(self._flag_key(key))
            except Exception as error:
                self._failed(error)
            else:
                value = raw.decode() if isinstance(raw, bytes) else raw
                with self._flag_lock:
                    self._flags[key] = value
                    self._known_flags[key] = value
                self._ensure_watcher()  # its messages drop changed flags from the cache
                return value
        _count_error()
        with self._flag_lock:
            return self._known_flags.get(key)

    def set_flag(self, key: str, value: str | None) -> None:
        """Set the flag ``key`` for every process, or remove it with ``None``. During an
        outage it applies here at once and is written when Redis is back."""
        with self._flag_lock:
            self._flags[key] = value
            self._known_flags[key] = value
        if self._down_since is None and self._write_flag(key, value):
            return
        _count_error()
        with self._lock:
            self._pending_flags[key] = value

    def _write_flag(self, key: str, value: str | None) -> bool:
        args = ["" if value is None else value, "0" if value is None else "1", self._channel, key]
        try:
            self._flag_script(keys=(self._flag_key(key),), args=args, client=self._sync)
        except Exception as error:
            self._failed(error)
            return False
        return True

    # --- lifetime ------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the listener and drop the connections (the store is not used after this)."""
        self._closed = True
        self._stop.set()
        if self._owns_client:
            try:
                self._sync.close()
            except Exception:
                pass

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = _describe(self._sync)
        status = "up" if self._down_since is None else "unreachable"
        return (
            f"<{type(self).__name__} {where} prefix={self.prefix!r} "
            f"breakers={len(self._cells)} {status}>"
        )

    def _after_fork(self) -> None:
        self._id = _process_id()
        self._watcher = None
        self._stop = threading.Event()
        if self._cells and not self._closed:
            self._ensure_watcher()


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
            found = self._aclients[loop] = (client, client.register_script(_lua.TRANSITION))
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
            args = self._args(cell.name, config)
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
                self._failed(error, cell)
                return None
            if not self._late(reply, sent, args):
                return reply
        self._failed(TimeoutError("Redis ran the script after its deadline twice"), cell)
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
        if found is not None and self._given is None:
            await found[0].aclose()
        self.close()

    def close(self) -> None:
        for loop, (client, _) in list(self._aclients.items()):
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


def _close_later(loop: asyncio.AbstractEventLoop, client: Any) -> None:
    loop.create_task(client.aclose())


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _process_id() -> str:
    """Who this process is among the fleet's trip hints: host, pid and a random tag."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _count_error() -> None:
    emit = _config.state.emit
    if emit is not None:
        emit.increment(STORE_ERRORS, _TAGS)


def _close_quietly(pubsub: Any) -> None:
    """Close a subscription that may already be broken."""
    try:
        pubsub.close()
    except Exception:
        pass


def _drop_connections(client: Any) -> None:
    """Close the sockets of an asyncio client whose event loop is already closed (its
    own ``aclose`` needs that loop), so nothing is left open for the collector to find."""
    pool = getattr(client, "connection_pool", None)
    connections = [
        *getattr(pool, "_available_connections", ()),
        *getattr(pool, "_in_use_connections", ()),
    ]
    if isinstance(client, acluster.RedisCluster):  # each node keeps its own connections
        for node in client.get_nodes():
            connections.extend(getattr(node, "_connections", ()))
    for connection in connections:
        writer = getattr(connection, "_writer", None)
        if writer is None:
            continue
        transport = writer.transport
        try:
            transport.abort()  # marks it closing; on a closed loop it cannot finish the job
        except Exception:
            pass
        # ... so close the socket it still holds (asyncio's own attribute: best effort).
        sock = getattr(transport, "_sock", None)
        if sock is not None:
            try:
                sock.close()
                transport._sock = None
            except Exception:
                pass
        connection._writer = connection._reader = None


def _begin(cell: _Cell) -> None:
    with cell.lock:
        cell.inflight += 1


def _end(cell: _Cell) -> None:
    with cell.lock:
        cell.inflight -= 1


def _refused_here(
    state: BreakerState, event: Event, now: float, config: BreakerConfig
) -> tuple[BreakerState, Decision] | None:
    """The rejection of a call the state already refuses (open, or half-open with every
    probe's lease taken, as the messages of the fleet say), with no round trip; ``None``
    when it may be admitted, which only Redis can grant."""
    after, decision = transition(state, event, now, config)
    if decision.verdict is _REJECT and after.mode is state.mode:
        return state, decision
    return None


def _settled(state: BreakerState) -> bool:
    """Whether ``state`` is closed with nothing counted that a shared state could lose."""
    return (
        state.mode is _CLOSED
        and not state.failures
        and "f" not in state.window.lower()
        and "S" not in state.window
        and not any(failed or slow for _, _, failed, slow in state.buckets)
    )


def _tagged(name: str) -> str:
    """``{name}``: a Redis Cluster hash tag that is all of ``name``, so every key made
    with it lands on one slot. Redis takes the tag from the first ``{`` to the first
    ``}`` after it, so a name holding ``}`` (or an empty one, whose tag would be empty
    and not count) is percent-encoded and marked with a leading ``%``, which no plain
    tag has: two names never share a key."""
    if name and "}" not in name:
        return f"{{{name}}}"
    escaped = name.replace("%", "%25").replace("}", "%7D") or "%"
    return f"%{{{escaped}}}"


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeError:
        return False
    return True


def _async_client_like(target: object) -> bool:
    """Whether ``target`` can stand for an asyncio client (e.g. an asyncio cluster client)."""
    execute = getattr(target, "execute_command", None)
    return _client_like(target) and inspect.iscoroutinefunction(execute)


def _code(error: BaseException) -> str:
    """The error code Redis sent (``READONLY``, ``NOPERM``, ``WRONGTYPE``...), or ``""``."""
    code = getattr(error, "status_code", None)
    if isinstance(code, str) and code:
        return code
    for kind, name in (
        (rx.ReadOnlyError, "READONLY"),
        (rx.NoPermissionError, "NOPERM"),
        (rx.NoScriptError, "NOSCRIPT"),
        (rx.OutOfMemoryError, "OOM"),
        (rx.BusyLoadingError, "LOADING"),
    ):
        if isinstance(error, kind):
            return name
    if isinstance(error, rx.ResponseError):
        first = str(error).split(" ", 1)[0]
        if first.isupper() and first.isalpha():
            return first
    return ""


def _reason(error: BaseException) -> str:
    """``error`` for a log line: its Redis error code first, when it has one."""
    code = _code(error)
    name = type(error).__name__
    return f"{code} ({name}: {error})" if code else f"{name}: {error}"


def _kind_of(error: BaseException) -> str:
    """What ``error`` means for the store: ``_OUTAGE``, ``_REFUSED`` or ``_KEY``.

    Only what Redis says of a command on its keys (``WRONGTYPE``, a script's error on the
    state it read, ``MOVED``...) and a name or value that cannot be sent are one key's
    trouble; anything else (timeouts, closed connections, the unexpected) is an outage.
    """
    if isinstance(error, _REFUSED_ERRORS):
        return _REFUSED
    if isinstance(error, rx.ResponseError):
        code = _code(error)
        if code in _OUTAGE_CODES:
            return _OUTAGE
        if code in _REFUSED_CODES or any(t in str(error) for t in _REFUSED_TEXTS):
            return _REFUSED
        return _KEY
    if isinstance(error, UnicodeError | rx.DataError):
        return _KEY
    return _OUTAGE


def _config_problem(error: BaseException, prefix: str, channel: str) -> str | None:
    """What a configuration must be, when ``error`` shows this one is wrong (``None``
    when it may pass: Redis down, slow or read-only for a while)."""
    said = f"Redis said: {_reason(error)}"
    text = str(error)
    if isinstance(error, rx.AuthenticationError):
        return f"credentials the server accepts ({said})"
    if isinstance(error, rx.ResponseError) and "DB index" in text:
        return f"a database number the server has ({said})"
    if isinstance(error, rx.NoPermissionError) or (
        isinstance(error, rx.ResponseError) and "script can't" in text
    ):
        return (
            f"a user allowed to run EVALSHA and SCRIPT LOAD, on keys {prefix}:* and "
            f"channel {channel} ({said})"
        )
    if isinstance(error, rx.ResponseError) and "unknown command" in text:
        return f"a Redis server that runs Lua scripts ({said})"
    if isinstance(error, rx.ConnectionError) and _unresolved(error):
        return f"a host name that resolves ({said})"
    return None


def _unresolved(error: BaseException) -> bool:
    """Whether ``error`` comes from a host name that does not exist (not from a name
    server that did not answer, which may pass)."""
    seen: BaseException | None = error
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, socket.gaierror):
            return seen.errno in _UNRESOLVED
        seen = seen.__cause__ or seen.__context__
    return False


def _after_fork_in_child() -> None:
    for store in list(_stores):
        store._after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
