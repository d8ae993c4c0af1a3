"""The recent latencies of one function, and the hedge delay read from them (``"p95"``)."""

from __future__ import annotations

import threading
from collections import deque

__all__ = ["MIN_SAMPLES", "WINDOW", "Latencies"]

WINDOW = 64
"""How many of the latest answers the p95 is read from."""
MIN_SAMPLES = 16
"""Answers needed before a p95 is trusted: until then no hedge starts."""
_EVERY = 8
"""The delay is read again after this many new answers (sorting on every call would cost)."""


class Latencies:
    """A bounded window of answer times, in seconds, and the p95 last read from it."""

    __slots__ = ("delay", "fresh", "lock", "samples")

    def __init__(self) -> None:
        self.samples: deque[float] = deque(maxlen=WINDOW)
        self.delay: float | None = None  # None: too few answers yet, do not hedge
        self.fresh = 0  # answers since the delay was last read
        self.lock = threading.Lock()

    def add(self, seconds: float) -> None:
        with self.lock:
            self.samples.append(seconds)
            self.fresh += 1
            if self.fresh < _EVERY or len(self.samples) < MIN_SAMPLES:
                return
            self.fresh = 0
            ordered = sorted(self.samples)
        rank = max(0, -(-len(ordered) * 95 // 100) - 1)  # nearest rank
        self.delay = ordered[rank]
