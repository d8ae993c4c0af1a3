"""The pure transition function: the rules every store applies."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import breaker_configs

from resilient import BreakerConfig, BreakerMode, BreakerState
from resilient._circuit.rules import Decision, Event, Kind, Verdict, transition, window_counts

ACQUIRE = Event(Kind.ACQUIRE)


def run(
    config: BreakerConfig, state: BreakerState, kind: Kind, now: float, ticket: int = 0
) -> tuple[BreakerState, Decision]:
    return transition(state, Event(kind, ticket), now, config)


def trip(config: BreakerConfig, now: float = 0.0) -> BreakerState:
    state = BreakerState()
    while state.mode is BreakerMode.CLOSED:
        state, _ = run(config, state, Kind.FAILURE, now, ticket=state.gen)
    return state


def test_closed_admits_with_the_generation_as_ticket() -> None:
    """A closed breaker admits every call and leaves its state alone."""
    state = BreakerState()
    new, decision = transition(state, ACQUIRE, 5.0, BreakerConfig())
    assert new is state
    assert decision == Decision(Verdict.ALLOW, 0, None, BreakerMode.CLOSED)


def test_consecutive_failures_trip_at_the_threshold() -> None:
    """The third consecutive failure opens a breaker with failure_threshold=3."""
    config = BreakerConfig(failure_threshold=3, reset_timeout=10)
    state = BreakerState()
    for _ in range(2):
        state, _ = run(config, state, Kind.FAILURE, 1.0, ticket=state.gen)
    assert (state.mode, state.failures) == (BreakerMode.CLOSED, 2)
    state, decision = run(config, state, Kind.FAILURE, 1.0, ticket=state.gen)
    assert (state.mode, state.failures, state.trips) == (BreakerMode.OPEN, 3, 1)
    assert (state.opened_at, state.open_until) == (1.0, 11.0)
    assert decision.prior is BreakerMode.CLOSED


def test_a_success_ends_the_run_of_failures() -> None:
    """Failures must be consecutive: a success in between starts the count again."""
    config = BreakerConfig(failure_threshold=2)
    state, _ = run(config, BreakerState(), Kind.FAILURE, 0.0)
    state, _ = run(config, state, Kind.SUCCESS, 0.0)
    state, _ = run(config, state, Kind.FAILURE, 0.0)
    assert (state.mode, state.failures) == (BreakerMode.CLOSED, 1)


def test_a_stale_report_changes_nothing() -> None:
    """A failure admitted before a reset (an older ticket) cannot count after it."""
    config = BreakerConfig(failure_threshold=1)
    state, _ = run(config, BreakerState(), Kind.RESET, 0.0)
    new, _ = run(config, state, Kind.FAILURE, 0.0, ticket=0)
    assert new is state


def test_open_rejects_until_the_reset_timeout_then_admits_one_probe() -> None:
    """OPEN says how long to wait; at the timeout it turns half-open and admits a probe."""
    config = BreakerConfig(failure_threshold=1, reset_timeout=30, probe_timeout=5)
    state = trip(config, now=100.0)
    same, decision = transition(state, ACQUIRE, 129.0, config)
    assert same is state
    assert (decision.verdict, decision.retry_after) == (Verdict.REJECT, 1.0)
    state, decision = transition(state, ACQUIRE, 130.0, config)
    assert state.mode is BreakerMode.HALF_OPEN
    assert decision.verdict is Verdict.PROBE
    assert decision.prior is BreakerMode.OPEN
    assert state.probes == ((decision.ticket, 135.0),)
    state, second = transition(state, ACQUIRE, 131.0, config)
    assert (second.verdict, second.retry_after) == (Verdict.REJECT, 4.0)


def test_a_lost_probe_frees_its_permit_after_probe_timeout() -> None:
    """A probe that never reports back cannot wedge the breaker in half-open."""
    config = BreakerConfig(failure_threshold=1, reset_timeout=1, probe_timeout=5)
    state, first = transition(trip(config), ACQUIRE, 1.0, config)
    state, _ = transition(state, ACQUIRE, 5.9, config)
    assert state.mode is BreakerMode.HALF_OPEN
    state, second = transition(state, ACQUIRE, 6.0, config)
    assert second.verdict is Verdict.PROBE
    # The lost probe reporting late is stale: it neither closes nor reopens the breaker.
    late, _ = run(config, state, Kind.FAILURE, 6.5, ticket=first.ticket)
    assert late is state


def test_half_open_closes_after_success_threshold_successes() -> None:
    """success_threshold=2: one probe success is not enough, the second closes it."""
    config = BreakerConfig(
        failure_threshold=1, reset_timeout=1, half_open_max_calls=2, success_threshold=2
    )
    state, a = transition(trip(config), ACQUIRE, 1.0, config)
    state, b = transition(state, ACQUIRE, 1.0, config)
    state, _ = run(config, state, Kind.SUCCESS, 1.0, ticket=a.ticket)
    assert (state.mode, state.successes) == (BreakerMode.HALF_OPEN, 1)
    state, decision = run(config, state, Kind.SUCCESS, 1.0, ticket=b.ticket)
    assert state.mode is BreakerMode.CLOSED
    assert (state.failures, state.trips, decision.prior) == (0, 0, BreakerMode.HALF_OPEN)


def test_a_probe_failure_reopens_with_a_longer_timeout() -> None:
    """With reset_backoff=2 each trip without a close doubles the wait, up to the cap."""
    config = BreakerConfig(
        failure_threshold=1, reset_timeout=10, reset_backoff=2, max_reset_timeout=25
    )
    state = trip(config)
    waits = []
    now = 0.0
    for _ in range(3):
        waits.append(state.open_until - now)
        now = state.open_until
        state, probe = transition(state, ACQUIRE, now, config)
        state, _ = run(config, state, Kind.FAILURE, now, ticket=probe.ticket)
    assert waits == [10.0, 20.0, 25.0]
    assert state.trips == 4


def test_a_released_probe_counts_as_nothing() -> None:
    """A probe that ended in an ignored error or a cancellation just frees its permit."""
    config = BreakerConfig(failure_threshold=1, reset_timeout=1)
    state, probe = transition(trip(config), ACQUIRE, 1.0, config)
    state, _ = run(config, state, Kind.RELEASE, 1.0, ticket=probe.ticket)
    assert (state.mode, state.probes, state.successes) == (BreakerMode.HALF_OPEN, (), 0)


def test_rate_mode_waits_for_minimum_calls() -> None:
    """failure_rate=0.5 over 4 calls: 3 failures in a row do not trip before 4 calls."""
    config = BreakerConfig(failure_rate=0.5, window_size=10, minimum_calls=4)
    state = BreakerState()
    for _ in range(3):
        state, _ = run(config, state, Kind.FAILURE, 0.0)
    assert state.mode is BreakerMode.CLOSED
    assert window_counts(state, 0.0, config) == (3, 3, 0)
    state, _ = run(config, state, Kind.SUCCESS, 0.0)
    assert state.mode is BreakerMode.OPEN


def test_count_window_forgets_old_calls() -> None:
    """Only the last window_size calls count."""
    config = BreakerConfig(failure_rate=0.5, window_size=4, minimum_calls=4)
    state = BreakerState()
    for kind in [Kind.FAILURE, Kind.SUCCESS, Kind.SUCCESS, Kind.SUCCESS, Kind.SUCCESS]:
        state, _ = run(config, state, kind, 0.0)
    assert state.window == "ssss"


def test_time_window_forgets_calls_older_than_window_duration() -> None:
    """Failures older than window_duration no longer count toward the rate."""
    config = BreakerConfig(failure_rate=0.5, window_duration=10, minimum_calls=2)
    state, _ = run(config, BreakerState(), Kind.FAILURE, 0.0)
    assert window_counts(state, 9.9, config) == (1, 1, 0)
    assert window_counts(state, 10.0, config) == (0, 0, 0)
    state, _ = run(config, state, Kind.FAILURE, 10.0)
    assert state.mode is BreakerMode.CLOSED  # the first failure aged out: 1 call < 2


def test_slow_calls_trip_at_the_slow_call_rate() -> None:
    """Successful but slow calls open the breaker once they reach slow_call_rate."""
    config = BreakerConfig(slow_call_duration=2, slow_call_rate=0.5, window_size=4, minimum_calls=4)
    state = BreakerState()
    for duration in [0.1, 3.0, 0.1]:
        state, _ = transition(state, Event(Kind.SUCCESS, 0, duration), 0.0, config)
    assert state.window == "sSs"
    state, _ = transition(state, Event(Kind.SUCCESS, 0, 2.0), 0.0, config)
    assert state.mode is BreakerMode.OPEN


def test_manual_operations() -> None:
    """force_open rejects with no retry time, disable admits, reset closes."""
    config = BreakerConfig()
    forced, _ = run(config, BreakerState(), Kind.FORCE_OPEN, 0.0)
    assert transition(forced, ACQUIRE, 1e9, config)[1].verdict is Verdict.REJECT
    assert transition(forced, ACQUIRE, 1e9, config)[1].retry_after is None
    disabled, _ = run(config, forced, Kind.DISABLE, 0.0)
    assert transition(disabled, ACQUIRE, 0.0, config)[1].verdict is Verdict.ALLOW
    assert run(config, disabled, Kind.FAILURE, 0.0, ticket=disabled.gen)[0] is disabled
    closed, decision = run(config, disabled, Kind.RESET, 0.0)
    assert (closed.mode, decision.prior) == (BreakerMode.CLOSED, BreakerMode.DISABLED)


def test_unknown_event_is_refused() -> None:
    """A malformed event is a bug in the caller, not something to ignore."""
    with pytest.raises(ValueError, match="unknown breaker event"):
        transition(BreakerState(), Event("bogus"), 0.0, BreakerConfig())  # type: ignore[arg-type]


events = st.lists(
    st.tuples(st.sampled_from(list(Kind)), st.integers(0, 6), st.sampled_from([0.0, 3.0, 9.0])),
    max_size=30,
)


@settings(max_examples=100, deadline=None)
@given(config=breaker_configs(), steps=events)
def test_state_round_trips_through_plain_data(
    config: BreakerConfig, steps: list[tuple[Kind, int, float]]
) -> None:
    """Every reachable state survives to_dict -> JSON -> from_dict unchanged."""
    state = BreakerState()
    now = 0.0
    for kind, ticket, duration in steps:
        now += duration
        state, _ = transition(state, Event(kind, ticket, duration), now, config)
        data = json.loads(json.dumps(state.to_dict()))
        assert BreakerState.from_dict(data) == state


def test_a_slow_probe_counts_as_failed() -> None:
    """With slow-call detection on, a probe that succeeds too slowly reopens the breaker."""
    config = BreakerConfig(slow_call_duration=2, window_size=1, minimum_calls=1, reset_timeout=1)
    state, _ = transition(BreakerState(), Event(Kind.SUCCESS, 0, 3.0), 0.0, config)
    assert state.mode is BreakerMode.OPEN
    state, probe = transition(state, ACQUIRE, 1.0, config)
    state, _ = transition(state, Event(Kind.SUCCESS, probe.ticket, 2.5), 3.5, config)
    assert (state.mode, state.trips) == (BreakerMode.OPEN, 2)


@settings(max_examples=50, deadline=None)
@given(config=breaker_configs(), steps=events)
def test_the_rules_need_only_plain_numbers(
    config: BreakerConfig, steps: list[tuple[Kind, int, float]]
) -> None:
    """A config rebuilt from rules() (what a Redis script would get) decides the same."""
    plain = json.loads(json.dumps(config.rules()))
    rebuilt = BreakerConfig(**plain)
    state_a = state_b = BreakerState()
    now = 0.0
    for kind, ticket, duration in steps:
        now += duration
        event = Event(kind, ticket, duration)
        state_a, decision_a = transition(state_a, event, now, config)
        state_b, decision_b = transition(state_b, event, now, rebuilt)
        assert (state_a, decision_a) == (state_b, decision_b)


def test_a_time_window_adds_each_call_to_the_newest_bucket() -> None:
    """Calls in the current bucket update that bucket, never the oldest one kept."""
    config = BreakerConfig(failure_rate=0.5, window_duration=10, minimum_calls=100)
    state = BreakerState()
    for kind, now in [
        (Kind.FAILURE, 0.5),  # bucket 0
        (Kind.SUCCESS, 1.5),  # bucket 1
        (Kind.SUCCESS, 1.7),  # bucket 1 again: the newest bucket grows
        (Kind.FAILURE, 1.9),
        (Kind.SUCCESS, 3.2),  # bucket 3
    ]:
        state, _ = run(config, state, kind, now, ticket=state.gen)
    assert state.buckets == ((0, 1, 1, 0), (1, 3, 1, 0), (3, 1, 0, 0))
    assert window_counts(state, 3.2, config) == (5, 2, 0)
    assert window_counts(state, 10.6, config) == (4, 1, 0)  # bucket 0 has left the window
