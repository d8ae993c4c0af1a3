"""``RedisStore`` and ``AsyncRedisStore``: breaker state shared by every process and host.

What a call costs. A breaker reads its state from a local cell, never from Redis, so a
success on a healthy closed breaker makes no round trip. A failure, a success that ends a
run of failures, a manual operation: each is one script call (``EVALSHA``) that applies
the breaker's rules atomically on the server and returns the new state; a half-open
probe is two (its permit, its outcome). ``AsyncRedisStore`` sends the events of
concurrent tasks on one breaker together in one script call. Every change a script makes
(but for rate-window counts) is published, and each process's listener thread copies it
into its cells. Rate-window rules (``failure_rate``, slow calls) record every call, so
with them every call is a script call.

How stale a cell can be. A change made anywhere reaches every listening process as fast
as Redis delivers a pub/sub message (well under a millisecond on one network). The
listener also re-reads every breaker it holds every ``cache_ttl`` seconds (default 1 s),
so while Redis answers, a cell is never more than ``cache_ttl + 0.05 + timeout`` seconds
behind the shared state, even should a message be lost; when the subscription breaks,
it is renewed and everything re-read. Until a stale cell catches up, a process may let
through calls the fleet has stopped, at most those it starts in that window, and the
first failure it reports brings back the fleet's state: past an open breaker, a process
makes at most one call per concurrent caller.

When Redis is unreachable, slow or restarting. No call waits more than ``timeout``
(default 50 ms) for Redis, and no call sees a Redis error. The first error starts an
outage: one warning line is logged, and every breaker carries on in this process alone
with the same rules, from the last state it saw (``on_store_error="local"``, the default),
or lets every call through and counts nothing (``"allow"``). Each operation served
without Redis counts in ``store_errors_total``. The listener retries every
``retry_interval`` seconds; when Redis answers again, the cells take the shared state
(whatever the fleet, or a restarted and empty Redis, holds) and calls go back to it.

Time. By default the scripts decide with the Redis server's clock (``clock="redis"``),
so hosts whose clocks disagree still agree on when a breaker reopens; states are moved
into this process's clock when they arrive. ``clock="local"`` uses the time the breaker
passes (the configured clock): right for processes on one host, and for tests with a
``FakeClock``.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import os
import socket
import threading
import time
import uuid
import weakref
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


class _Cell:
    """One breaker as this process knows it, in this process's clock.

    ``state`` is what calls read, lock-free: the shared state, or with ``trip="local"``
    this process's ``own`` state while the shared one is closed. ``version`` orders
    shared states from script replies, messages and re-reads, which may arrive out of
    order: one replaces ``shared`` only if it is newer. ``-1`` means the cell holds a
    state of its own (new, or changed during an outage) and takes the next shared state
    whatever its version.
    """

    __slots__ = ("config", "lock", "name", "own", "shared", "state", "version")

    def __init__(self, name: str, own: BreakerState | None) -> None:
        self.name = name
        self.shared: BreakerState = INITIAL
        self.own = own
        self.state: BreakerState = INITIAL if own is None else own
        self.version = -1
        self.lock = threading.Lock()
        self.config: BreakerConfig | None = None

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


def _sync_client(target: object, timeout: float) -> Any:
    """A client whose every command gives up after ``timeout`` and is never retried."""
    options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 0),
        "retry_on_timeout": False,
        **_NO_SETINFO,
    }
    if isinstance(target, str):
        return redis.Redis.from_url(target, **options)
    pool = getattr(target, "connection_pool", None)
    if pool is None:
        return target  # a cluster client or a stand-in: its own timeouts apply
    kwargs = {**pool.connection_kwargs, **options}
    connection_class = getattr(redis, pool.connection_class.__name__, redis.Connection)
    if not isinstance(target, redis.Redis):  # an asyncio client: the sync twin of its class
        allowed = (
            "host",
            "port",
            "db",
            "username",
            "password",
            "path",
            "client_name",
            "ssl_keyfile",
            "ssl_certfile",
            "ssl_cert_reqs",
            "ssl_ca_certs",
            "ssl_check_hostname",
        )
        kwargs = {k: v for k, v in kwargs.items() if k in allowed or k in options}
    else:
        connection_class = pool.connection_class
    return redis.Redis(
        connection_pool=redis.ConnectionPool(connection_class=connection_class, **kwargs)
    )


def _describe(client: Any) -> str:
    """``host:port/db`` of a client, never its password."""
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
    ) -> None:
        given: object = prefix
        if not isinstance(given, str) or not prefix or "{" in prefix or "}" in prefix:
            raise ConfigError("prefix", prefix, "a non-empty string without braces")
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
        self.retry_interval = _duration("retry_interval", retry_interval, allow_zero=False)
        self.clock = clock
        self.on_store_error = on_store_error
        self._sync = _sync_client(client, self.timeout)
        self._owns_client = self._sync is not client  # a client we made, we close
        self._source = f"{type(self).__name__} {_describe(self._sync)} prefix={prefix!r}"
        self._script = self._sync.register_script(_lua.TRANSITION)
        self._flag_script = self._sync.register_script(_lua.SET_FLAG)
        self._budget_script = self._sync.register_script(_lua.BUDGET)
        self._budgets: weakref.WeakSet[RetryBudget] = weakref.WeakSet()
        self._channel = f"{prefix}:events"
        self._ttl_ms = str(max(1, int(self.key_ttl * 1000)))
        self._cells: dict[str, _Cell] = {}
        self._lock = threading.Lock()
        self._offset = 0.0  # the server's clock minus this process's (clock="redis")
        self._down_since: float | None = None
        self._flag_lock = threading.Lock()
        self._flags: TTLCache[str, str | None] = TTLCache(
            maxsize=4096, ttl=self.cache_ttl, timer=time.monotonic
        )
        self._known_flags: dict[str, str | None] = {}
        self._pending_flags: dict[str, str | None] = {}
        self._watcher: threading.Thread | None = None
        self._stop = threading.Event()
        self.listening = threading.Event()
        """Set once the listener has subscribed and read its cells (for tests to wait on)."""
        self._unread: set[str] = set()  # cells created inside an event loop, not yet read
        self._closed = False
        self._id = _process_id()
        _stores.add(self)

    # --- keys --------------------------------------------------------------------------

    def key(self, name: str) -> str:
        """The hash holding breaker ``name``: ``<prefix>:{<name>}:state`` (one Cluster slot
        per breaker: every key of a breaker carries the same ``{name}`` hash tag)."""
        return f"{self.prefix}:{{{name}}}:state"

    def keys(self, name: str) -> list[str]:
        """Every key breaker ``name`` may use (the trip hints only with ``trip="local"``)."""
        return [self.key(name), self._hints_key(name)]

    def _hints_key(self, name: str) -> str:
        return f"{self.prefix}:{{{name}}}:hints"

    def _flag_key(self, key: str) -> str:
        return f"{self.prefix}:flag:{key}"

    def _budget_key(self, name: str) -> str:
        return f"{self.prefix}:{{budget:{name}}}:counts"

    # --- cells -------------------------------------------------------------------------

    def cell(self, name: str) -> _Cell:
        """The cell holding the state of ``name``, read from Redis when first asked for.

        Inside a running event loop the read is left to the listener thread (a few
        milliseconds), so the loop never blocks on it.
        """
        cell = self._cells.get(name)
        if cell is not None:
            return cell
        with self._lock:
            cell = self._cells.get(name)
            if cell is not None:
                return cell
            cell = self._cells[name] = _Cell(name, _OWN if self.trip == "local" else None)
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

    def names(self) -> list[str]:
        """The names of the breakers this process holds, sorted."""
        return sorted(self._cells)

    @property
    def reachable(self) -> bool:
        """Whether Redis answered the last time it was asked (no outage in progress)."""
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
        if self._down_since is not None:
            return self._fallback(cell, event, now, config)
        args = [*self._args(name, config), *self._event_args(event, now)]
        try:
            reply = self._script(keys=self._script_keys(name), args=args)
        except Exception as error:  # whatever went wrong, the caller must not see it
            self._failed(error)
            return self._fallback(cell, event, now, config)
        return self._accept(cell, reply, (now + _config.state.now()) / 2, config)[0]

    def _script_keys(self, name: str) -> tuple[str, ...]:
        if self.trip == "fleet":
            return (self.key(name),)
        return (self.key(name), self._hints_key(name))

    def _args(
        self, name: str, config: BreakerConfig, hint: tuple[str, ...] = ("",) * 3
    ) -> list[str]:
        """The script's arguments before the events (see ``_lua.TRANSITION``)."""
        return [self._ttl_ms, self._channel, name, *_rules_of(config), *hint]

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
        this process's time while the script ran (for ``clock="redis"``)."""
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
            self._adopt(cell, results[-1][0], int(float(text(reply[1]))), converted=True)
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
        if self._down_since is not None or cell.config is None:
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
        try:
            reply = self._script(keys=self._script_keys(cell.name), args=args)
        except Exception as error:
            self._failed(error)
            _count_error()
            return
        self._accept(cell, reply, now, cell.config)

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
        self, cell: _Cell, state: BreakerState, version: int, *, converted: bool = False
    ) -> None:
        if not converted:
            state = self._to_local(state, cell.config)
        with cell.lock:
            if version > cell.version or cell.version < 0:
                cell.set_shared(state)
                cell.version = version

    def _fallback(
        self, cell: _Cell, event: Event, now: float, config: BreakerConfig
    ) -> tuple[BreakerState, Decision]:
        """The event applied without Redis: this process's own breaker, same rules."""
        _count_error()
        with cell.lock:
            state = cell.shared
            cell.version = -1  # the next shared state replaces this one, whatever it is
            if self.on_store_error == "local":
                state, decision = transition(state, event, now, config)
                cell.set_shared(state)
                return state, decision
            prior = state.mode
            if prior is not _CLOSED or state.failures:
                cell.set_shared(BreakerState(gen=state.gen + 1))
            state = cell.state
            if event.kind is _ACQUIRE:
                return state, Decision(Verdict.ALLOW, state.gen, prior=prior)
            return state, Decision(Verdict.DONE, prior=prior)

    # --- reading everything, and the listener --------------------------------------------

    def _reload(self, names: list[str]) -> None:
        """Read the shared state of ``names`` in one round trip (raises on trouble)."""
        if not names:
            return
        pipe = self._sync.pipeline(transaction=False)
        key = self.key
        for name in names:
            pipe.hmget(key(name), _lua.FIELDS)
        pipe.time()
        now = _config.state.now
        before = now()
        replies = pipe.execute()
        after = now()
        seconds, micros = replies[-1]
        server_us = int(seconds) * 1_000_000 + int(micros)
        if self.clock == "redis":
            self._offset = server_us / 1_000_000 - (before + after) / 2
        for name, values in zip(names, replies, strict=False):
            cell = self._cells.get(name)
            if cell is None:
                continue
            state, version = _lua.decode(values)
            # A breaker never written (or expired) is the initial state as of now.
            self._adopt(cell, state, version if values[10] is not None else server_us)

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
        """The listener: copy published changes into the cells, re-read them every
        ``cache_ttl`` seconds, and during an outage, retry until Redis answers."""
        pubsub: Any = None
        next_read = 0.0
        while not stop.is_set():
            try:
                if self._down_since is not None and pubsub is not None:
                    _close_quietly(pubsub)
                    pubsub = None
                if pubsub is None:
                    if self._down_since is not None and stop.wait(self.retry_interval):
                        break
                    # Subscribe first, then read: a change made in between is not missed.
                    pubsub = self._sync.pubsub(ignore_subscribe_messages=True)
                    pubsub.subscribe(self._channel)
                    self._reload(list(self._cells))
                    if self._down_since is not None:
                        self._recovered()
                        # Read again: cells changed by calls served locally until now.
                        self._reload(list(self._cells))
                    self._sync_budgets()
                    self.listening.set()
                    next_read = time.monotonic() + self.cache_ttl
                message = pubsub.get_message(timeout=_POLL)
                while message is not None:
                    self._on_message(message.get("data"))
                    message = pubsub.get_message(timeout=0.0)
                if self._unread:
                    with self._lock:
                        unread, self._unread = list(self._unread), set()
                    self._reload(unread)
                if time.monotonic() >= next_read:
                    self._reload(list(self._cells))
                    self._sync_budgets()
                    next_read = time.monotonic() + self.cache_ttl
            except Exception as error:
                if stop.is_set():
                    break  # closed under our feet: not an outage
                self._failed(error)
                if pubsub is not None:
                    _close_quietly(pubsub)
                    pubsub = None
        if pubsub is not None:
            _close_quietly(pubsub)

    def _on_message(self, data: object) -> None:
        if not isinstance(data, bytes | str):
            return
        text = data.decode() if isinstance(data, bytes) else data
        if text.startswith("s|"):
            parts = text.split("|", 12)
            cell = self._cells.get(parts[-1])
            if cell is not None and len(parts) == 13:
                state, _ = _lua.decode(parts[2:12])
                self._adopt(cell, state, int(float(parts[1])))
        elif text.startswith("f|"):
            with self._flag_lock:
                self._flags.pop(text[2:], None)

    # --- outages -------------------------------------------------------------------------

    def _failed(self, error: BaseException) -> None:
        """Redis did not answer: start an outage (once) and let the listener retry."""
        with self._lock:
            if self._down_since is not None:
                return
            self._down_since = time.monotonic()
            cells = len(self._cells)
        digest.report(
            "store unreachable",
            self._source,
            f"{type(error).__name__}: {error}; {cells} breaker(s) go on with local state "
            f"(on_store_error={self.on_store_error!r}) until Redis answers again",
        )
        self._ensure_watcher()

    def _recovered(self) -> None:
        with self._lock:
            since, self._down_since = self._down_since, None
            pending, self._pending_flags = self._pending_flags, {}
        if since is None:
            return
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
            reply = self._budget_script(keys=(self._budget_key(budget.name),), args=args)
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
    re-reads what it holds; ``key_ttl`` is how long an idle breaker's key lives (an open
    one lives until it would reopen, plus ``key_ttl``); ``retry_interval`` is how often
    Redis is retried during an outage.
    """

    def __init__(
        self,
        url: str | redis.Redis,
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
        )


class AsyncRedisStore(_RedisBase):
    """``RedisStore`` for asyncio: breakers in coroutines apply transitions through
    ``redis.asyncio`` (``aapply``), never a blocking call in the event loop.

    Sync code sharing the store (sync functions, ``breaker.reset()``) uses ``apply``,
    which blocks for at most ``timeout``. Given a URL, the store opens one asyncio client
    per event loop it meets; given a ``redis.asyncio.Redis``, it uses that client in its
    own loop. ``await store.aclose()`` (or ``close()``) releases the connections.
    """

    def __init__(
        self,
        url: str | aredis.Redis,
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
        )
        self._url = url if isinstance(url, str) else None
        self._given = None if isinstance(url, str) else url
        self._aclients: dict[asyncio.AbstractEventLoop, tuple[Any, Any]] = {}
        # Per (loop, breaker) while a script call is in flight: the events waiting for it.
        self._batches: dict[tuple[asyncio.AbstractEventLoop, str], list[Any]] = {}
        self._orphans: list[Any] = []  # clients of a parent process, kept from collection

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
                client = aredis.Redis.from_url(
                    self._url,
                    socket_timeout=self.timeout,
                    socket_connect_timeout=self.timeout,
                    retry=AsyncRetry(NoBackoff(), 0),
                    **_NO_SETINFO,
                )
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
        if self._down_since is not None:
            return self._fallback(cell, event, now, config)
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
        """Apply ``events`` in order in one script call (locally during an outage)."""
        if self._down_since is None:
            args = self._args(cell.name, config)
            for event, now in events:
                args.extend(self._event_args(event, now))
            try:
                client, script = self._aclient()
                async with asyncio.timeout(self.timeout):
                    reply = await script(
                        keys=self._script_keys(cell.name), args=args, client=client
                    )
            except Exception as error:  # TimeoutError included: the caller must not see it
                self._failed(error)
            else:
                now = (events[0][1] + _config.state.now()) / 2
                return self._accept(cell, reply, now, config)
        return [self._fallback(cell, event, now, config) for event, now in events]

    async def _ahint(self, cell: _Cell, own: BreakerState, now: float) -> None:
        args = self._hint_args(cell, own, now)
        if args is None or cell.config is None:
            return
        try:
            client, script = self._aclient()
            async with asyncio.timeout(self.timeout):
                reply = await script(keys=self._script_keys(cell.name), args=args, client=client)
        except Exception as error:
            self._failed(error)
            _count_error()
            return
        self._accept(cell, reply, now, cell.config)

    def _forget_closed_loops(self) -> None:
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
        super().close()

    def _after_fork(self) -> None:
        self._orphans.extend(self._aclients.values())
        self._aclients = {}
        super()._after_fork()


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


def _after_fork_in_child() -> None:
    for store in list(_stores):
        store._after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
