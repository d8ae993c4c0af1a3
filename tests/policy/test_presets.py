"""One vocabulary of presets, one lookup, and the former names that still answer with a warning."""

from __future__ import annotations

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
