"""The retry core: ``RetryPlan`` answers ``Sleep``/``GiveUp`` values and never acts itself."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import resilient
from resilient._retry.plan import NOT_RETRYABLE, GiveUp, RetryPlan, Sleep
from resilient._runtime import config as _config
from resilient.testing import FakeClock

PREFIX = "resilient.retry gave up on f "


class BusyError(Exception):
    """A failure that says how long to wait, as a server's ``Retry-After`` does."""

    def __init__(self, retry_after: object) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


def steady(attempts: int = 3, **options: float) -> resilient.RetryConfig:
    """A schedule without jitter, so each wait is known."""
    return resilient.RetryConfig(attempts=attempts, jitter=0.0, **options)


# --- decisions as values ------------------------------------------------------------------


def test_each_failure_within_the_attempts_is_a_sleep_of_the_schedules_wait() -> None:
    """Three attempts: two ``Sleep`` answers on the doubling schedule, then a ``GiveUp``."""
    plan = RetryPlan(steady(), PREFIX)
    assert plan.decide(ValueError(), 0.0, None) == Sleep(0.5)
    assert plan.decide(ValueError(), 0.5, None) == Sleep(1.0)
    assert plan.decide(KeyError(), 1.5, None) == GiveUp(
        f"{PREFIX}after 3 attempts: ValueError x2, KeyError"
    )


def test_the_answers_are_frozen_slotted_values() -> None:
    """``Sleep`` and ``GiveUp`` compare by value, cannot be changed and carry no ``__dict__``."""
    assert Sleep(1.0) == Sleep(1.0) != GiveUp("x")
    assert GiveUp(None) == NOT_RETRYABLE
    sleep, give_up = Sleep(1.0), GiveUp("x")
    assert not hasattr(sleep, "__dict__")
    assert not hasattr(give_up, "__dict__")
    with pytest.raises(dataclasses.FrozenInstanceError):
        sleep.seconds = 2.0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        give_up.reason = "y"  # type: ignore[misc]


def test_deciding_reads_no_clock_and_sleeps_never(monkeypatch: pytest.MonkeyPatch) -> None:
    """The plan works from the time it is given: a clock that fails on any use is not touched."""

    class UntouchableClock:
        def __getattr__(self, name: str) -> object:
            raise AssertionError(f"the plan used clock.{name}")

    def untouchable_now() -> float:
        raise AssertionError("the plan read the time")

    monkeypatch.setattr(_config.state, "clock", UntouchableClock())
    monkeypatch.setattr(_config.state, "now", untouchable_now)
    plan = RetryPlan(steady(attempts=5), PREFIX)
    assert plan.decide(ConnectionError(), 100.0, 200.0) == Sleep(0.5)
    assert plan.decide(BusyError(3), 100.5, 200.0) == Sleep(3.0)
    assert isinstance(plan.decide(ConnectionError(), 199.0, 200.0), GiveUp)


def test_a_retry_after_within_the_cap_is_the_wait_whatever_max_delay_says() -> None:
    """``retry_after`` up to ``max_retry_after`` is waited in full, above ``max_delay``."""
    plan = RetryPlan(steady(max_delay=1.0, max_retry_after=5.0), PREFIX)
    assert plan.decide(BusyError(5), 0.0, None) == Sleep(5.0)


def test_a_retry_after_beyond_the_cap_gives_up_saying_so() -> None:
    """A longer ``retry_after`` ends the retries at once, naming the wait and the cap."""
    plan = RetryPlan(steady(max_retry_after=5.0), PREFIX)
    assert plan.decide(BusyError(100), 0.0, None) == GiveUp(
        f"{PREFIX}after 1 attempt, as the error asks for a 100s wait, "
        "longer than max_retry_after=5s: BusyError"
    )


@pytest.mark.parametrize("hint", [True, -1, "5", math.nan, None])
def test_a_retry_after_that_is_no_duration_is_ignored(hint: object) -> None:
    """A ``retry_after`` that is a bool, negative, text or NaN leaves the schedule's wait."""
    plan = RetryPlan(steady(), PREFIX)
    assert plan.decide(BusyError(hint), 0.0, None) == Sleep(0.5)


def test_a_wait_that_does_not_fit_before_the_deadline_gives_up() -> None:
    """A wait as long as the time left is not started: the note names both."""
    plan = RetryPlan(steady(), PREFIX)
    assert plan.decide(ValueError(), 10.0, 10.6) == Sleep(0.5)
    assert plan.decide(ValueError(), 10.5, 10.6) == GiveUp(
        f"{PREFIX}after 2 attempts, as a 1s wait does not fit in the 0.1s left before "
        "the deadline: ValueError x2"
    )


def test_a_passed_deadline_gives_up_even_a_zero_wait() -> None:
    """No time left: even a retry without a wait is not started."""
    plan = RetryPlan(steady(initial_delay=0.0), PREFIX)
    decision = plan.decide(ValueError(), 5.0, 4.0)
    assert isinstance(decision, GiveUp)
    assert "a 0s wait does not fit in the 0s left before the deadline" in str(decision.reason)


def test_instant_caps_the_attempts_and_waits_nothing() -> None:
    """``instant=2`` under a 5-attempt config: one zero wait, then a give-up after two."""
    plan = RetryPlan(steady(attempts=5, initial_delay=7.0), PREFIX, instant=2)
    assert plan.decide(BusyError(1000), 0.0, None) == Sleep(0.0)
    assert plan.decide(ValueError(), 0.0, None) == GiveUp(
        f"{PREFIX}after 2 attempts: BusyError, ValueError"
    )


def test_uncapped_plans_go_on_past_the_attempts() -> None:
    """``capped=False`` (a stop strategy of the caller's decides) ignores ``attempts``."""
    plan = RetryPlan(steady(attempts=1, initial_delay=0.0), PREFIX, capped=False)
    assert [plan.decide(ValueError(), 0.0, None) for _ in range(4)] == [Sleep(0.0)] * 4


def test_without_listing_errors_the_note_is_the_reason_alone() -> None:
    """``list_errors=False`` (the HTTP client's voice) ends the note with the reason."""
    plan = RetryPlan(steady(attempts=1), "resilient.http gave up ", list_errors=False)
    assert plan.decide(ValueError(), 0.0, None) == GiveUp("resilient.http gave up after 1 attempt")


def test_a_later_give_up_note_replaces_the_earlier_and_keeps_the_users() -> None:
    """One error given up on twice carries the latest give-up note and the user's own."""
    shared = ValueError("shared")
    shared.add_note("user note")
    for deadline in (10.2, 10.3):
        plan = RetryPlan(steady(), PREFIX)
        decision = plan.decide(shared, 10.0, deadline)
        assert isinstance(decision, GiveUp)
        plan.note(shared, decision)
    assert shared.__notes__[0] == "user note"
    assert len(shared.__notes__) == 2
    assert "0.3s left" in shared.__notes__[1]


def test_not_retryable_adds_no_note() -> None:
    """``GiveUp(None)`` means "raise as it is": noting it changes nothing."""
    error = ValueError()
    RetryPlan(steady(), PREFIX).note(error, NOT_RETRYABLE)
    assert not getattr(error, "__notes__", None)


# --- properties ---------------------------------------------------------------------------

configs = st.builds(
    resilient.RetryConfig,
    attempts=st.integers(1, 12),
    initial_delay=st.floats(0, 10, allow_nan=False),
    max_delay=st.floats(0, 60, allow_nan=False),
    multiplier=st.floats(1, 5, allow_nan=False),
    jitter=st.floats(0, 1, allow_nan=False),
    max_retry_after=st.floats(0, 300, allow_nan=False),
)
hints = st.one_of(st.none(), st.floats(0, 1000, allow_nan=False), st.integers(0, 1000))
"""What a failure's ``retry_after`` says: nothing, or seconds."""


@settings(max_examples=200, deadline=None)
@given(
    config=configs,
    hints=st.lists(hints, min_size=1, max_size=20),
    start=st.floats(0, 1e6, allow_nan=False),
    budget=st.one_of(st.none(), st.floats(0, 120, allow_nan=False)),
    instant=st.one_of(st.none(), st.integers(1, 5)),
)
def test_the_plan_keeps_every_limit(
    config: resilient.RetryConfig,
    hints: list[float | None],
    start: float,
    budget: float | None,
    instant: int | None,
) -> None:
    """Whatever fails, no wait ends at or past the deadline, no more than ``attempts`` (or
    ``instant``) attempts are made, and a ``retry_after`` is waited exactly and only up to
    ``max_retry_after``."""
    deadline = None if budget is None else start + budget
    plan = RetryPlan(config, PREFIX, instant=instant)
    limit = config.attempts if instant is None else min(config.attempts, instant)
    now, made = start, 0
    for hint in hints:
        made += 1
        decision = plan.decide(BusyError(hint), now, deadline)
        assert plan.attempt == made
        if isinstance(decision, GiveUp):
            assert decision.reason is not None
            assert decision.reason.startswith(PREFIX)
            break
        assert made < limit
        seconds = decision.seconds
        assert seconds >= 0.0
        if deadline is not None:
            assert now + seconds < deadline
        if instant is not None:
            assert seconds == 0.0
        elif hint is not None:
            assert hint <= config.max_retry_after
            assert seconds == hint
        else:
            assert seconds <= config.max_delay
        now += seconds
    assert made <= limit


@settings(max_examples=100, deadline=None)
@given(config=configs, hint=st.floats(0, 1e12, allow_nan=False))
def test_a_retry_after_above_the_cap_always_gives_up(
    config: resilient.RetryConfig, hint: float
) -> None:
    """However long, a ``retry_after`` past ``max_retry_after`` is a give-up, never a sleep."""
    plan = RetryPlan(config, PREFIX)
    decision = plan.decide(BusyError(hint), 0.0, None)
    if config.attempts > 1 and hint > config.max_retry_after:
        assert isinstance(decision, GiveUp)
        assert "max_retry_after" in str(decision.reason)
    elif config.attempts > 1:
        assert decision == Sleep(hint)


# --- @retry runs on the core --------------------------------------------------------------


def test_retry_notes_the_cores_retry_after_reason(fake_clock: FakeClock) -> None:
    """``@retry`` gives up on a too-long ``retry_after`` with the core's reason and note."""

    @resilient.retry(max_retry_after=5.0)
    def f() -> None:
        raise BusyError(100)

    with pytest.raises(BusyError) as caught:
        f()
    (note,) = caught.value.__notes__
    assert note.endswith(
        " after 1 attempt, as the error asks for a 100s wait, longer than "
        "max_retry_after=5s: BusyError"
    )
    assert fake_clock.sleeps == []


def test_a_wait_whose_end_rounds_onto_the_deadline_gives_up() -> None:
    """A wait that ends exactly at the deadline once the clock adds it gives up, even
    when ``deadline - now`` rounds to a little more than the wait."""
    now, seconds = 30.0, 2.287725512283818
    deadline = now + 2.287725512283818
    assert now + seconds == deadline
    assert seconds < deadline - now  # the subtraction the plan used to make says "fits"
    plan = RetryPlan(resilient.RetryConfig(attempts=3, max_retry_after=10.0), PREFIX)
    assert isinstance(plan.decide(BusyError(seconds), now, deadline), GiveUp)
