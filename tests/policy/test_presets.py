"""One vocabulary of presets, one lookup, and the former names that still answer with a warning."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import resilient
from resilient import BreakerConfig
from resilient.presets import BACKEND_OPERATIONS, CLIENT_TIMEOUTS, RENAMED, Timeouts, lookup


@pytest.mark.parametrize("old", ["ai_service", "ai_llm"])
def test_old_breaker_preset_names_give_ai_operation_with_a_warning(old: str) -> None:
    """``BreakerConfig.ai_service``/``ai_llm`` (attribute, ``get``, ``@breaker``, a policy)
    give the ``ai_operation`` preset, each with a warning naming it."""
    new = BreakerConfig.ai_operation
    assert (new.failure_threshold, new.reset_timeout) == (3, 60.0)
    assert old not in BreakerConfig.names
    with pytest.warns(DeprecationWarning, match="'ai_operation'"):
        assert getattr(BreakerConfig, old) is new
    with pytest.warns(DeprecationWarning, match="'ai_operation'"):
        assert BreakerConfig.get(old) is new
    with pytest.warns(DeprecationWarning, match="'ai_operation'"):
        resilient.breaker(f"old-{old}", old)
    assert resilient.get_breaker(f"old-{old}").config is new
    with pytest.warns(DeprecationWarning, match="'ai_operation'"):
        resilient.policy(breaker=(f"policy-{old}", old))(_plain)
    assert resilient.get_breaker(f"policy-{old}").config is new


@pytest.mark.parametrize(
    ("table", "old", "new"),
    [
        (CLIENT_TIMEOUTS, "health_check", "quick"),
        (CLIENT_TIMEOUTS, "api_call", "standard"),
        (CLIENT_TIMEOUTS, "content_download", "heavy"),
        (BACKEND_OPERATIONS, "ai_llm", "ai_operation"),
    ],
)
def test_the_tables_use_the_preset_words_and_answer_old_keys_with_a_warning(
    table: dict[str, object], old: str, new: str
) -> None:
    """The preset tables are keyed by the preset words; an old key gives the same row with
    a warning, and an unknown key is still a ``KeyError``."""
    assert new in table
    assert old not in table
    with pytest.warns(DeprecationWarning, match=repr(new)):
        assert table[old] is table[new]
    with pytest.raises(KeyError):
        table["no_such_preset"]


def test_one_vocabulary_across_preset_kinds() -> None:
    """Every kind names the same work alike: ``ai_operation`` is a timeout, a retry, a
    breaker, a request and a table preset, and no kind keeps a former name."""
    from resilient import RetryConfig

    former = {old for renamed in RENAMED.values() for old in renamed}
    kinds: list[object] = [Timeouts, RetryConfig, BreakerConfig]
    try:
        from resilient.http import RequestConfig
    except ImportError:  # pragma: no cover - the http extra is missing
        pass
    else:
        kinds.append(RequestConfig)
    for kind in kinds:
        names: tuple[str, ...] = kind.names  # type: ignore[attr-defined]
        assert "ai_operation" in names, kind
        assert not set(names) & former, kind
        for name in names:
            assert lookup(kind, name) is getattr(kind, name)
    assert set(CLIENT_TIMEOUTS) == set(Timeouts.names)
    assert not set(BACKEND_OPERATIONS) & former
    assert not set(CLIENT_TIMEOUTS) & former


def test_lookup_refuses_an_unknown_name_naming_the_parameter() -> None:
    """An unknown preset name is a ``ConfigError`` naming the parameter and the closest name."""
    with pytest.raises(resilient.ConfigError) as caught:
        lookup(BreakerConfig, "ai_operaton", "breaker")
    assert caught.value.parameter == "breaker"
    assert "did you mean 'ai_operation'?" in caught.value.allowed


def _plain() -> str:
    return "ok"


@pytest.mark.parametrize(
    ("kind", "old"), [(Timeouts, "api_call"), (Timeouts, "ai_service"), (BreakerConfig, "api_call")]
)
def test_a_former_name_is_accepted_only_where_it_was_used(kind: object, old: str) -> None:
    """A former name counts only for the kind that had it: elsewhere it is refused as ever."""
    with pytest.raises(resilient.ConfigError):
        lookup(kind, old)


def _http_client_with_breaker(name: str) -> None:
    from resilient.http import Client

    Client("https://h.example", breaker=name).close()


@pytest.mark.parametrize(
    "use",
    [
        pytest.param(lambda: BreakerConfig.ai_service, id="attribute"),
        pytest.param(lambda: BreakerConfig.get("ai_llm"), id="BreakerConfig.get"),
        pytest.param(lambda: lookup(BreakerConfig, "ai_llm"), id="lookup"),
        pytest.param(lambda: resilient.breaker("stacklevel-breaker", "ai_service"), id="breaker"),
        pytest.param(
            lambda: resilient.policy(breaker=("stacklevel-policy", "ai_llm")), id="policy"
        ),
        pytest.param(lambda: _http_client_with_breaker("ai_llm"), id="http.Client"),
        pytest.param(lambda: CLIENT_TIMEOUTS["api_call"], id="CLIENT_TIMEOUTS[]"),
        pytest.param(lambda: CLIENT_TIMEOUTS.get("api_call"), id="CLIENT_TIMEOUTS.get"),
        pytest.param(lambda: BACKEND_OPERATIONS.get("ai_llm", None), id="BACKEND_OPERATIONS.get"),
    ],
)
def test_a_former_name_warns_at_the_line_that_used_it(use: Callable[[], object]) -> None:
    """Each former-name warning is attributed to the user's line, not to a frame inside
    resilient, so Python's default filters show it."""
    with pytest.warns(DeprecationWarning, match="is deprecated") as record:
        use()
    assert len(record) == 1
    assert record[0].filename == __file__


def test_the_tables_get_answers_like_a_mapping() -> None:
    """``get`` on a preset table gives the row, the default for an unknown key, ``None``
    without one."""
    assert CLIENT_TIMEOUTS.get("quick") is CLIENT_TIMEOUTS["quick"]
    assert CLIENT_TIMEOUTS.get("no_such_preset") is None
    assert BACKEND_OPERATIONS.get("no_such_preset", "absent") == "absent"
