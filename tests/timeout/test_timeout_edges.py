"""@timeout at its edges: a call ending exactly at its deadline, nested calls sharing one
deadline, and how late is late enough to say why."""

from __future__ import annotations

import pytest

import resilient
from resilient import TimeoutExceededError, timeout
from resilient._timeout import alarm as _alarm
from resilient.testing import FakeClock


def test_a_signal_call_returning_exactly_at_its_deadline_is_in_time(
    fake_clock: FakeClock,
) -> None:
    """Under a fake clock, a signal-strategy call that returns with the clock exactly at
    its deadline returns its result."""

    @timeout(45, strategy="signal")
    def grade() -> str:
        fake_clock.advance(45)
        return "just in time"

    assert grade() == "just in time"


async def test_an_async_call_returning_exactly_at_its_deadline_is_in_time(
    fake_clock: FakeClock,
) -> None:
    """Under a fake clock, an async call that returns with the clock exactly at its
    deadline returns its result."""

    @timeout(45)
    async def grade() -> str:
        fake_clock.advance(45)
        return "just in time"

    assert await grade() == "just in time"


@pytest.mark.parametrize("strategy", ["thread", "signal"])
def test_nested_sync_calls_sharing_a_deadline_report_the_inner_one(
    fake_clock: FakeClock, strategy: str
) -> None:
    """When an inner call's deadline is the outer one's, a sleep reaching it is the inner
    call's timeout: the error names the inner function."""

    @timeout(45, strategy=strategy)  # type: ignore[arg-type]
    def outer() -> None:
        inner()

    @timeout(45, strategy=strategy)  # type: ignore[arg-type]
    def inner() -> None:
        fake_clock.sleep(60)

    with pytest.raises(TimeoutExceededError) as caught:
        outer()
    assert caught.value.name.endswith(".<locals>.inner")
    assert fake_clock.monotonic() == 45.0


async def test_nested_async_calls_sharing_a_deadline_report_the_inner_one(
    fake_clock: FakeClock,
) -> None:
    """When an inner awaited call's deadline is the outer one's, a clock sleep reaching it
    is the inner call's timeout: the error names the inner function."""

    @timeout(45)
    async def outer() -> None:
        await inner()

    @timeout(45)
    async def inner() -> None:
        await fake_clock.asleep(60)

    with pytest.raises(TimeoutExceededError) as caught:
        await outer()
    assert caught.value.name.endswith(".<locals>.inner")
    assert fake_clock.monotonic() == 45.0


@pytest.mark.parametrize(("late", "why"), [(0.01, True), (0.0099, False)])
def test_a_signal_timeout_says_c_code_from_ten_milliseconds_late(late: float, why: bool) -> None:
    """A signal-strategy body interrupted 10 ms or more after its deadline gets a reason
    naming C code; one interrupted sooner gets none."""

    @timeout(5, strategy="signal")
    def body_of_the_call() -> None:
        (deadline,) = _alarm._active
        raise _alarm.AlarmFired(deadline, late)  # as the handler raises it, that late

    with pytest.raises(TimeoutExceededError) as caught:
        body_of_the_call()
    assert (caught.value.reason is not None) is why
    if why:
        assert caught.value.late_by == late
        assert "C code" in str(caught.value.reason)
    assert _alarm._active == []
    assert resilient.remaining() is None
