"""What both Redis stores share: cells, the listener thread, outages, flags, budgets."""

from __future__ import annotations

import abc
import asyncio
import logging
import os
import socket
import threading
import time
import uuid
import weakref
from typing import TYPE_CHECKING, Any, Literal

from cachetools import TTLCache
from redis.crc import key_slot

from ..._circuit.rules import (
    BUCKETS,
    BreakerMode,
    BreakerState,
    Decision,
    Event,
    Kind,
    Verdict,
    is_idle,
    transition,
)
from ..._runtime import config as _config
from ..._runtime import validate as _validate
from ..._runtime.logs import digest
from ..._runtime.validate import required_duration as _duration
from ...exceptions import ConfigError
from .. import _lua
from .._table import CellTable

if TYPE_CHECKING:
    from ..._circuit.config import BreakerConfig
    from ..._retry.budget import RetryBudget

from ._cells import (
    _ACQUIRE,
    _CALLS,
    _CLOSED,
    _OPEN,
    _OWN,
    _WAITING,
    _Cell,
    _encodable,
    _kept_by_redis,
    _refused_here,
    _rules_of,
    _settled,
    _tagged,
)
from ._clients import (
    _async_client_like,
    _close_quietly,
    _Cluster,
    _describe,
    _redacted,
    _sync_client,
)
from ._errors import (
    _KEY,
    _OUTAGE,
    _config_problem,
    _count_error,
    _kind_of,
    _reason,
)

logger = logging.getLogger("resilient")


ClockSource = Literal["redis", "local"]


OnStoreError = Literal["local", "allow"]


Trip = Literal["fleet", "local"]


_POLL = 0.05
"""Seconds the listener waits for a message before it looks at its other work."""


_live_stores: weakref.WeakSet[_RedisBase] = weakref.WeakSet()


MIN_KEY_TTL = 1.0
"""The shortest ``key_ttl`` accepted, in seconds."""


class _RedisBase(CellTable[_Cell]):
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
        super().__init__()
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
        self.trip_quorum: int = _validate.integer("trip_quorum", trip_quorum, minimum=1)
        self.prefix = prefix
        self.timeout: float = _duration("timeout", timeout, allow_zero=False)
        self.cache_ttl: float = _duration("cache_ttl", cache_ttl, allow_zero=False)
        self.key_ttl: float = _duration("key_ttl", key_ttl, allow_zero=False)
        if self.key_ttl < MIN_KEY_TTL:
            raise ConfigError(
                "key_ttl",
                key_ttl,
                f"a number of seconds >= {MIN_KEY_TTL:g} (how long an idle breaker's key "
                "lives; an open one lives until it reopens, a half-open one until its "
                "last probe's lease ends, time-window counts for the window, plus key_ttl)",
            )
        self.retry_interval: float = _duration("retry_interval", retry_interval, allow_zero=False)
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
        # The server's clock as this process sees it: one server's, or on a cluster one
        # per master (each master keeps its own clock), keyed by the node's name.
        self._clock = _Clock()
        self._clocks: dict[str, _Clock] = {}
        self._down_since: float | None = None
        # On a cluster, the masters that failed, by name, and when: only the breakers on
        # their slots go on locally; the listener retries them every retry_interval.
        self._nodes_down: dict[str, float] = {}
        self._nodes_retry = 0.0
        self._down_kind = _OUTAGE
        self._flag_lock = threading.Lock()
        self._flags: TTLCache[str, str | None] = TTLCache(
            maxsize=4096, ttl=self.cache_ttl, timer=time.monotonic
        )
        self._known_flags: dict[str, str | None] = {}
        self._pending_flags: dict[str, str | None] = {}
        self._watcher: threading.Thread | None = None
        self._stop = threading.Event()
        self.listening: threading.Event = threading.Event()
        """Set once the listener has subscribed, read its cells and found Redis writable
        (for tests to wait on)."""
        self._unread: set[str] = set()  # cells created inside an event loop, not yet read
        self._closed = False
        self._id = _process_id()
        _live_stores.add(self)

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
        own = _OWN if self.trip == "local" else None
        cell, listed = self._list(name, lambda: _Cell(name, own))
        if not listed:
            return cell
        cell.recent = True
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

    def _idle(self, cell: _Cell) -> bool:
        """Closed with nothing counted, nothing of this process's own to keep and no
        script call under way. A released cell is no longer re-read by the listener;
        messages still update it while a breaker holds it."""
        own = cell.own
        return (
            is_idle(cell.shared)
            and (own is None or is_idle(own))
            and cell.local_at is None
            and not cell.inflight
        )

    @property
    def reachable(self) -> bool:
        """Whether Redis answered the last time it was asked and accepts this store's
        writes (no outage in progress; a read-only Redis is an outage). On a cluster,
        whether every master this store used answered: while one does not, only the
        breakers on its slots go on locally (``reachable_for``)."""
        return self._down_since is None and not self._nodes_down

    def reachable_for(self, name: str) -> bool:
        """Whether breaker ``name`` uses Redis now: no outage of the store, nor of the
        cluster master serving its slot, nor trouble with its own keys."""
        cell = self._held(name)
        if self._down_since is not None or not _encodable(name):
            return False
        if cell is not None and cell.broken is not None:
            return False
        return not self._nodes_down or self._node_of_key(self.key(name)) not in self._nodes_down

    # --- transitions -------------------------------------------------------------------

    def _here(
        self, cell: _Cell, event: Event, now: float, config: BreakerConfig
    ) -> tuple[BreakerState, Decision, bool] | None:
        """The answer to ``event`` when no script call is needed, and whether this
        process's own breaker just tripped (the fleet is then told: ``_hint``); ``None``
        when Redis must apply it. Does no I/O."""
        cell.config = config
        if cell.own is not None and event.kind in _CALLS and cell.shared.mode is _CLOSED:
            return self._apply_own(cell, event, now, config)
        if self._local(cell, event):
            return (*self._fallback(cell, event, now, config), False)
        cell.recent = True
        if event.kind is _ACQUIRE and cell.state.mode in _WAITING:
            refused = _refused_here(cell.state, event, now, config)
            if refused is not None:
                return (*refused, False)
        return None

    @abc.abstractmethod
    def _send(
        self, cell: _Cell, events: list[tuple[Event, float]], config: BreakerConfig
    ) -> list[tuple[BreakerState, Decision]]:
        """Apply ``events`` in order in one script call (locally during an outage, or
        while the breaker holds a state of its own)."""

    def _submit(
        self, cell: _Cell, event: Event, now: float, config: BreakerConfig
    ) -> tuple[BreakerState, Decision]:
        """``event`` applied by Redis: in a script call of its own."""
        return self._send(cell, [(event, now)], config)[0]

    def _run(self, cell: _Cell, args: list[str]) -> list[Any]:
        """Run the transition script on ``cell``'s keys through the blocking client (raises
        what Redis raises; the client gives up after ``timeout``)."""
        reply: list[Any] = self._script(keys=self._script_keys(cell.name), args=args)
        return reply

    def _local(self, cell: _Cell, event: Event) -> bool:
        """Whether ``event`` is applied here: during an outage, for a breaker whose keys
        cannot be used, and for the calls of one holding a state of its own (a manual
        operation, meant for the fleet, goes to Redis)."""
        if self._down_since is not None or cell.broken is not None:
            return True
        if self._nodes_down and self._node_name(cell) in self._nodes_down:
            return True
        return cell.local_at is not None and event.kind in _CALLS

    def _late(self, clock: _Clock, reply: list[Any], sent: float, args: list[str]) -> bool:
        """Learn the clock of the server that ran the script (``clock``) from ``reply``;
        whether the script found its deadline past. A reply that came back in time says
        the deadline was misjudged (the server's clock moved): ``args`` gets one judged
        anew, for one more try."""
        try:
            server = float(_lua.as_text(reply[0]))
            clock.skew, clock.skew_low = server - sent, server - time.monotonic()
            late = _lua.as_text(reply[1]) == "late"
        except (ValueError, TypeError, IndexError):
            return False  # not a reply of this script: _accept finds out
        if late:
            args[_lua.DEADLINE_ARG] = self._deadline(clock)
        return late

    def _deadline(self, clock: _Clock) -> str:
        """When a script sent now must have run, in the microseconds of the server whose
        clock is ``clock``."""
        skew = clock.skew
        if skew is None:
            return ""
        return str(int((time.monotonic() + skew + self.timeout) * 1_000_000))

    def _script_keys(self, name: str) -> tuple[str, ...]:
        if self.trip == "fleet":
            return (self.key(name),)
        return (self.key(name), self._hints_key(name))

    def _args(
        self, cell: _Cell, config: BreakerConfig, hint: tuple[str, ...] = ("",) * 3
    ) -> list[str]:
        """The script's arguments before the events (see ``_lua.TRANSITION``); the
        deadline is in the clock of the server that runs it."""
        deadline = self._deadline(self._clock_of(cell))
        return [self._ttl_ms, self._channel, cell.name, *_rules_of(config), *hint, deadline]

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
        clock = self._clock_of(cell)
        if self.clock == "redis":
            clock.offset = float(text(reply[0])) - now
        results = []
        for start in range(2, len(reply), 14):
            verdict, ticket, retry_after, prior = (text(v) for v in reply[start : start + 4])
            state = _to_local(_lua.decode(reply[start + 4 : start + 14])[0], config, clock)
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
        if self._local(cell, Event(Kind.RESET)) or cell.config is None:
            _count_error()
            return None
        hint = (self._id, str(self.trip_quorum), _lua.number(own.open_until - now))
        return [
            *self._args(cell, cell.config, hint),
            *self._event_args(Event(Kind.ACQUIRE), now, "hint"),
        ]

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
        is not closed (what the fleet or an operator decided, which it could not know).

        A state never written (``written=False``: no key) does not replace one read from
        Redis that Redis had to keep still (``_kept_by_redis``: open and not yet due to
        reopen, forced open, disabled): the key is gone because Redis lost it (a cluster
        failover to a replica it had not reached, a restart without persistence), not
        because the breaker moved on, so the cell keeps rejecting as it did."""
        clock = self._clock_of(cell)
        if not converted:
            state = _to_local(state, cell.config, clock)
        with cell.lock:
            local_at = cell.local_at
            if local_at is not None:
                if not written:
                    return
                skew = clock.skew
                newer = skew is not None and version / 1_000_000 - skew > local_at
                if not newer and (cell.version >= 0 or state.mode is _CLOSED):
                    return
                cell.local_at = None
            elif cell.version >= 0 and (
                version <= cell.version
                or (not written and _kept_by_redis(cell.shared, _config.state.now()))
            ):
                return
            cell.set_shared(state)
            cell.version = version

    def _fallback(
        self, cell: _Cell, event: Event, now: float, config: BreakerConfig
    ) -> tuple[BreakerState, Decision]:
        """The event applied without Redis: this process's own breaker, same rules."""
        up = self._down_since is None and cell.broken is None
        if up and self._nodes_down:
            up = self._node_name(cell) not in self._nodes_down
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
        be read; trouble with one breaker's key is that breaker's alone). On a cluster,
        one round trip per master, each read with that master's clock; a master that
        fails is that master's outage alone, and the breakers of a master already known
        down are left until it is back."""
        held = self._held
        names = [n for n in names if (c := held(n)) is not None and not c.keyless]
        if not names:
            return
        if not self._cluster:
            self._read(self._sync, names, self._clock)
            return
        client = self._sync.client()
        groups: dict[str, tuple[Any, list[str]]] = {}
        for name in names:
            cell = held(name)
            node = None if cell is None else self._node_of(cell)
            if node is None:  # no master known for its slot: the next refresh finds one
                continue
            if node.name not in self._nodes_down:
                groups.setdefault(node.name, (node, []))[1].append(name)
        for where, (node, group) in groups.items():
            try:
                self._read(client.get_redis_connection(node), group, self._node_clock(where))
            except Exception as error:
                self._failed(error, node=where)

    def _read(self, client: Any, names: list[str], clock: _Clock) -> None:
        """``_reload`` of ``names`` from one server (``client``), whose clock is ``clock``."""
        held = self._held
        pipe = client.pipeline(transaction=False)
        key = self.key
        for name in names:
            pipe.hmget(key(name), _lua.FIELDS)
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
                    self._read(client, [name], clock)
            return
        after = now()
        server = replies[-1]
        if isinstance(server, Exception):
            raise server
        seconds, micros = server
        server_us = int(seconds) * 1_000_000 + int(micros)
        clock.skew = server_us / 1_000_000 - started
        if self.clock == "redis":
            clock.offset = server_us / 1_000_000 - (before + after) / 2
        moved = False
        for name, values in zip(names, replies, strict=False):
            cell = held(name)
            if cell is None:
                continue
            if isinstance(values, Exception):
                if str(values).startswith(("MOVED", "ASK")):
                    moved = True  # its slot has moved on: read it where it lives next time
                    continue
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
        if moved and isinstance(self._sync, _Cluster):
            self._sync.refresh()

    # --- cluster masters: one clock and one outage each ----------------------------------

    def _node_of(self, cell: _Cell) -> Any:
        """The cluster master serving ``cell``'s slot now, as the client last learned
        (``None`` before the client knows the cluster)."""
        slot = cell.slot
        if slot < 0:
            slot = cell.slot = key_slot(self.key(cell.name).encode())
        return self._node_of_slot(slot)

    def _node_of_slot(self, slot: int) -> Any:
        client = getattr(self._sync, "_client", None)
        if client is None:
            return None
        found = client.nodes_manager.slots_cache.get(slot)
        return found[0] if found else None

    def _node_name(self, cell: _Cell) -> str:
        """The name (``host:port``) of the master serving ``cell``'s slot, or ``""``."""
        node = self._node_of(cell)
        return "" if node is None else str(node.name)

    def _node_of_key(self, key: str) -> str:
        """The name of the master serving ``key``, or ``""`` (always, on one server)."""
        if not self._cluster:
            return ""
        node = self._node_of_slot(key_slot(key.encode()))
        return "" if node is None else str(node.name)

    def _server_of(self, cell: _Cell) -> tuple[str, _Clock]:
        """The name of the cluster master serving ``cell`` (``""`` on one server) and
        its clock, taken before a call: a failure is that master's even if the client
        learns another layout meanwhile."""
        if not self._cluster:
            return "", self._clock
        where = self._node_name(cell)
        return where, self._node_clock(where)

    def _clock_of(self, cell: _Cell) -> _Clock:
        """The clock of the server running ``cell``'s scripts."""
        if not self._cluster:
            return self._clock
        return self._node_clock(self._node_name(cell))

    def _node_clock(self, where: str) -> _Clock:
        clock = self._clocks.get(where)
        if clock is None:
            clock = self._clocks.setdefault(where, _Clock())
        return clock

    def _probe_key_on(self, where: str, client: Any) -> str:
        """A key of this store's own on a slot that master ``where`` serves (``""``
        when it serves none)."""
        slots = {
            slot
            for slot, nodes in client.nodes_manager.slots_cache.items()
            if nodes and nodes[0].name == where
        }
        if slots:
            for i in range(1 << 20):  # a few tries: each slot is as likely as another
                key = f"{self.prefix}:{{probe:{i}}}"
                if key_slot(key.encode()) in slots:
                    return key
        return ""

    def _node_failed(self, where: str, kind: str, error: BaseException) -> bool:
        """One cluster master failed: the breakers on its slots go on locally until it,
        or the replica taking over from it, answers; the others go on with Redis."""
        with self._lock:
            if where in self._nodes_down:
                return True
            if not self._nodes_down:
                self._nodes_retry = time.monotonic() + self.retry_interval
            self._nodes_down[where] = time.monotonic()
        until = "it or its replica answers" if kind == _OUTAGE else "it accepts writes again"
        digest.report(
            kind,
            f"{self._source} node {where}",
            f"{_reason(error)}; the breakers on its slots go on with local state "
            f"(on_store_error={self.on_store_error!r}) until {until}, the others use Redis",
        )
        self._ensure_watcher()
        return True

    def _retry_nodes(self) -> None:
        """Ask the masters that failed again (after learning anew which node serves which
        slot): one that answers, or serves no slot any more (its replica took over), is
        back, and the breakers on its former slots follow Redis again."""
        sync = self._sync
        if not isinstance(sync, _Cluster):
            return
        sync.refresh()
        client = sync.client()
        serving = {nodes[0].name for nodes in client.nodes_manager.slots_cache.values() if nodes}
        back = []
        for where in list(self._nodes_down):
            if where in serving:
                try:
                    self._probe(self._probe_key_on(where, client))
                except Exception:
                    continue  # still down, or still refusing writes
            back.append(where)
        if not back:
            return
        with self._lock:
            since = min(self._nodes_down.pop(where) for where in back)
        names = []
        for cell in list(self._cells.values()):
            if self._nodes_down and self._node_name(cell) in self._nodes_down:
                continue
            names.append(cell.name)
            with cell.lock:  # nothing of its own left to keep: follow Redis again
                if cell.local_at is not None and cell.broken is None and _settled(cell.shared):
                    cell.local_at, cell.version = None, -1
        self._reload(names)
        logger.info(
            "%s: cluster node(s) %s answer again after %.1fs; their breakers follow the "
            "shared state",
            self._source,
            ", ".join(back),
            time.monotonic() - since,
        )

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
                if self._nodes_down and time.monotonic() >= self._nodes_retry:
                    self._nodes_retry = time.monotonic() + self.retry_interval
                    self._retry_nodes()
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

    def _failed(self, error: BaseException, cell: _Cell | None = None, node: str = "") -> bool:
        """Deal with an error of Redis; whether it is an outage (of the whole store, or
        on a cluster of the master that failed: ``node``, or the one serving ``cell``).

        An outage (Redis unreachable, or refusing this store's scripts or their writes)
        is logged once and retried by the listener. Trouble with one key is that
        breaker's (``cell``) alone, or the flag's or budget's that was asked for. Once
        the store is closed, calls still in flight fail quietly: not an outage.
        """
        if self._closed:
            return False
        kind = _kind_of(error)
        if kind == _KEY:
            if cell is not None:
                self._key_failed(cell, error)
            else:
                digest.report("key unusable", self._source, f"{_reason(error)}; skipped")
            return False
        if self._cluster:
            if not node and cell is not None:
                node = self._node_name(cell)
            if node:
                return self._node_failed(node, kind, error)
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

    def _probe(self, key: str = "") -> None:
        """Run a script that writes and publishes (raises unless Redis lets it) on
        ``key`` (by default the store's probe key); learn the clock of the server that
        ran it from its reply."""
        key = key or self._probe_key
        sent = time.monotonic()
        reply = self._probe_script(keys=(key,), args=(self._id, self._channel), client=self._sync)
        try:
            server = int(reply[0]) + int(reply[1]) / 1_000_000
        except (TypeError, ValueError, IndexError):
            return  # a stand-in's reply
        clock = self._clock
        if self._cluster:
            clock = self._node_clock(self._node_of_key(key))
        clock.skew, clock.skew_low = server - sent, server - time.monotonic()

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
                self._failed(error, node=self._node_of_key(self._probe_key))
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
            key = self._budget_key(budget.name)
            if self._nodes_down and self._node_of_key(key) in self._nodes_down:
                continue  # its cluster master is down: counted here until it is back
            calls, retries = budget.take_unsynced(max(3 * self.cache_ttl, 1.0))
            args = (str(calls), str(retries), _lua.number(budget.window))
            try:
                reply = self._budget_script(keys=(key,), args=args)
            except Exception as error:
                where = self._node_of_key(key)
                if _kind_of(error) != _KEY and not where:
                    raise
                # This budget's key alone, or its cluster master: the others go on.
                self._failed(error, node=where)
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
        if self._down_since is None and not self._flag_down(key):
            try:
                raw = self._sync.get(self._flag_key(key))
            except Exception as error:
                self._failed(error, node=self._node_of_key(self._flag_key(key)))
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
        if self._down_since is None and not self._flag_down(key) and self._write_flag(key, value):
            return
        _count_error()
        with self._lock:
            self._pending_flags[key] = value

    def _write_flag(self, key: str, value: str | None) -> bool:
        args = ["" if value is None else value, "0" if value is None else "1", self._channel, key]
        try:
            self._flag_script(keys=(self._flag_key(key),), args=args, client=self._sync)
        except Exception as error:
            self._failed(error, node=self._node_of_key(self._flag_key(key)))
            return False
        return True

    def _flag_down(self, key: str) -> bool:
        """Whether the cluster master serving flag ``key`` is down."""
        return bool(self._nodes_down) and self._node_of_key(self._flag_key(key)) in self._nodes_down

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
        status = "up" if self.reachable else "unreachable"
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


class _Clock:
    """A server's clock as this process sees it.

    ``skew`` is the server's clock minus ``time.monotonic()``, once the server has
    answered, taken from the start of the round trip that read it: never less than the
    true difference, so a deadline is never early and a state is never taken for newer
    than it is; ``skew_low`` is the same from the end of the round trip. ``offset`` is
    the server's clock minus this process's (``clock="redis"``).
    """

    __slots__ = ("offset", "skew", "skew_low")

    def __init__(self) -> None:
        self.offset = 0.0
        self.skew: float | None = None
        self.skew_low: float | None = None


def _to_local(state: BreakerState, config: BreakerConfig | None, clock: _Clock) -> BreakerState:
    """``state`` moved from the clock of the server that wrote it to this process's."""
    off = clock.offset
    if not off:
        return state
    buckets = state.buckets
    if buckets and config is not None and config.window_duration:
        shift = round(off * BUCKETS / config.window_duration)
        buckets = tuple((i - shift, c, f, s) for i, c, f, s in buckets)
    return state._replace(
        opened_at=state.opened_at - off,
        open_until=state.open_until - off if state.open_until else 0.0,  # 0: until reset
        probes=tuple((t, e - off) for t, e in state.probes),
        buckets=buckets,
    )


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _process_id() -> str:
    """Who this process is among the fleet's trip hints: host, pid and a random tag."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _after_fork_in_child() -> None:
    for store in list(_live_stores):
        store._after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
