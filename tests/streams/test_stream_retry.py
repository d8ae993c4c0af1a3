"""@retry on generator and async generator functions: a stream that fails before its
first item is attempted again; one that already delivered items is not replayed."""

from __future__ import annotations

import asyncio

import pytest
from scripted import Kind, Script, Wait

import resilient
from resilient._wrapping.layer import Decorator
from resilient.metrics import MemorySink
from resilient.testing import FakeClock


def retrying(**options: object) -> Decorator:
    return resilient.retry(**{"attempts": 3, "jitter": 0, **options})  # type: ignore[arg-type]


async def test_a_stream_that_works_runs_once_and_never_waits(
    kind: Kind, fake_clock: FakeClock
) -> None:
    """A healthy stream is delivered whole, from one run, with no wait."""
    script = Script([[1, 2, 3]])
    stream = retrying()(kind.producer(script))
    assert await kind.drain(stream()) == [1, 2, 3]
    assert script.started == 1
    assert fake_clock.sleeps == []


async def test_a_failure_before_the_first_item_is_retried(
    kind: Kind, fake_clock: FakeClock
) -> None:
    """Two runs failing before any item, then a healthy run: the caller gets its items."""
    script = Script([[ConnectionError("a")], [ConnectionError("b")], [1, 2, 3]])
    stream = retrying()(kind.producer(script))
    assert await kind.drain(stream()) == [1, 2, 3]
    assert script.started == 3
    assert fake_clock.sleeps == [0.5, 1.0]


async def test_nothing_runs_before_the_first_item_is_asked_for(kind: Kind) -> None:
    """Calling the decorated function starts no attempt: the stream starts when iterated."""
    script = Script([[1]])
    stream = retrying()(kind.producer(script))()
    assert script.started == 0
    assert await kind.drain(stream) == [1]


async def test_a_failure_after_an_item_is_not_retried(kind: Kind, fake_clock: FakeClock) -> None:
    """Once an item reached the caller, the stream's failure reaches it too; nothing is replayed."""
    script = Script([[1, ConnectionError("mid-stream")], [1, 2, 3]])
    stream = retrying()(kind.producer(script))()
    assert await kind.next(stream) == 1
    with pytest.raises(ConnectionError, match="mid-stream"):
        await kind.next(stream)
    assert script.started == 1
    assert fake_clock.sleeps == []


async def test_restart_stream_starts_again_from_scratch(kind: Kind, fake_clock: FakeClock) -> None:
    """With restart_stream=True a mid-stream failure restarts the stream: items come again."""
    script = Script([[1, ConnectionError("mid-stream")], [1, 2, 3]])
    stream = retrying(restart_stream=True)(kind.producer(script))
    assert await kind.drain(stream()) == [1, 1, 2, 3]
    assert script.started == 2
    assert fake_clock.sleeps == [0.5]


async def test_restart_stream_counts_every_run_as_an_attempt(
    kind: Kind, fake_clock: FakeClock
) -> None:
    """restart_stream=True shares one attempt cap across restarts; the last error propagates."""
    script = Script([[1, ConnectionError("again")]])
    stream = retrying(restart_stream=True)(kind.producer(script))
    with pytest.raises(ConnectionError, match="again") as caught:
        await kind.drain(stream())
    assert script.started == 3
    assert any("gave up" in note and "3 attempts" in note for note in caught.value.__notes__)


async def test_the_last_error_propagates_with_the_give_up_note(
    kind: Kind, fake_clock: FakeClock
) -> None:
    """After the last attempt the caller gets the last error, noted with why retrying stopped."""
    script = Script([[ConnectionError("down")]])
    stream = retrying()(kind.producer(script))
    with pytest.raises(ConnectionError, match="down") as caught:
        await kind.drain(stream())
    assert script.started == 3
    assert caught.value.__notes__ == [
        f"resilient.retry gave up on {_name(script, kind)} after 3 attempts: ConnectionError x3"
    ]


def _name(script: Script, kind: Kind) -> str:
    return f"{kind.producer(script).__module__}.{kind.producer(script).__qualname__}"


async def test_an_empty_stream_is_a_success(kind: Kind, fake_clock: FakeClock) -> None:
    """A stream that ends without items is not retried."""
    script = Script([[]])
    stream = retrying()(kind.producer(script))
    assert await kind.drain(stream()) == []
    assert script.started == 1


async def test_errors_outside_on_are_not_retried(kind: Kind, fake_clock: FakeClock) -> None:
    """``on=`` chooses which early failures are retried, as for calls."""
    script = Script([[KeyError("no")], [1]])
    stream = retrying(on=ConnectionError)(kind.producer(script))
    with pytest.raises(KeyError):
        await kind.drain(stream())
    assert script.started == 1


async def test_on_retry_and_metrics_see_each_retry(
    kind: Kind, fake_clock: FakeClock, sink: MemorySink
) -> None:
    """on_retry(attempt, error, delay) runs and retry_attempts_total counts, as for calls."""
    seen: list[tuple[int, str, float]] = []
    script = Script([[ConnectionError("a")], [1]])

    def on_retry(attempt: int, error: BaseException, delay: float) -> None:
        seen.append((attempt, str(error), delay))

    stream = retrying(on_retry=on_retry)(kind.producer(script))
    assert await kind.drain(stream()) == [1]
    assert seen == [(1, "a", 0.5)]
    assert sink.counter("retry_attempts_total") == 1


async def test_a_wait_past_the_deadline_is_not_taken(kind: Kind, fake_clock: FakeClock) -> None:
    """Under a stream timeout, a retry whose wait ends past the deadline gives up at once."""
    script = Script([[ConnectionError("down")]])
    stream = resilient.timeout(0.7)(retrying()(kind.producer(script)))
    with pytest.raises(ConnectionError) as caught:
        await kind.drain(stream())
    assert script.started == 2  # 0.5 s fits in 0.7 s, the next 1 s wait does not
    assert "deadline" in caught.value.__notes__[0]


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit])
async def test_interrupts_are_never_retried(
    kind: Kind, fake_clock: FakeClock, interrupt: type[BaseException]
) -> None:
    """KeyboardInterrupt and SystemExit before the first item pass through at once."""
    script = Script([[interrupt()], [1]])
    stream = retrying()(kind.producer(script))
    with pytest.raises(interrupt):
        await kind.drain(stream())
    assert script.started == 1


async def test_an_open_circuit_is_never_retried(kind: Kind, fake_clock: FakeClock) -> None:
    """A breaker inside the retry that is open rejects the stream once, not three times."""
    script = Script([[1]])
    guarded = resilient.breaker("stream-open")(kind.producer(script))
    resilient.get_breaker("stream-open").force_open()
    stream = retrying()(guarded)
    with pytest.raises(resilient.CircuitOpenError):
        await kind.drain(stream())
    assert script.started == 0
    assert fake_clock.sleeps == []


async def test_async_cancellation_is_never_retried(fake_clock: FakeClock) -> None:
    """A cancelled async stream is not attempted again: the cancellation reaches the task."""
    script = Script([[Wait(10), 1]])
    stream = retrying()(Kind("async").producer(script))

    async def consume() -> list[int]:
        return [item async for item in stream()]

    task = asyncio.create_task(consume())
    await asyncio.sleep(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert script.started == 1
    assert script.cancelled == 1


def test_restart_stream_is_described() -> None:
    """describe() shows restart_stream when it is on."""
    assert resilient.retry(restart_stream=True).layer.describe()["restart_stream"] is True
    assert "restart_stream" not in resilient.retry().layer.describe()


@pytest.mark.parametrize("restart", [False, True])
async def test_before_runs_ahead_of_each_run(
    kind: Kind, fake_clock: FakeClock, restart: bool
) -> None:
    """before(attempt) runs before each run of the stream, numbered from 1, as for calls."""
    seen: list[int] = []
    script = Script([[ConnectionError("a")], [ConnectionError("b")], [1, 2]])
    stream = retrying(before=seen.append, restart_stream=restart)(kind.producer(script))
    assert await kind.drain(stream()) == [1, 2]
    assert seen == [1, 2, 3]


def test_on_result_is_refused_on_a_stream(kind: Kind) -> None:
    """A stream returns no value to judge: on_result (or a tenacity result rule) on a
    generator function is a ConfigError at decoration, not silently ignored."""
    with pytest.raises(resilient.ConfigError) as caught:
        resilient.retry(on_result=lambda value: value is None)(kind.producer(Script([[1]])))
    assert caught.value.parameter == "on_result"
    tenacity = pytest.importorskip("tenacity")
    rule = tenacity.retry_if_result(lambda value: value is None)
    with pytest.raises(resilient.ConfigError) as caught:
        resilient.retry(on=rule)(kind.producer(Script([[1]])))
    assert caught.value.parameter == "on"
