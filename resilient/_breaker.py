"""``CircuitBreaker``: stop calling a failing service for a while, then probe it.

The common path, a closed breaker with no failures behind it, reads one state
reference, calls the function and returns: no lock, no clock, no event. An open breaker
rejects with one clock read. The steps live in ``_breaker_core``; this is the public face.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from inspect import CO_ASYNC_GENERATOR, CO_COROUTINE, CO_GENERATOR
from types import CodeType, TracebackType
from typing import Any, Literal, ParamSpec, TypeVar, overload

from ._breaker_core import BreakerCore, Permit, Store, default_store, read_clock
from ._circuit import BreakerMode, BreakerState, Event, Kind, window_counts
from ._wrapping import apply, code_flags, name_of, refuse_generator

__all__ = ["CircuitBreaker", "Store", "default_store"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

_CLOSED, _OPEN, _HALF_OPEN = BreakerMode.CLOSED, BreakerMode.OPEN, BreakerMode.HALF_OPEN
_FORCED_OPEN = BreakerMode.FORCED_OPEN
_SUCCESS, _RELEASE = Kind.SUCCESS, Kind.RELEASE
_GENERATORS = CO_GENERATOR | CO_ASYNC_GENERATOR
_NOT_SYNC = _GENERATORS | CO_COROUTINE  # code flags of functions ``call`` cannot guard

_held: ContextVar[tuple[tuple[CircuitBreaker, Permit], ...]] = ContextVar(
    "resilient_breaker_permits", default=()
)


class CircuitBreaker(BreakerCore):
    """Stops calling a failing service for a while, then probes it before trusting it again.

    The state is kept in ``store`` under ``name`` (default: ``configure(store=...)``, else
    a process-wide ``MemoryStore``), so breakers sharing a name and a store share a
    state. ``resilient.breaker`` and ``CircuitBreakerRegistry`` hand out one breaker per
    name; constructing one directly does not register it.
    """

    __slots__ = ()

    # --- state -------------------------------------------------------------------------

    def snapshot(self) -> BreakerState:
        """The stored state as it is now (plain data)."""
        self._follow_default()
        return self._cell.state

    @property
    def state(self) -> BreakerMode:
        """The mode a call would meet now (``HALF_OPEN`` once an open breaker's time is up)."""
        state = self.snapshot()
        if state.mode is _OPEN and read_clock() >= state.open_until:
            return _HALF_OPEN
        return state.mode

    @property
    def opened(self) -> bool:
        """Whether calls are being rejected now (the seed's ``breaker.opened``)."""
        return self.state in (_OPEN, _FORCED_OPEN)

    @property
    def retry_after(self) -> float | None:
        """Seconds until the next probe may go through: 0 unless open, ``None`` if forced."""
        state = self.snapshot()
        if state.mode is _FORCED_OPEN:
            return None
        if state.mode is _OPEN:
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

    def force_open(self) -> None:
        """Reject every call until ``reset()``."""
        self._manual(Kind.FORCE_OPEN)

    def reset(self) -> None:
        """Close the breaker and forget its counts (also ends ``force_open``/``disable``)."""
        self._manual(Kind.RESET)

    def disable(self) -> None:
        """Let every call through and count nothing until ``reset()``."""
        self._manual(Kind.DISABLE)

    def _manual(self, kind: Kind) -> None:
        self._follow_default()
        now = read_clock()
        state, decision = self._transition(Event(kind), now)
        self._announce(decision.prior, state, now)

    # --- running calls -----------------------------------------------------------------

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call ``fn(*args, **kwargs)`` through the breaker.

        A generator function, an async generator function or a coroutine function is
        refused with ``TypeError`` before anything is counted: their work would run after
        ``call`` returned, unguarded (await a coroutine function with ``acall``).
        """
        code = getattr(fn, "__code__", None)
        if type(code) is not CodeType or code.co_flags & _NOT_SYNC:
            _refuse_in_call(fn)
        permit = self._admit()
        try:
            result = fn(*args, **kwargs)
        except Exception as error:
            self._report(permit, *self._classify_error(error))
            raise
        except BaseException:
            self._release(permit)
            raise
        self._report(permit, *self._classify_result(result))
        return result

    async def acall(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Await ``fn(*args, **kwargs)`` through the breaker.

        A generator or async generator function is refused with ``TypeError`` before
        anything is counted: its work would run after ``acall`` returned, unguarded.
        """
        code = getattr(fn, "__code__", None)
        if (type(code) is not CodeType or code.co_flags & _GENERATORS) and (
            code_flags(fn) & _GENERATORS
        ):
            refuse_generator(fn, "CircuitBreaker.acall() cannot guard", "pass")
        permit = await self._aadmit()
        try:
            result = await fn(*args, **kwargs)
        except Exception as error:
            await self._areport(permit, *self._classify_error(error))
            raise
        except BaseException:
            await self._areport(permit, _RELEASE, "ignored")
            raise
        await self._areport(permit, *self._classify_result(result))
        return result

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
            self._report(permit, *self._classify_error(exc))
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
            await self._areport(permit, *self._classify_error(exc))
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
        from ._breaker_layer import BreakerLayer  # it imports this module

        return apply(BreakerLayer(self), fn)

    def __repr__(self) -> str:
        state = self.snapshot()
        mode = state.mode
        parts = [f"<CircuitBreaker {self.name!r} {self.state.name}"]
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
            parts.append("until reset")
        return " ".join(parts) + ">"


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


def _pop_permit(breaker: CircuitBreaker) -> Permit:
    held = _held.get()
    for index in range(len(held) - 1, -1, -1):
        if held[index][0] is breaker:
            _held.set(held[:index] + held[index + 1 :])
            return held[index][1]
    raise RuntimeError(f"{breaker!r}: __exit__ without a matching __enter__")
