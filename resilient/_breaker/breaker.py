"""``CircuitBreaker``: stop calling a failing service for a while, then probe it.

The common path, a closed breaker with no failures behind it, reads one state
reference, calls the function and returns: no lock, no clock, no event. An open breaker
rejects with one clock read. The steps live in ``core``; this is the public face, with
the step ``@breaker`` adds to a stack (``guard_sync``/``guard_async``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from datetime import timedelta
from inspect import CO_ASYNC_GENERATOR, CO_COROUTINE, CO_GENERATOR
from types import AsyncGeneratorType, CodeType, CoroutineType, GeneratorType, TracebackType
from typing import Any, Literal, ParamSpec, TypeVar, overload

from .._circuit.config import BreakerConfig
from .._circuit.rules import BreakerMode, BreakerState, Event, Kind, window_counts
from .._runtime import config as _config
from .._runtime import validate as _validate
from .._wrapping.layer import (
    AnyCall,
    AsyncCall,
    AsyncStreamCall,
    Layer,
    StreamCall,
    apply,
    code_flags,
    name_of,
    refuse_generator,
)
from ..exceptions import CircuitOpenError, ConfigError
from .core import BreakerCore, Permit, Store, default_store, read_clock
from .metrics import rejected
from .stream import guard_stream_async, guard_stream_sync

__all__ = ["BreakerLayer", "CircuitBreaker", "Store", "default_store"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

_CLOSED, _OPEN, _HALF_OPEN = BreakerMode.CLOSED, BreakerMode.OPEN, BreakerMode.HALF_OPEN
_FORCED_OPEN = BreakerMode.FORCED_OPEN
_SUCCESS, _RELEASE = Kind.SUCCESS, Kind.RELEASE
_ACQUIRE = Event(Kind.ACQUIRE)
_GENERATORS = CO_GENERATOR | CO_ASYNC_GENERATOR
_NOT_SYNC = _GENERATORS | CO_COROUTINE  # code flags of functions ``call`` cannot guard
# What a callable without its own code (a builtin, a partial, a callable object) may
# return that ``call`` cannot guard: its work would run after ``call`` returned.
_UNGUARDED = (GeneratorType, CoroutineType, AsyncGeneratorType)
_ITERATORS = (GeneratorType, AsyncGeneratorType)  # what ``acall`` cannot guard
_REFUSED: Any = object()

_held: ContextVar[tuple[tuple[CircuitBreaker, Permit], ...]] = ContextVar(
    "resilient_breaker_permits", default=()
)


class CircuitBreaker(BreakerCore):
    """Stops calling a failing service for a while, then probes it before trusting it again.

    The state is kept in ``store`` under ``name`` (default: ``configure(store=...)``, else
    a process-wide ``MemoryStore``), so breakers sharing a name and a store share a
    state. ``resilient.breaker`` and ``CircuitBreakerRegistry`` hand out one breaker per
    name; constructing one directly does not register it.

    ``critical=True`` marks a breaker the service cannot do without: while it is open,
    the health endpoint reports the process not ready (see ``resilient.asgi.HealthApp``).
    The health endpoint reads registered breakers only (``resilient.breaker``,
    ``get_breaker``): on a breaker constructed directly the mark has no reader. It changes
    nothing about how calls are guarded.
    """

    __slots__ = ("critical",)

    def __init__(
        self,
        name: str,
        config: BreakerConfig | None = None,
        *,
        store: Store | None = None,
        critical: bool = False,
    ) -> None:
        flag: object = critical  # checked at run time: annotations are not enforced
        if not isinstance(flag, bool):
            raise ConfigError("critical", critical, "True or False")
        super().__init__(name, config, store=store)
        self.critical: bool = critical
        """Whether readiness fails while this breaker is open (read by the health app)."""

    # --- state -------------------------------------------------------------------------

    def snapshot(self) -> BreakerState:
        """The stored state as it is now (plain data)."""
        self._follow_default()
        return self._cell.state

    @property
    def mode(self) -> BreakerMode:
        """The mode a call would meet now (``HALF_OPEN`` once an open breaker's time is up).

        ``snapshot()`` gives the whole stored ``BreakerState`` (its ``mode`` stays ``OPEN``
        until a call or a probe moves it)."""
        state = self.snapshot()
        mode = state.mode
        if (mode is _OPEN or (mode is _FORCED_OPEN and state.open_until)) and (
            read_clock() >= state.open_until
        ):
            return _HALF_OPEN
        return mode

    @property
    def state(self) -> BreakerMode:
        """Deprecated: the ``BreakerMode`` is ``mode``, the whole state ``snapshot()``."""
        import warnings

        warnings.warn(
            "CircuitBreaker.state is deprecated: use .mode for the BreakerMode "
            "(.snapshot() for the whole BreakerState)",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.mode

    @property
    def opened(self) -> bool:
        """Whether calls are being rejected now (open or forced open)."""
        return self.mode in (_OPEN, _FORCED_OPEN)

    @property
    def retry_after(self) -> float | None:
        """Seconds until the next probe may go through: 0 unless open, ``None`` if forced
        open until reset."""
        state = self.snapshot()
        if state.mode is _FORCED_OPEN and not state.open_until:
            return None
        if state.mode is _OPEN or state.mode is _FORCED_OPEN:
            return max(0.0, state.open_until - read_clock())
        return 0.0

    @property
    def failures(self) -> int:
        """Consecutive failures recorded (kept while open)."""
        return self.snapshot().failures

    def window(self) -> tuple[int, int, int]:
        """``(calls, failures, slow calls)`` in the rate window (zeros without one)."""
        return window_counts(self.snapshot(), read_clock(), self.config)

    # --- manual operations -------------------------------------------------------------

    def force_open(self, *, for_: float | timedelta | None = None) -> None:
        """Reject every call until ``reset()``, or for ``for_`` seconds only: then the
        forced period ends by itself as an open period does (the next call is a probe)."""
        seconds = _validate.duration("for_", for_, allow_zero=False, allow_none=True)
        self._manual(Kind.FORCE_OPEN, seconds or 0.0)

    def half_open(self) -> None:
        """Let probe calls through now (up to ``half_open_max_calls`` at once): their
        outcomes close the breaker or open it again, as after a reset timeout."""
        self._manual(Kind.HALF_OPEN)

    def reconfigure(self, config: BreakerConfig | None = None, **changes: Any) -> BreakerConfig:
        """Judge calls by new rules from now on, keeping the state; returns the config.

        ``changes`` are ``BreakerConfig`` parameters (``failure_threshold=10``), applied to
        ``config`` if given, else to the current config, and validated as at construction
        (``ConfigError`` names the parameter; nothing changes then). Every transition reads
        one config, old or new, in every store: the config travels with each transition
        (to a Redis script, as its arguments). Other processes sharing the breaker through
        a store keep their own config. A breaker given a config no longer follows
        ``configure(breaker_defaults=...)``, and claiming its name with the old config
        (``@breaker(name, old)``) raises ``ConfigError``, as for any other config.
        """
        base = self.config if config is None else config
        if not isinstance(base, BreakerConfig):
            raise ConfigError("config", config, "a BreakerConfig or None")
        new = base.replace(**changes) if changes else base
        self._stop_following()
        self._use_config(new)
        return new

    def reset(self) -> None:
        """Close the breaker and forget its counts (also ends ``force_open``/``disable``)."""
        self._manual(Kind.RESET)

    def disable(self) -> None:
        """Let every call through and count nothing until ``reset()``."""
        self._manual(Kind.DISABLE)

    def _manual(self, kind: Kind, duration: float = 0.0) -> None:
        self._follow_default()
        now = read_clock()
        state, decision = self._transition(Event(kind, duration=duration), now)
        self._announce(decision.prior, state, now)

    # --- running calls -----------------------------------------------------------------

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call ``fn(*args, **kwargs)`` through the breaker.

        A generator function, an async generator function or a coroutine function is
        refused with ``TypeError`` and nothing is counted: their work would run after
        ``call`` returned, unguarded (await a coroutine function with ``acall``). A plain
        function is checked by its code flags before the call; any other callable (a
        builtin, a partial, a callable object) by what it returns: a generator, coroutine
        or async generator is closed, the permit is withdrawn, and ``TypeError`` follows.
        """
        code = getattr(fn, "__code__", None)
        plain = type(code) is CodeType
        if plain and code.co_flags & _NOT_SYNC:  # type: ignore[union-attr]
            _refuse_in_call(fn)
        try:
            permit = self._admit_locally()
        except CircuitOpenError:
            if not plain:  # say what is wrong rather than that the breaker is open
                _refuse_in_call(fn)
            raise
        if not isinstance(permit, Permit):
            if not plain:  # refuse before a probe is taken or a transition announced
                _refuse_in_call(fn)
            permit = self._admitted(*self._transition(_ACQUIRE, permit), permit)
        try:
            result = fn(*args, **kwargs)
        except Exception as error:
            tripped = self._fail(permit, error)
            if tripped is not None:
                raise tripped from error
            raise
        except BaseException:
            self._release(permit)
            raise
        if not plain and isinstance(result, _UNGUARDED):
            self.withdraw(permit)
            _refuse_result(fn, result, "call")
        self._report(permit, *self._classify_result(result))
        return result

    async def acall(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Await ``fn(*args, **kwargs)`` through the breaker.

        A generator or async generator function is refused with ``TypeError`` and nothing
        is counted: its work would run after ``acall`` returned, unguarded. As in ``call``,
        a plain function is checked by its code flags, any other callable by what it
        returns (before it is awaited).
        """
        code = getattr(fn, "__code__", None)
        plain = type(code) is CodeType
        if plain and code.co_flags & _GENERATORS:  # type: ignore[union-attr]
            refuse_generator(fn, "CircuitBreaker.acall() cannot guard", "pass")
        try:
            permit = self._admit_locally()
        except CircuitOpenError:
            if not plain:
                _refuse_in_acall(fn)
            raise
        if not isinstance(permit, Permit):
            if not plain:  # refuse before a probe is taken or a transition announced
                _refuse_in_acall(fn)
            permit = self._admitted(*await self._atransition(_ACQUIRE, permit), permit)
        try:
            pending: object = fn(*args, **kwargs)  # typed loosely: callers break the annotation
            if not plain and isinstance(pending, _ITERATORS):
                result: Any = _REFUSED
            else:
                result = await pending  # type: ignore[misc]
        except Exception as error:
            tripped = await self._afail(permit, error)
            if tripped is not None:
                raise tripped from error
            raise
        except BaseException:
            await self._areport(permit, _RELEASE, "ignored")
            raise
        if result is _REFUSED:
            await self.awithdraw(permit)
            _refuse_result(fn, pending, "acall")
        await self._areport(permit, *self._classify_result(result))
        return result  # type: ignore[no-any-return]

    # --- one call in explicit steps -------------------------------------------------------

    def admit(self) -> Permit:
        """Take a permit for one call, as ``call`` does, or raise ``CircuitOpenError``.

        For callers that must decide after the call how it counts (``resilient.http``
        does). Settle each permit exactly once: ``record`` (the call ran) or ``withdraw``
        (it never reached the service).
        """
        return self._admit()

    async def aadmit(self) -> Permit:
        """``admit`` for async code (an ``AsyncStateStore`` is awaited)."""
        return await self._aadmit()

    def record(
        self, permit: Permit, error: BaseException | None = None, result: object = None
    ) -> None:
        """Settle ``permit`` as ``call`` settles a call that returned ``result`` (``error``
        is ``None``) or raised ``error``: an ``Exception`` is judged by ``record=`` and
        ``ignore=``, anything else (a cancellation) only frees the permit."""
        if error is None:
            self._report(permit, *self._classify_result(result))
        elif isinstance(error, Exception):
            self._report(permit, *self._classify_error(error), error)
        else:
            self._release(permit)

    async def arecord(
        self, permit: Permit, error: BaseException | None = None, result: object = None
    ) -> None:
        """``record`` for async code (an ``AsyncStateStore`` is awaited)."""
        if error is None:
            await self._areport(permit, *self._classify_result(result))
        elif isinstance(error, Exception):
            await self._areport(permit, *self._classify_error(error), error)
        else:
            await self._areport(permit, _RELEASE, "ignored")

    def withdraw(self, permit: Permit) -> None:
        """Give ``permit`` back uncounted: the call never reached the service.

        For an error of the caller's own making, raised before anything was sent (an
        invalid header, a failing auth hook). Nothing is recorded and no event is
        emitted (a cancellation, by contrast, emits ``CallRecorded(outcome="ignored")``);
        a half-open probe's slot is freed, so the next call probes instead.
        """
        if permit.probe:
            now = read_clock()
            state, decision = self._transition(Event(_RELEASE, permit.ticket, 0.0), now)
            self._announce(decision.prior, state, now)

    async def awithdraw(self, permit: Permit) -> None:
        """``withdraw`` for async code (an ``AsyncStateStore`` is awaited)."""
        if permit.probe:
            now = read_clock()
            state, decision = await self._atransition(Event(_RELEASE, permit.ticket, 0.0), now)
            self._announce(decision.prior, state, now)

    # --- as a context manager -------------------------------------------------------------

    def __enter__(self) -> CircuitBreaker:
        _held.set((*_held.get(), (self, self._admit())))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        self._settle_exit(_pop_permit(self), exc)
        return False

    def _settle_exit(self, permit: Permit, exc: BaseException | None) -> None:
        if exc is None:
            self._report(permit, _SUCCESS, "success")
        elif isinstance(exc, Exception):
            tripped = self._fail(permit, exc)
            if tripped is not None:
                raise tripped from exc
        else:
            self._release(permit)

    async def __aenter__(self) -> CircuitBreaker:
        _held.set((*_held.get(), (self, await self._aadmit())))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        permit = _pop_permit(self)
        if exc is None:
            await self._areport(permit, _SUCCESS, "success")
        elif isinstance(exc, Exception):
            tripped = await self._afail(permit, exc)
            if tripped is not None:
                raise tripped from exc
        else:
            await self._areport(permit, _RELEASE, "ignored")
        return False

    @overload
    def __call__(self, fn: classmethod[T, P, R]) -> classmethod[T, P, R]: ...
    @overload
    def __call__(self, fn: staticmethod[P, R]) -> staticmethod[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]: ...
    def __call__(self, fn: Any) -> Any:
        """Use the breaker itself as a decorator (``@breaker_object``)."""
        return apply(BreakerLayer(self), fn)

    # The decorator's step: what ``@breaker`` runs around each call.

    def guard_sync(self, call: Callable[..., Any]) -> Any:
        """``call`` guarded by this breaker: the closed path reads one state reference and
        calls; anything else goes through ``call()``."""
        if self.config.windowed or self.config.failure_result is not None:
            return self._windowed_sync(call)
        b, cb_name, follows = self, self.name, self.store is None
        settings = _config.state

        def guarded(*args: Any, **kwargs: Any) -> Any:
            if follows and settings.store is not b._bound:
                b._follow_default()
            state = b._cell.state
            mode = state.mode
            if mode is _CLOSED and not b._loud:
                try:
                    result = call(*args, **kwargs)
                except Exception as error:
                    tripped = b._fail(b._admit_closed(state), error)
                    if tripped is not None:
                        raise tripped from error
                    raise
                if b._cell.state.failures:  # a success ends a run of failures
                    b._report(b._admit_closed(state), _SUCCESS, "success")
                return result
            if mode is _OPEN and not b._loud:
                left = state.open_until - settings.now()
                if left > 0.0:
                    if settings.emit is not None:
                        rejected(cb_name)
                    raise CircuitOpenError(cb_name, left)
            return b.call(call, *args, **kwargs)

        return guarded

    def guard_async(self, call: Callable[..., Awaitable[Any]]) -> Any:
        """``guard_sync`` for coroutine functions."""
        if self.config.windowed or self.config.failure_result is not None:
            return self._windowed_async(call)
        b, cb_name, follows = self, self.name, self.store is None
        settings = _config.state

        async def guarded(*args: Any, **kwargs: Any) -> Any:
            if follows and settings.store is not b._bound:
                b._follow_default()
            state = b._cell.state
            mode = state.mode
            if mode is _CLOSED and not b._loud:
                try:
                    result = await call(*args, **kwargs)
                except Exception as error:
                    tripped = await b._afail(b._admit_closed(state), error)
                    if tripped is not None:
                        raise tripped from error
                    raise
                if b._cell.state.failures:
                    await b._areport(b._admit_closed(state), _SUCCESS, "success")
                return result
            if mode is _OPEN and not b._loud:
                left = state.open_until - settings.now()
                if left > 0.0:
                    if settings.emit is not None:
                        rejected(cb_name)
                    raise CircuitOpenError(cb_name, left)
            return await b.acall(call, *args, **kwargs)

        return guarded

    def _windowed_sync(self, call: Callable[..., Any]) -> Any:
        """Rate, slow-call and result rules judge every outcome: time it, one transition."""
        b, follows, settings = self, self.store is None, _config.state

        def guarded(*args: Any, **kwargs: Any) -> Any:
            if follows and settings.store is not b._bound:
                b._follow_default()
            state = b._cell.state
            if state.mode is not _CLOSED or b._loud:
                return b.call(call, *args, **kwargs)
            started = read_clock()
            try:
                result = call(*args, **kwargs)
            except Exception as error:
                tripped = b._fail(Permit(state.gen, False, started), error)
                if tripped is not None:
                    raise tripped from error
                raise
            b._record(state.gen, result, started)
            return result

        return guarded

    def _windowed_async(self, call: Callable[..., Awaitable[Any]]) -> Any:
        b, follows, settings = self, self.store is None, _config.state

        async def guarded(*args: Any, **kwargs: Any) -> Any:
            if follows and settings.store is not b._bound:
                b._follow_default()
            state = b._cell.state
            if state.mode is not _CLOSED or b._loud:
                return await b.acall(call, *args, **kwargs)
            started = read_clock()
            try:
                result = await call(*args, **kwargs)
            except Exception as error:
                tripped = await b._afail(Permit(state.gen, False, started), error)
                if tripped is not None:
                    raise tripped from error
                raise
            await b._arecord(state.gen, result, started)
            return result

        return guarded

    def __repr__(self) -> str:
        state = self.snapshot()
        mode = state.mode
        parts = [f"<CircuitBreaker {self.name!r} {self.mode.name}"]
        if mode is _CLOSED:
            if self.config.windowed:
                calls, failed, slow = self.window()
                parts.append(f"calls={calls} failed={failed} slow={slow}")
            else:
                parts.append(f"failures={state.failures}/{self.config.failure_threshold}")
        elif mode is _OPEN:
            left = max(0.0, state.open_until - read_clock())
            parts.append(f"failures={state.failures} reopens_in={left:.1f}s")
        elif mode is _HALF_OPEN:
            config = self.config
            parts.append(
                f"probes={len(state.probes)}/{config.half_open_max_calls} "
                f"successes={state.successes}/{config.success_threshold}"
            )
        elif mode is _FORCED_OPEN:
            if state.open_until:
                left = max(0.0, state.open_until - read_clock())
                parts.append(f"ends_in={left:.1f}s")
            else:
                parts.append("until reset")
        return " ".join(parts) + ">"


class BreakerLayer(Layer):
    """The breaker step of a resilient stack."""

    __slots__ = ("breaker",)
    kind = "breaker"

    def __init__(self, breaker: CircuitBreaker) -> None:
        self.breaker = breaker

    def describe(self) -> dict[str, object]:
        return {"layer": self.kind, "name": self.breaker.name, "config": self.breaker.config}

    def wrap_sync(self, call: AnyCall, name: str) -> AnyCall:
        return self.breaker.guard_sync(call)  # type: ignore[no-any-return]

    def wrap_async(self, call: AsyncCall, name: str) -> AsyncCall:
        return self.breaker.guard_async(call)  # type: ignore[no-any-return]

    # Generator functions: the stream forms live in ``stream``.

    def wrap_stream_sync(self, call: StreamCall, name: str) -> StreamCall:
        return guard_stream_sync(self.breaker, call)

    def wrap_stream_async(self, call: AsyncStreamCall, name: str) -> AsyncStreamCall:
        return guard_stream_async(self.breaker, call)


def _refuse_in_call(fn: object) -> None:
    """Raise ``TypeError`` if ``fn`` runs a generator or coroutine function (see ``call``)."""
    flags = code_flags(fn)
    if flags & _GENERATORS:
        refuse_generator(fn, "CircuitBreaker.call() cannot guard", "pass")
    if flags & CO_COROUTINE:
        name = name_of(fn)
        raise TypeError(
            f"CircuitBreaker.call() cannot guard the coroutine function {name}: calling it "
            "only creates a coroutine, which would count as a success before it ran; "
            f"use 'await breaker.acall({name.rpartition('.')[2]}, ...)'"
        )


def _refuse_result(fn: object, result: object, method: str) -> None:
    """Close what ``fn`` returned (nothing of it has run) and raise ``TypeError``."""
    if isinstance(result, AsyncGeneratorType):
        result.aclose().close()  # an async generator that never started: nothing to await
        what, advice = "an async generator", "pass a function that consumes it"
    else:
        result.close()  # type: ignore[attr-defined]
        if isinstance(result, CoroutineType):
            what = "a coroutine"
            advice = f"use 'await breaker.acall({getattr(result, '__name__', 'fn')}, ...)'"
        else:
            what, advice = "a generator", "pass a function that consumes it"
    raise TypeError(
        f"CircuitBreaker.{method}() cannot guard {name_of(fn)}: it returned {what} "
        f"({getattr(result, '__qualname__', '?')}), whose work would run after {method}() "
        f"returned, unguarded; {advice}"
    )


def _refuse_in_acall(fn: object) -> None:
    """Raise ``TypeError`` if ``fn`` runs a generator function (see ``acall``)."""
    if code_flags(fn) & _GENERATORS:
        refuse_generator(fn, "CircuitBreaker.acall() cannot guard", "pass")


def _pop_permit(breaker: CircuitBreaker) -> Permit:
    held = _held.get()
    for index in range(len(held) - 1, -1, -1):
        if held[index][0] is breaker:
            _held.set(held[:index] + held[index + 1 :])
            return held[index][1]
    raise RuntimeError(f"{breaker!r}: __exit__ without a matching __enter__")
