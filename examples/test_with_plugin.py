"""Testing your own resilience with resilient's pytest plugin and chaos injection.

Installing resilient installs the plugin; run this file with pytest (well under a second:
every wait below is virtual)::

    python -m pytest test_with_plugin.py

The code under test is a small lesson service: a flaky database read behind retry, a
breaker and a fallback, and an async AI call behind a 45 s timeout.
"""

from __future__ import annotations

import asyncio

import pytest

import resilient as rs
from resilient.chaos import inject_fault, inject_latency
from resilient.testing import FakeClock
from resilient_pytest import Breakers, MetricsRecorder

# --- the code under test ------------------------------------------------------------

database_calls: list[int] = []


@rs.fallback({"id": 0, "title": "Offline lesson"})
@rs.retry(attempts=3, initial_delay=1, multiplier=2, jitter=0, on=ConnectionError)
@rs.breaker("lessons-db", rs.BreakerConfig(failure_threshold=3, reset_timeout=30))
def get_lesson(lesson_id: int) -> dict[str, object]:
    database_calls.append(lesson_id)
    return {"id": lesson_id, "title": f"Lesson {lesson_id}"}


@rs.fallback("Try the worked example first.")
@rs.timeout(rs.Timeouts.ai_operation)  # 45 s
async def get_hint(question: str) -> str:
    await asyncio.sleep(2)  # the AI service usually answers in 2 s
    return f"Think about what '{question}' asks for."


# --- the tests ----------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _fresh_calls() -> None:
    database_calls.clear()


def test_a_lesson_is_read_at_once() -> None:
    """Nothing goes wrong: one database call, no fallback."""
    assert get_lesson(7) == {"id": 7, "title": "Lesson 7"}
    assert database_calls == [7]
    assert rs.last_fallback() is None


def test_retries_back_off_on_virtual_time(
    fake_clock: FakeClock, resilient_metrics: MetricsRecorder
) -> None:
    """Two injected connection errors: retried after 1 s and 2 s, taking no real time."""
    with inject_fault(ConnectionError("reset by peer"), rate=1.0, enabled=True) as chaos:
        assert get_lesson(7)["title"] == "Offline lesson"  # every attempt failed
    assert chaos.rate == 1.0
    assert fake_clock.sleeps == [1, 2]
    assert fake_clock.monotonic() == 3
    resilient_metrics.assert_counter("retry_attempts_total", 2)
    resilient_metrics.assert_counter("chaos_injections_total", 3)
    resilient_metrics.assert_counter("fallbacks_used_total", 1)


def test_an_open_breaker_is_answered_by_the_fallback(breakers: Breakers) -> None:
    """With the database's breaker open, the database is not called at all."""
    breakers.open("lessons-db")
    assert get_lesson(7)["title"] == "Offline lesson"
    assert database_calls == []
    assert breakers.state("lessons-db") == "forced_open"


def test_failures_trip_the_breaker(fake_clock: FakeClock, breakers: Breakers) -> None:
    """Three failed attempts open the breaker; the next call waits for nothing."""
    with inject_fault(ConnectionError, enabled=True):
        get_lesson(1)
    assert breakers.state("lessons-db") == "open"
    fake_clock.advance(31)  # past reset_timeout: the next call probes, and succeeds
    assert get_lesson(2)["title"] == "Lesson 2"
    assert breakers.state("lessons-db") == "closed"


def test_a_random_fault_rate_is_survived(fake_clock: FakeClock) -> None:
    """At a 50 % fault rate (seeded), every call still gets an answer, without waiting."""
    with inject_fault(ConnectionError, rate=0.5, seed=7, enabled=True):
        answers = [get_lesson(n) for n in range(20)]
    assert all(answer["title"] for answer in answers)
    assert 0 < len(database_calls) < 20  # some calls got through, not all


async def test_a_slow_ai_service_times_out_at_45_seconds(fake_clock: FakeClock) -> None:
    """The AI answering after 60 s is cut at 45 s of virtual time; the fallback answers."""
    with inject_latency(58, enabled=True):  # 58 s more than its usual 2 s
        assert await get_hint("fractions") == "Try the worked example first."
    assert fake_clock.monotonic() == 45


async def test_the_ai_answers_in_virtual_time(fake_clock: FakeClock) -> None:
    """The usual 2 s answer takes 2 s of virtual time, none of real time."""
    assert await get_hint("fractions") == "Think about what 'fractions' asks for."
    assert fake_clock.monotonic() == 2


@pytest.mark.resilient_instant(attempts=2)
def test_instant_mode_caps_attempts_and_waits() -> None:
    """Under the marker, retries make at most two attempts and never wait."""
    with inject_fault(ConnectionError, enabled=True):
        assert get_lesson(3)["title"] == "Offline lesson"
    assert rs.stats(get_lesson).attempts == 2
