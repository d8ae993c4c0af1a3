"""``resilient.stats(fn)``: what ``@retry`` did for one function, counted off the hot path.

Only calls whose first attempt fails are counted: counting every call would add work to
each successful call, which ``@retry`` promises not to do (the number of calls is the
metrics' business). Everything here is updated after a failure, without a lock (a lock
would add a third to the cost of a retried call): failures in several threads at the
same instant may, rarely, be counted once instead of twice.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

from .._runtime import config as _config
from .._wrapping.layer import layers_of, name_of
from ..exceptions import ConfigError

__all__ = ["RetryStats", "Tally", "stats"]


@dataclass(frozen=True, slots=True)
class RetryStats:
    """A snapshot of what ``@retry`` (or a ``retrying`` block) did since the last reset.

    Counted only for calls whose first attempt failed (or returned a result
    ``on_result`` rejected); a call that succeeds at once costs nothing and is not
    counted.
    """

    retried_calls: int = 0
    """Calls whose first attempt failed, so that the retry rules were asked."""
    attempts: int = 0
    """Attempts those calls made, their first ones included."""
    retries: int = 0
    """Attempts made again after a failure (each after one wait, maybe of zero seconds)."""
    gave_up: int = 0
    """Calls that ended with an error (or a rejected result) after the rules said stop."""
    last_error: BaseException | None = None
    """The most recent failure (a ``RejectedResultError`` for a rejected value)."""
    idle_for: float = 0.0
    """Seconds spent waiting between attempts, in total (tenacity's ``idle_for``)."""
    attempt_number: int = 0
    """Attempts made by the most recent retried call (tenacity's ``attempt_number``)."""


class Tally:
    """The live counters behind a ``RetryStats``, one per retried function or block.

    The retry plan adds each retry to ``retries``, ``attempts``, ``attempt_number`` and
    ``idle_for`` itself (inline: it runs on every retry)."""

    __slots__ = (
        "__weakref__",
        "attempt_number",
        "attempts",
        "gave_up",
        "idle_for",
        "last_error",
        "retried_calls",
        "retries",
    )

    def __init__(self) -> None:
        self.clear()
        _tallies.add(self)

    def clear(self) -> None:
        self.retried_calls: int = 0
        self.attempts: int = 0
        self.retries: int = 0
        self.gave_up: int = 0
        self.last_error: BaseException | None = None
        self.idle_for: float = 0.0
        self.attempt_number: int = 0

    def failed_first(self, error: BaseException) -> None:
        """A call's first attempt failed with ``error``."""
        self.retried_calls += 1
        self.attempts += 1
        self.attempt_number = 1
        self.last_error = error

    def failed_again(self, error: BaseException) -> None:
        """A retried attempt failed with ``error``."""
        self.last_error = error

    def gave_up_once(self) -> None:
        self.gave_up += 1

    def snapshot(self) -> RetryStats:
        return RetryStats(
            self.retried_calls,
            self.attempts,
            self.retries,
            self.gave_up,
            self.last_error,
            self.idle_for,
            self.attempt_number,
        )


_tallies: weakref.WeakSet[Tally] = weakref.WeakSet()


@_config.on_reset
def _clear_all() -> None:
    for tally in list(_tallies):
        tally.clear()


def stats(fn: Any) -> RetryStats:
    """What ``@retry`` did for ``fn`` (a decorated function or method, or a ``retrying``
    block) since it was decorated or ``resilient.testing.reset()`` ran.

    With several ``@retry`` layers, the outermost one's. Calls that succeed at their first
    attempt are not counted (see ``RetryStats``).
    """
    own = getattr(fn, "tally", None)
    if isinstance(own, Tally):  # a retrying() block
        return own.snapshot()
    layer = next((layer for layer in layers_of(fn) if layer.kind == "retry"), None)
    if layer is None:
        raise ConfigError("fn", fn, "a function decorated with @resilient.retry, or a block")
    tallies: dict[str, Tally] = getattr(layer, "tallies", {})
    tally = tallies.get(name_of(getattr(fn, "__wrapped__", fn)))
    if tally is None:  # a callable object's stack: the layer wraps that one target
        tally = next(iter(tallies.values()), None)
    return tally.snapshot() if tally is not None else RetryStats()
