"""Metrics scenarios: what recording costs, and whether StatsD receives every value.

Metrics are configured process-wide (``resilient.configure(metrics=...)``), so each row
installs its own sink before each of its repeats (off the clock), and every scenario
ends with ``resilient.testing.reset()``.
"""

from __future__ import annotations

import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _harness import (
    REPO_ROOT,
    Impl,
    Looper,
    Options,
    Row,
    Scenario,
    ScenarioResult,
    Target,
    TargetResult,
    TimedScenario,
    register,
)
from foundation import plain

Fn = Callable[[], Any]


def _stack(name: str, fn: Fn) -> Fn:
    """``@retry`` over ``@breaker``, the canonical order; the breaker never trips."""
    import resilient

    config = resilient.BreakerConfig.standard.replace(failure_threshold=1_000_000)
    guarded = resilient.breaker(name, config)(fn)
    return resilient.retry(attempts=3, initial_delay=0.0, jitter=0.0)(guarded)


# --------------------------------------------------------------------------
# 1. the cost of recording: StatsdSink vs NullSink vs metrics off


class UdpDrain:
    """A UDP socket on 127.0.0.1 that a daemon thread reads and discards."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        threading.Thread(target=self._drain, name="bench-udp-drain", daemon=True).start()

    def _drain(self) -> None:
        buffer = bytearray(65536)
        with suppress(OSError):
            while self.sock.recv_into(buffer):  # 0 once shut down
                pass

    def close(self) -> None:
        with suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked recv_into
        self.sock.close()


@dataclass
class SinkImpl(Impl):
    """A row run under ``resilient.configure(metrics=sink(cleanup))``.

    ``sink`` builds the sink (``None``: metrics off) and registers on ``cleanup`` (an
    ``ExitStack``) whatever must be closed when the scenario ends.
    """

    sink: Callable[[ExitStack], Any] = lambda cleanup: None


@dataclass
class SinkScenario(TimedScenario):
    """Rows differ by the configured sink; a repeat includes flushing what it recorded."""

    def run(self, opts: Options) -> ScenarioResult:
        import resilient.testing

        self._split: dict[str, list[int]] = {}  # row -> [calls, ns in loops, ns flushing]
        resilient.testing.reset()
        with ExitStack() as cleanup:
            cleanup.callback(resilient.testing.reset)
            self._cleanup = cleanup
            result = super().run(opts)
        for name, (calls, loop_ns, flush_ns) in self._split.items():
            if flush_ns < calls:  # under 1 ns/call: nothing to flush
                continue
            result.notes.append(
                f"{name}: {loop_ns / calls:,.0f} ns/call in the loop "
                f"+ {flush_ns / calls:,.0f} ns/call flushing after it"
            )
        return result

    def _prepare(self, impl: Impl, row: Row, loop: Any, opts: Options) -> tuple[Looper, int] | None:
        import resilient

        try:
            sink = impl.sink(self._cleanup) if isinstance(impl, SinkImpl) else None
        except Exception as exc:
            row.status = f"error: {type(exc).__name__}: {exc}"
            return None
        resilient.configure(metrics=sink)
        prepared = super()._prepare(impl, row, loop, opts)  # checks and calibrates
        if prepared is None:
            return None
        looper, n = prepared
        flush = sink.flush if sink is not None else lambda: None
        flush()  # off the clock: what the check and the calibration recorded
        split = self._split[impl.name] = [0, 0, 0]

        def timed(n: int) -> int:
            resilient.configure(metrics=sink)  # off the clock: the rows take turns
            elapsed = looper(n)
            # What these n calls recorded leaves the process on the clock, counted in CPU
            # time: the sink's pauses between bursts would cost a background thread nothing.
            started = time.thread_time_ns()
            flush()
            flushing = time.thread_time_ns() - started
            split[0] += n
            split[1] += elapsed
            split[2] += flushing
            return elapsed + flushing

        return timed, n


def _statsd_sink(cleanup: ExitStack) -> Any:
    from resilient.metrics import StatsdSink

    drain = UdpDrain()
    cleanup.callback(drain.close)
    sink = StatsdSink("127.0.0.1", drain.port)
    cleanup.callback(sink.close)  # runs before drain.close
    return sink


def _null_sink(cleanup: ExitStack) -> Any:
    from resilient.metrics import NullSink

    return NullSink()


# --------------------------------------------------------------------------
# 2. nothing lost: the reference StatsD daemon counts every value


def _statsd_js() -> tuple[str, str] | str:
    """``(node, stats.js)``, or why the daemon cannot run."""
    tests = str(REPO_ROOT / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    try:
        from statsd_daemon import find_daemon
    except ImportError as exc:
        return f"tests/statsd_daemon.py does not import ({exc})"
    found = find_daemon()
    if found is None:
        return "needs node and `npm install --prefix .ci/node statsd` (what .ci/run does)"
    return found


@contextmanager
def statsd_daemon(node: str, script: str) -> Iterator[Any]:
    """The daemon from ``tests/statsd_daemon.py``, in a temporary folder."""
    from statsd_daemon import running_daemon

    with tempfile.TemporaryDirectory() as tmp, running_daemon(node, script, Path(tmp)) as daemon:
        yield daemon


def _flaky(label: str) -> Fn:
    """Fails every odd call; named so its metrics carry ``policy=metrics.<label>``."""
    calls = 0

    def flaky() -> int:
        nonlocal calls
        calls += 1
        if calls & 1:
            raise ConnectionError("odd call")
        return 1

    flaky.__qualname__ = flaky.__name__ = label
    flaky.__module__ = __name__
    return flaky


def paced_calls(fn: Fn, calls: int, seconds: float, ticks: int = 100) -> float:
    """Make ``calls`` calls in ``ticks`` even bursts over ``seconds``; return the time taken."""
    made, started = 0, time.perf_counter()
    for tick in range(1, ticks + 1):
        for _ in range(calls * tick // ticks - made):
            fn()
        made = calls * tick // ticks
        wait = started + seconds * tick / ticks - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
    return time.perf_counter() - started


def received(daemon: Any, label: str, calls: int, patience: float = 2.0) -> tuple[float, int]:
    """``(retry_attempts_total, request_latency_ms values)`` for ``label`` once settled.

    Polls until both reach ``calls`` or stop changing for ``patience`` seconds.
    """
    last, still_since = (-1.0, -1), time.monotonic()
    while True:
        counters, timers = daemon.counters(), daemon.timer_counts()
        now = (
            sum(v for k, v in counters.items() if k.startswith("retry_attempts") and label in k),
            sum(n for k, n in timers.items() if k.startswith("request_latency") and label in k),
        )
        if now == (calls, calls):
            return now
        if now != last:
            last, still_since = now, time.monotonic()
        elif time.monotonic() - still_since > patience:
            return now
        time.sleep(0.05)


@dataclass
class LosslessScenario(Scenario):
    """Paced decorated calls into the reference StatsD daemon; counts what arrived."""

    name: str
    calls: int = 50_000
    seconds: float = 5.0
    protocols: tuple[str, ...] = ("udp", "tcp")
    notes: list[str] = field(default_factory=list)

    def run(self, opts: Options) -> ScenarioResult:
        calls, seconds = self.calls, self.seconds
        if opts.min_time < 0.1:  # --quick: a tenth of the work
            calls, seconds = calls // 10, seconds / 10
        found = _statsd_js()
        if isinstance(found, str):
            text = f"skipped: the reference StatsD daemon {found}"
            row = Row("statsd daemon", "ours", status="not installed")
            return ScenarioResult(self.name, [row], TargetResult(text, "SKIP"), list(self.notes))
        rows = [Row("calls made", "bare", ns=calls, min_ns=calls, n=calls)]
        notes = [
            "figures are counts of values, not ns; x bare = received / made",
            f"each call fails once then succeeds (one retry); {calls:,} calls over ~{seconds:g} s",
        ]
        try:
            with statsd_daemon(*found) as daemon:
                for protocol in self.protocols:
                    rows += self._one(daemon, protocol, calls, seconds, notes)
                bad = daemon.counters().get("statsd.bad_lines_seen", 0)
        except Exception as exc:  # report, never crash
            rows.append(Row("statsd daemon", "ours", status=f"error: {type(exc).__name__}: {exc}"))
            bad = 0
        if bad:
            notes.append(f"the daemon saw {bad:,.0f} bad lines")
        short = [r.impl for r in rows if r.role == "ours" and r.ns != calls]
        text = f"every value received ({len(rows) - 1} series)"
        target = TargetResult(
            f"{text}; short: {', '.join(short)}" if short else text, "FAIL" if short else "PASS"
        )
        return ScenarioResult(self.name, rows, target, notes + self.notes)

    @staticmethod
    def _one(daemon: Any, protocol: str, calls: int, seconds: float, notes: list[str]) -> list[Row]:
        import resilient
        import resilient.testing
        from resilient.metrics import StatsdSink

        label = f"lossless_{protocol}"
        names = (f"{protocol} retry_attempts", f"{protocol} request_latency")
        port = daemon.port if protocol == "udp" else daemon.tcp_port
        resilient.testing.reset()
        try:
            sink = StatsdSink("127.0.0.1", port, protocol=protocol)  # type: ignore[arg-type]
            try:
                resilient.configure(metrics=sink)
                took = paced_calls(_stack(f"bench-{label}", _flaky(label)), calls, seconds)
            finally:
                sink.close()
        except Exception as exc:
            status = f"error: {type(exc).__name__}: {exc}"
            return [Row(name, "ours", status=status) for name in names]
        finally:
            resilient.testing.reset()
        counted = received(daemon, label, calls)
        notes.append(f"{protocol}: the calls took {took:.2f} s")
        return [
            Row(name, "ours", ns=value, min_ns=value, n=calls)
            for name, value in zip(names, counted, strict=True)
        ]


# --------------------------------------------------------------------------
# registration

register(
    SinkScenario(
        "metrics statsd vs null sink",
        [
            SinkImpl("metrics=None (off)", "bare", lambda: _stack("bench-metrics-off", plain)),
            SinkImpl(
                "NullSink", "reference", lambda: _stack("bench-metrics-null", plain), _null_sink
            ),
            SinkImpl(
                "StatsdSink (udp)",
                "ours",
                lambda: _stack("bench-metrics-statsd", plain),
                _statsd_sink,
            ),
        ],
        Target("reference", 1.5),
        notes=[
            "@retry over @breaker, success path; a repeat includes the CPU time of its final flush",
            "StatsdSink sends to a local UDP socket drained by a thread of this process",
        ],
    ),
    LosslessScenario("metrics statsd nothing lost"),
)
