"""The machinery under ``CircuitBreaker``: binding to a store, admitting and settling calls.

The state lives in a store cell that is read without a lock; the store's lock is taken
only to apply a transition, never around the user's call. This module carries out the
decisions of the pure rules in ``_circuit``; ``_breaker`` adds the public face.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from .._circuit.config import BreakerConfig, check_name
from .._circuit.rules import BreakerMode, BreakerState, Decision, Event, Kind, Verdict
from .._circuit.store import AsyncStateStore, StateCell, StateStore
from .._runtime import config as _config
from .._runtime import listeners as _events
from .._runtime.listeners import Listener
from .._wrapping.hooks import safe_predicate
from ..exceptions import CircuitOpenError, ConfigError
from ..stores.memory import MemoryStore
from . import metrics as _breaker_metrics

if TYPE_CHECKING:
    from .._runtime.events import BreakerEvent

__all__ = [
    "BreakerCore",
    "LastFailure",
    "Permit",
    "Store",
    "default_config",
    "default_store",
    "read_clock",
    "set_default_config",
]

_CLOSED, _OPEN, _HALF_OPEN = BreakerMode.CLOSED, BreakerMode.OPEN, BreakerMode.HALF_OPEN
_FORCED_OPEN, _DISABLED = BreakerMode.FORCED_OPEN, BreakerMode.DISABLED
_SUCCESS, _FAILURE, _RELEASE = Kind.SUCCESS, Kind.FAILURE, Kind.RELEASE
_ACQUIRE = Event(Kind.ACQUIRE)
_hub = _events.hub
_settings = _config.state

# The roles named when a user's predicate raises (log line, note, hook_errors_total tag).
_RECORD, _IGNORE = "record= predicate", "ignore= predicate"
_FAILURE_RESULT = "failure_result= predicate"

_default_store = MemoryStore()


def default_store() -> StateStore:
    """The store breakers use when neither they nor ``configure(store=...)`` name one."""
    configured = _settings.store
    return configured if configured is not None else _default_store  # type: ignore[return-value]


_config.on_reset(_default_store.clear)


def default_config() -> BreakerConfig:
    """The config of breakers that name none: ``configure(breaker_defaults=...)``, else
    ``BreakerConfig.standard``."""
    configured = _settings.breaker_defaults
    return configured if configured is not None else BreakerConfig.standard  # type: ignore[return-value]


def set_default_config(config: BreakerConfig | None) -> None:
    """Make ``config`` (``None``: the standard preset) the config of every breaker that
    names none, those already made included (their state is kept)."""
    with _config.lock:
        _settings.breaker_defaults = config
        chosen = default_config()
        for emitter in _hub.watchers():  # every breaker alive
            if isinstance(emitter, BreakerCore) and emitter._follows:
                emitter._use_config(chosen)


_config.on_reset(lambda: set_default_config(None))
_config.defaults_hooks.append(set_default_config)  # type: ignore[arg-type]

_MESSAGE_LIMIT = 1000
"""The longest error message ``last_failure`` keeps, in characters."""


@dataclass(frozen=True, slots=True)
class LastFailure:
    """The last error a breaker recorded as a failure in this process.

    Only text and a time are kept, never the exception (its traceback would keep every
    frame of the failed call alive); listeners get the exception itself, on
    ``CallRecorded.error``.
    """

    type: str
    """The error's class, qualified by its module unless builtin (``"ConnectionError"``,
    ``"httpx.ConnectTimeout"``)."""
    message: str
    """``str(error)``, cut to 1000 characters."""
    at: float
    """When it was recorded, on the configured clock (``configure(clock=...)``)."""


def _last_failure(error: BaseException, at: float) -> LastFailure:
    cls = type(error)
    module = cls.__module__
    kind = cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"
    try:
        message = str(error)
    except Exception:  # a broken __str__ must not break the call being recorded
        message = f"<{kind} whose str() raised>"
    return LastFailure(kind, message[:_MESSAGE_LIMIT], at)


Store = StateStore | AsyncStateStore
Apply = Callable[[str, Event, float, BreakerConfig], tuple[BreakerState, Decision]]
AsyncApply = Callable[[str, Event, float, BreakerConfig], Awaitable[tuple[BreakerState, Decision]]]
Outcome = Literal["success", "failure", "ignored"]


class Watcher(Protocol):
    """What waits for a breaker's next use (a registry that lets go of idle breakers)."""

    def note_use(self, breaker: Any) -> None: ...


class Permit:
    """One admitted call: its ticket, whether it is a probe, when it started."""

    __slots__ = ("probe", "started", "ticket")

    def __init__(self, ticket: int, probe: bool, started: float | None) -> None:
        self.ticket: int = ticket
        self.probe: bool = probe
        self.started: float | None = started


DISABLED_PERMIT = Permit(-1, False, None)
_UNBOUND = object()


class BreakerCore:
    """A breaker's name, rules and store, and the steps of one guarded call."""

    __slots__ = (
        "__weakref__",
        "_aapply",
        "_apply",
        "_before",
        "_bound",
        "_cell",
        "_follows",
        "_full",
        "_last_failure",
        "_listeners",
        "_loud",
        "_seen",
        "_timed",
        "_watcher",
        "config",
        "name",
        "store",
    )

    def __init__(
        self, name: str, config: BreakerConfig | None = None, *, store: Store | None = None
    ) -> None:
        check_name(name)  # checked at run time too: annotations are not enforced
        follows = config is None
        if config is None:
            config = default_config()
        elif not isinstance(config, BreakerConfig):
            raise ConfigError("config", config, "a BreakerConfig")
        if store is not None and not isinstance(store, StateStore | AsyncStateStore):
            raise ConfigError("store", store, "a StateStore or AsyncStateStore (or None)")
        self.name: str = name
        self.config: BreakerConfig = config
        self.store: Store | None = store
        """The store given explicitly, or ``None`` to follow the configured default."""
        self._listeners: tuple[Listener, ...] = ()
        self._before: tuple[Listener, ...] = ()
        self._last_failure: LastFailure | None = None
        self._full = False
        """Set when a new config needs more than the guards built for the first one
        record (see ``_use_config``): every call then takes the full path."""
        self._watcher: Watcher | None = None
        """Who waits for this breaker's next use (see ``listeners_changed``)."""
        self._seen = 0.0
        """While watched: when the breaker was last known to be used (idle sweeps read it)."""
        self._loud = _hub.active
        """Whether calls must take the full path: someone listens to this breaker (its own
        listeners or global ones), or a watcher waits for its next use."""
        # Durations are measured only when a rule needs them (listeners read them too).
        self._timed = config.slow_call_duration is not None
        self._follows = follows
        """Whether it takes each new ``configure(breaker_defaults=...)``."""
        _hub.watch(self)  # from here on, set_default_config may reach it
        self._bound: object = _UNBOUND
        self._bind(store if store is not None else default_store())
        _breaker_metrics.created(name)
        if follows:
            with _config.lock:
                current = default_config()
                if current is not config:  # the defaults changed while it was being made
                    self._use_config(current)
        if _hub.creation:  # only global listeners can hear of a breaker being made
            from .._runtime.events import BreakerCreated

            _events.dispatch_to(_hub.creation, BreakerCreated(name, self.config))

    # --- the config --------------------------------------------------------------------

    def _use_config(self, config: BreakerConfig) -> None:
        """Judge calls by ``config`` from now on; the stored state is kept.

        One attribute is replaced, so each transition reads the old config or the new
        one, never a mix. Guards built for a config without a window or a result rule
        skip recording plain successes; a config with one sends calls on the full path.
        """
        old = self.config
        self.config = config
        self._timed = config.slow_call_duration is not None
        if (config.windowed or config.failure_result is not None) and not (
            old.windowed or old.failure_result is not None
        ):
            self._full = True
        self.listeners_changed()

    def _stop_following(self) -> None:
        """This breaker has a config of its own now: new defaults leave it alone."""
        self._follows = False

    @property
    def last_failure(self) -> LastFailure | None:
        """The last error recorded as a failure by this breaker object (``None``: none yet).

        Kept in this process only, whatever the store: with a ``RedisStore``, other
        processes sharing the breaker know their own last failure, not this one's.
        """
        return self._last_failure

    # --- the store ---------------------------------------------------------------------

    def _bind(self, store: Any) -> None:
        self._cell: StateCell = store.cell(self.name)
        self._apply: Apply | None
        self._aapply: AsyncApply | None
        if type(store) is MemoryStore:  # the common case, without protocol checks (slow)
            self._apply, self._aapply = store.apply, None
        else:
            self._apply = store.apply if isinstance(store, StateStore) else None
            self._aapply = store.aapply if isinstance(store, AsyncStateStore) else None
        self._bound = _settings.store

    def _follow_default(self) -> None:
        """Rebind when ``configure(store=...)`` changed the default since the last call."""
        if self.store is None and _settings.store is not self._bound:
            self._bind(default_store())

    def _transition(self, event: Event, now: float) -> tuple[BreakerState, Decision]:
        if self._watcher is not None:  # used (an evicted breaker is listed again)
            self._watcher.note_use(self)
        if self._apply is None:
            raise ConfigError(
                "store", self.store, "a StateStore for sync calls (this one is async only)"
            )
        return self._apply(self.name, event, now, self.config)

    async def _atransition(self, event: Event, now: float) -> tuple[BreakerState, Decision]:
        if self._aapply is not None:
            if self._watcher is not None:
                self._watcher.note_use(self)
            return await self._aapply(self.name, event, now, self.config)
        # A sync store never waits on I/O (see StateStore), so the loop is not blocked.
        return self._transition(event, now)

    # --- listeners ---------------------------------------------------------------------

    def add_listener(
        self, listener: Listener, *, serial: bool = False, before_call: bool = False
    ) -> Listener:
        """Call ``listener(event)`` for this breaker's events; returns it (a decorator).

        As with ``resilient.add_listener``: it may run in several threads at once
        (``serial=True`` makes its calls take turns), and ``before_call=True`` also hands
        it a ``CallAdmitted`` event before each call let through.
        """
        registered = _events.checked(listener, serial, before_call)
        self._listeners = (*self._listeners, registered)
        if before_call:
            self._before = (*self._before, registered)
        self.listeners_changed()
        return listener

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling ``listener`` (no error if it was not registered)."""
        self._listeners = _events.without(self._listeners, listener)
        self._before = _events.without(self._before, listener)
        self.listeners_changed()

    def listeners_changed(self) -> None:
        """Recompute whether calls take the full path (the hub and watchers call this too).

        The fast paths read only ``_loud``: a watcher sets ``_watcher`` and calls this, so
        the breaker's next call reaches ``_admit_locally``, which tells the watcher and
        goes quiet again. A quiet breaker's calls cost nothing extra.
        """
        self._loud = bool(self._listeners) or _hub.active or self._watcher is not None or self._full

    def _emit(self, *events: BreakerEvent) -> None:
        _events.dispatch(self._listeners, events)

    def _announce(self, prior: BreakerMode, state: BreakerState, now: float) -> None:
        mode = state.mode
        if mode is prior:
            return
        _breaker_metrics.changed(self.name, prior, mode)
        if not self._loud:
            return
        from .._runtime import events as ev

        name = self.name
        event: BreakerEvent
        if mode is _OPEN:
            event = ev.BreakerOpened(name, state.failures, state.open_until - now, state.trips)
        elif mode is _HALF_OPEN:
            event = ev.BreakerHalfOpened(name)
        elif mode is _CLOSED:
            event = ev.BreakerClosed(name)
        elif mode is _FORCED_OPEN:
            until = state.open_until
            event = ev.BreakerForcedOpen(name, max(0.0, until - now) if until else None)
        else:
            event = ev.BreakerDisabled(name)
        self._emit(event)

    # --- admitting and settling calls ---------------------------------------------------

    def _reject(self, retry_after: float | None) -> CircuitOpenError:
        _breaker_metrics.rejected(self.name)
        if self._loud:
            from .._runtime.events import CallRejected

            self._emit(CallRejected(self.name, retry_after))
        return CircuitOpenError(self.name, retry_after)

    def _admit_locally(self) -> Permit | float:
        """A permit when the state alone decides, else the time to ask the store at."""
        self._follow_default()
        state = self._cell.state
        mode = state.mode
        if mode is _CLOSED:
            if self._loud:
                return self._admit_noted(state)
            return Permit(state.gen, False, read_clock() if self._timed else None)
        watcher = self._watcher
        if watcher is not None:  # its state changed elsewhere (a shared store): listed again
            watcher.note_use(self)
        if mode is _DISABLED:
            if self._loud:
                self._starting(False)
            return DISABLED_PERMIT
        now = read_clock()
        if mode is _FORCED_OPEN:
            until = state.open_until
            if not until:
                raise self._reject(None)
            if now < until:
                raise self._reject(until - now)
        elif mode is _OPEN and now < state.open_until:
            raise self._reject(state.open_until - now)
        return now

    def _admit_noted(self, state: BreakerState) -> Permit:
        """A closed breaker's permit when its calls take the full path: tell a watcher
        of this use first (it quiets the breaker again), time the call if anyone listens."""
        watcher = self._watcher
        if watcher is not None:
            watcher.note_use(self)
        timed = self._timed or self._loud
        permit = Permit(state.gen, False, read_clock() if timed else None)
        self._starting(False)
        return permit

    def _starting(self, probe: bool) -> None:
        """Tell listeners an admitted call is about to run (only called when loud)."""
        if self._before or _hub.before:
            from .._runtime.events import CallAdmitted

            _events.dispatch_before(self._before, CallAdmitted(self.name, probe))

    def _admit_closed(self, state: BreakerState) -> Permit:
        """The permit the hot path had, built only when it has something to report."""
        return Permit(state.gen, False, None)

    def _admitted(self, state: BreakerState, decision: Decision, now: float) -> Permit:
        self._announce(decision.prior, state, now)
        verdict = decision.verdict
        if verdict is Verdict.REJECT:
            raise self._reject(decision.retry_after)
        probe = verdict is Verdict.PROBE
        if self._loud:
            self._starting(probe)
        return Permit(decision.ticket, probe, now)

    def _admit(self) -> Permit:
        permit = self._admit_locally()
        if isinstance(permit, Permit):
            return permit
        return self._admitted(*self._transition(_ACQUIRE, permit), permit)

    async def _aadmit(self) -> Permit:
        permit = self._admit_locally()
        if isinstance(permit, Permit):
            return permit
        return self._admitted(*await self._atransition(_ACQUIRE, permit), permit)

    def _classify_error(self, error: Exception) -> tuple[Kind, Outcome]:
        """How ``error`` counts; a ``record=``/``ignore=`` predicate that raises is reported
        (note on ``error``, log line, ``hook_errors_total``) and judged as documented on
        ``BreakerConfig``: not ignored, and recorded as a failure."""
        config, name = self.config, self.name
        if safe_predicate(config.is_ignored, error, _IGNORE, name, default=False, error=error):
            return _RELEASE, "ignored"
        if safe_predicate(config.is_failure, error, _RECORD, name, default=True, error=error):
            self._last_failure = _last_failure(error, read_clock())
            return _FAILURE, "failure"
        return _SUCCESS, "success"

    def _classify_result(self, result: object) -> tuple[Kind, Outcome]:
        check = self.config.failure_result
        if check is not None and self._failed_result(check, result):
            return _FAILURE, "failure"
        return _SUCCESS, "success"

    def _failed_result(self, check: Callable[[Any], bool], result: object) -> bool:
        """Whether ``check`` (``failure_result``) says ``result`` is a failure; when it
        raises, reported as a hook failure and taken as no."""
        return safe_predicate(check, result, _FAILURE_RESULT, self.name, default=False)

    def _settle(
        self, permit: Permit, kind: Kind, outcome: Outcome, error: BaseException | None = None
    ) -> tuple[Event, float] | None:
        """The event the store must apply and the time, or ``None`` when nothing changes."""
        if permit is DISABLED_PERMIT:
            return None
        loud = self._loud
        if not permit.probe and (kind is _RELEASE or not self.config.windowed):
            # Closed-mode call: only a failure, or a success after failures, changes state.
            state = self._cell.state
            unchanged = kind is _RELEASE or (
                kind is _SUCCESS and (state.failures == 0 or state.gen != permit.ticket)
            )
            if unchanged:
                if loud:
                    self._recorded(permit, outcome, read_clock(), error)
                return None
        now = read_clock()
        if loud:
            self._recorded(permit, outcome, now, error)
        started = permit.started
        return Event(kind, permit.ticket, now - started if started is not None else 0.0), now

    def _record(self, ticket: int, result: object, started: float) -> None:
        """Record a windowed closed-mode call that returned ``result``."""
        check = self.config.failure_result
        kind = _FAILURE if check is not None and self._failed_result(check, result) else _SUCCESS
        at = read_clock()
        state, decision = self._transition(Event(kind, ticket, at - started), at)
        if decision.prior is not state.mode:
            self._announce(decision.prior, state, at)

    async def _arecord(self, ticket: int, result: object, started: float) -> None:
        check = self.config.failure_result
        kind = _FAILURE if check is not None and self._failed_result(check, result) else _SUCCESS
        at = read_clock()
        state, decision = await self._atransition(Event(kind, ticket, at - started), at)
        if decision.prior is not state.mode:
            self._announce(decision.prior, state, at)

    def _recorded(
        self, permit: Permit, outcome: Outcome, now: float, error: BaseException | None
    ) -> None:
        if not self._listeners and not _hub.active:
            return  # loud for a watcher or a new config only
        started = permit.started
        duration = now - started if started is not None else 0.0
        from .._runtime.events import CallRecorded

        self._emit(CallRecorded(self.name, outcome, duration, permit.probe, error))

    def _report(
        self, permit: Permit, kind: Kind, outcome: Outcome, error: BaseException | None = None
    ) -> float | None:
        """Settle ``permit``; when this report tripped the breaker, the seconds until it
        probes again (else ``None``)."""
        settled = self._settle(permit, kind, outcome, error)
        if settled is None:
            return None
        event, now = settled
        state, decision = self._transition(event, now)
        self._announce(decision.prior, state, now)
        return _tripped(decision.prior, state, now)

    async def _areport(
        self, permit: Permit, kind: Kind, outcome: Outcome, error: BaseException | None = None
    ) -> float | None:
        settled = self._settle(permit, kind, outcome, error)
        if settled is None:
            return None
        event, now = settled
        state, decision = await self._atransition(event, now)
        self._announce(decision.prior, state, now)
        return _tripped(decision.prior, state, now)

    def _fail(self, permit: Permit, error: Exception) -> CircuitOpenError | None:
        """Settle a call that raised ``error``; the ``CircuitOpenError`` to raise instead
        when it tripped the breaker and ``error_on_trip="open"``."""
        kind, outcome = self._classify_error(error)
        left = self._report(permit, kind, outcome, error)
        if left is None or self.config.error_on_trip != "open":
            return None
        return CircuitOpenError(self.name, left)

    async def _afail(self, permit: Permit, error: Exception) -> CircuitOpenError | None:
        kind, outcome = self._classify_error(error)
        left = await self._areport(permit, kind, outcome, error)
        if left is None or self.config.error_on_trip != "open":
            return None
        return CircuitOpenError(self.name, left)

    def _release(self, permit: Permit) -> None:
        """A cancellation or exit went through: free a probe's permit, count nothing."""
        self._report(permit, _RELEASE, "ignored")


def _tripped(prior: BreakerMode, state: BreakerState, now: float) -> float | None:
    """Seconds until the next probe when a report moved the breaker to open, else None."""
    if state.mode is _OPEN and prior is not _OPEN:
        return max(0.0, state.open_until - now)
    return None


def read_clock() -> float:
    """The configured clock's time (``configure`` keeps ``now`` bound to it)."""
    return _settings.now()
