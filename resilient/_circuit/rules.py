"""The circuit breaker's rules as one pure function: ``transition(state, event, now, rules)``.

Nothing here reads a clock, takes a lock or does I/O. A store applies ``transition``
atomically (``MemoryStore`` under a lock; a Redis store will run the same rules in one
server-side script), and the property tests drive it directly. The state holds only plain
numbers, strings and tuples of them, so ``to_dict``/``from_dict`` map it onto a hash.

Every admitted call carries a *ticket*. A report whose ticket no longer matches (the
breaker changed mode, or a probe's lease ran out, since the call was admitted) is stale
and changes nothing: a late failure from before a trip can never reopen a breaker that
has since recovered, and an expired probe cannot close one.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from .config import BreakerConfig

__all__ = [
    "BUCKETS",
    "BreakerMode",
    "BreakerState",
    "Decision",
    "Event",
    "Kind",
    "Verdict",
    "is_idle",
    "transition",
    "window_counts",
]

BUCKETS = 10
"""A time window of ``window_duration`` seconds is kept as this many buckets."""


class BreakerMode(StrEnum):
    """Where a breaker stands."""

    CLOSED = "closed"
    """Calls go through; failures are counted."""
    OPEN = "open"
    """Calls are rejected until ``reset_timeout`` has passed."""
    HALF_OPEN = "half_open"
    """A few probe calls go through to test whether the service has recovered."""
    FORCED_OPEN = "forced_open"
    """Opened by hand: calls are rejected until ``reset()``, or until ``open_until`` when
    it was forced open for a while (then the next call probes, as after a trip)."""
    DISABLED = "disabled"
    """Switched off by hand: calls go through and nothing is counted until ``reset()``."""


class Kind(StrEnum):
    """What happened to a breaker."""

    ACQUIRE = "acquire"
    """A call asks to go through."""
    SUCCESS = "success"
    """An admitted call succeeded (or raised an error that is not recorded as a failure)."""
    FAILURE = "failure"
    """An admitted call failed."""
    RELEASE = "release"
    """An admitted call ended without an outcome (ignored error, cancellation)."""
    FORCE_OPEN = "force_open"
    """Open by hand: for ``duration`` seconds, or until reset when ``duration`` is 0."""
    HALF_OPEN = "half_open"
    """Half-open by hand: the next calls are probes."""
    RESET = "reset"
    DISABLE = "disable"


class Verdict(StrEnum):
    """The answer to an event."""

    ALLOW = "allow"
    """Go ahead (closed or disabled)."""
    PROBE = "probe"
    """Go ahead as a half-open probe; report back with the ticket."""
    REJECT = "reject"
    """Do not call; ``retry_after`` says when to ask again."""
    DONE = "done"
    """A report or a manual operation was applied."""


class Event(NamedTuple):
    """One input to ``transition``."""

    kind: Kind
    ticket: int = 0
    """The ticket of the call reporting (from its ``Decision``)."""
    duration: float = 0.0
    """How long the reported call took, in seconds (for slow-call detection); for
    ``FORCE_OPEN``, how long to stay open (0: until reset)."""


class Decision(NamedTuple):
    """The output of ``transition`` beside the new state."""

    verdict: Verdict
    ticket: int = 0
    retry_after: float | None = None
    """For ``REJECT``: seconds until a probe may go through (``None``: until reset)."""
    prior: BreakerMode = BreakerMode.CLOSED
    """The mode before the event, so the caller can announce a change."""


class BreakerState(NamedTuple):
    """A breaker's whole state: small, immutable, plain data."""

    mode: BreakerMode = BreakerMode.CLOSED
    gen: int = 0
    """Bumped on every mode change and every probe admitted; tickets are drawn from it."""
    failures: int = 0
    """Consecutive failures (kept while open, for display); reset by a success or a close."""
    successes: int = 0
    """Probe successes in the current half-open period."""
    opened_at: float = 0.0
    open_until: float = 0.0
    """When an ``OPEN`` breaker admits its first probe; for ``FORCED_OPEN``, when the
    forced period ends (0: at reset only)."""
    trips: int = 0
    """Consecutive trips without a close in between (drives ``reset_backoff``)."""
    probes: tuple[tuple[int, float], ...] = ()
    """Probes in flight: ``(ticket, lease expiry)``."""
    window: str = ""
    """Count window, oldest first: ``s`` success, ``f`` failure, upper case when slow."""
    buckets: tuple[tuple[int, int, int, int], ...] = ()
    """Time window: ``(bucket index, calls, failures, slow calls)``, oldest first."""

    def to_dict(self) -> dict[str, object]:
        """Plain data (strings, numbers, lists) for a store that serializes state."""
        data = self._asdict()
        data["mode"] = str(self.mode)
        data["probes"] = [list(p) for p in self.probes]
        data["buckets"] = [list(b) for b in self.buckets]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> BreakerState:
        """The inverse of ``to_dict``."""
        probes: list[list[float]] = data.get("probes", [])  # type: ignore[assignment]
        buckets: list[list[int]] = data.get("buckets", [])  # type: ignore[assignment]
        return cls(
            mode=BreakerMode(str(data.get("mode", "closed"))),
            gen=int(data.get("gen", 0)),  # type: ignore[call-overload]
            failures=int(data.get("failures", 0)),  # type: ignore[call-overload]
            successes=int(data.get("successes", 0)),  # type: ignore[call-overload]
            opened_at=float(data.get("opened_at", 0.0)),  # type: ignore[arg-type]
            open_until=float(data.get("open_until", 0.0)),  # type: ignore[arg-type]
            trips=int(data.get("trips", 0)),  # type: ignore[call-overload]
            probes=tuple((int(t), float(e)) for t, e in probes),
            window=str(data.get("window", "")),
            buckets=tuple((int(i), int(c), int(f), int(s)) for i, c, f, s in buckets),
        )


INITIAL = BreakerState()

_CLOSED, _OPEN, _HALF_OPEN = BreakerMode.CLOSED, BreakerMode.OPEN, BreakerMode.HALF_OPEN
_FORCED_OPEN, _DISABLED = BreakerMode.FORCED_OPEN, BreakerMode.DISABLED
_ACQUIRE, _SUCCESS, _FAILURE, _RELEASE = Kind.ACQUIRE, Kind.SUCCESS, Kind.FAILURE, Kind.RELEASE
_DONE = Verdict.DONE
# Reports and manual operations always answer DONE: one shared answer per prior mode.
_DONE_FROM = {mode: Decision(_DONE, prior=mode) for mode in BreakerMode}


def transition(
    state: BreakerState, event: Event, now: float, rules: BreakerConfig
) -> tuple[BreakerState, Decision]:
    """Apply ``event`` at time ``now`` under ``rules``; return the new state and the answer.

    Only the numeric fields of ``rules`` are read, so a store running these rules
    elsewhere needs nothing but numbers.
    """
    kind, mode = event.kind, state.mode
    if kind is _ACQUIRE:
        return _acquire(state, now, rules)
    if kind is _SUCCESS or kind is _FAILURE or kind is _RELEASE:
        if mode is _CLOSED:
            if kind is _RELEASE or event.ticket != state.gen:
                return state, _DONE_FROM[mode]
            return _record(state, kind is _FAILURE, event.duration, now, rules)
        if mode is _HALF_OPEN:
            return _settle_probe(state, event, now, rules)
        return state, _DONE_FROM[mode]  # stale: admitted before a trip or a reset
    if kind is Kind.RESET:
        return BreakerState(gen=state.gen + 1), _DONE_FROM[mode]
    if kind is Kind.FORCE_OPEN:
        until = now + event.duration if event.duration > 0.0 else 0.0
        forced = BreakerState(
            _FORCED_OPEN, state.gen + 1, state.failures, opened_at=now, open_until=until
        )
        return forced, _DONE_FROM[mode]
    if kind is Kind.HALF_OPEN:
        probing = BreakerState(
            _HALF_OPEN, state.gen + 1, state.failures, 0, state.opened_at, now, state.trips
        )
        return probing, _DONE_FROM[mode]
    if kind is Kind.DISABLE:
        return BreakerState(_DISABLED, state.gen + 1), _DONE_FROM[mode]
    raise ValueError(f"unknown breaker event {event!r}")


def _acquire(
    state: BreakerState, now: float, rules: BreakerConfig
) -> tuple[BreakerState, Decision]:
    mode = state.mode
    if mode is _CLOSED or mode is _DISABLED:
        return state, Decision(Verdict.ALLOW, state.gen, prior=mode)
    if mode is _FORCED_OPEN and not state.open_until:
        return state, Decision(Verdict.REJECT, prior=mode)
    if mode is _OPEN or mode is _FORCED_OPEN:
        if now < state.open_until:
            return state, Decision(Verdict.REJECT, retry_after=state.open_until - now, prior=mode)
        # The reset timeout (or the forced period) has passed: half-open, and this call
        # is the first probe.
        state = state._replace(mode=_HALF_OPEN, gen=state.gen + 1, successes=0, probes=())
    probes = tuple(p for p in state.probes if p[1] > now)  # leases that ran out free permits
    if len(probes) >= rules.half_open_max_calls:
        wait = min(p[1] for p in probes) - now
        return state._replace(probes=probes), Decision(Verdict.REJECT, retry_after=wait, prior=mode)
    ticket = state.gen + 1
    probes = (*probes, (ticket, now + rules.probe_timeout))
    return state._replace(gen=ticket, probes=probes), Decision(Verdict.PROBE, ticket, prior=mode)


def _settle_probe(
    state: BreakerState, event: Event, now: float, rules: BreakerConfig
) -> tuple[BreakerState, Decision]:
    ticket = event.ticket
    prior = state.mode
    leased = [p for p in state.probes if p[0] == ticket and p[1] > now]
    if not leased:
        return state, _DONE_FROM[prior]  # stale: lease expired or another period
    probes = tuple(p for p in state.probes if p[0] != ticket)
    kind = event.kind
    slow = rules.slow_call_duration is not None and event.duration >= rules.slow_call_duration
    if kind is _FAILURE or (kind is _SUCCESS and slow):
        return _open(state._replace(failures=state.failures + 1), now, rules), _DONE_FROM[prior]
    if kind is _RELEASE:
        return state._replace(probes=probes), _DONE_FROM[prior]
    successes = state.successes + 1
    if successes >= rules.success_threshold:
        return BreakerState(gen=state.gen + 1), _DONE_FROM[prior]
    return state._replace(successes=successes, probes=probes), _DONE_FROM[prior]


def _record(
    state: BreakerState, failed: bool, duration: float, now: float, rules: BreakerConfig
) -> tuple[BreakerState, Decision]:
    """Count one outcome of a closed-mode call, and trip if a rule says so."""
    failures = state.failures + 1 if failed else 0
    window, buckets = state.window, state.buckets
    trip = rules.failure_rate is None and failures >= rules.failure_threshold
    if rules.windowed:
        slow_after = rules.slow_call_duration
        slow = slow_after is not None and duration >= slow_after
        if rules.window_duration is None:
            mark = ("F" if slow else "f") if failed else ("S" if slow else "s")
            size = rules.window_size or 1  # always set for a count window
            window = (window + mark)[-size:]
        else:
            buckets = _add_to_buckets(buckets, now, rules.window_duration, failed, slow)
        if not trip:
            trip = _rate_trips(window, buckets, now, rules)
    state = BreakerState(
        _CLOSED,
        state.gen,
        failures,
        0,
        state.opened_at,
        state.open_until,
        state.trips,
        (),
        window,
        buckets,
    )
    if trip:
        state = _open(state, now, rules)
    return state, _DONE_FROM[_CLOSED]


def _open(state: BreakerState, now: float, rules: BreakerConfig) -> BreakerState:
    trips = state.trips + 1
    wait = rules.reset_timeout
    if rules.reset_backoff != 1.0 and trips > 1:
        try:
            wait *= rules.reset_backoff ** (trips - 1)
        except OverflowError:
            wait = float("inf")
    cap = rules.max_reset_timeout
    if cap is not None and wait > cap:
        wait = cap
    return BreakerState(_OPEN, state.gen + 1, state.failures, 0, now, now + wait, trips)


def _add_to_buckets(
    buckets: tuple[tuple[int, int, int, int], ...],
    now: float,
    window: float,
    failed: bool,
    slow: bool,
) -> tuple[tuple[int, int, int, int], ...]:
    index = int(now * BUCKETS // window)
    kept = [b for b in buckets if b[0] > index - BUCKETS]
    add_f, add_s = int(failed), int(slow)
    if kept and kept[-1][0] == index:
        _, calls, fails, slows = kept[-1]
        kept[-1] = (index, calls + 1, fails + add_f, slows + add_s)
    else:
        kept.append((index, 1, add_f, add_s))
    return tuple(kept)


def is_idle(state: BreakerState) -> bool:
    """Whether ``state`` holds nothing a fresh state would not: closed, no consecutive
    failure, no probe, and no failure or slow call in its window (successes may be)."""
    if state.mode is not _CLOSED or state.failures or state.probes:
        return False
    window = state.window
    if window and ("f" in window or "F" in window or "S" in window):
        return False
    return all(not fails and not slows for _, _, fails, slows in state.buckets)


def window_counts(state: BreakerState, now: float, rules: BreakerConfig) -> tuple[int, int, int]:
    """``(calls, failures, slow calls)`` in the window as of ``now``."""
    return _counts(state.window, state.buckets, now, rules)


def _counts(
    window: str,
    buckets: tuple[tuple[int, int, int, int], ...],
    now: float,
    rules: BreakerConfig,
) -> tuple[int, int, int]:
    if rules.window_duration is None:
        return (
            len(window),
            window.count("f") + window.count("F"),
            window.count("S") + window.count("F"),
        )
    oldest = int(now * BUCKETS // rules.window_duration) - BUCKETS
    calls = fails = slows = 0
    for index, c, f, s in buckets:
        if index > oldest:
            calls += c
            fails += f
            slows += s
    return calls, fails, slows


def _rate_trips(
    window: str,
    buckets: tuple[tuple[int, int, int, int], ...],
    now: float,
    rules: BreakerConfig,
) -> bool:
    calls, fails, slows = _counts(window, buckets, now, rules)
    if calls < rules.minimum_calls:
        return False
    # Divide rather than multiply the rate: 8000 / 80000 == 0.1 exactly, 0.1 * 80000 may not.
    rate = rules.failure_rate
    if rate is not None and fails / calls >= rate:
        return True
    slow_rate = rules.slow_call_rate
    return slow_rate is not None and slows / calls >= slow_rate
