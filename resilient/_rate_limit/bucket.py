"""The decision of a rate limit, without I/O: GCRA, the token bucket as one number.

``Bucket`` keeps the *theoretical arrival time* ``tat``: the time at which the bucket
would be full again were nothing more taken. Taking one token moves it ``interval``
(``per / rate``) later; a call may go now while ``tat`` stays within ``burst`` intervals
of now. This admits at most ``burst + rate x t`` calls in any window of ``t`` seconds
(the property test in ``tests/rate_limit`` checks it), the same as a bucket of ``burst``
tokens refilled at ``rate`` per ``per``, with one float instead of two and no refill loop.
"""

from __future__ import annotations

__all__ = ["SLACK", "Bucket"]

SLACK = 1e-9
"""Seconds of float rounding forgiven: ``burst`` tokens taken one by one at one instant
add up to a hair more than ``burst`` intervals, and the last one must still go."""


class Bucket:
    """A token bucket: ``burst`` tokens, one more every ``interval`` seconds.

    Not locked: the caller holds its own lock around ``reserve``.
    """

    __slots__ = ("burst", "interval", "span", "tat")

    def __init__(self, interval: float, burst: int) -> None:
        self.interval = interval
        self.burst = burst
        self.span = interval * burst
        """How far ahead of now ``tat`` may be after a token is taken."""
        self.tat = float("-inf")

    def reserve(self, now: float, patience: float) -> float:
        """Take one token; the seconds to wait before using it (``0.0``: now).

        A token that would come ``patience`` seconds from now or later is not taken:
        the answer is then the wait it would need, at least ``patience`` (the caller
        refuses the call with that ``retry_after``).
        """
        tat = self.tat
        if tat < now:
            tat = now
        tat += self.interval
        wait = tat - now - self.span
        if wait <= SLACK:
            self.tat = tat
            return 0.0
        if wait < patience:
            self.tat = tat
        return wait

    def refund(self, ticket: float) -> None:
        """Give back the token of a reservation whose wait was cut short; ``ticket`` is
        ``tat`` just after it was made. Only the latest reservation goes back: giving
        back an earlier one would let a later call share a token's time with another."""
        if self.tat == ticket:
            self.tat -= self.interval

    def available(self, now: float) -> float:
        """Tokens free now (fractional)."""
        tat = self.tat if self.tat > now else now
        return (self.span - (tat - now)) / self.interval

    def __repr__(self) -> str:
        return f"<Bucket interval={self.interval:g}s burst={self.burst}>"
