"""In-process aggregation with a background flusher, so recording never does I/O.

Recording appends one tuple to a deque (atomic under the GIL, no lock, no system call).
A daemon thread drains it every ``flush_interval`` seconds, or as soon as ``batch_size``
items are waiting, folds counters into sums and gauges into their last value, and hands
one batch to ``send``. A full buffer drops its oldest items and counts them in
``metrics_dropped_total``; whatever is buffered is flushed at interpreter exit.
"""

from __future__ import annotations

import atexit
import functools
import os
import threading
import weakref
from collections import deque
from random import random

from .._runtime import validate as _validate
from .._runtime.logs import digest
from .._runtime.types import Tags
from ..exceptions import ConfigError
from ._names import METRICS_DROPPED

__all__ = ["Batch", "BufferedSink"]

_Key = tuple[str, Tags]


class Batch:
    """What one flush sends: summed counters, last gauges, every timing."""

    __slots__ = ("counters", "gauges", "timings")

    def __init__(self) -> None:
        self.counters: dict[_Key, float] = {}
        self.gauges: dict[_Key, float] = {}
        self.timings: list[tuple[str, Tags, float]] = []

    def __bool__(self) -> bool:
        return bool(self.counters or self.gauges or self.timings)


class BufferedSink:
    """Base of the sinks that send in batches from a background thread."""

    def __init__(
        self,
        *,
        flush_interval: float = 0.5,
        batch_size: int = 1000,
        max_buffer: int = 100_000,
        sample_rate: float = 1.0,
    ) -> None:
        self.flush_interval = _validate.required_duration(
            "flush_interval", flush_interval, allow_zero=False
        )
        self.batch_size = _validate.integer("batch_size", batch_size, minimum=1)
        self.max_buffer = _validate.integer("max_buffer", max_buffer, minimum=1)
        if self.max_buffer < self.batch_size:
            # The buffer is only checked once a batch is waiting: a smaller bound never holds.
            raise ConfigError("max_buffer", max_buffer, f">= batch_size ({self.batch_size})")
        self.sample_rate = _validate.fraction("sample_rate", sample_rate)
        if self.sample_rate == 0:
            raise ConfigError("sample_rate", sample_rate, "a number within (0, 1]")
        self._buffer: deque[tuple[str, str, Tags, float]] = deque()
        self._dropped = 0
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._start()
        atexit.register(_close_at_exit, weakref.ref(self))
        os.register_at_fork(after_in_child=functools.partial(_restart_in_child, weakref.ref(self)))

    # Recording: the hot path.

    def increment(self, name: str, value: float = 1, tags: Tags = ()) -> None:
        buffer = self._buffer
        if len(buffer) >= self.batch_size:
            self._full()
        buffer.append(("c", name, tags, value))

    def gauge(self, name: str, value: float, tags: Tags = ()) -> None:
        buffer = self._buffer
        if len(buffer) >= self.batch_size:
            self._full()
        buffer.append(("g", name, tags, value))

    def timing(self, name: str, ms: float, tags: Tags = ()) -> None:
        if self.sample_rate < 1.0 and random() >= self.sample_rate:
            return
        buffer = self._buffer
        if len(buffer) >= self.batch_size:
            self._full()
        buffer.append(("ms", name, tags, ms))

    def _full(self) -> None:
        """A batch is waiting: wake the flusher; past ``max_buffer``, drop the oldest."""
        if len(self._buffer) >= self.max_buffer:
            self._buffer.popleft()
            self._dropped += 1
        if not self._wake.is_set():
            self._wake.set()

    # Sending: the background thread.

    def send(self, batch: Batch) -> None:
        """Deliver one batch (subclasses); exceptions are logged once per kind."""
        raise NotImplementedError

    def flush(self) -> None:
        """Drain the buffer now and send it as one batch."""
        with self._flush_lock:
            batch = self._drain()
            if not batch:
                return
            try:
                self.send(batch)
            except Exception as error:
                lost = len(batch.timings) + len(batch.counters) + len(batch.gauges)
                self._dropped += lost
                digest.report("metrics not sent", repr(self), f"{type(error).__name__}: {error}")

    def _drain(self) -> Batch:
        batch = Batch()
        counters, gauges, timings = batch.counters, batch.gauges, batch.timings
        buffer = self._buffer
        for _ in range(len(buffer)):
            kind, name, tags, value = buffer.popleft()
            if kind == "c":
                counters[name, tags] = counters.get((name, tags), 0) + value
            elif kind == "g":
                gauges[name, tags] = value
            else:
                timings.append((name, tags, value))
        dropped, self._dropped = self._dropped, 0
        if dropped:
            counters[METRICS_DROPPED, ()] = counters.get((METRICS_DROPPED, ()), 0) + dropped
        return batch

    def _start(self) -> None:
        self._thread = threading.Thread(
            target=_run, args=(weakref.ref(self),), name=f"resilient-{type(self).__name__}"
        )
        self._thread.daemon = True
        self._thread.start()

    def close(self) -> None:
        """Flush what is left, stop the background thread and release the connection."""
        self._closed = True
        self._wake.set()
        self.flush()
        self.disconnect()

    def disconnect(self) -> None:
        """Release whatever ``send`` holds open (subclasses)."""


def _run(ref: weakref.ref[BufferedSink]) -> None:
    while True:
        sink = ref()
        if sink is None or sink._closed:
            return
        wake, interval = sink._wake, sink.flush_interval
        del sink  # hold no reference while waiting, so an unused sink can be collected
        wake.wait(interval)
        wake.clear()
        sink = ref()
        if sink is None or sink._closed:
            return  # close() flushes the rest itself, then releases the connection
        sink.flush()
        digest.tick()
        del sink


def _restart_in_child(ref: weakref.ref[BufferedSink]) -> None:
    # After fork only the forking thread survives: give the child its own flusher.
    sink = ref()
    if sink is not None and not sink._closed:
        sink._buffer.clear()
        sink._start()


def _close_at_exit(ref: weakref.ref[BufferedSink]) -> None:
    sink = ref()
    if sink is not None:
        sink.close()
