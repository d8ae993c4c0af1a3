"""@retry(on_result=...): polling a value until it is wanted, and tenacity's result rules."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import tenacity

import resilient
from resilient.metrics import MemorySink
from resilient.testing import FakeClock


class Poll:
    """Returns each of ``values`` in turn, then the last one forever; counts the calls."""

    def __init__(self, *values: object) -> None:
        self.values = values
        self.calls = 0

    def __call__(self) -> object:
        self.calls += 1
        return self.values[min(self.calls, len(self.values)) - 1]


def test_retries_while_the_predicate_holds(fake_clock: FakeClock) -> None:
    """A result the predicate holds true for is retried; the first wanted one is returned."""
    poll = Poll("pending", "pending", "done")
    polled = resilient.retry(
        attempts=5, initial_delay=1, jitter=0, on_result=lambda v: v == "pending"
    )(poll)
    assert polled() == "done"
    assert poll.calls == 3
    assert fake_clock.sleeps == [1.0, 2.0]


def test_after_the_last_attempt_the_caller_gets_the_last_result(fake_clock: FakeClock) -> None:
    """When the attempts run out, the last value returned reaches the caller, no error."""
    poll = Poll(1, 2, 3, 4)
    polled = resilient.retry(attempts=3, initial_delay=0, on_result=lambda v: v < 10)(poll)
    assert polled() == 3
    assert poll.calls == 3


def test_a_wanted_first_result_costs_one_call_and_no_wait(fake_clock: FakeClock) -> None:
    """A result the predicate rejects not is returned at once."""
    poll = Poll(None)
    assert resilient.retry(on_result=lambda v: v is not None)(poll)() is None
    assert poll.calls == 1
    assert fake_clock.sleeps == []


def test_errors_are_still_retried_beside_results(fake_clock: FakeClock) -> None:
    """on_result adds to the error rules: errors and rejected values both count as attempts."""
    outcomes: list[object] = [ConnectionError("down"), "pending", "done"]

    def call() -> object:
        outcome = outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    polled = resilient.retry(attempts=3, initial_delay=0, on_result=lambda v: v == "pending")
    assert polled(call)() == "done"


def test_hooks_see_a_rejected_result_as_a_rejected_result_error(fake_clock: FakeClock) -> None:
    """on_retry receives a RejectedResultError holding the value that was rejected."""
    seen: list[object] = []
    polled = resilient.retry(
        attempts=2,
        initial_delay=0,
        on_result=lambda v: v == "pending",
        on_retry=lambda attempt, error, delay: seen.append((attempt, error)),
    )(Poll("pending", "done"))
    assert polled() == "done"
    [(attempt, error)] = seen
    assert attempt == 1
    assert isinstance(error, resilient.RejectedResultError)
    assert error.result == "pending"


def test_a_predicate_that_raises_returns_the_value(
    fake_clock: FakeClock, sink: MemorySink, caplog: pytest.LogCaptureFixture
) -> None:
    """A broken on_result means "do not retry": the value is returned, the bug counted."""

    def broken(value: object) -> bool:
        raise RuntimeError("predicate bug")

    poll = Poll("pending")
    with caplog.at_level(logging.WARNING):
        assert resilient.retry(on_result=broken)(poll)() == "pending"
    assert poll.calls == 1
    assert sink.counter("hook_errors_total", hook="on_result") == 1
    assert any("predicate bug" in r.getMessage() for r in caplog.records)


async def test_async_polling(fake_clock: FakeClock) -> None:
    """An async function is polled the same way, and gets its last value at the end."""
    values = iter([0, 0, 0, 0])
    calls = 0

    @resilient.retry(attempts=3, initial_delay=0.5, jitter=0, on_result=lambda v: v == 0)
    async def count() -> int:
        nonlocal calls
        calls += 1
        return next(values)

    assert await count() == 0
    assert calls == 3
    assert fake_clock.sleeps == [0.5, 1.0]


# --- tenacity's result rules given as on= ------------------------------------------------


def test_tenacity_retry_if_result(fake_clock: FakeClock) -> None:
    """on=tenacity.retry_if_result(pred) retries the results pred holds true for."""
    poll = Poll(None, None, 7)
    on = tenacity.retry_if_result(lambda v: v is None)
    assert resilient.retry(on=on, initial_delay=0)(poll)() == 7
    assert poll.calls == 3


def test_tenacity_retry_if_not_result(fake_clock: FakeClock) -> None:
    """on=tenacity.retry_if_not_result(pred) retries until pred holds."""
    poll = Poll(1, 2, 3)
    on = tenacity.retry_if_not_result(lambda v: v >= 2)
    assert resilient.retry(on=on, initial_delay=0)(poll)() == 2
    assert poll.calls == 2


def test_tenacity_result_or_exception_rules(fake_clock: FakeClock) -> None:
    """retry_if_result | retry_if_exception_type retries both a value and an error."""
    outcomes: list[object] = [None, ConnectionError("down"), "ok"]

    def call() -> object:
        outcome = outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    on = tenacity.retry_if_result(lambda v: v is None) | tenacity.retry_if_exception_type(
        ConnectionError
    )
    assert resilient.retry(on=on, initial_delay=0)(call)() == "ok"
    assert outcomes == []


def test_tenacity_result_and_rules_need_both(fake_clock: FakeClock) -> None:
    """retry_if_result & retry_if_exception_type never holds for a value: no retry."""
    poll = Poll(None, "late")
    on = tenacity.retry_if_result(lambda v: v is None) & tenacity.retry_if_exception_type()
    assert resilient.retry(on=on, initial_delay=0)(poll)() is None
    assert poll.calls == 1


def test_tenacity_exception_rules_never_look_at_results(fake_clock: FakeClock) -> None:
    """An exception-only tenacity rule leaves the success path as it is (no result check)."""
    from resilient._wrapping.layer import layers_of

    decorated = resilient.retry(on=tenacity.retry_if_exception_type(ValueError))(Poll(None))
    [layer] = layers_of(decorated)
    assert not layer.checks_results()  # type: ignore[attr-defined]
    assert decorated() is None


async def test_async_tenacity_result_rule(fake_clock: FakeClock) -> None:
    """The async loop reads tenacity's result rules too."""
    values = iter([None, None, "ready"])

    @resilient.retry(on=tenacity.retry_if_result(lambda v: v is None), initial_delay=0)
    async def call() -> str | None:
        return next(values)

    assert await call() == "ready"


def test_on_result_in_a_policy_and_its_description(fake_clock: FakeClock) -> None:
    """policy(retry={"on_result": ...}) polls, and describe() shows the predicate."""

    def pending(value: object) -> bool:
        return value == "pending"

    stack = resilient.policy(retry={"attempts": 3, "initial_delay": 0, "on_result": pending})
    poll = Poll("pending", "done")
    assert stack(poll)() == "done"
    [described] = stack.describe()
    assert described["on_result"] is pending


def still_pending(value: object) -> bool:
    """The predicate a TOML policy names by ``module:attribute``."""
    return value == "pending"


def test_on_result_named_in_toml(fake_clock: FakeClock, tmp_path: Path) -> None:
    """A TOML policy's retry.on_result = "module:predicate" is imported and polls."""
    path = tmp_path / "policies.toml"
    path.write_text(
        "[policies.poll]\n"
        f'retry = {{ attempts = 3, initial_delay = 0, on_result = "{__name__}:still_pending" }}\n'
    )
    resilient.load_policies(path, imports=(__name__,))
    poll = Poll("pending", "pending", "done")
    assert resilient.policy("poll")(poll)() == "done"
