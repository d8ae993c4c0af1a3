"""In-process aggregation with a background flusher, so recording never does I/O.

Recording appends to an in-process buffer (atomic under the GIL, no lock, no system call):
counters and gauges as tuples to one deque, timings as bare numbers to a list of their own
series, through a recorder made once per series (:meth:`BufferedSink.timing_recorder`), so timing a
call allocates nothing but its float. A daemon thread drains the buffers every
``flush_interval`` seconds, or as soon as ``batch_size`` items are waiting (in the deque,
or in one timing series), folds counters into sums and gauges into their last value, and
hands one batch to ``send``. A full buffer (``max_buffer`` items; per series for timings)
drops its oldest items and counts them in ``metrics_dropped_total``; whatever is buffered
is flushed at interpreter exit.
"""

from __future__ import annotations

import atexit
import functools
import os
import threading
import weakref
from collections import deque
from collections.abc import Callable
from random import random

from .._runtime import validate as _validate
from .._runtime.logs import digest, transitions
from .._runtime.types import Tags
from ..exceptions import ConfigError
from ._names import METRICS_DROPPED

__all__ = ["Batch", "BufferedSink"]

_Key = tuple[str, Tags]


_MAX_TIMER_SERIES = 10_000  # timing series with a buffer of their own; series are few


class Batch:
    """What one flush sends: summed counters, last gauges, every timing by series."""

    __slots__ = ("counters", "gauges", "series")

    def __init__(self) -> None:
        self.counters: dict[_Key, float] = {}
        self.gauges: dict[_Key, float] = {}
        self.series: dict[_Key, list[float]] = {}
        """Every timing of the flush, by series, in the order recorded."""

    @property
    def timings(self) -> list[tuple[str, Tags, float]]:
        """Every timing as ``(name, tags, ms)``, series by series."""
        return [(name, tags, ms) for (name, tags), values in self.series.items() for ms in values]

    def __bool__(self) -> bool:
        return bool(self.counters or self.gauges or self.series)


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
        self.flush_interval: float = _validate.required_duration(
            "flush_interval", flush_interval, allow_zero=False
        )
        self.batch_size: int = _validate.integer("batch_size", batch_size, minimum=1)
        self.max_buffer: int = _validate.integer("max_buffer", max_buffer, minimum=1)
        if self.max_buffer < self.batch_size:
            # The buffer is only checked once a batch is waiting: a smaller bound never holds.
            raise ConfigError("max_buffer", max_buffer, f">= batch_size ({self.batch_size})")
        self.sample_rate: float = _validate.fraction("sample_rate", sample_rate)
        if self.sample_rate == 0:
            raise ConfigError("sample_rate", sample_rate, "a number within (0, 1]")
        self._buffer: deque[tuple[str, str, Tags, float]] = deque()
        self._timers: dict[_Key, _Series] = {}
        self._recorders: dict[_Key, Callable[[float], None]] = {}
        self._series_lock = threading.Lock()
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
        record = self._recorders.get((name, tags))
        if record is None:
            record = self.timing_recorder(name, tags)
        record(ms)

    def timing_recorder(self, name: str, tags: Tags) -> Callable[[float], None]:
        """The recorder of one timing series: ``timing_recorder(name, tags)(ms)`` is ``timing(name,
        ms, tags)`` without looking the series up (what the observation step calls)."""
        key = (name, tags)
        with self._series_lock:
            record = self._recorders.get(key)
            if record is not None:
                return record
            if len(self._timers) >= _MAX_TIMER_SERIES:
                return functools.partial(self._untracked_timing, name, tags)
            series = self._timers[key] = _Series(self)
            record = series.sampled if self.sample_rate < 1.0 else series.record
            self._recorders[key] = record
            return record

    def _untracked_timing(self, name: str, tags: Tags, ms: float) -> None:
        # Past _MAX_TIMER_SERIES series: the shared deque, like counters and gauges.
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
                timings = sum(map(len, batch.series.values()))
                lost = timings + len(batch.counters) + len(batch.gauges)
                self._dropped += lost
                digest.report("metrics not sent", repr(self), f"{type(error).__name__}: {error}")

    def _drain(self) -> Batch:
        batch = Batch()
        counters, gauges, series = batch.counters, batch.gauges, batch.series
        with self._series_lock:
            timers = list(self._timers.items())
        dropped = 0
        for key, one in timers:
            values = one.values
            with one.lock:  # a full series drops its oldest values under it too
                count = len(values)
                if count:
                    # What a recorder appends meanwhile (without the lock: appends land
                    # after the first ``count`` items) stays for the next flush.
                    series[key] = values[:count]
                    del values[:count]
                if one.dropped:
                    dropped, one.dropped = dropped + one.dropped, 0
            one.limit = self.batch_size
        self._dropped += dropped
        buffer = self._buffer
        for _ in range(len(buffer)):
            kind, name, tags, value = buffer.popleft()
            if kind == "c":
                counters[name, tags] = counters.get((name, tags), 0) + value
            elif kind == "g":
                gauges[name, tags] = value
            else:
                series.setdefault((name, tags), []).append(value)
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


class _Series:
    """The buffer of one timing series and its recorder (a bound method: one frame)."""

    __slots__ = ("batch_size", "dropped", "limit", "lock", "max_buffer", "rate", "values", "wake")

    def __init__(self, sink: BufferedSink) -> None:
        self.values: list[float] = []
        self.lock = threading.Lock()
        """Held while a flush takes the values and while a full series drops its oldest
        (recording only appends, and takes no lock)."""
        self.batch_size = self.limit = sink.batch_size  # past limit, full() runs once
        self.max_buffer = sink.max_buffer
        self.rate = sink.sample_rate
        self.wake = sink._wake
        self.dropped = 0

    def record(self, ms: float) -> None:
        values = self.values
        values.append(ms)
        if len(values) >= self.limit:
            self.full()

    def sampled(self, ms: float) -> None:
        if random() < self.rate:
            self.record(ms)

    def full(self) -> None:
        """A batch is waiting: wake the flusher; past ``max_buffer``, drop the oldest
        ``batch_size`` at once (so a flusher that cannot keep up costs callers little)."""
        values = self.values
        if len(values) >= self.max_buffer:
            with self.lock:  # not between a flush's copy of the values and their removal
                if len(values) >= self.max_buffer:
                    lost = min(self.batch_size, len(values))
                    del values[:lost]
                    self.dropped += lost
        self.limit = self.max_buffer  # until the next drain
        self.wake.set()


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
        transitions.tick()
        del sink


def _restart_in_child(ref: weakref.ref[BufferedSink]) -> None:
    # After fork only the forking thread survives: give the child its own flusher.
    sink = ref()
    if sink is not None and not sink._closed:
        sink._buffer.clear()
        for series in sink._timers.values():
            series.values.clear()
            series.limit = series.batch_size
            series.lock = threading.Lock()
        # A lock another thread of the parent held at the fork stays held in the child.
        sink._series_lock = threading.Lock()
        sink._flush_lock = threading.Lock()
        sink._start()


def _close_at_exit(ref: weakref.ref[BufferedSink]) -> None:
    sink = ref()
    if sink is not None:
        sink.close()
