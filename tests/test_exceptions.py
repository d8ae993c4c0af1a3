"""One family of errors: every error resilient raises is a ResilienceError from
``resilient.exceptions``, under names of its own."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from typing import TYPE_CHECKING, TypedDict

import pytest

import resilient
import resilient.exceptions
from resilient.testing import FakeClock

if TYPE_CHECKING:
    import httpx


def test_every_error_the_library_defines_is_a_resilience_error() -> None:
    """Every exception class in ``resilient.exceptions`` derives from ``ResilienceError``."""
    errors = [
        value
        for name in resilient.exceptions.__all__
        if isinstance(value := getattr(resilient.exceptions, name), type)
    ]
    assert len(errors) == len(resilient.exceptions.__all__) == 16
    for error in errors:
        assert issubclass(error, resilient.ResilienceError), error


def test_feature_unavailable_is_a_resilience_error_caught_by_its_old_name(
    fake_clock: FakeClock,
) -> None:
    """``@degradable`` raises the one ``FeatureUnavailableError``: caught as a
    ``ResilienceError`` and by every name it was importable under."""
    from resilient._degradation import FeatureUnavailableError as FromDegradation

    service = resilient.DegradationService.instance
    service.disable("ai_assistant", "rolled back")

    @resilient.degradable(resilient.Features.ai_assistant)
    def hint() -> str:
        return "hint"

    with pytest.raises(resilient.ResilienceError) as caught:
        hint()
    assert type(caught.value) is resilient.FeatureUnavailableError is FromDegradation
    assert caught.value.feature == "ai_assistant"
    assert caught.value.reason == "disabled: rolled back"


def test_feature_unavailable_pickles() -> None:
    """A ``FeatureUnavailableError`` survives pickling (process pools) with its fields."""
    error = resilient.FeatureUnavailableError("ai_assistant", "rolled back")
    again = pickle.loads(pickle.dumps(error))
    assert (again.feature, again.reason, str(again)) == (
        "ai_assistant",
        "rolled back",
        "feature 'ai_assistant' is unavailable: rolled back",
    )


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("HTTPError", "RequestFailedError"),
        ("HTTPStatusError", "ResponseStatusError"),
        ("NetworkError", "ConnectionFailedError"),
    ],
)
def test_http_errors_have_names_of_their_own_and_the_old_ones_warn(old: str, new: str) -> None:
    """``resilient.http``'s errors no longer take httpx's names; the old names give the same
    class for one release, with a warning naming the new one."""
    httpx = pytest.importorskip("httpx")
    import resilient.http

    current = getattr(resilient.http, new)
    assert current is getattr(resilient.exceptions, new)
    assert new in resilient.http.__all__
    assert old not in resilient.http.__all__
    assert not issubclass(current, getattr(httpx, old))  # not to be confused with httpx's
    with pytest.warns(DeprecationWarning, match=f"resilient.http.{new}") as record:
        assert getattr(resilient.http, old) is current
    assert record[0].filename == __file__


class _Request(TypedDict):
    method: str
    url: str
    correlation_id: str


_REQUEST: _Request = {"method": "GET", "url": "https://h.example/x", "correlation_id": "cid-1"}


def _response() -> httpx.Response:
    http = pytest.importorskip("httpx")
    request = http.Request("GET", "https://h.example/x")
    response: httpx.Response = http.Response(503, request=request, headers={"Retry-After": "3"})
    return response


def _late_timeout() -> BaseException:
    error = resilient.exceptions.TimeoutExceededError("mod.fn", 2.5)
    error.late_by = 0.3
    error.reason = "C code held the GIL"
    return error


_E = resilient.exceptions
_EXAMPLES: dict[str, Callable[[], BaseException]] = {
    "ResilienceError": lambda: _E.ResilienceError("plain"),
    "ConfigError": lambda: _E.ConfigError("timeout", -1, "a positive number"),
    "TimeoutExceededError": _late_timeout,
    "CircuitOpenError": lambda: _E.CircuitOpenError("br", 4.0),
    "BulkheadFullError": lambda: _E.BulkheadFullError("ai", 4, 10, "the queue is full"),
    "FeatureUnavailableError": lambda: _E.FeatureUnavailableError("feat", "off"),
    "RateLimitedError": lambda: _E.RateLimitedError("quota", 0.25),
    "OutboxError": lambda: _E.OutboxError("the disk is full"),
    "RequestFailedError": lambda: _E.RequestFailedError("boom", **_REQUEST),
    "ResponseStatusError": lambda: _E.ResponseStatusError(
        "bad status", response=_response(), retry_after=3.0, **_REQUEST
    ),
    "HTTPTimeoutError": lambda: _E.HTTPTimeoutError(
        "read timed out", phase="read", seconds=1.5, **_REQUEST
    ),
    "ConnectionFailedError": lambda: _E.ConnectionFailedError("reset", kind="network", **_REQUEST),
    "LocalRequestError": lambda: _E.LocalRequestError("bad header", **_REQUEST),
    "CaptivePortalError": lambda: _E.CaptivePortalError(
        "portal", location="http://login.example", **_REQUEST
    ),
    "ContentFilteredError": lambda: _E.ContentFilteredError(
        "blocked", marker="status 451", **_REQUEST
    ),
    "HostUnavailableError": lambda: _E.HostUnavailableError(
        breaker="host:h.example", retry_after=7.0, **_REQUEST
    ),
}


def _public_view(error: BaseException) -> dict[str, object]:
    """Every public data attribute of ``error`` (a response by what it holds), its message
    and its notes."""
    view: dict[str, object] = {"str": str(error), "notes": getattr(error, "__notes__", None)}
    for name in dir(error):
        if name.startswith("_"):
            continue
        try:
            value = getattr(error, name)
        except AttributeError:  # an OSError's characters_written, when never set
            continue
        if callable(value):
            continue
        if name == "response" and value is not None:
            value = (value.status_code, value.headers.multi_items(), str(value.request.url))
        view[name] = value
    return view


_ROUND_TRIPS: dict[str, Callable[[BaseException], object]] = {
    "pickle": lambda error: pickle.loads(pickle.dumps(error)),
    "copy": copy.copy,
    "deepcopy": copy.deepcopy,
}


@pytest.mark.parametrize("how", sorted(_ROUND_TRIPS))
@pytest.mark.parametrize("name", sorted(_E.__all__))
def test_every_error_survives_pickle_copy_and_deepcopy(name: str, how: str) -> None:
    """Every error class of ``resilient.exceptions`` comes back from pickle, copy and deepcopy
    as the same class with every public attribute, its message and its notes equal."""
    assert name in _EXAMPLES, f"give {name} an example in _EXAMPLES"
    error = _EXAMPLES[name]()
    assert type(error).__name__ == name
    error.add_note("seen by a test")
    again = _ROUND_TRIPS[how](error)
    assert type(again) is type(error)
    assert isinstance(again, BaseException)
    assert _public_view(again) == _public_view(error)
