"""The HTTP clients retry through ``@retry``'s core: same caps, waits, deadline and notes."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

import resilient
from resilient._retry.plan import NOT_RETRYABLE, GiveUp, RetryPlan, Sleep
from resilient.http import AsyncClient, Client, RequestConfig, ResponseStatusError
from resilient.testing import FakeClock

URL = "http://api.test"


def answering(*statuses: int, headers: dict[str, str] | None = None) -> Callable[..., object]:
    """A transport handler giving ``statuses`` in turn (then 200), counting the requests."""
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        index = len(seen) - 1
        status = statuses[index] if index < len(statuses) else 200
        return httpx.Response(status, json={"n": index}, headers=headers)

    answer.seen = seen  # type: ignore[attr-defined]
    return answer


def client(handler: Callable[..., object], **options: object) -> Client:
    return Client(URL, transport=httpx.MockTransport(handler), breaker=None, **options)  # type: ignore[arg-type]


def async_client(handler: Callable[..., object], **options: object) -> AsyncClient:
    return AsyncClient(URL, transport=httpx.MockTransport(handler), breaker=None, **options)  # type: ignore[arg-type]


class BusyError(Exception):
    """A plain error with a server's ``Retry-After``, for ``@retry``."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


# --- one engine: what is now the same for @retry and the client ----------------------------


def test_instant_mode_caps_the_clients_attempts_without_waiting(fake_clock: FakeClock) -> None:
    """Under ``resilient.testing.instant(2)`` the client, like ``@retry``, tries twice, no waits."""
    handler = answering(503, 503, 503)
    with (
        client(handler) as http,
        resilient.testing.instant(2),
        pytest.raises(ResponseStatusError) as caught,
    ):
        http.get("/a")
    assert len(handler.seen) == 2  # type: ignore[attr-defined]
    assert fake_clock.sleeps == []
    assert caught.value.__notes__ == ["resilient.http gave up after 2 attempts"]


async def test_instant_mode_caps_the_async_clients_attempts_without_waiting(
    fake_clock: FakeClock,
) -> None:
    """The async client honours ``instant()`` the same way."""
    handler = answering(503, 503, 503)
    async with async_client(handler) as http:
        with resilient.testing.instant(2), pytest.raises(ResponseStatusError) as caught:
            await http.get("/a")
    assert len(handler.seen) == 2  # type: ignore[attr-defined]
    assert fake_clock.sleeps == []
    assert caught.value.__notes__ == ["resilient.http gave up after 2 attempts"]


def test_a_too_long_retry_after_gives_the_same_reason_in_retry_and_the_client(
    fake_clock: FakeClock,
) -> None:
    """A ``Retry-After`` over ``max_retry_after`` ends both engines with one wording."""
    retry = resilient.RetryConfig(max_retry_after=5.0)
    handler = answering(503, headers={"Retry-After": "100"})
    with (
        client(handler, config=RequestConfig(retry=retry)) as http,
        pytest.raises(ResponseStatusError) as by_client,
    ):
        http.get("/a")

    @resilient.retry(retry)
    def fetch() -> None:
        raise BusyError(100.0)

    with pytest.raises(BusyError) as by_retry:
        fetch()
    reason = "after 1 attempt, as the error asks for a 100s wait, longer than max_retry_after=5s"
    assert by_client.value.__notes__ == [f"resilient.http gave up {reason}"]
    assert by_retry.value.__notes__[0].endswith(f" {reason}: BusyError")
    assert fake_clock.sleeps == []


def test_a_wait_past_the_deadline_gives_the_same_reason_in_retry_and_the_client(
    fake_clock: FakeClock,
) -> None:
    """A wait that does not fit in the time left is refused by both engines in one wording."""
    handler = answering(503, headers={"Retry-After": "8"})
    with (
        client(handler, config=RequestConfig(total=6.0)) as http,
        pytest.raises(ResponseStatusError) as by_client,
    ):
        http.get("/a")

    @resilient.timeout(6.0)
    @resilient.retry()
    def fetch() -> None:
        raise BusyError(8.0)

    with pytest.raises(BusyError) as by_retry:
        fetch()
    reason = "after 1 attempt, as a 8s wait does not fit in the 6s left before the deadline"
    assert by_client.value.__notes__ == [f"resilient.http gave up {reason}"]
    assert by_retry.value.__notes__[0].endswith(f" {reason}: BusyError")


def test_a_zero_wait_is_not_slept_by_the_client_as_by_retry(fake_clock: FakeClock) -> None:
    """With no backoff the client retries at once, with no zero-second sleep, as ``@retry`` does."""
    config = RequestConfig(retry=resilient.RetryConfig(initial_delay=0.0))
    handler = answering(503, 503)
    with client(handler, config=config) as http:
        assert http.get("/a").json() == {"n": 2}
    assert fake_clock.sleeps == []


# --- what the client still decides itself -------------------------------------------------


def prepared(http: Client, method: str, **kwargs: object) -> object:
    return http.prepare(method, "/a", http.config, 0.0, 10.0, None, False, dict(kwargs))


@pytest.mark.parametrize(
    ("status", "method", "kwargs", "expected"),
    [
        (404, "GET", {}, NOT_RETRYABLE),
        (503, "POST", {}, "not idempotent"),
        (503, "POST", {"headers": {"Idempotency-Key": "k"}}, Sleep),
        (503, "PUT", {"content": iter([b"x"])}, "the request body is a stream"),
        (503, "GET", {}, Sleep),
    ],
)
def test_the_clients_own_rules_come_before_the_core(
    fake_clock: FakeClock, status: int, method: str, kwargs: dict[str, object], expected: object
) -> None:
    """Statuses, methods and bodies are HTTP's rules; what they allow gets the core's answer."""
    with client(answering()) as http:
        exchange = prepared(http, method, **kwargs)
        error = http.status_failure(httpx.Response(status), exchange)  # type: ignore[arg-type]
        plan = http.retry_plan(exchange)  # type: ignore[arg-type]
        assert isinstance(plan, RetryPlan)
        decision = http.decide(error, exchange, plan)  # type: ignore[arg-type]
    if expected is Sleep:
        assert isinstance(decision, Sleep)
        assert plan.attempt == 1
    elif isinstance(expected, str):
        assert isinstance(decision, GiveUp)
        assert decision.reason is not None
        assert decision.reason.startswith("resilient.http did not retry: ")
        assert expected in decision.reason
    else:
        assert decision == expected
