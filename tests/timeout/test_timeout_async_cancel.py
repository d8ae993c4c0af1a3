"""Async ``@timeout`` on the system clock cancels its call as ``asyncio.timeout`` does:
for every way a body can answer the cancellation, the caller sees what it would see under
``asyncio.timeout`` (its ``TimeoutError`` being our ``TimeoutExceededError``), and the
task's count of cancel requests ends where ``asyncio.timeout`` leaves it, so that an outer
``asyncio.timeout``, ``TaskGroup`` or ``@timeout`` still reads the task right."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

import resilient

BUDGET = 0.002  # real seconds: the timer must fire on the loop's real clock

Body = Callable[[], Awaitable[str]]


async def _waits() -> str:
    await asyncio.Event().wait()
    return "never"


async def _keeps_going() -> str:
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        return "kept going"
    return "never"


async def _raises_its_own() -> str:
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        raise ValueError("its own") from None
    return "never"


async def _cancelled_again() -> str:
    """Someone else cancels the task too, while the timeout's cancellation is handled."""
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        raise
    return "never"


async def _swallows_then_waits() -> str:
    """Swallows the cancellation, then waits a little more and returns."""
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        await asyncio.sleep(0)
    return "late"


BODIES = [_waits, _keeps_going, _raises_its_own, _cancelled_again, _swallows_then_waits]


async def _outcome(call: Body) -> tuple[str, int]:
    """What a task running ``call`` sees (the kind of outcome), and its count of cancel
    requests afterwards."""
    task = asyncio.current_task()
    assert task is not None
    try:
        result = await call()
    except TimeoutError:  # asyncio.timeout's, or ours (TimeoutExceededError)
        kind = "timeout"
    except asyncio.CancelledError:
        kind = "cancelled"
    except ValueError as error:
        kind = f"ValueError({error})"
    else:
        kind = f"returned {result!r}"
    return kind, task.cancelling()


async def _seen(call: Body) -> tuple[str, int]:
    """``_outcome`` of ``call`` on a task of its own (which a body cancelling it again
    leaves cancelled once the outcome is noted)."""
    noted: list[tuple[str, int]] = []

    async def run() -> None:
        noted.append(await _outcome(call))

    task = asyncio.create_task(run())
    try:
        await task
    except asyncio.CancelledError:
        if not task.cancelled():
            raise
    return noted[0]


async def _under_asyncio_timeout(body: Body) -> str:
    async with asyncio.timeout(BUDGET):
        return await body()


@pytest.mark.realtime
@pytest.mark.parametrize("body", BODIES, ids=lambda body: body.__name__.strip("_"))
async def test_an_async_call_answers_its_cancellation_as_under_asyncio_timeout(
    body: Body,
) -> None:
    """For each body, ``@timeout`` gives the caller the outcome ``asyncio.timeout`` gives,
    and leaves the task's cancel requests as it does."""
    expected = await _seen(lambda: _under_asyncio_timeout(body))
    assert await _seen(resilient.timeout(BUDGET)(body)) == expected


@pytest.mark.realtime
async def test_an_outer_asyncio_timeout_still_fires_after_an_inner_one_was_swallowed() -> None:
    """An inner ``@timeout`` whose body swallowed the cancellation leaves no cancel request
    behind: the outer ``asyncio.timeout`` still turns its own expiry into TimeoutError."""
    inner = resilient.timeout(BUDGET)(_keeps_going)

    async def both() -> str:
        async with asyncio.timeout(BUDGET * 5) as outer:
            assert await inner() == "kept going"
            await asyncio.Event().wait()
        assert outer.expired()
        return "never"

    with pytest.raises(TimeoutError) as caught:
        await asyncio.create_task(both())
    assert not isinstance(caught.value, resilient.TimeoutExceededError)


@pytest.mark.realtime
async def test_a_task_group_sibling_failure_is_not_taken_for_a_timeout() -> None:
    """A ``TaskGroup`` cancelling a timed call because a sibling failed: the group raises
    the sibling's error, never a timeout."""
    timed = resilient.timeout(5)(_waits)

    async def sibling() -> None:
        await asyncio.sleep(0)
        raise ValueError("sibling")

    async def group() -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(timed())
            tasks.create_task(sibling())

    with pytest.raises(ExceptionGroup) as caught:
        await group()
    assert [type(e) for e in caught.value.exceptions] == [ValueError]


async def _raises_a_group() -> str:
    """Raises a group whose error was itself raised while handling the cancellation."""
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        try:
            raise ValueError("one")
        except ValueError as one:
            raise ExceptionGroup("its own", [one]) from None
    return "never"


@pytest.mark.realtime
@pytest.mark.parametrize("body", [_raises_its_own, _raises_a_group], ids=["error", "group"])
async def test_an_error_raised_on_the_cancellation_shows_it_was_a_timeout(body: Body) -> None:
    """An error the body raises while handling the timeout's cancellation reaches the
    caller as raised, with a ``TimeoutError`` put between it (and each error of a group)
    and the cancellation in its context chain, as ``asyncio.timeout`` does from 3.13."""
    with pytest.raises((ValueError, ExceptionGroup)) as caught:
        await resilient.timeout(BUDGET)(body)()
    for raised in (caught.value, *getattr(caught.value, "exceptions", ())):
        context = raised.__context__
        while isinstance(context, ValueError):  # the group's: the error it holds
            context = context.__context__
        assert type(context) is TimeoutError
        assert isinstance(context.__cause__, asyncio.CancelledError)
        assert context.__context__ is context.__cause__
