"""``RetryBudget``: retries may be at most a fraction of the calls, so a dependency that
is down does not get a retry storm on top of its normal load.

A call costs a clock read and an increment; the budget is consulted only after a
failure, and never waits on I/O. Given a ``RedisStore``, the store's listener thread adds this
process's counts to the fleet's every ``cache_ttl`` seconds and brings back the fleet's
totals, so the ratio holds across processes (each may overshoot by what it retries
between two exchanges). Without a store, or while Redis is unreachable, the budget
counts this process alone.
"""

from __future__ import annotations

import math
import threading
from collections import deque

from .._runtime import config as _config
from .._runtime import validate as _validate
from ..exceptions import ConfigError

__all__ = ["RetryBudget"]

_state = _config.state


class RetryBudget:
    """At most ``ratio`` retries per call over the last ``window`` seconds, plus
    ``min_per_second`` retries per second that are always allowed (so a quiet service
    can still retry).

    ``RetryBudget(0.1)`` allows 10 % retries. Share one budget between the functions
    calling one dependency; pass ``store=RedisStore(...)`` (and a ``name``) to share it
    with every process using that Redis. Use it with ``@retry(budget=...)``.
    """

    def __init__(
        self,
        ratio: float = 0.1,
        *,
        window: float = 10.0,
        min_per_second: float = 1.0,
        name: str = "default",
        store: object | None = None,
    ) -> None:
        self.ratio: float = _validate.number("ratio", ratio, minimum=0.0)
        self.window: float = _validate.required_duration("window", window, allow_zero=False)
        self.min_per_second: float = _validate.number("min_per_second", min_per_second, minimum=0.0)
        given: object = name
        if not isinstance(given, str) or not name:
            raise ConfigError("name", name, "a non-empty string")
        self.name = name
        self.calls: int = 0
        """Calls in the second ``_second``, not yet in a bucket."""
        self._second = math.floor(_config.state.now())
        self._buckets: deque[list[int]] = deque()  # [second, calls, retries], oldest first
        self._unsynced = [0, 0]  # calls, retries not yet added to the fleet's counts
        self._fleet: tuple[float, int, int] | None = None  # (when, calls, retries)
        self._fresh_for = 0.0
        self._lock = threading.Lock()
        track = getattr(store, "track_budget", None)
        if store is not None and track is None and not hasattr(store, "cell"):
            raise ConfigError("store", store, "a state store (RedisStore shares the budget)")
        if track is not None:
            track(self)  # a store without it (MemoryStore) keeps the budget local

    def record_call(self) -> None:
        """Count one call (the increment is not locked: a lost one is harmless)."""
        second = math.floor(_state.now())
        if second != self._second:
            with self._lock:
                self._roll(second)
        self.calls += 1

    def allow_retry(self) -> bool:
        """Whether one more retry fits in the budget; if so it is counted."""
        now = _state.now()
        with self._lock:
            self._roll(math.floor(now))
            calls, retries = self._totals(now)
            if retries + 1 > calls * self.ratio + self.min_per_second * self.window:
                return False
            self._buckets[-1][2] += 1
            self._unsynced[1] += 1
            return True

    def _roll(self, second: int) -> None:
        """Move the counted calls into their second's bucket; drop buckets out of the
        window. The caller holds the lock."""
        pending, self.calls = self.calls, 0
        buckets = self._buckets
        if not buckets or buckets[-1][0] != self._second:
            buckets.append([self._second, 0, 0])
        buckets[-1][1] += pending
        self._unsynced[0] += pending
        if second != self._second:
            buckets.append([second, 0, 0])
            self._second = second
        oldest = second - math.ceil(self.window) + 1
        while buckets[0][0] < oldest:
            buckets.popleft()

    def _totals(self, now: float) -> tuple[int, int]:
        fleet = self._fleet
        if fleet is not None and now - fleet[0] <= self._fresh_for:
            return fleet[1] + self._unsynced[0], fleet[2] + self._unsynced[1]
        return sum(b[1] for b in self._buckets), sum(b[2] for b in self._buckets)

    # --- for a store that shares the budget ------------------------------------------------

    def take_unsynced(self, fresh_for: float) -> tuple[int, int]:
        """The calls and retries the fleet has not seen yet (they are now its to count)."""
        with self._lock:
            self._roll(math.floor(_state.now()))
            self._fresh_for = fresh_for
            calls, retries = self._unsynced
            self._unsynced = [0, 0]
        return calls, retries

    def synced(self, calls: int, retries: int) -> None:
        """The fleet's totals over the window, as of now."""
        with self._lock:
            self._fleet = (_state.now(), calls, retries)

    def __repr__(self) -> str:
        calls = sum(b[1] for b in self._buckets) + self.calls
        retries = sum(b[2] for b in self._buckets)
        return (
            f"<RetryBudget {self.name!r} ratio={self.ratio:g} window={self.window:g}s "
            f"calls={calls} retries={retries}>"
        )
