"""Closing, cancelling and interrupting a guarded stream: the producer is always closed, the
consumer's exception always arrives as it is, and nothing is left running."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from garbage import collect
from scripted import Kind, Script, Wait

import resilient
from resilient.testing import FakeClock

LAYERS: dict[str, Callable[[], Any]] = {
    "retry": lambda: resilient.retry(attempts=3),
    "restart": lambda: resilient.retry(attempts=3, restart_stream=True),
    "timeout": lambda: resilient.timeout(5),
    "per_item": lambda: resilient.timeout(5, per_item=2),
    "breaker": lambda: resilient.breaker("closing"),
    "fallback": lambda: resilient.fallback("x"),
    "stack": lambda: resilient.policy(
        fallback="x", retry=True, breaker="closing-stack", timeout={"seconds": 5, "per_item": 2}
    ),
}
EACH = pytest.mark.parametrize("layer", list(LAYERS))


def guarded(kind: Kind, script: Script, layer: str) -> Any:
    return LAYERS[layer]()(kind.producer(script))


@EACH
async def test_breaking_out_closes_the_producer(
    kind: Kind, fake_clock: FakeClock, layer: str
) -> None:
    """break / close() / aclose() after one item closes the producer at once."""
    script = Script([[1, 2, 3]])
    assert await kind.take(guarded(kind, script, layer)(), 1) == [1]
    assert script.closed == 1
    assert script.ended == 1


@EACH
async def test_an_unstarted_stream_closes_without_running(
    kind: Kind, fake_clock: FakeClock, layer: str
) -> None:
    """Closing a stream never iterated runs nothing of the producer."""
    script = Script([[1]])
    await kind.close(guarded(kind, script, layer)())
    assert script.started == 0


@EACH
@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit])
async def test_interrupts_pass_through_unchanged(
    kind: Kind, fake_clock: FakeClock, layer: str, interrupt: type[BaseException]
) -> None:
    """KeyboardInterrupt and SystemExit raised by the producer reach the consumer as they are."""
    raised = interrupt()
    script = Script([[1, raised], [1, 2]])
    stream = guarded(kind, script, layer)()
    assert await kind.next(stream) == 1
    with pytest.raises(interrupt) as caught:
        await kind.next(stream)
    assert caught.value is raised
    assert script.started == 1


@EACH
async def test_the_callers_error_is_the_producers(
    kind: Kind, fake_clock: FakeClock, layer: str
) -> None:
    """A failure after the first item reaches the consumer as the same exception object
    (with restart_stream=True, once the attempts are spent)."""
    error = ValueError("mid-stream")
    script = Script([[1, error]])
    stream = guarded(kind, script, layer)
    with pytest.raises(ValueError) as caught:
        await kind.drain(stream())
    assert caught.value is error


@EACH
async def test_cancellation_reaches_the_producer_and_the_task(
    fake_clock: FakeClock, layer: str
) -> None:
    """Cancelling the consuming task cancels the producer's wait and ends the task cancelled."""
    kind = Kind("async")
    script = Script([[1, Wait(1.5), 2, Wait(1.5), 3]])
    stream = guarded(kind, script, layer)
    tasks_before = len(asyncio.all_tasks())
    task = asyncio.create_task(kind.drain(stream()))
    await asyncio.sleep(2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert script.cancelled == 1
    assert script.started == 1
    assert len(asyncio.all_tasks()) == tasks_before


@EACH
async def test_a_dropped_sync_stream_closes_its_producer(fake_clock: FakeClock, layer: str) -> None:
    """A sync stream dropped mid-way (no close) closes its producer when collected."""
    kind = Kind("sync")
    script = Script([[1, 2, 3]])
    stream = guarded(kind, script, layer)()
    assert next(stream) == 1
    del stream
    collect()
    assert script.closed == 1


@EACH
async def test_nothing_is_left_running(kind: Kind, fake_clock: FakeClock, layer: str) -> None:
    """After streams end, fail and time out, no thread, task or timer was added, and the
    timeout pool holds no abandoned call."""
    threads, tasks, timers = threading.active_count(), len(asyncio.all_tasks()), live_timers()
    workers = resilient.timeout_pool_stats().workers
    for run in ([1, 2], [ValueError()], [1, Wait(10), 2]):
        try:
            await kind.drain(guarded(kind, Script([run]), layer)())
        except (ValueError, TimeoutError):
            pass
    assert threading.active_count() == threads
    assert len(asyncio.all_tasks()) == tasks
    assert live_timers() == timers
    stats = resilient.timeout_pool_stats()
    assert (stats.workers, stats.abandoned) == (workers, 0)


def live_timers() -> int:
    """Timers still armed on the running loop (a cancelled one waits there to be dropped)."""
    scheduled = asyncio.get_running_loop()._scheduled  # type: ignore[attr-defined]
    return sum(not handle.cancelled() for handle in scheduled)


def test_send_and_throw_reach_a_sync_producer(fake_clock: FakeClock) -> None:
    """Through the stream layers, send() and throw() reach a sync generator as yield from does."""
    received: list[object] = []

    def echo() -> Iterator[object]:
        while True:
            try:
                received.append((yield "ready"))
            except KeyError as error:
                received.append(error.args[0])

    for layer in ("retry", "breaker", "fallback"):
        received.clear()
        stream = LAYERS[layer]()(echo)()
        assert next(stream) == "ready"
        assert stream.send("a") == "ready"
        assert stream.throw(KeyError("thrown")) == "ready"
        assert stream.send("b") == "ready"
        stream.close()
        assert received == ["a", "thrown", "b"], layer
