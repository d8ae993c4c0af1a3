"""@bulkhead on coroutines: the same limits for tasks, FIFO, cancellation-safe, on loop time."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import resilient
from resilient._bulkhead.compartment import Compartment
from resilient._wrapping.layer import layers_of
from resilient.testing import FakeClock


def _compartment(fn: Any) -> Compartment:
    (layer,) = [step for step in layers_of(fn) if step.kind == "bulkhead"]
    found = layer.compartment or next(iter(layer.own.values()))
    assert isinstance(found, Compartment)
    return found


class Tasks:
    """An async function whose calls each wait for their own event, recording admissions."""

    def __init__(self) -> None:
        self.events: dict[int, asyncio.Event] = {}
        self.admitted: list[int] = []
        self.inside = 0
        self.most = 0

    async def __call__(self, key: int) -> int:
        self.admitted.append(key)
        self.inside += 1
        self.most = max(self.most, self.inside)
        try:
            await self.events.setdefault(key, asyncio.Event()).wait()
            return key
        finally:
            self.inside -= 1

    def finish(self, key: int) -> None:
        self.events.setdefault(key, asyncio.Event()).set()


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_tasks_past_the_limit_queue_in_order_and_the_rest_are_refused() -> None:
    """Two run, two wait in arrival order, the fifth is refused at once."""
    body = Tasks()
    guarded = resilient.bulkhead(2, max_queue=2)(body)
    tasks = [asyncio.create_task(guarded(key)) for key in range(4)]
    await _settle()
    assert body.admitted == [0, 1]
    with pytest.raises(resilient.BulkheadFullError, match="queue is full"):
        await guarded(4)
    body.finish(1)
    await _settle()
    assert body.admitted == [0, 1, 2]
    for key in (0, 2, 3):
        body.finish(key)
    assert await asyncio.gather(*tasks) == [0, 1, 2, 3]
    assert body.admitted == [0, 1, 2, 3]
    assert body.most == 2


async def test_cancelling_a_queued_task_frees_its_place() -> None:
    """A task cancelled while queued leaves the queue; the next one takes the freed slot."""
    body = Tasks()
    guarded = resilient.bulkhead(1, max_queue=2)(body)
    compartment = _compartment(guarded)
    holder = asyncio.create_task(guarded(0))
    queued = asyncio.create_task(guarded(1))
    later = asyncio.create_task(guarded(2))
    await _settle()
    queued.cancel()
    with pytest.raises(asyncio.CancelledError):
        await queued
    assert len(compartment.waiters) == 1
    body.finish(0)
    body.finish(2)
    assert await asyncio.gather(holder, later) == [0, 2]
    assert body.admitted == [0, 2]
    assert (compartment.active, len(compartment.waiters)) == (0, 0)


async def test_a_task_cancelled_as_its_slot_is_handed_over_passes_it_on() -> None:
    """A waiter cancelled after the slot was handed to it, before it ran, gives it to the next."""
    body = Tasks()
    guarded = resilient.bulkhead(1, max_queue=2)(body)
    compartment = _compartment(guarded)
    holder = asyncio.create_task(guarded(0))
    queued = asyncio.create_task(guarded(1))
    later = asyncio.create_task(guarded(2))
    await _settle()
    body.finish(0)
    await holder  # the slot is granted to 1, whose wake-up is scheduled but has not run
    queued.cancel()
    with pytest.raises(asyncio.CancelledError):
        await queued
    body.finish(2)
    assert await later == 2
    assert body.admitted == [0, 2]
    assert (compartment.active, len(compartment.waiters)) == (0, 0)


async def test_queue_timeout_runs_on_virtual_loop_time(fake_clock: FakeClock) -> None:
    """A queued task gives up after queue_timeout of the loop's (virtual) time."""
    body = Tasks()
    guarded = resilient.bulkhead(1, max_queue=1, queue_timeout=30)(body)
    holder = asyncio.create_task(guarded(0))
    await _settle()
    start = fake_clock.monotonic()
    with pytest.raises(resilient.BulkheadFullError, match="queue_timeout=30s"):
        await guarded(1)
    assert fake_clock.monotonic() - start == pytest.approx(30)
    body.finish(0)
    await holder
    assert _compartment(guarded).active == 0


async def test_a_queued_task_never_waits_past_an_enclosing_timeout(fake_clock: FakeClock) -> None:
    """Under @timeout(5), a task queued with queue_timeout=60 gives up by the deadline."""
    body = Tasks()
    inner = resilient.bulkhead(1, max_queue=1, queue_timeout=60, name="deadline")(body)
    guarded = resilient.timeout(5)(inner)
    holder = asyncio.create_task(inner(0))
    await _settle()
    start = fake_clock.monotonic()
    with pytest.raises((resilient.BulkheadFullError, resilient.TimeoutExceededError)):
        await guarded(1)
    assert fake_clock.monotonic() - start == pytest.approx(5)
    body.finish(0)
    await holder
    assert len(_compartment(inner).waiters) == 0


async def test_a_thousand_tasks_through_ten_slots() -> None:
    """1,000 tasks through 10 slots and a queue of 1,000: at most 10 inside, FIFO, all done."""
    inside = [0, 0]
    order: list[int] = []

    @resilient.bulkhead(10, max_queue=1_000)
    async def work(key: int) -> int:
        order.append(key)
        inside[0] += 1
        inside[1] = max(inside)
        await asyncio.sleep(0)
        inside[0] -= 1
        return key

    results = await asyncio.gather(*(work(key) for key in range(1_000)))
    assert results == list(range(1_000))
    assert order == list(range(1_000))
    assert inside[1] == 10
    assert _compartment(work).active == 0


_OPS = st.lists(
    st.one_of(
        st.just(("arrive", 0)),
        st.tuples(st.just("finish"), st.integers(0, 30)),
        st.tuples(st.just("cancel"), st.integers(0, 30)),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(limit=st.integers(1, 4), queue=st.integers(0, 4), ops=_OPS)
def test_never_more_than_the_limit_and_the_queue_is_fifo(
    limit: int, queue: int, ops: list[tuple[str, int]]
) -> None:
    """Whatever calls arrive, finish or are cancelled: at most ``limit`` run at once, at
    most ``queue`` wait, queued calls start in arrival order, and every slot comes back."""

    async def scenario() -> None:
        body = Tasks()
        guarded = resilient.bulkhead(limit, max_queue=queue)(body)
        compartment = _compartment(guarded)
        tasks: list[asyncio.Task[int]] = []
        refused: set[int] = set()
        for op, index in ops:
            if op == "arrive":
                key = len(tasks)
                tasks.append(asyncio.create_task(guarded(key)))
            elif tasks:
                target = tasks[index % len(tasks)]
                key = index % len(tasks)
                if op == "finish":
                    body.finish(key)
                else:
                    target.cancel()
            await _settle()
            for key, task in enumerate(tasks):
                if task.done() and not task.cancelled() and task.exception() is not None:
                    assert isinstance(task.exception(), resilient.BulkheadFullError)
                    refused.add(key)
            assert body.inside <= limit
            assert compartment.active <= limit
            assert len(compartment.waiters) <= queue
        admitted = list(body.admitted)
        assert admitted == sorted(admitted)  # FIFO: nobody overtakes an earlier arrival
        for key in range(len(tasks)):
            body.finish(key)
        await asyncio.gather(*tasks, return_exceptions=True)
        assert (compartment.active, len(compartment.waiters)) == (0, 0)
        assert not refused & set(body.admitted)

    asyncio.run(scenario())


async def test_the_health_app_counts_and_lists_saturated_bulkheads() -> None:
    """HealthApp's summary counts full bulkheads and its detail lists them; it stays ready."""
    from resilient.asgi import HealthApp

    body = Tasks()
    guarded = resilient.bulkhead(1, max_queue=2, name="ai-pool")(body)
    tasks = [asyncio.create_task(guarded(key)) for key in range(2)]
    await _settle()
    ready, public, detail = HealthApp().check()
    assert ready
    assert public["summary"]["saturated_bulkheads"] == 1
    assert detail["saturated_bulkheads"] == {
        "ai-pool": {"active": 1, "max_concurrent": 1, "queued": 1, "max_queue": 2}
    }
    body.finish(0)
    body.finish(1)
    await asyncio.gather(*tasks)
    assert HealthApp().check()[1]["summary"]["saturated_bulkheads"] == 0
