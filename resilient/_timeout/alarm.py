"""Interrupting Python code on the main thread with ``SIGALRM`` (the signal strategy).

Setting an interval timer is a system call (about 0.7 µs here), so a call does not arm
and disarm one each time. The timer is armed lazily: it only moves *earlier*, when a new
deadline comes before the time it is set for, and it is never cleared when a call ends.
When it fires, the handler raises in the interrupted code if the earliest deadline in
force has passed, or re-arms for that deadline, or does nothing when no call is waiting.
In a steady stream of calls with the same budget this makes no system call at all.

The handler only raises inside the body of a call. A signal handled while a ``@timeout``
is registering or forgetting its deadline (in a wrapper's own lines, ``protect``, or in
anything a wrapper calls but its body: the helpers here, a trace or profile function
tracing the wrapper's lines, a finalizer) is noted instead, and the timer re-armed a
moment later: if the body is still running then, it is interrupted; if the call has
come back, its wrapper reads the note from ``disarm`` and reports a timeout. So the
internal ``AlarmFired`` never reaches the caller, and a deadline is never left behind to
fire in code outside any ``@timeout``.

A signal handled in a Python trace or profile function tracing the body (a debugger's,
coverage's) is deferred the same way for up to ``_GRACE`` after the deadline: raised
there, it would make Python switch the tracer off. Past that (a body stopped at a
breakpoint, a tracer taking nearly all the time) it is raised in the tracer, and the body
is interrupted all the same: a deadline is never deferred for good. Bookkeeping still
under way that long (a debugger paused in a wrapper's lines) is looked at every ``_SLOW``
instead of every ``_RETRY``, so a pause costs no storm of signals.

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
from weakref import WeakSet

__all__ = ["AlarmFired", "arm", "disarm", "on_main_thread", "patient", "protect"]

_MAIN = threading.main_thread().ident
_EARLY = 1e-3  # a timer firing this close before a deadline counts as reaching it
_RETRY = 1e-4  # after an alarm noted during bookkeeping, look again this much later
_GRACE = 0.05  # how late a deadline may get while its alarms land in a tracer of the body
# Past the grace, bookkeeping still under way (a debugger paused in it) is looked at this often:
_SLOW = 0.01
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


def protect(*codes: CodeType, body: CodeType | None = None) -> None:
    """Mark ``codes`` (a wrapper's) as bookkeeping: an alarm arriving in their own lines,
    or in a function they call other than a body, is deferred; one arriving in a body
    (``body``: the code of a function a wrapper calls as its body) or below it is the
    body's."""
    _WRAPPERS.update(codes)
    if body is not None:
        _BODIES.add(body)


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
        _late.pop(due, None)  # an alarm noted in bookkeeping before: no longer late
    late = now - due if now > due else 0.0
    _late[due] = late
    if frame is not None:
        where = _where(frame)
        if where is _BOOKKEEPING or (where is _TRACING and late < _GRACE):
            wait = _RETRY if late < _GRACE else _SLOW  # not in the body: look again soon
            _set_timer(now + wait, wait)
            return
    _raised.add(due)
    if later is not None:
        _set_timer(later, later - now)  # an enclosing deadline still needs its alarm
    raise AlarmFired(due, late)


_BODY, _TRACING, _BOOKKEEPING = "body", "tracing the body", "bookkeeping"


def _where(frame: FrameType) -> str:
    """What ``frame`` runs: bookkeeping (a wrapper's own lines, a helper here or what it
    calls, or anything else a wrapper calls but its body: a trace or profile function
    tracing the wrapper's lines, a finalizer), a trace or profile function tracing the
    body (the signal is handled in the tracer's frame, and what it raises lands in
    whichever line of the traced code comes next), or the body."""
    tools = _tool_codes()
    tracing = False
    child: FrameType | None = None
    here: FrameType | None = frame
    while here is not None:
        code = here.f_code
        if code in _HELPERS:
            return _BOOKKEEPING
        if code in _WRAPPERS:
            if child is None or child.f_code not in _BODIES:
                return _BOOKKEEPING  # its own lines, or a call other than its body
            return _TRACING if tracing else _BODY
        traced = here.f_back
        if code in tools or (
            traced is not None
            and traced.f_trace is not None
            and code is _code_of(traced.f_trace)  # the traced frame's own trace function
        ):
            tracing = True
        child, here = here, traced
    return _TRACING if tracing else _BODY


def _tool_codes() -> tuple[CodeType | None, ...]:
    """The code of the Python trace and profile functions of this thread, if any."""
    tools = sys.gettrace(), sys.getprofile()
    if tools == (None, None):
        return ()
    return tuple(_code_of(tool) for tool in tools)


def _code_of(tool: object) -> CodeType | None:
    """The code a trace or profile function runs: a function's, a bound method's, or the
    ``__call__`` of a callable object; ``None`` for one written in C."""
    for _ in range(3):
        code = getattr(tool, "__code__", None)
        if isinstance(code, CodeType):
            return code
        method = getattr(tool, "__func__", None)
        if method is None:  # a callable object: its class's __call__
            method = next(
                (k.__dict__["__call__"] for k in type(tool).__mro__ if "__call__" in k.__dict__),
                None,
            )
        tool = method
    return None


_WRAPPERS: set[CodeType] = set()  # the wrappers' own code (``protect``)
_BODIES: WeakSet[CodeType] = WeakSet()  # the code wrappers call as their body (held weakly:
# a function decorated at run time and dropped takes its code with it)
_HELPERS: frozenset[CodeType] = frozenset(
    {
        arm.__code__,
        disarm.__code__,
        patient.__code__,
        _set_timer.__code__,
        _on_alarm.__code__,
    }
)
