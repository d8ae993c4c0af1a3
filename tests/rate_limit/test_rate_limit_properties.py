"""The bucket's promise: never more than ``burst + rate x t`` calls in any window of ``t``."""

from __future__ import annotations

import asyncio
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from loop_clock import LoopClock

import resilient as rs
from resilient._rate_limit.bucket import Bucket
from resilient.testing import FakeClock


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(min_value=0.1, max_value=1000.0),
    burst=st.integers(min_value=1, max_value=50),
    gaps=st.lists(st.floats(min_value=0.0, max_value=2.0), min_size=1, max_size=120),
    patience=st.sampled_from([0.0, 0.3, float("inf")]),
)
def test_no_window_admits_more_than_burst_plus_rate_times_its_length(
    rate: float, burst: int, gaps: list[float], patience: float
) -> None:
    """Whatever the arrival times and the patience, the starts (arrival plus wait) in any
    window ``[a, b]`` number at most ``burst + rate x (b - a)``."""
    bucket = Bucket(1.0 / rate, burst)
    now = 0.0
    starts: list[float] = []
    for gap in gaps:
        now += gap
        wait = bucket.reserve(now, patience)
        if wait < patience or wait == 0.0:
            starts.append(now + wait)
    starts.sort()
    for i, first in enumerate(starts):
        for j in range(i, len(starts)):
            admitted = j - i + 1
            assert admitted <= burst + rate * (starts[j] - first) + 1e-6, (i, j)


@settings(max_examples=100, deadline=None)
@given(
    rate=st.integers(min_value=1, max_value=100),
    burst=st.integers(min_value=1, max_value=20),
    gaps=st.lists(st.floats(min_value=0.0, max_value=0.5), min_size=1, max_size=60),
)
def test_the_decorator_keeps_the_promise_on_a_fake_clock(
    rate: int, burst: int, gaps: list[float]
) -> None:
    """Through ``@rate_limit`` (wait mode, FakeClock), the call start times keep the bound."""
    rs.testing.reset()
    clock = FakeClock()
    rs.configure(clock=clock)
    starts: list[float] = []

    @rs.rate_limit(rate, burst=burst)
    def call() -> None:
        starts.append(clock.monotonic())

    for gap in gaps:
        clock.advance(gap)
        call()
    for i, first in enumerate(starts):
        for j in range(i, len(starts)):
            assert j - i + 1 <= burst + rate * (starts[j] - first) + 1e-6
    rs.testing.reset()


def test_threads_never_share_a_token(fake_clock: FakeClock) -> None:
    """8 threads x 2,000 calls against a refusing limit: exactly the tokens there are go
    through (the burst, the clock standing still), the rest are refused."""
    admitted = [0] * 8

    @rs.rate_limit(10, burst=500, mode="reject", name="threads")
    def call() -> None:
        return None

    def work(index: int) -> None:
        for _ in range(2_000):
            try:
                call()
            except rs.RateLimitedError:
                continue
            admitted[index] += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(admitted) == 500


async def test_tasks_wait_in_turn(fake_clock: FakeClock) -> None:
    """1,000 tasks on a limit of 100 per second start over 9.9 virtual seconds, at most
    the burst plus 100 in any second."""
    rs.configure(clock=LoopClock(fake_clock))
    starts: list[float] = []

    @rs.rate_limit(100, burst=10, name="tasks")
    async def call() -> None:
        starts.append(fake_clock.monotonic())

    await asyncio.gather(*(call() for _ in range(1_000)))
    assert len(starts) == 1_000
    starts.sort()
    began = starts[0]
    assert starts[-1] - began == pytest.approx(9.9)
    for i in range(0, 1_000, 37):
        ahead = [t for t in starts if starts[i] <= t <= starts[i] + 1.0 + 1e-9]
        assert len(ahead) <= 10 + 100
