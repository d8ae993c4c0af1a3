"""One family of errors: every error resilient raises is a ResilienceError from
``resilient.exceptions``, under names of its own."""

from __future__ import annotations

import pickle

import pytest

import resilient
import resilient.exceptions
from resilient.testing import FakeClock


def test_every_error_the_library_defines_is_a_resilience_error() -> None:
    """Every exception class in ``resilient.exceptions`` derives from ``ResilienceError``."""
    errors = [
        value
        for name in resilient.exceptions.__all__
        if isinstance(value := getattr(resilient.exceptions, name), type)
    ]
    assert len(errors) == len(resilient.exceptions.__all__) == 13
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
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.feature, copy.reason, str(copy)) == (
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
