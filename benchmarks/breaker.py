"""Circuit breaker scenarios: closed success path, open rejection, concurrent calls,
and the memory an idle breaker costs before and after eviction.

Every row builds its own breaker (ours under a name no other row uses). Open rows
trip their breaker the same way for every library, with one failing call through a
breaker whose threshold is 1 and whose reset timeout is an hour, then time a wrapper
that catches the library's open error. pybreaker has no asyncio support (only
Tornado), so it is absent from the async rows.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import threading
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from _harness import (
    EXPECTED,
    Impl,
    Options,
    Row,
    Scenario,
    ScenarioResult,
    Target,
    TargetResult,
    TimedScenario,
    register,
)
from foundation import aplain, plain

Fn = Callable[[], Any]
HOUR = 3600


def _stays_closed() -> Any:
    """Our config for rows that must stay closed (peers keep their defaults)."""
    import resilient

    return resilient.BreakerConfig.standard.replace(failure_threshold=1_000_000)


def _trips_at_once() -> Any:
    import resilient

    return resilient.BreakerConfig(failure_threshold=1, reset_timeout=HOUR)


def boom() -> int:
    raise ValueError("trip the breaker")


async def aboom() -> int:
    raise ValueError("trip the breaker")


def _rejecting(guarded: Fn, error: type[BaseException] | tuple[type[BaseException], ...]) -> Fn:
    """Trip ``guarded`` with one failure; return a call that expects the open error.

    Should the breaker let a call through, ``boom`` raises ValueError: the row errors.
    """
    try:
        guarded()
    except Exception:
        pass

    def rejected() -> int:
        try:
            guarded()
        except error:
            return 1
        return 0

    return rejected


def _arejecting(guarded: Fn, error: type[BaseException] | tuple[type[BaseException], ...]) -> Fn:
    """Async :func:`_rejecting`; the tripping call runs in a throwaway event loop."""
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(guarded())
    except Exception:
        pass
    finally:
        loop.close()

    async def rejected() -> int:
        try:
            await guarded()
        except error:
            return 1
        return 0

    return rejected


class BareOpenError(Exception):
    """What the bare rejection rows raise: the floor is raising and catching one."""


def bare_rejection() -> int:
    try:
        raise BareOpenError
    except BareOpenError:
        return 1


async def abare_rejection() -> int:
    try:
        raise BareOpenError
    except BareOpenError:
        return 1


# --------------------------------------------------------------------------
# 1-2. closed success path


def _closed_ours(name: str, fn: Fn) -> Fn:
    import resilient

    return resilient.breaker(name, _stays_closed())(fn)


def _closed_pybreaker() -> Fn:
    import pybreaker

    return pybreaker.CircuitBreaker()(plain)  # type: ignore[no-any-return]


def _closed_circuitbreaker(fn: Fn) -> Fn:
    from circuitbreaker import CircuitBreaker

    return CircuitBreaker()(fn)  # type: ignore[no-any-return]


def _closed_purgatory() -> Fn:
    from purgatory import SyncCircuitBreakerFactory

    return SyncCircuitBreakerFactory()("bench-closed")(plain)  # type: ignore[no-any-return]


def _closed_apurgatory() -> Fn:
    from purgatory import AsyncCircuitBreakerFactory

    return AsyncCircuitBreakerFactory()("bench-closed-async")(aplain)  # type: ignore[no-any-return]


def _closed_aiobreaker() -> Fn:
    import aiobreaker

    return aiobreaker.CircuitBreaker()(aplain)  # type: ignore[no-any-return]


# --------------------------------------------------------------------------
# 3. open rejection path


def _open_ours(name: str, fn: Fn, reject: Callable[[Fn, Any], Fn]) -> Fn:
    import resilient

    return reject(resilient.breaker(name, _trips_at_once())(fn), resilient.CircuitOpenError)


def _open_pybreaker() -> Fn:
    import pybreaker

    cb = pybreaker.CircuitBreaker(fail_max=1, reset_timeout=HOUR)
    return _rejecting(cb(boom), pybreaker.CircuitBreakerError)


def _open_circuitbreaker(fn: Fn, reject: Callable[[Fn, Any], Fn]) -> Fn:
    from circuitbreaker import CircuitBreaker, CircuitBreakerError

    cb = CircuitBreaker(failure_threshold=1, recovery_timeout=HOUR)
    return reject(cb(fn), CircuitBreakerError)


def _open_purgatory() -> Fn:
    from purgatory import SyncCircuitBreakerFactory
    from purgatory.domain.model import OpenedState

    factory = SyncCircuitBreakerFactory()
    return _rejecting(factory("bench-open", threshold=1, ttl=HOUR)(boom), OpenedState)


def _open_apurgatory() -> Fn:
    from purgatory import AsyncCircuitBreakerFactory
    from purgatory.domain.model import OpenedState

    factory = AsyncCircuitBreakerFactory()
    return _arejecting(factory("bench-open-async", threshold=1, ttl=HOUR)(aboom), OpenedState)


def _open_aiobreaker() -> Fn:
    import aiobreaker

    cb = aiobreaker.CircuitBreaker(fail_max=1, timeout_duration=timedelta(seconds=HOUR))
    return _arejecting(cb(aboom), aiobreaker.CircuitBreakerError)


# --------------------------------------------------------------------------
# 4. concurrent slow calls through one breaker


def slow_call() -> int:
    time.sleep(0.05)
    return 1


def _threads_ours() -> Fn:
    import resilient

    return resilient.breaker("bench-threads", _stays_closed())(slow_call)


def _threads_pybreaker() -> Fn:
    import pybreaker

    return pybreaker.CircuitBreaker()(slow_call)  # type: ignore[no-any-return]


def wall_time_ns(fn: Fn, threads: int) -> int:
    """Start ``threads`` threads, release them together, each calls ``fn`` once."""
    gate = threading.Barrier(threads + 1)
    results: list[object] = []

    def worker() -> None:
        gate.wait()
        results.append(fn())

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for worker_thread in workers:
        worker_thread.start()
    gate.wait()
    started = time.perf_counter_ns()
    for worker_thread in workers:
        worker_thread.join()
    elapsed = time.perf_counter_ns() - started
    if results != [EXPECTED] * threads:
        raise AssertionError(f"returned {results!r}")
    return elapsed


@dataclass
class ConcurrentScenario(Scenario):
    """Wall time (ns) of ``threads`` concurrent calls, median over the repeats."""

    name: str
    impls: list[Impl]
    threads: int
    target: Target | None = None
    notes: list[str] = field(default_factory=list)

    def run(self, opts: Options) -> ScenarioResult:
        rows = [Row(impl.name, impl.role) for impl in self.impls]
        built = [(row, _built(impl, row)) for impl, row in zip(self.impls, rows, strict=True)]
        for _ in range(opts.repeats):  # interleaved, as TimedScenario does
            for row, fn in built:
                if row.status != "ok":
                    continue  # not installed, or failed in an earlier repeat
                try:
                    row.repeats_ns.append(wall_time_ns(fn, self.threads))
                except Exception as exc:
                    row.status = f"error: {type(exc).__name__}: {exc}"
        for row in rows:
            if row.status == "ok" and row.repeats_ns:
                row.ns = statistics.median(row.repeats_ns)
                row.min_ns, row.n = min(row.repeats_ns), self.threads
        seconds = ", ".join(f"{r.impl} {r.ns / 1e9:.3f} s" for r in rows if r.ok and r.ns)
        notes = [f"figures are wall time in ns for the whole batch: {seconds}", *self.notes]
        target = self.target.evaluate(rows) if self.target else None
        return ScenarioResult(self.name, rows, target, notes)


def _built(impl: Impl, row: Row) -> Fn:
    try:
        return impl.factory()
    except ImportError as exc:
        row.status = f"error: {exc}" if impl.role == "ours" else "not installed"
    except Exception as exc:
        row.status = f"error: {type(exc).__name__}: {exc}"
    return plain  # never called: the row is not "ok"


# --------------------------------------------------------------------------
# memory of idle breakers

MAX_BYTES_PER_IDLE = 2048  # target: an idle breaker costs at most 2 KB in the process
MAX_AFTER_EVICTION = 5_000_000  # target: 1e5 idle names evicted -> back under 5 MB


def _idle_names(count: int) -> list[str]:
    return [f"host-{i:06d}.bench.example" for i in range(count)]


def _timed_ms(fn: Callable[[], object]) -> float:
    gc.collect()  # a collection the step did not cause must not land in its time
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


@dataclass
class IdleMemoryScenario(Scenario):
    """``count`` breakers made by name and left idle, then evicted after ``idle_timeout``.

    The figure is bytes per idle breaker (tracemalloc: registry entry, store cell,
    ``open_circuits`` gauge, listener bookkeeping), not ns. The target line also gives the
    memory left once the idle time passed and the registry swept them. A second run without
    tracemalloc times the health report and a ``metrics=`` decoration before and after.
    """

    name: str
    count: int
    quick_count: int

    def run(self, opts: Options) -> ScenarioResult:
        import resilient
        from resilient._breaker.registry import SWEEP_BATCH
        from resilient.compat import CircuitBreakerRegistry
        from resilient.metrics import MemorySink
        from resilient.telemetry import generate_report
        from resilient.testing import FakeClock, use_clock

        count = self.quick_count if opts.repeats < 5 else self.count
        names = _idle_names(count)
        registry = CircuitBreakerRegistry.instance
        row = Row(f"resilient ({count:,} names)", "ours")
        resilient.testing.reset()
        clock = FakeClock()
        try:
            with use_clock(clock):
                registry.get_or_create("bench-warm-up")  # load what loads on first use
                generate_report()
                gc.collect()
                tracemalloc.start()
                base = tracemalloc.get_traced_memory()[0]
                for name in names:
                    registry.get_or_create(name)
                gc.collect()
                per_idle = (tracemalloc.get_traced_memory()[0] - base) / count
                clock.advance(registry.idle_timeout or 0.0)
                registry.evict_idle()  # what the reports' sweeps do a batch at a time
                gc.collect()
                left = tracemalloc.get_traced_memory()[0] - base
                tracemalloc.stop()
            resilient.testing.reset()  # this also puts the system clock back
            with use_clock(clock):
                for name in names:  # again, untraced, to time what they cost
                    registry.get_or_create(name)
                report_ms = _timed_ms(generate_report)
                decorate_ms = _timed_ms(lambda: resilient.retry(metrics=MemorySink()))
                clock.advance(registry.idle_timeout or 0.0)
                batch_ms = _timed_ms(generate_report)  # the report sweeps one batch
                sweep_ms = _timed_ms(registry.evict_idle)
                report_after_ms = _timed_ms(generate_report)
                decorate_after_ms = _timed_ms(lambda: resilient.retry(metrics=MemorySink()))
        finally:
            if tracemalloc.is_tracing():
                tracemalloc.stop()
            resilient.testing.reset()
        row.ns, row.min_ns, row.n, row.repeats_ns = per_idle, per_idle, count, [per_idle]
        ok = per_idle <= MAX_BYTES_PER_IDLE and left <= MAX_AFTER_EVICTION
        text = (
            f"<= {MAX_BYTES_PER_IDLE:,} B per idle breaker and < 5 MB once evicted: got "
            f"{per_idle:,.0f} B each, {left / 1e6:.2f} MB left after eviction"
        )
        notes = [
            "figure is bytes per idle breaker (tracemalloc), not ns",
            f"{count:,} idle breakers in the process: {per_idle * count / 1e6:.1f} MB",
            f"health report {report_ms:.1f} ms with them, {report_after_ms:.2f} ms after "
            f"eviction; retry(metrics=...) {decorate_ms:.1f} ms -> {decorate_after_ms:.2f} ms; "
            f"a report that sweeps (one batch of {SWEEP_BATCH:,}) {batch_ms:.0f} ms; "
            f"evict_idle() of the rest {sweep_ms:.0f} ms",
        ]
        return ScenarioResult(self.name, [row], TargetResult(text, "PASS" if ok else "FAIL"), notes)


# --------------------------------------------------------------------------
# registration


def _bare(fn: Fn, name: str = "bare") -> Impl:
    return Impl(name, "bare", lambda: fn)


register(
    TimedScenario(
        "breaker closed success (sync)",
        [
            _bare(plain),
            Impl("resilient", "ours", lambda: _closed_ours("bench-closed", plain)),
            Impl("circuitbreaker", "reference", lambda: _closed_circuitbreaker(plain)),
            Impl("pybreaker", "peer", _closed_pybreaker),
            Impl("purgatory", "peer", _closed_purgatory),
        ],
        Target("reference", 0.5),
        notes=["reference: circuitbreaker (the issue's yardstick), not the fastest peer"],
    ),
    TimedScenario(
        "breaker closed success (async)",
        [
            _bare(aplain),
            Impl("resilient", "ours", lambda: _closed_ours("bench-closed-async", aplain)),
            Impl("circuitbreaker", "reference", lambda: _closed_circuitbreaker(aplain)),
            Impl("aiobreaker", "peer", _closed_aiobreaker),
            Impl("purgatory", "peer", _closed_apurgatory),
        ],
        Target("reference", 0.5),
        is_async=True,
    ),
    TimedScenario(
        "breaker open rejection (sync)",
        [
            _bare(bare_rejection, "bare (raise+catch)"),
            Impl("resilient", "ours", lambda: _open_ours("bench-open", boom, _rejecting)),
            Impl("circuitbreaker", "reference", lambda: _open_circuitbreaker(boom, _rejecting)),
            Impl("pybreaker", "peer", _open_pybreaker),
            Impl("purgatory", "peer", _open_purgatory),
        ],
        Target("reference", 0.5),
        notes=["each call raises the library's open error, caught by the timed wrapper"],
    ),
    TimedScenario(
        "breaker open rejection (async)",
        [
            _bare(abare_rejection, "bare (raise+catch)"),
            Impl("resilient", "ours", lambda: _open_ours("bench-open-async", aboom, _arejecting)),
            Impl("circuitbreaker", "reference", lambda: _open_circuitbreaker(aboom, _arejecting)),
            Impl("aiobreaker", "peer", _open_aiobreaker),
            Impl("purgatory", "peer", _open_apurgatory),
        ],
        Target("reference", 0.5),
        is_async=True,
    ),
    ConcurrentScenario(
        "breaker 8 threads x 50 ms call",
        [
            _bare(slow_call),
            Impl("resilient", "ours", _threads_ours),
            Impl("pybreaker", "peer", _threads_pybreaker),
        ],
        threads=8,
        target=Target("absolute", 80_000_000),
        notes=["target 0.08 s: calls must overlap (pybreaker holds its lock around the call)"],
    ),
)
register(
    IdleMemoryScenario("breaker memory: idle breakers, then evicted", 100_000, 10_000),
)
