"""A breaker as one process knows it (its cell), and the keys it lives under."""

from __future__ import annotations

import functools
import threading
from typing import TYPE_CHECKING

from ..._circuit.rules import (
    INITIAL,
    BreakerMode,
    BreakerState,
    Decision,
    Event,
    Kind,
    Verdict,
    transition,
)
from .. import _lua

if TYPE_CHECKING:
    from ..._circuit.config import BreakerConfig


_CLOSED, _OPEN = BreakerMode.CLOSED, BreakerMode.OPEN


_WAITING = frozenset((BreakerMode.OPEN, BreakerMode.HALF_OPEN))


_REJECT = Verdict.REJECT


_ACQUIRE = Kind.ACQUIRE


_CALLS = frozenset((Kind.ACQUIRE, Kind.SUCCESS, Kind.FAILURE, Kind.RELEASE))


# With trip="local", this process's own states count from here: their tickets never
# equal a shared state's (which count up from 0), so a report is never applied to the
# wrong one.
_OWN = BreakerState(gen=-(1 << 50))


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
    was used through the store since the listener's last periodic re-read; ``slot`` is
    its keys' Redis Cluster slot (``-1`` until a cluster store needs it).
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
        "slot",
        "state",
        "version",
    )

    def __init__(self, name: str, own: BreakerState | None) -> None:
        self.name: str = name
        self.shared: BreakerState = INITIAL
        self.own = own
        self.state: BreakerState = INITIAL if own is None else own
        self.version: int = -1
        self.lock: threading.Lock = threading.Lock()
        self.config: BreakerConfig | None = None
        self.local_at: float | None = None
        self.broken: str | None = None
        self.keyless: bool = False
        self.inflight: int = 0
        self.recent: bool = True  # used through the store since the listener last re-read it
        self.slot: int = -1  # its keys' Redis Cluster slot, once a cluster store asked for it

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


def _kept_by_redis(state: BreakerState, now: float) -> bool:
    """Whether Redis must still hold ``state`` at ``now`` (this process's time): open
    and not yet due to reopen, forced open (until then, or until reset) or disabled. Its
    key lives at least that long, so finding no key then means Redis lost it."""
    mode = state.mode
    if mode is BreakerMode.DISABLED:
        return True
    if mode is BreakerMode.FORCED_OPEN:
        return not state.open_until or now < state.open_until
    return mode is _OPEN and now < state.open_until


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
