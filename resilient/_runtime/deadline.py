"""One time budget per logical call, shared by nested timeouts, retries and user code.

The deadline is an absolute time on the configured clock, kept in a ``ContextVar`` so it
follows the call into tasks and worker threads. Nested timeouts keep the earliest.
"""

from __future__ import annotations

from contextvars import ContextVar, Token

from . import config as _config

__all__ = ["DeadlineReached", "current", "enter", "leave", "remaining"]

_deadline: ContextVar[float | None] = ContextVar("resilient_deadline", default=None)

current = get = _deadline.get
set = _deadline.set
reset = _deadline.reset


def enter(when: float) -> Token[float | None]:
    """Install ``when`` unless an enclosing deadline comes first; ``leave`` undoes it."""
    parent = _deadline.get()
    if parent is not None and parent < when:
        when = parent
    return _deadline.set(when)


def leave(token: Token[float | None]) -> None:
    _deadline.reset(token)


def remaining() -> float | None:
    """Seconds left before the innermost deadline, or ``None`` when no deadline is set.

    Never negative: a deadline already passed gives ``0.0``.
    """
    when = _deadline.get()
    if when is None:
        return None
    left = when - _config.state.clock.monotonic()
    return left if left > 0.0 else 0.0


class DeadlineReached(BaseException):
    """Raised inside the call by a virtual clock's sleep that reaches the deadline.

    A ``BaseException``, like a cancellation, so the user's ``except Exception`` cannot
    swallow it; the ``@timeout`` owning that deadline turns it into
    ``TimeoutExceededError``.
    """

    def __init__(self, when: float) -> None:
        super().__init__(when)
        self.when = when
