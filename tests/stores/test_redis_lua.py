"""The Lua script and the pure ``transition`` agree, bit for bit, on every event sequence."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis_server import RedisServer, unique_prefix
from strategies import breaker_options

from resilient import BreakerConfig
from resilient._circuit.rules import (
    INITIAL,
    BreakerMode,
    BreakerState,
    Decision,
    Event,
    Kind,
    Verdict,
    transition,
)
from resilient.stores import _lua

# Mostly calls; manual operations now and then (forced open and disabled breakers ignore
# everything until a reset, a dull place to spend steps in; a forced open with a
# duration ends by itself, and half-open by hand starts probing).
KINDS = (
    [Kind.ACQUIRE] * 12
    + [Kind.SUCCESS] * 10
    + [Kind.FAILURE] * 10
    + [Kind.RELEASE, Kind.RELEASE, Kind.RESET, Kind.RESET, Kind.FORCE_OPEN, Kind.DISABLE]
    + [Kind.HALF_OPEN, Kind.FORCE_OPEN]
)


@st.composite
def configs(draw: st.DrawFn) -> BreakerConfig:
    """The model test's configurations, plus time windows that are not whole seconds
    (where Python's float ``//`` and a naive ``floor(a / b)`` disagree)."""
    options = draw(breaker_options())
    if "window_duration" in options:
        options["window_duration"] = draw(st.sampled_from([0.1, 0.3, 2.5, 10.0, 60.0]))
    return BreakerConfig(**options)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[BreakerConfig, list[tuple[Kind, str, float, float, bool]]]:
    """A configuration and events for it: a kind, a ticket rule ("current": the ticket a
    live call would hold, "probe": a probe's, "stale": neither), a duration, a clock
    advance, and whether the script call ends after it. Advances land exactly on the
    config's reset timeout and probe lease, and on bucket edges, where a > in place of a
    >= would show."""
    config = draw(configs())
    advances = [0.0, 0.0, 0.1, 0.3, 1.0, 1e-9, *[config.reset_timeout, config.probe_timeout] * 2]
    count = draw(st.integers(1, 60))
    sequence = [
        (
            draw(st.sampled_from(KINDS)),
            draw(st.sampled_from(["current", "current", "probe", "stale"])),
            draw(st.sampled_from([0.0, 0.1, 4.999, 5.0, 7.5])),
            draw(st.sampled_from(advances)),
            draw(st.booleans()),  # the last event of a script call (calls batch events)
        )
        for _ in range(count)
    ]
    return config, sequence


def ticket_for(rule: str, state: BreakerState) -> int:
    if rule == "current":
        return state.gen
    if rule == "probe" and state.probes:
        return state.probes[0][0]
    return state.gen - 1


def run_script(
    script: Any, key: str, events: list[tuple[Event, float]], config: BreakerConfig
) -> list[tuple[BreakerState, Decision]]:
    """Apply ``events`` (with their times) in one script call; each one's answer."""
    args = ["60000", "", "lua-test", *_lua.rules_args(config), "", "", "", ""]
    for event, now in events:
        args += [str(event.kind), str(event.ticket), _lua.number(event.duration)]
        args.append(_lua.number(now))
    reply = script(keys=[key], args=args)
    results = []
    for start in range(2, len(reply), 14):
        verdict, ticket, retry_after, prior = (_lua.as_text(v) for v in reply[start : start + 4])
        decision = Decision(
            Verdict(verdict),
            int(ticket),
            float(retry_after) if retry_after else None,
            BreakerMode(prior),
        )
        results.append((_lua.decode(reply[start + 4 : start + 14])[0], decision))
    return results


@pytest.fixture
def script(redis_server: RedisServer) -> Any:
    import redis

    client = redis.Redis.from_url(redis_server.url)
    yield client.register_script(_lua.TRANSITION)
    client.close()


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    scenario=scenarios(),
    start=st.sampled_from([0.0, 1000.0, 1.7e9 + 0.1]),
    reopening=st.booleans(),
)
def test_script_agrees_with_transition(
    script: Any, scenario: Any, start: float, reopening: bool
) -> None:
    """Each event gives the same state and the same decision in Lua as in Python, one
    event per script call or several in one (as AsyncRedisStore batches them).

    Half the runs start from an open breaker about to let probes through, where the
    half-open rules (leases, probe counts, success thresholds) get most of the steps.
    """
    config, sequence = scenario
    key = f"{unique_prefix()}:{{lua}}:state"
    state, now = INITIAL, start
    if reopening:
        state = BreakerState(BreakerMode.OPEN, 5, 2, 0, now - 1.0, now, 1)
        script.registered_client.hset(
            key, mapping=dict(zip(_lua.FIELDS, _lua.encode(state), strict=False))
        )
    batch: list[tuple[Event, float]] = []
    expected: list[tuple[BreakerState, Decision]] = []
    for kind, rule, duration, advance, last_of_batch in sequence:
        now += advance
        event = Event(kind, ticket_for(rule, state), duration)
        state, decision = transition(state, event, now, config)
        batch.append((event, now))
        expected.append((state, decision))
        if last_of_batch:
            assert run_script(script, key, batch, config) == expected, batch
            batch, expected = [], []
    if batch:
        assert run_script(script, key, batch, config) == expected, batch


def test_a_state_round_trips_through_its_encoding() -> None:
    """``encode`` then ``decode`` gives back the same state, floats exactly."""
    state = BreakerState(
        mode=BreakerMode.HALF_OPEN,
        gen=7,
        failures=3,
        successes=1,
        opened_at=0.1 + 0.2,
        open_until=float("inf"),
        trips=4,
        probes=((6, 1e-9), (7, 1.7e9 + 0.123456789)),
        window="sSfF",
        buckets=((-3, 1, 0, 1), (170000000000, 4, 2, 0)),
    )
    assert _lua.decode([*_lua.encode(state), "12"]) == (state, 12)


def test_a_script_run_past_its_deadline_changes_nothing(script: Any) -> None:
    """A script that reaches the server after its deadline answers "late" and writes
    nothing; one within it applies its event."""
    key = f"{unique_prefix()}:{{lua}}:state"
    config = BreakerConfig(failure_threshold=1)
    seconds, micros = script.registered_client.time()
    now_us = seconds * 1_000_000 + micros
    head = ["60000", "", "lua-test", *_lua.rules_args(config), "", "", ""]
    assert len(head) == _lua.DEADLINE_ARG
    event = [str(Kind.FAILURE), "0", "0", ""]
    reply = script(keys=[key], args=[*head, str(now_us - 1), *event])
    assert _lua.as_text(reply[1]) == "late"
    assert script.registered_client.exists(key) == 0
    reply = script(keys=[key], args=[*head, str(now_us + 60_000_000), *event])
    assert _lua.decode(reply[6:16])[0].mode is BreakerMode.OPEN
    assert script.registered_client.hget(key, "mode") == b"open"
