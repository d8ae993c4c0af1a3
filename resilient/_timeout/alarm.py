"""Interrupting Python code on the main thread with ``SIGALRM`` (the signal strategy).

Setting an interval timer is a system call (about 0.7 µs here), so a call does not arm
and disarm one each time. The timer is armed lazily: it only moves *earlier*, when a new
deadline comes before the time it is set for, and it is never cleared when a call ends.
When it fires, the handler raises in the interrupted code if the earliest deadline in
force has passed, or re-arms for that deadline, or does nothing when no call is waiting.
In a steady stream of calls with the same budget this makes no system call at all.

The handler only raises inside the body of a call. A signal handled while a ``@timeout``
is registering or forgetting its deadline (in a wrapper's own lines, ``protect``, or in
anything the helpers here call), or while a Python trace or profile function runs (a
debugger's, a test's), is noted instead, and the timer re-armed a moment later: if the
body is still running then, it is interrupted; if the call has come back, its wrapper
reads the note from ``disarm`` and reports a timeout. So the internal ``AlarmFired``
never reaches the caller, and a deadline is never left behind to fire in code outside
any ``@timeout``.

A deadline may have a *patience* (``patient``): asked when the deadline passes, it can
give the body more time (the test clock's autojump lets a body that keeps computing run);
the deadline then fires that much later, unless asked again and extended again.

Our handler is installed on first use and stays; a ``SIGALRM`` that we did not ask for
is passed on to the handler that was there before. The timer is cleared at interpreter
exit: once Python's handlers are gone, a pending ``SIGALRM`` would kill the process.
"""

from __future__ import annotations

import atexit
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any

__all__ = ["AlarmFired", "arm", "disarm", "on_main_thread", "patient", "protect"]

_MAIN = threading.main_thread().ident
_EARLY = 1e-3  # a timer firing this close before a deadline counts as reaching it
_RETRY = 1e-4  # after an alarm noted during bookkeeping, look again this much later
_LONGEST = 1e6  # setitimer overflows past ~2**31 s; a longer wait is re-armed on firing
_active: list[float] = []  # deadlines (time.monotonic) of the calls in force
_late: dict[float, float] = {}  # deadlines found passed -> seconds late when last seen
_raised: set[float] = set()  # deadlines already raised in their body (raised once only)
_patience: dict[float, Callable[[], float | None]] = {}  # deadline -> more time, if any
_postponed: dict[float, float] = {}  # deadline -> when it now fires, given more time
_armed_for: float | None = None  # when the interval timer will fire, if we set it
_previous: Any = None
_installed = False


class AlarmFired(BaseException):
    """Raised in the interrupted body; the ``@timeout`` whose deadline it is converts it.

    ``late`` is how many seconds after the deadline the body was interrupted: more than a
    few milliseconds means the signal waited for C code that Python cannot interrupt.
    """

    def __init__(self, when: float, late: float) -> None:
        super().__init__(when, late)
        self.when = when
        self.late = late


def on_main_thread() -> bool:
    return threading.get_ident() == _MAIN


def arm(when: float, seconds: float) -> None:
    """Register the deadline ``when`` (``seconds`` from now); ``disarm`` forgets it."""
    _active.append(when)
    if _armed_for is None or when < _armed_for:
        _set_timer(when, seconds)


def disarm(when: float) -> float | None:
    """Forget the deadline ``when``; return how late it was found passed, else ``None``.

    The timer stays and fires harmlessly later. Safe to call for a deadline that was
    never registered (an interrupt that came between computing and registering it).
    """
    try:
        _active.remove(when)
    except ValueError:
        pass
    if _late:
        _raised.discard(when)
        return _late.pop(when, None)
    return None


def patient(when: float, more: Callable[[], float | None] | None) -> None:
    """Ask ``more`` when the deadline ``when`` passes: seconds to let the body run on,
    or ``None`` to fire. ``None`` for ``more`` forgets it (after ``disarm``)."""
    if more is None:
        _patience.pop(when, None)
        _postponed.pop(when, None)
    else:
        _patience[when] = more


def protect(*codes: CodeType) -> None:
    """Mark ``codes`` (a wrapper's) as bookkeeping: an alarm arriving in their own lines
    is deferred; one arriving in a function they call is the body's."""
    _WRAPPERS.update(codes)


def _set_timer(when: float, seconds: float) -> None:
    global _armed_for, _previous, _installed
    if not _installed or signal.getsignal(signal.SIGALRM) is not _on_alarm:
        _previous = signal.signal(signal.SIGALRM, _on_alarm)
        if not _installed:
            atexit.register(_clear_at_exit)
        _installed = True
    if seconds > _LONGEST:
        when, seconds = when - seconds + _LONGEST, _LONGEST
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
    now = time.monotonic()
    while True:
        due: float | None = None
        later: float | None = None
        for when in _active:
            if when in _raised:
                continue
            fires = _postponed.get(when, when) if _postponed else when
            if fires - now <= _EARLY:
                if due is None or when < due:
                    due = when
            elif later is None or fires < later:
                later = fires
        if due is None:
            if later is not None:
                _set_timer(later, later - now)
            return
        more = _patience[due]() if due in _patience else None
        if more is None:
            break
        _postponed[due] = now + more  # the body still works: look again later
    late = now - due if now > due else 0.0
    _late[due] = late
    if frame is not None and _in_bookkeeping(frame):
        _set_timer(now + _RETRY, _RETRY)  # not in the body: look again in a moment
        return
    _raised.add(due)
    if later is not None:
        _set_timer(later, later - now)  # an enclosing deadline still needs its alarm
    raise AlarmFired(due, late)


def _in_bookkeeping(frame: FrameType) -> bool:
    """Whether ``frame`` runs bookkeeping rather than a call's body: a wrapper's own lines,
    a helper here (or what it calls: ``signal.getsignal`` is Python), or a trace or
    profile function (the signal is handled in the tracer's frame, and what it raises
    lands in whichever line of the traced code comes next)."""
    tools = _tool_codes()
    here: FrameType | None = frame
    while here is not None:
        code = here.f_code
        if code in _HELPERS or code in tools:
            return True
        if code in _WRAPPERS:
            return here is frame  # below a wrapper: its body (or plain code after it)
        here = here.f_back
    return False


def _tool_codes() -> tuple[CodeType | None, ...]:
    """The code of the Python trace and profile functions of this thread, if any."""
    tools = sys.gettrace(), sys.getprofile()
    if tools == (None, None):
        return ()
    return tuple(getattr(getattr(tool, "__func__", tool), "__code__", None) for tool in tools)


_WRAPPERS: set[CodeType] = set()  # the wrappers' own code (``protect``)
_HELPERS: frozenset[CodeType] = frozenset(
    {
        arm.__code__,
        disarm.__code__,
        patient.__code__,
        _set_timer.__code__,
        _on_alarm.__code__,
    }
)
