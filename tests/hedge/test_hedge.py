"""@hedge: a second attempt when the first is slow, the first success wins, nothing leaks.

Every test runs on the plugin's virtual loop time (``fake_clock``): no real sleeping.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from garbage import collect

import resilient
from resilient import chaos
from resilient.metrics import MemorySink
from resilient.testing import FakeClock


class Attempts:
    """An async function whose n-th attempt sleeps ``durations[n]`` then answers or raises."""

    def __init__(self, *durations: float, fail: tuple[int, ...] = ()) -> None:
        self.durations = durations
        self.fail = fail
        self.started: list[float] = []
        self.cancelled: list[int] = []
        self.tasks: list[int] = []

    async def __call__(self) -> int:
        attempt = len(self.started) + 1
        self.started.append(asyncio.get_running_loop().time())
        self.tasks.append(len(asyncio.all_tasks()))
        try:
            await asyncio.sleep(self.durations[attempt - 1])
        except asyncio.CancelledError:
            self.cancelled.append(attempt)
            raise
        if attempt in self.fail:
            raise ValueError(f"attempt {attempt} failed")
        return attempt


def _others() -> set[asyncio.Task[Any]]:
    return asyncio.all_tasks() - {asyncio.current_task()}


async def test_an_answer_before_the_delay_starts_no_second_task(
    fake_clock: FakeClock, sink: MemorySink
) -> None:
    """A first attempt answering before ``delay`` runs in the caller's task alone."""
    body = Attempts(0.5)
    hedged = resilient.hedge(1.0)(body)
    assert await hedged() == 1
    assert body.tasks == [1]
    assert sink.counter("hedges_total") == 0
    assert not _others()


async def test_a_slow_first_attempt_is_hedged_and_the_hedge_wins(
    fake_clock: FakeClock, sink: MemorySink
) -> None:
    """After ``delay`` a hedge starts; it answers first, the first attempt is cancelled."""
    body = Attempts(10.0, 0.5)
    hedged = resilient.hedge(1.0)(body)
    loop = asyncio.get_running_loop()
    start = loop.time()
    assert await hedged() == 2
    assert loop.time() - start == pytest.approx(1.5)
    assert [t - start for t in body.started] == pytest.approx([0.0, 1.0])
    assert body.cancelled == [1]
    assert not _others()
    assert sink.counter("hedges_total", policy=resilient._wrapping.layer.name_of(body)) == 1
    assert sink.counter("hedge_wins_total") == 1


async def test_the_first_attempt_can_still_win_and_the_hedge_is_cancelled(
    fake_clock: FakeClock, sink: MemorySink
) -> None:
    """A first attempt answering after the hedge started wins; the hedge is cancelled and
    awaited before the call returns."""
    body = Attempts(1.5, 10.0)
    hedged = resilient.hedge(1.0)(body)
    assert await hedged() == 1
    assert body.cancelled == [2]
    assert not _others()
    assert sink.counter("hedges_total") == 1
    assert sink.counter("hedge_wins_total") == 0


async def test_up_to_max_hedges_start_one_delay_apart(fake_clock: FakeClock) -> None:
    """With max_hedges=2 the attempts start at 0, delay and 2 x delay; the fastest wins."""
    body = Attempts(10.0, 10.0, 0.5)
    hedged = resilient.hedge(1.0, max_hedges=2)(body)
    start = asyncio.get_running_loop().time()
    assert await hedged() == 3
    assert [t - start for t in body.started] == pytest.approx([0.0, 1.0, 2.0])
    assert sorted(body.cancelled) == [1, 2]
    assert not _others()


async def test_when_every_attempt_fails_the_last_error_is_raised_with_the_others_noted(
    fake_clock: FakeClock,
) -> None:
    """All attempts failing raise the error of the last one to fail, noting the others."""
    body = Attempts(3.0, 0.5, fail=(1, 2))
    hedged = resilient.hedge(1.0)(body)
    with pytest.raises(ValueError, match="attempt 1 failed") as caught:
        await hedged()
    assert caught.value.__notes__ == [
        "resilient.hedge: attempt 2 of the same call failed too: ValueError: attempt 2 failed"
    ]
    assert not _others()


async def test_a_failed_first_attempt_waits_for_the_running_hedge(fake_clock: FakeClock) -> None:
    """A first attempt failing after the hedge started lets the hedge answer."""
    body = Attempts(1.5, 2.0, fail=(1,))
    hedged = resilient.hedge(1.0, max_hedges=3)(body)
    assert await hedged() == 2
    assert len(body.started) == 2  # no new hedge once the first attempt failed
    assert not _others()


async def test_a_fast_failure_is_not_hedged(fake_clock: FakeClock) -> None:
    """Hedging answers slowness: a first attempt failing before the delay is raised as is."""
    body = Attempts(0.1, 0.1, fail=(1,))
    hedged = resilient.hedge(1.0)(body)
    with pytest.raises(ValueError, match="attempt 1"):
        await hedged()
    assert len(body.started) == 1


async def test_cancelling_the_caller_cancels_and_awaits_every_attempt(
    fake_clock: FakeClock,
) -> None:
    """The caller's cancellation reaches every attempt; no task is left behind."""
    body = Attempts(10.0, 10.0)
    hedged = resilient.hedge(1.0)(body)
    call = asyncio.create_task(hedged())
    await asyncio.sleep(2.0)
    assert len(body.started) == 2
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert sorted(body.cancelled) == [1, 2]
    assert not _others()


async def test_the_caller_cancelled_as_the_hedge_wins_stays_cancelled(
    fake_clock: FakeClock,
) -> None:
    """A cancellation of the caller arriving just as a hedge wins is never consumed by the
    race: the caller is cancelled, every attempt too."""
    loop = asyncio.get_running_loop()
    call: list[asyncio.Task[int]] = []
    attempts: list[int] = []

    async def body() -> int:
        attempts.append(len(attempts) + 1)
        if len(attempts) == 1:
            await asyncio.sleep(10.0)
            return 1
        await asyncio.sleep(1.0)
        loop.call_soon(call[0].cancel)  # runs before the race hears of this answer
        return 2

    call.append(asyncio.create_task(resilient.hedge(1.0)(body)()))
    with pytest.raises(asyncio.CancelledError):
        await call[0]
    assert attempts == [1, 2]
    assert not _others()


def test_a_sync_function_is_refused_when_decorated() -> None:
    """@hedge on a def raises TypeError at decoration, saying why."""
    with pytest.raises(TypeError, match=r"cannot decorate the sync function .*async def"):

        @resilient.hedge(1.0)
        def sync() -> int:
            return 1


async def test_p95_does_not_hedge_until_it_has_enough_answers_then_uses_them(
    fake_clock: FakeClock,
) -> None:
    """delay="p95": no hedge for the first 16 answers, then one after their p95."""
    durations = [0.1 * (i % 10 + 1) for i in range(16)]  # 0.1 .. 1.0 s: p95 is 1.0 s
    body = Attempts(*durations, 30.0, 0.2)
    hedged = resilient.hedge("p95")(body)
    for _ in durations:
        await hedged()
    assert len(body.started) == 16
    loop = asyncio.get_running_loop()
    start = loop.time()
    assert await hedged() == 18
    assert body.started[-1] - start == pytest.approx(1.0)
    assert not _others()


async def test_listeners_hear_each_hedge_and_each_win(fake_clock: FakeClock) -> None:
    """HedgeStarted and HedgeWon reach listeners."""
    heard: list[object] = []
    resilient.add_listener(heard.append)
    body = Attempts(10.0, 0.5)
    hedged = resilient.hedge(1.0)(body)
    await hedged()
    name = resilient._wrapping.layer.name_of(body)
    assert heard == [resilient.HedgeStarted(name, 2, 1.0), resilient.HedgeWon(name, 2)]


async def test_instant_starts_every_hedge_at_once_up_to_its_attempts(fake_clock: FakeClock) -> None:
    """Under testing.instant(attempts=2) the hedge starts with the first attempt, no more."""
    body = Attempts(5.0, 1.0, 1.0)
    hedged = resilient.hedge(60.0, max_hedges=2)(body)
    start = asyncio.get_running_loop().time()
    with resilient.testing.instant(attempts=2):
        assert await hedged() == 2
    assert len(body.started) == 2
    assert asyncio.get_running_loop().time() - start == pytest.approx(1.0)
    assert not _others()


async def test_disabled_calls_the_function_once() -> None:
    """Under testing.disabled() no hedge ever starts."""
    body = Attempts(0.0)
    hedged = resilient.hedge(0.0)(body)
    with resilient.testing.disabled():
        assert await hedged() == 1
    assert len(body.started) == 1


async def test_a_chaos_fault_fails_the_attempt_inside_the_hedge(fake_clock: FakeClock) -> None:
    """A chaos fault injected as a context manager stands in for the function, inside the
    hedge: the attempt fails with it, before the delay, so no hedge starts."""
    body = Attempts(0.0)
    hedged = resilient.hedge(1.0)(body)
    with (
        chaos.inject_fault(ConnectionError, enabled=True),
        pytest.raises(ConnectionError, match="injected"),
    ):
        await hedged()
    assert body.started == []


async def test_each_attempt_has_its_own_timeout_under_the_policy_order(
    fake_clock: FakeClock,
) -> None:
    """policy(hedge=..., timeout=...): the hung first attempt times out, the hedge answers."""
    body = Attempts(100.0, 0.5)
    guarded = resilient.policy(hedge=1.0, timeout=5.0)(body)
    assert [step["layer"] for step in resilient.describe(guarded)] == ["hedge", "timeout"]
    assert await guarded() == 2
    assert not _others()


async def test_a_hedged_call_holds_one_bulkhead_slot_for_all_its_attempts(
    fake_clock: FakeClock,
) -> None:
    """In the policy order the bulkhead is outside the hedge: the hedge takes no slot of its
    own, and a second call finds the one slot taken."""
    body = Attempts(10.0, 0.5)
    guarded = resilient.policy(bulkhead=1, hedge=1.0)(body)
    call = asyncio.create_task(guarded())
    await asyncio.sleep(1.2)
    assert len(body.started) == 2  # the hedge started without asking for a slot
    with pytest.raises(resilient.BulkheadFullError):
        await guarded()
    assert await call == 2
    assert not _others()


@pytest.mark.resilient_instant(attempts=1)
async def test_the_plugin_instant_marker_caps_the_attempts(fake_clock: FakeClock) -> None:
    """Under the plugin's resilient_instant(attempts=1) marker a slow call is not hedged."""
    body = Attempts(5.0, 0.1)
    hedged = resilient.hedge(1.0)(body)
    assert await hedged() == 1
    assert len(body.started) == 1


async def test_a_metrics_override_receives_the_hedge_counters(fake_clock: FakeClock) -> None:
    """hedge(..., metrics=sink) reports hedges_total and hedge_wins_total to that sink."""
    own = MemorySink()
    body = Attempts(10.0, 0.5)
    hedged = resilient.hedge(1.0, metrics=own)(body)
    assert await hedged() == 2
    assert own.counter("hedges_total") == 1
    assert own.counter("hedge_wins_total") == 1


async def test_a_hedge_failing_after_another_won_leaves_no_unretrieved_exception(
    fake_clock: FakeClock,
) -> None:
    """A hedge that fails after another hedge has won (while the first attempt is still
    being cancelled) has its error retrieved: the loop never logs "Task exception was
    never retrieved"."""
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))
    calls = [0]

    async def body() -> int:
        calls[0] += 1
        attempt = calls[0]
        if attempt == 1:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                await asyncio.sleep(1)  # slow to stop
                raise
        if attempt == 2:
            await asyncio.sleep(1.5)
            return 2
        await asyncio.sleep(0.6)
        raise ValueError("attempt 3 failed")

    try:
        assert await resilient.hedge(1.0, max_hedges=2)(body)() == 2
        collect()
        await asyncio.sleep(0)
        assert not [c for c in reported if "never retrieved" in str(c.get("message"))]
    finally:
        loop.set_exception_handler(None)
