"""Helpers for testing code that uses resilient: virtual time and a clean slate.

``FakeClock`` never waits: sleeps move its time forward at once and are recorded, and a
sleep that reaches the current deadline stops there so the ``@timeout`` fires, which
tests a 60 s delay under a 45 s budget instantly. ``VirtualTimeLoop`` is an asyncio event
loop on such a clock: ``asyncio.Runner(loop_factory=lambda: VirtualTimeLoop(clock))``
runs ``await asyncio.sleep(60)`` at once, and leaves every other loop on real time.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from .._configure import configure
from .._runtime import config as _config
from .._runtime import deadline as _deadline
from .._runtime import validate as _validate
from ..exceptions import ConfigError
from ..typing import Clock
from ._loop import VirtualTimeLoop

__all__ = ["FakeClock", "VirtualTimeLoop", "disabled", "instant", "reset", "use_clock"]


class FakeClock:
    """A clock that only moves when told to, or when something sleeps on it.

    ``autojump`` (real seconds, off by default): a sync ``@timeout`` call that spends
    that long without using the CPU, without having finished or reached its deadline on
    this clock, is taken as waiting on something that will not answer in the test: the
    clock jumps to the call's deadline and the timeout fires there, as it would in
    production. A call that keeps computing is let run (where the platform cannot tell,
    any call still running after that long is taken as hanging). The
    pytest plugin's ``fake_clock`` sets it to 0.5 s.
    """

    def __init__(self, start: float = 0.0, *, autojump: float | None = None) -> None:
        self._now = float(start)
        self.autojump: float | None = (
            None if autojump is None else _validate.required_duration("autojump", autojump)
        )
        self._lock = threading.Lock()
        self.sleeps: list[float] = []
        """Every sleep asked of this clock, in seconds, in order."""

    def monotonic(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (deadlines are not checked: nothing sleeps)."""
        seconds = _validate.required_duration("seconds", seconds)
        with self._lock:
            self._now += seconds

    def sleep(self, seconds: float) -> None:
        """Advance by ``seconds`` at once, stopping at the current deadline if it comes first."""
        self.sleeps.append(seconds)
        deadline = _deadline.current()
        with self._lock:
            if deadline is not None and self._now + seconds >= deadline:
                self._now = max(self._now, deadline)
                raise _deadline.DeadlineReached(deadline)
            self._now += seconds

    async def asleep(self, seconds: float) -> None:
        """Like ``sleep``, and lets other tasks run once, as a real sleep would."""
        self.sleep(seconds)
        await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"<FakeClock now={self._now:g} sleeps={len(self.sleeps)}>"


@contextmanager
def use_clock(clock: Clock) -> Iterator[Clock]:
    """Install ``clock`` as the default for the block, then put the previous one back."""
    previous = _config.state.clock
    configure(clock=clock)
    try:
        yield clock
    finally:
        configure(clock=previous)


def reset() -> None:
    """Return every global of resilient (configuration, registries, sinks) to a fresh state."""
    _config.reset()


@contextmanager
def instant(attempts: int = 2, *, cap: bool = True) -> Iterator[None]:
    """Retries without waiting, at most ``attempts`` attempts: fast tests of failure paths.

    ``cap=False`` (stamina's ``set_testing(True, attempts, cap=False)``) makes every retried
    call, function or block, make exactly ``attempts`` attempts however many it is
    configured for: more as well as fewer (a ``stop`` strategy is overruled too), to test
    what happens on the fifth attempt of a call configured for three, or to make one
    configured for fifty give up after two. Waits are zero either way.

    Blocks may nest or overlap (in tasks or threads): the block entered last and still open
    sets the cap, and retries wait again once every block has ended.
    """
    attempts = _validate.integer("attempts", attempts, minimum=1)
    flag: object = cap  # checked at run time too: annotations are not enforced
    if not isinstance(flag, bool):
        raise ConfigError("cap", cap, "True or False")
    # The retry plans read a negative number as "exactly that many" (cap=False).
    entry = [attempts if cap else -attempts]  # this block's own entry (compared by identity)
    with _config.lock:
        _instant_blocks.append(entry)
        _config.state.instant = entry[0]
    try:
        yield
    finally:
        with _config.lock:
            for index in range(len(_instant_blocks) - 1, -1, -1):
                if _instant_blocks[index] is entry:
                    del _instant_blocks[index]
                    break
            _config.state.instant = _instant_blocks[-1][0] if _instant_blocks else None


_instant_blocks: list[list[int]] = []
"""The ``instant()`` blocks open, oldest first."""


_disabled_depth = 0
"""How many ``disabled()`` blocks are open (they may overlap, in tasks or threads)."""


@contextmanager
def disabled() -> Iterator[None]:
    """Every resilient decorator passes calls straight to the undecorated function.

    Blocks may nest or overlap: decorators stay bypassed until the last one open ends.
    """
    global _disabled_depth
    state = _config.state
    with _config.lock:
        _disabled_depth += 1
        state.bypass = True
        state.refresh()
    try:
        yield
    finally:
        with _config.lock:
            _disabled_depth = max(0, _disabled_depth - 1)
            if _disabled_depth == 0:
                state.bypass = False
                state.refresh()


@_config.on_reset
def _close_disabled_blocks() -> None:
    global _disabled_depth
    _disabled_depth = 0
    _instant_blocks.clear()
