"""Events are data: what happened to a breaker, a retry or a timeout, as frozen dataclasses
handed to listeners (``resilient.FallbackUsed`` is the fallback's, defined beside it).

Imported only when the first event is built (or a user names one), so programs without
listeners never pay for defining these classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, TypeAlias

__all__ = [
    "BreakerClosed",
    "BreakerCreated",
    "BreakerDisabled",
    "BreakerEvent",
    "BreakerForcedOpen",
    "BreakerHalfOpened",
    "BreakerOpened",
    "BulkheadRejected",
    "CallAdmitted",
    "CallRecorded",
    "CallRejected",
    "HedgeStarted",
    "HedgeWon",
    "RateLimited",
    "RetryGaveUp",
    "RetryScheduled",
    "TimeoutExceeded",
]


@dataclass(frozen=True, slots=True)
class BreakerCreated:
    """A breaker object was made (heard by global listeners only: it has none yet)."""

    name: str
    config: object
    """Its ``BreakerConfig``."""


@dataclass(frozen=True, slots=True)
class BreakerOpened:
    """The breaker tripped (or a half-open probe failed): calls are rejected for a while."""

    name: str
    failures: int
    """The run of consecutive failures when it tripped; a rate, slow-call or result rule
    can trip after a shorter run than its threshold, even none."""
    retry_after: float
    """Seconds until the first probe may go through."""
    trips: int
    """Consecutive trips without a close in between (1 the first time)."""


@dataclass(frozen=True, slots=True)
class BreakerHalfOpened:
    """The reset timeout passed: probe calls go through to test the service."""

    name: str


@dataclass(frozen=True, slots=True)
class BreakerClosed:
    """Enough probes succeeded, or the breaker was reset: calls go through again."""

    name: str


@dataclass(frozen=True, slots=True)
class BreakerForcedOpen:
    """Opened by hand: every call is rejected until ``reset()``, or for a while."""

    name: str
    retry_after: float | None = None
    """Seconds until it ends by itself (``force_open(for_=...)``); ``None``: at reset."""


@dataclass(frozen=True, slots=True)
class BreakerDisabled:
    """Switched off by hand: every call goes through, nothing is counted."""

    name: str


@dataclass(frozen=True, slots=True)
class CallRejected:
    """A call was not attempted because the breaker is open."""

    name: str
    retry_after: float | None


@dataclass(frozen=True, slots=True)
class CallAdmitted:
    """A call was let through the breaker and is about to run (pybreaker's ``before_call``)."""

    name: str
    probe: bool
    """Whether it is a half-open probe."""


@dataclass(frozen=True, slots=True)
class CallRecorded:
    """A call went through the breaker and ended with ``outcome``."""

    name: str
    outcome: Literal["success", "failure", "ignored"]
    duration: float
    """Seconds, on the configured clock."""
    probe: bool
    """Whether it was a half-open probe."""
    error: BaseException | None = field(default=None, compare=False)
    """The call's exception, when it raised (``None`` for a result or a cancellation);
    handed to listeners in this process only, never stored, not compared."""


BreakerEvent: TypeAlias = (
    BreakerCreated
    | BreakerOpened
    | BreakerHalfOpened
    | BreakerClosed
    | BreakerForcedOpen
    | BreakerDisabled
    | CallRejected
    | CallAdmitted
    | CallRecorded
)


@dataclass(frozen=True, slots=True)
class BulkheadRejected:
    """A call found its bulkhead full (no free slot, no place or no time to queue)."""

    name: str
    max_concurrent: int
    max_queue: int
    reason: str


@dataclass(frozen=True, slots=True)
class HedgeStarted:
    """A call of ``name`` had not answered in time: another attempt was started."""

    name: str
    attempt: int
    """The attempt started (2 for the first hedge)."""
    delay: float
    """Seconds after the call's start that it started."""


@dataclass(frozen=True, slots=True)
class HedgeWon:
    """A hedge (not the first attempt) answered first; the other attempts were cancelled."""

    name: str
    attempt: int


@dataclass(frozen=True, slots=True)
class RateLimited:
    """A rate limit held a call back: it waited ``delay`` seconds for its token, or, when
    ``rejected``, it was refused (``delay`` is then its ``retry_after``)."""

    name: str
    delay: float
    rejected: bool


@dataclass(frozen=True, slots=True)
class RetryScheduled:
    """Attempt ``attempt`` of a retried call failed: another starts after ``delay`` seconds."""

    name: str
    """The function (``module.qualname``) or the ``retrying`` block."""
    attempt: int
    """The number of the attempt that failed (the first is 1)."""
    error: BaseException
    """Its error (a ``resilient.RejectedResultError`` when ``on_result`` rejected its value)."""
    delay: float


@dataclass(frozen=True, slots=True)
class RetryGaveUp:
    """A retried call ended with a failure after ``attempts`` attempts: its rules said stop
    (attempts spent, a deadline, an error not to retry, an open circuit...)."""

    name: str
    attempts: int
    error: BaseException
    """The last error, as the caller gets it (a ``resilient.RejectedResultError`` holding the
    value returned when ``on_result`` rejected the last one)."""


@dataclass(frozen=True, slots=True)
class TimeoutExceeded:
    """A call ran past its ``@timeout`` of ``seconds``: the caller gets a
    ``TimeoutExceededError``."""

    name: str
    seconds: float
