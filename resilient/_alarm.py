"""Interrupting Python code on the main thread with ``SIGALRM`` (the signal strategy).

Setting an interval timer is a system call (about 0.7 µs here), so a call does not arm
and disarm one each time. The timer is armed lazily: it only moves *earlier*, when a new
deadline comes before the time it is set for, and it is never cleared when a call ends.
When it fires, the handler raises in the interrupted code if the earliest deadline in
force has passed, or re-arms for that deadline, or does nothing when no call is waiting.
In a steady stream of calls with the same budget this makes no system call at all.

Our handler is installed on first use and stays; a ``SIGALRM`` that we did not ask for
is passed on to the handler that was there before. The timer is cleared at interpreter
exit: once Python's handlers are gone, a pending ``SIGALRM`` would kill the process.
"""

from __future__ import annotations

import atexit
import signal
import threading
import time
from types import FrameType
from typing import Any

__all__ = ["AlarmFired", "arm", "disarm", "on_main_thread"]

_MAIN = threading.main_thread().ident
_EARLY = 1e-3  # a timer firing this close before a deadline counts as reaching it
_active: list[float] = []  # deadlines (time.monotonic) of the calls in force
_armed_for: float | None = None  # when the interval timer will fire, if we set it
_previous: Any = None
_installed = False


class AlarmFired(BaseException):
    """Raised in the interrupted code; the ``@timeout`` whose deadline it is converts it."""

    def __init__(self, when: float) -> None:
        super().__init__(when)
        self.when = when


def on_main_thread() -> bool:
    return threading.get_ident() == _MAIN


def arm(seconds: float) -> float:
    """Register a deadline ``seconds`` from now; return it (pass it to ``disarm``)."""
    when = time.monotonic() + seconds
    _active.append(when)
    if _armed_for is None or when < _armed_for:
        _set_timer(when, seconds)
    return when


def disarm(when: float) -> None:
    """Forget the deadline ``when``; the timer stays and fires harmlessly later."""
    _active.remove(when)


def _set_timer(when: float, seconds: float) -> None:
    global _armed_for, _previous, _installed
    if not _installed or signal.getsignal(signal.SIGALRM) is not _on_alarm:
        _previous = signal.signal(signal.SIGALRM, _on_alarm)
        if not _installed:
            atexit.register(_clear_at_exit)
        _installed = True
    _armed_for = when
    signal.setitimer(signal.ITIMER_REAL, seconds if seconds > 0 else 1e-6)


def _clear_at_exit() -> None:
    global _armed_for
    if _armed_for is not None:
        signal.setitimer(signal.ITIMER_REAL, 0.0)
        _armed_for = None


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    global _armed_for
    if _armed_for is None:
        if callable(_previous):  # not our timer
            _previous(signum, frame)
        return
    _armed_for = None
    if not _active:
        return
    earliest = min(_active)
    left = earliest - time.monotonic()
    if left <= _EARLY:
        raise AlarmFired(earliest)
    _set_timer(earliest, left)
