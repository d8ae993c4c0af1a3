"""An asyncio event loop whose time is a ``FakeClock``: the loop of one test, not the process.

Only loops of this class read the fake clock; every other loop in the process (another
thread's, a server's) keeps real time, and asyncio's own classes are never patched.
"""

from __future__ import annotations

import asyncio
import selectors
import weakref
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, Protocol, TypeVar, TypeVarTuple, Unpack

from ..exceptions import ConfigError

__all__ = ["VirtualTimeLoop"]

_CLOCK = "None or a clock the loop can move (monotonic(), advance(), autojump), e.g. FakeClock"

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")


class _MovableClock(Protocol):
    """What the loop needs of its clock (``FakeClock`` is one)."""

    @property
    def autojump(self) -> float | None: ...

    def monotonic(self) -> float: ...

    def advance(self, seconds: float) -> None: ...


class _JumpingSelector(selectors.DefaultSelector):
    """The loop's selector: when the loop would block until its next timer, it advances the
    loop's clock to that timer instead, at once when nothing but a timer can wake it, else
    after ``clock.autojump`` real seconds with nothing ready (work in executor threads,
    such as ``asyncio.to_thread``, child processes still running, or sockets to watch)."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        clock = self._loop.clock
        if clock is None or timeout is None or timeout <= 0:
            return super().select(timeout)
        wait = 0.0
        loop = self._loop
        if loop.executor_calls or loop.children_running() or len(self.get_map()) > 1:
            patience = clock.autojump
            wait = timeout if patience is None else min(timeout, patience)
        ready = super().select(wait)
        if not ready:
            clock.advance(timeout)  # every task waits on a timer: jump to it
        return ready


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose ``time()`` is ``clock.monotonic()`` and which, when every task
    waits on a timer, moves the clock to that timer instead of sleeping.

    With ``clock`` ``None`` (it may be set and cleared at any time) it keeps real time.
    When the clock changes (a clock given, taken away or replaced) while timers are
    pending, the loop's time never goes back: it follows the new clock shifted forward by
    as much as it would otherwise go back, so those timers come due after the delays they
    were given (a loop shared by several tests, each with its own clock starting at 0,
    keeps one timeline for the tasks it runs). With no timer pending, its time is the new
    clock's own.
    Work it waits for in executor threads (``run_in_executor``, ``asyncio.to_thread``,
    the default executor's shutdown), in child processes (``asyncio.create_subprocess_exec``
    until the child exits) or on sockets gets ``clock.autojump`` real seconds to show
    progress before the clock jumps, so such work finishes as in production.
    """

    def __init__(self, clock: _MovableClock | None = None) -> None:
        self._clock: _MovableClock | None = None
        self._shift = 0.0  # added to the clock's (or real) time: the loop's never goes back
        self.executor_calls: int = 0
        """Calls in executor threads this loop waits for, not finished yet."""
        self._children: weakref.WeakSet[asyncio.SubprocessTransport] = weakref.WeakSet()
        super().__init__(_JumpingSelector(self))
        try:
            self._clock = _movable(clock)  # a new loop starts at its clock's time
        except ConfigError:
            self.close()
            raise

    @property
    def clock(self) -> _MovableClock | None:
        """The clock the loop's time follows; ``None``: real time."""
        return self._clock

    @clock.setter
    def clock(self, clock: _MovableClock | None) -> None:
        clock = _movable(clock)
        if clock is self._clock:
            return
        now = self.time()
        self._clock, self._shift = clock, 0.0
        # asyncio's heap of pending timers (no public spelling): set on the old time, they
        # must come due after their own delays on the new one.
        if getattr(self, "_scheduled", None):
            self._shift = max(0.0, now - self.time())

    def time(self) -> float:
        clock = self._clock
        return (super().time() if clock is None else clock.monotonic()) + self._shift

    def run_in_executor(
        self, executor: Executor | None, func: Callable[[Unpack[_Ts]], _T], *args: *_Ts
    ) -> asyncio.Future[_T]:
        future = super().run_in_executor(executor, func, *args)
        self.executor_calls += 1
        future.add_done_callback(self._executor_call_done)
        return future

    def _executor_call_done(self, future: asyncio.Future[Any]) -> None:
        self.executor_calls -= 1

    async def shutdown_default_executor(self, *args: Any, **kwargs: Any) -> None:
        # The executor's threads are joined by a thread that wakes the loop when done:
        # work the loop waits for, like a call in the executor.
        self.executor_calls += 1
        try:
            await super().shutdown_default_executor(*args, **kwargs)
        finally:
            self.executor_calls -= 1

    async def subprocess_exec(self, *args: Any, **kwargs: Any) -> Any:
        transport, protocol = await super().subprocess_exec(*args, **kwargs)
        self._children.add(transport)
        return transport, protocol

    async def subprocess_shell(self, *args: Any, **kwargs: Any) -> Any:
        transport, protocol = await super().subprocess_shell(*args, **kwargs)
        self._children.add(transport)
        return transport, protocol

    def children_running(self) -> bool:
        """Whether a child process this loop started has not been seen to exit yet."""
        return any(child.get_returncode() is None for child in self._children)

    def __repr__(self) -> str:
        return f"<VirtualTimeLoop clock={self.clock!r} running={self.is_running()}>"


def _movable(clock: _MovableClock | None) -> _MovableClock | None:
    if clock is not None and not all(
        hasattr(clock, name) for name in ("monotonic", "advance", "autojump")
    ):
        raise ConfigError("clock", clock, _CLOCK)
    return clock
