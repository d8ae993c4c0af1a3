"""The retry engine's core: after a failure, wait so long and try again, or give up.

``RetryPlan`` only decides. Told a failure, the time now and the deadline, it answers
``Sleep(seconds)`` or ``GiveUp(reason)``: it never sleeps, awaits, logs or raises.
``@retry`` and the HTTP clients run it in thin sync and async loops that act on the
answer, and keep beside it only their own rules (which errors are worth another try,
hooks and budgets for ``@retry``; idempotency and retryable statuses for HTTP).

What it decides, in order: the attempt cap (``attempts``, or ``resilient.testing.
instant()``'s), the wait (an error's ``retry_after`` up to ``max_retry_after``, else the
backoff schedule with jitter), and whether that wait ends before the deadline. A give-up
carries the note the error gets: the reason and, when asked, the errors met on the way.
"""

from __future__ import annotations

from dataclasses import FrozenInstanceError
from typing import Any, ClassVar, Protocol

from .._runtime.validate import MAX_SECONDS
from .._wrapping.hooks import add_note_once

__all__ = ["NOT_RETRYABLE", "NO_WAIT", "GiveUp", "RetryPlan", "Schedule", "Sleep", "attempts"]


class _Answer:
    """A frozen, slotted value compared by its one field (written out rather than made by
    ``dataclass``, which costs a millisecond of every ``import resilient``)."""

    __slots__ = ()
    _field: ClassVar[str]

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return bool(getattr(self, self._field) == getattr(other, self._field))

    def __hash__(self) -> int:
        return hash((type(self), getattr(self, self._field)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._field}={getattr(self, self._field)!r})"


class Sleep(_Answer):
    """Wait ``seconds`` (``0.0``: not at all), then attempt again."""

    __slots__ = ("seconds",)
    _field = "seconds"
    seconds: float

    def __init__(self, seconds: float) -> None:
        object.__setattr__(self, "seconds", seconds)


class GiveUp(_Answer):
    """Stop: the caller gets the last error as it is.

    ``reason`` is the note that error carries, saying why; ``None`` when the error is not
    one to retry at all (it is raised with no note).
    """

    __slots__ = ("reason",)
    _field = "reason"
    reason: str | None

    def __init__(self, reason: str | None = None) -> None:
        object.__setattr__(self, "reason", reason)


NOT_RETRYABLE = GiveUp()
"""The answer for an error that is never retried (raised as it is, without a note)."""

NO_WAIT = Sleep(0.0)
"""The answer for a retry without a wait (made once: it is the common answer in tests)."""


class Schedule(Protocol):
    """What the plan reads of a ``RetryConfig``."""

    @property
    def attempts(self) -> int: ...

    @property
    def max_retry_after(self) -> float: ...

    def delay(self, attempt: int) -> float: ...


def attempts(count: int) -> str:
    """``"1 attempt"``, ``"3 attempts"``."""
    return "1 attempt" if count == 1 else f"{count} attempts"


class RetryPlan:
    """The decisions of one retried call, from its first failure on.

    ``prefix`` opens every give-up note (``"resilient.retry gave up on f "``); a later
    give-up note on the same error object replaces the earlier one, so an error raised
    through the same code again and again keeps one. With ``list_errors`` the note ends
    with the failures met (``": ValueError, ConnectionError x2"``). ``capped=False`` drops
    the ``attempts`` cap (a strategy of the caller's stops the retries instead);
    ``instant`` (``resilient.testing.instant()``) caps the attempts at that number (sets
    them to exactly ``-instant`` when negative: ``instant(cap=False)``) and makes every
    wait zero. A subclass may replace ``backoff`` and ``stop`` with strategies
    of its own (and set ``strategies``).
    """

    __slots__ = ("attempt", "config", "forced", "instant", "limit", "prefix", "runs")

    strategies: ClassVar[bool] = False
    """Whether ``backoff`` and ``stop`` are a subclass's own and must be asked (otherwise
    the schedule's wait is read directly: one call less per failure)."""

    def __init__(
        self,
        config: Schedule,
        prefix: str,
        capped: bool = True,
        instant: int | None = None,
        list_errors: bool = True,
    ) -> None:
        self.config: Schedule = config
        self.prefix: str = prefix
        self.attempt: int = 0
        """Attempts made so far (each ``decide`` counts one that failed)."""
        limit = config.attempts if capped else None
        self.forced: bool = instant is not None and instant < 0
        """``instant(cap=False)``: exactly ``limit`` attempts, whatever stops them otherwise."""
        if instant is not None:
            if instant < 0:  # instant(attempts, cap=False): exactly that many attempts
                limit = -instant
            elif limit is None or instant < limit:
                limit = instant
        self.limit: int | None = limit
        self.instant: bool = instant is not None
        self.runs: list[list[Any]] | None = [] if list_errors else None
        """``[type name, how many in a row]`` per run of failures, for the note."""

    def decide(
        self, error: Exception, now: float, deadline: float | None, hint: float | None = None
    ) -> Sleep | GiveUp:
        """What to do after the attempt that just failed with ``error``.

        ``now`` and ``deadline`` are times on one clock (``deadline`` ``None``: none).
        ``hint`` is a wait the caller's own rules asked for, used instead of the error's
        ``retry_after`` and the schedule (but not under ``instant``, and only if it fits
        before the deadline).
        """
        attempt = self.attempt = self.attempt + 1
        runs = self.runs
        if runs is not None:
            kind = type(error).__name__
            if runs and runs[-1][0] == kind:
                runs[-1][1] += 1
            else:
                runs.append([kind, 1])
        limit = self.limit
        if limit is not None and attempt >= limit:
            return self.give_up(f"after {attempts(attempt)}")
        delay = 0.0
        if self.instant:
            pass
        elif hint is not None:
            delay = hint
        else:
            # An error's retry_after (seconds, as a server's Retry-After says) replaces the
            # schedule's wait when it is at most max_retry_after; a longer one ends it all.
            hinted = getattr(error, "retry_after", None)
            if (
                hinted is not None
                and isinstance(hinted, int | float)
                and not isinstance(hinted, bool)
                and hinted >= 0
            ):
                if hinted > self.config.max_retry_after:
                    return self._too_long(hinted)
                delay = float(hinted)
            elif self.strategies:
                wait = self.backoff(error)
                if isinstance(wait, GiveUp):
                    return wait
                delay = wait
            else:
                delay = self.config.delay(attempt)
        if self.strategies and not self.forced:
            stop = self.stop(error, delay)
            if stop is not None:
                return stop
        # ``now + delay``, as a clock adds it: ``delay >= deadline - now`` can round the
        # other way and let a wait end exactly at the deadline.
        if deadline is not None and now + delay >= deadline:
            left = max(deadline - now, 0.0)
            return self.give_up(
                f"after {attempts(attempt)}, as a {delay:.3g}s wait does not fit in "
                f"the {left:.3g}s left before the deadline"
            )
        return Sleep(delay) if delay else NO_WAIT

    def backoff(self, error: Exception) -> float | GiveUp:
        """The wait after this attempt when the error names none: the schedule's (jitter
        included), or, in a subclass with ``strategies``, its own (or a give-up)."""
        return self.config.delay(self.attempt)

    def stop(self, error: Exception, delay: float) -> GiveUp | None:
        """A reason to stop before waiting ``delay``: asked only with ``strategies``, of a
        subclass that has a stop strategy of its own."""
        return None

    def _too_long(self, hinted: float) -> GiveUp:
        most = self.config.max_retry_after
        asked = f"a {hinted:.3g}s" if hinted <= MAX_SECONDS else "an endless"
        return self.give_up(
            f"after {attempts(self.attempt)}, as the error asks for {asked} wait, "
            f"longer than max_retry_after={most:g}s"
        )

    def give_up(self, why: str) -> GiveUp:
        """The give-up saying ``why``, as its note reads."""
        runs = self.runs
        if runs is None:
            return GiveUp(f"{self.prefix}{why}")
        listed = ", ".join(kind if count == 1 else f"{kind} x{count}" for kind, count in runs)
        return GiveUp(f"{self.prefix}{why}: {listed}")

    def note(self, error: BaseException, decision: GiveUp) -> None:
        """Put ``decision``'s reason on ``error`` (replacing an earlier give-up note of this
        plan's kind; the user's own notes stay)."""
        if decision.reason is not None:
            add_note_once(error, decision.reason, replaces=self.prefix)

    def __repr__(self) -> str:
        return f"<RetryPlan {self.prefix.strip()!r} attempt={self.attempt} limit={self.limit}>"
