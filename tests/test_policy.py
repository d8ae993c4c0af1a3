"""Declarative policies: canonical order, one chain, TOML, describe, stacking warnings."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

import resilient
from resilient._fallback import fallback
from resilient._policy import describe, load_policies, policy
from resilient._wrapping import layers_of
from resilient.testing import FakeClock

DATA = Path(__file__).parent / "data"


def ai_unavailable(*args: object, **kwargs: object) -> dict[str, str]:
    return {"text": "AI is temporarily unavailable"}


def test_policy_composes_in_the_canonical_order() -> None:
    """Whatever order the keywords come in, the stack is fallback > retry > breaker > timeout."""
    declared = policy(timeout=5, breaker=("p-order", "critical"), retry="quick", fallback="x")

    @declared
    def work() -> str:
        return "ok"

    assert [layer.kind for layer in layers_of(work)] == ["fallback", "retry", "breaker", "timeout"]
    assert work() == "ok"


def test_policy_costs_one_chain_like_hand_stacking() -> None:
    """A policy's wrapper wraps the original function directly, once."""

    @policy(retry="standard", timeout=1)
    def work() -> int:
        return 1

    assert work.__wrapped__.__name__ == "work"  # type: ignore[attr-defined]
    assert not hasattr(work.__wrapped__, "__wrapped__")  # type: ignore[attr-defined]


async def test_policy_works_on_async_functions(clock: FakeClock) -> None:
    """The same policy object decorates a coroutine function."""
    calls = 0

    @policy(retry={"attempts": 3, "initial_delay": 0}, fallback="fallback")
    async def flaky() -> str:
        nonlocal calls
        calls += 1
        raise ConnectionError

    assert await flaky() == "fallback"
    assert calls == 3


def test_toml_policy_equals_the_hand_written_stack(clock: FakeClock) -> None:
    """A TOML policy describes and behaves like the same decorators written by hand."""
    load_policies(DATA / "policies.toml")

    @policy("ai_service")
    def from_file(fail: bool) -> dict[str, str]:
        if fail:
            raise ConnectionError
        return {"text": "real"}

    @fallback(ai_unavailable)
    @resilient.retry("standard", jitter=0.0)
    @resilient.breaker("ai-generate", "ai_service")
    @resilient.timeout("ai_operation")
    def by_hand(fail: bool) -> dict[str, str]:
        if fail:
            raise ConnectionError
        return {"text": "real"}

    assert describe(from_file) == describe(by_hand)
    script = [False, True, False, True, True]
    from_toml = [from_file(f) for f in script]
    resilient.get_breaker("ai-generate").reset()  # both use the one breaker of that name
    assert from_toml == [by_hand(f) for f in script]
    assert from_toml[-1] == ai_unavailable()  # by then the breaker is open


def test_pyproject_tables_and_dicts_load_too(tmp_path: Path) -> None:
    """[tool.resilient.policies.NAME] in pyproject.toml, or a plain dict."""
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[tool.resilient.policies.fast]\ntimeout = 2\nretry = "quick"\n')
    assert set(load_policies(pyproject)) == {"fast"}
    loaded = load_policies({"db": {"timeout": 5, "breaker": {"name": "db", "config": "database"}}})
    assert [step["layer"] for step in loaded["db"].describe()] == ["breaker", "timeout"]
    assert policy("fast") is not policy("db")


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("[policies.x]\ntimeout = -1\n", "policies.x.timeout"),
        ("[policies.x]\nretries = 3\n", "policies.x.retries"),
        ('[policies.x]\nextends = "nope"\n', "policies.x.extends"),
        ('[policies.x]\nfallback = "no_such_module:thing"\n', "policies.x.fallback"),
        ('[policies.x]\nextends = "y"\n[policies.y]\nextends = "x"\n', "extends"),
    ],
)
def test_invalid_files_name_the_file_key_and_value(tmp_path: Path, text: str, where: str) -> None:
    """ConfigError says which file, which key and which value."""
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(resilient.ConfigError) as caught:
        load_policies(path)
    assert str(path) in caught.value.parameter
    assert where in caught.value.parameter


def test_unknown_policy_name_is_refused() -> None:
    """Asking for a policy that was never loaded says what is known."""
    with pytest.raises(resilient.ConfigError, match="policy"):
        policy("ghost")


def test_describe_lists_every_setting_outermost_first() -> None:
    """describe() returns plain dicts and prints one line per step."""

    @resilient.retry(attempts=4)
    @resilient.timeout(2)
    def work() -> None: ...

    steps = describe(work)
    assert [s["layer"] for s in steps] == ["retry", "timeout"]
    assert steps[0]["attempts"] == 4
    assert steps[1] == {"layer": "timeout", "seconds": 2.0, "strategy": "thread"}
    text = str(steps)
    assert text.splitlines()[0].startswith("1. retry: attempts=4")
    assert "2. timeout: seconds=2" in text


def test_self_defeating_stacks_warn_once_per_function() -> None:
    """A fallback inside a retry, or a per-attempt timeout longer than the total, warns."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")

        @resilient.retry()
        @fallback("x")
        def hidden() -> None: ...

        @resilient.timeout(5)
        @resilient.retry()
        @resilient.timeout(10)
        def too_long() -> None: ...

    warned = resilient.ResilienceWarning
    messages = [str(w.message) for w in caught if issubclass(w.category, warned)]
    assert len(messages) == 2
    assert "@fallback is inside @retry" in messages[0]
    assert "inner timeout of 10s is longer than the total 5s" in messages[1]
