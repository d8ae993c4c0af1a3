"""Many threads and tasks through one breaker: exact counts, no lock around calls."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait

import pytest
from strategies import BoomError

from resilient import BreakerConfig, BreakerMode, CircuitBreaker, CircuitOpenError
from resilient.testing import FakeClock
from resilient.typing import StateStore

THREADS = 8
CALLS = 10_000
SAFETY = 10.0  # seconds a coordinating wait may take before the test calls it a hang

Tally = tuple[int, int, int, list[BaseException]]  # ok, failed, rejected, anything else


def hammer(fn: Callable[[bool], object], fails: Callable[[int, int], bool]) -> list[Tally]:
    """THREADS threads make CALLS calls each, released together; per-thread tallies."""
    barrier = threading.Barrier(THREADS)
    tallies: list[Tally] = [(0, 0, 0, [])] * THREADS

    def worker(k: int) -> None:
        ok = failed = rejected = 0
        other: list[BaseException] = []
        barrier.wait(SAFETY)
        for i in range(CALLS):
            try:
                fn(fails(k, i))
            except BoomError:
                failed += 1
            except CircuitOpenError:
                rejected += 1
            except BaseException as error:
                other.append(error)
            else:
                ok += 1
        tallies[k] = (ok, failed, rejected, other)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(SAFETY * 6)
        assert not thread.is_alive()
    return tallies


def totals(tallies: list[Tally]) -> tuple[int, int, int, list[BaseException]]:
    return (
        sum(t[0] for t in tallies),
        sum(t[1] for t in tallies),
        sum(t[2] for t in tallies),
        [e for t in tallies for e in t[3]],
    )


def guarded(b: CircuitBreaker) -> Callable[[bool], None]:
    @b
    def call(fail: bool) -> None:
        if fail:
            raise BoomError

    return call


def test_rate_counts_are_exact_under_threads(
    make_store: Callable[[], StateStore],
    fake_clock: FakeClock,
) -> None:
    """80,000 calls from 8 threads, 1 in 10 failing: the window counts every one exactly.

    minimum_calls is 80,001, so the threads alone cannot trip it; then one more success
    keeps the rate under 10 % and one more failure takes it over, as the rule says.
    """
    total = THREADS * CALLS
    config = BreakerConfig(failure_rate=0.1, window_duration=60, minimum_calls=total + 1)
    b = CircuitBreaker("rate", config, store=make_store())
    call = guarded(b)
    tallies = hammer(call, lambda k, i: i % 10 == 9)
    assert totals(tallies) == (total * 9 // 10, total // 10, 0, [])
    assert b.window() == (total, total // 10, 0)
    assert b.snapshot().mode is BreakerMode.CLOSED
    call(False)
    assert (b.window(), b.snapshot().mode) == ((total + 1, total // 10, 0), BreakerMode.CLOSED)
    with pytest.raises(BoomError):
        call(True)
    assert b.snapshot().mode is BreakerMode.OPEN


def test_consecutive_counts_under_threads(
    make_store: Callable[[], StateStore],
    fake_clock: FakeClock,
) -> None:
    """Each thread fails 1 call in 10; 8 threads can never line up 9 failures in a row."""
    b = CircuitBreaker("consecutive", BreakerConfig(failure_threshold=9), store=make_store())
    tallies = hammer(guarded(b), lambda k, i: i % 10 == 5)
    assert totals(tallies) == (THREADS * CALLS * 9 // 10, THREADS * CALLS // 10, 0, [])
    # Every thread ends with a success, so the last call of all ended the last run.
    assert (b.snapshot().mode, b.failures) == (BreakerMode.CLOSED, 0)


def test_all_failing_threads_trip_exactly_once(
    make_store: Callable[[], StateStore],
    fake_clock: FakeClock,
) -> None:
    """Failures in flight when it trips are stale: one trip, five failures, rest rejected."""
    b = CircuitBreaker("storm", BreakerConfig(failure_threshold=5), store=make_store())
    ok, reached, rejected, unexpected = totals(hammer(guarded(b), lambda k, i: True))
    assert (ok, unexpected) == (0, [])
    assert reached + rejected == THREADS * CALLS
    assert 5 <= reached <= 5 + THREADS - 1  # at most one call per other thread in flight
    state = b.snapshot()
    assert (state.mode, state.trips, state.failures) == (BreakerMode.OPEN, 1, 5)


def test_a_slow_call_never_delays_other_threads(
    make_store: Callable[[], StateStore],
    fake_clock: FakeClock,
) -> None:
    """While one call is stuck, others succeed, fail and trip the breaker without waiting."""
    gate, entered = threading.Event(), threading.Event()
    b = CircuitBreaker("slowpoke", BreakerConfig(failure_threshold=3), store=make_store())

    @b
    def svc(mode: str) -> str:
        if mode == "stuck":
            entered.set()
            gate.wait(SAFETY)
        elif mode == "fail":
            raise BoomError
        return mode

    with ThreadPoolExecutor(THREADS) as pool:
        stuck = pool.submit(svc, "stuck")
        assert entered.wait(SAFETY)
        quick = [pool.submit(svc, "ok") for _ in range(200)]
        done, _ = wait(quick, timeout=SAFETY)
        assert len(done) == 200
        assert all(f.result() == "ok" for f in quick)
        failing = [pool.submit(svc, "fail") for _ in range(3)]
        wait(failing, timeout=SAFETY)
        assert b.snapshot().mode is BreakerMode.OPEN
        rejected = pool.submit(svc, "ok")
        assert isinstance(rejected.exception(timeout=SAFETY), CircuitOpenError)
        assert not stuck.done()
        gate.set()
        # The stuck call was admitted while closed: its late success cannot close the breaker.
        assert stuck.result(timeout=SAFETY) == "stuck"
    assert b.snapshot().mode is BreakerMode.OPEN


def test_a_stuck_probe_rejects_others_at_once(
    make_store: Callable[[], StateStore],
    fake_clock: FakeClock,
) -> None:
    """In half-open, calls beyond the probe are rejected immediately, not queued."""
    gate, entered = threading.Event(), threading.Event()
    config = BreakerConfig(failure_threshold=1, reset_timeout=10)
    b = CircuitBreaker("probe", config, store=make_store())
    with pytest.raises(BoomError):
        b.call(lambda: (_ for _ in ()).throw(BoomError()))
    fake_clock.advance(10)

    def stuck_probe() -> str:
        entered.set()
        gate.wait(SAFETY)
        return "probe"

    with ThreadPoolExecutor(4) as pool:
        probe = pool.submit(b.call, stuck_probe)
        assert entered.wait(SAFETY)
        others = [pool.submit(b.call, lambda: "other") for _ in range(50)]
        done, _ = wait(others, timeout=SAFETY)
        assert len(done) == 50
        assert all(isinstance(f.exception(), CircuitOpenError) for f in others)
        gate.set()
        assert probe.result(timeout=SAFETY) == "probe"
    assert b.snapshot().mode is BreakerMode.CLOSED


async def test_a_thousand_tasks_in_half_open_send_exactly_the_probes(
    make_store: Callable[[], StateStore],
    fake_clock: FakeClock,
) -> None:
    """1,000 concurrent tasks arrive in half-open: exactly half_open_max_calls get through."""
    config = BreakerConfig(
        failure_threshold=1, reset_timeout=10, half_open_max_calls=3, success_threshold=3
    )
    b = CircuitBreaker("herd", config, store=make_store())
    gate = asyncio.Event()
    reached = 0

    @b
    async def svc() -> str:
        nonlocal reached
        reached += 1
        await gate.wait()
        return "ok"

    with pytest.raises(BoomError):
        await b.acall(_afail)
    fake_clock.advance(10)
    tasks = [asyncio.create_task(svc()) for _ in range(1000)]
    for _ in range(3):
        await asyncio.sleep(0)
    assert reached == 3
    assert sum(t.done() for t in tasks) == 997  # rejected at once, not parked
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results.count("ok") == 3
    assert sum(isinstance(r, CircuitOpenError) for r in results) == 997
    assert b.snapshot().mode is BreakerMode.CLOSED


async def _afail() -> None:
    raise BoomError
