"""Declarative policies: canonical order, one chain, TOML, describe, stacking warnings."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

import resilient
from resilient._fallback import fallback
from resilient._policy import describe, load_policies, policy
from resilient._wrapping.layer import layers_of
from resilient.testing import FakeClock

DATA = Path(__file__).parents[1] / "data"


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


async def test_policy_works_on_async_functions(fake_clock: FakeClock) -> None:
    """The same policy object decorates a coroutine function."""
    calls = 0

    @policy(retry={"attempts": 3, "initial_delay": 0}, fallback="fallback")
    async def flaky() -> str:
        nonlocal calls
        calls += 1
        raise ConnectionError

    assert await flaky() == "fallback"
    assert calls == 3


def test_toml_policy_equals_the_hand_written_stack(fake_clock: FakeClock) -> None:
    """A TOML policy describes and behaves like the same decorators written by hand."""
    load_policies(DATA / "policies.toml", imports=("test_policy",))

    @policy("ai_service")
    def from_file(fail: bool) -> dict[str, str]:
        if fail:
            raise ConnectionError
        return {"text": "real"}

    @fallback(ai_unavailable)
    @resilient.retry("standard", jitter=0.0)
    @resilient.breaker("ai-generate", "ai_operation")
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


# Clear errors: every mistake names what the user wrote.


def test_an_empty_policy_table_is_refused_like_an_empty_policy(tmp_path: Path) -> None:
    """[policies.x] with no steps is refused, naming the file and the policy, as policy() is."""
    path = tmp_path / "empty.toml"
    path.write_text("[policies.full]\ntimeout = 1\n[policies.x]\n")
    with pytest.raises(resilient.ConfigError) as caught:
        load_policies(path)
    assert caught.value.parameter == f"{path}: policies.x"
    with pytest.raises(resilient.ConfigError):
        load_policies({"x": {}})
    with pytest.raises(resilient.ConfigError):
        policy()


def test_a_typo_in_a_step_names_the_key_and_suggests_the_right_one() -> None:
    """policy(retry={"attemps": 3}) names retry.attemps and says did you mean 'attempts'."""
    with pytest.raises(resilient.ConfigError) as caught:
        policy(retry={"attemps": 3})
    assert caught.value.parameter == "retry.attemps"
    assert "did you mean 'attempts'?" in str(caught.value)
    with pytest.raises(resilient.ConfigError) as caught:
        policy(breaker={"name": "p-typo", "failure_treshold": 3})
    assert caught.value.parameter == "breaker.failure_treshold"
    assert "did you mean 'failure_threshold'?" in str(caught.value)


def test_a_typo_in_a_file_names_the_file_policy_and_key(tmp_path: Path) -> None:
    """The same typo in TOML names the file, the policy and the key, with the suggestion."""
    path = tmp_path / "typo.toml"
    path.write_text("[policies.billing]\nretry = { attemps = 3 }\n")
    with pytest.raises(resilient.ConfigError) as caught:
        load_policies(path)
    assert caught.value.parameter == f"{path}: policies.billing.retry.attemps"
    assert "did you mean 'attempts'?" in str(caught.value)
    path.write_text("[policies.billing]\nretries = 3\n")
    with pytest.raises(resilient.ConfigError, match="did you mean 'retry'"):
        load_policies(path)


@pytest.mark.parametrize(
    ("given", "parameter", "suggestion"),
    [
        ({"timeout": "ai_operaton"}, "timeout", "ai_operation"),
        ({"total_timeout": "standrad"}, "total_timeout", "standard"),
        ({"timeout": {"seconds": "heavey"}}, "timeout.seconds", "heavy"),
        ({"retry": "standrad"}, "retry", "standard"),
        ({"retry": {"config": "patiant"}}, "retry.config", "patient"),
        ({"breaker": ("p-preset", "ai_operaton")}, "breaker", "ai_operation"),
        ({"breaker": {"name": "p-preset", "config": "databse"}}, "breaker.config", "database"),
    ],
)
def test_a_mistyped_preset_name_suggests_the_closest(
    given: dict[str, object], parameter: str, suggestion: str
) -> None:
    """A preset name that does not exist is refused with the closest preset name."""
    with pytest.raises(resilient.ConfigError) as caught:
        policy(**given)  # type: ignore[arg-type]
    assert caught.value.parameter == parameter
    assert f"did you mean {suggestion!r}?" in str(caught.value)


def test_timeouts_get_suggests_the_closest_preset() -> None:
    """Timeouts.get('ai_operaton') says did you mean 'ai_operation'."""
    with pytest.raises(resilient.ConfigError, match=r"did you mean 'ai_operation'\?"):
        resilient.Timeouts.get("ai_operaton")
    with pytest.raises(resilient.ConfigError) as caught:
        resilient.Timeouts.get("nothing-like-it", parameter="seconds")
    assert caught.value.parameter == "seconds"
    assert "did you mean" not in str(caught.value)


def test_an_unknown_policy_name_suggests_a_loaded_one() -> None:
    """policy('ai_servce') after loading ai_service suggests it."""
    load_policies({"ai_service": {"timeout": 1}})
    with pytest.raises(resilient.ConfigError, match=r"did you mean 'ai_service'\?"):
        policy("ai_servce")


@pytest.mark.parametrize(
    ("given", "parameter"),
    [
        ({"breaker": -1}, "breaker"),
        ({"breaker": {"name": "p-neg", "failure_threshold": -1}}, "breaker.failure_threshold"),
        ({"retry": 3}, "retry"),
        ({"retry": {"attempts": 0}}, "retry.attempts"),
        ({"timeout": -1}, "timeout"),
        ({"timeout": {"seconds": 1, "strategy": "fork"}}, "timeout.strategy"),
        ({"total_timeout": float("nan")}, "total_timeout"),
        ({"fallback": {"value": 1, "on": 3}}, "fallback.on"),
        ({"fallback": {"values": 3}}, "fallback.values"),
        ({"degradable": 3}, "degradable"),
        ({"degradable": {"feature": "ai_assistant", "service": "x"}}, "degradable.service"),
    ],
)
def test_errors_name_the_step_and_key_the_user_wrote(
    given: dict[str, object], parameter: str
) -> None:
    """A step forwarded to its decorator reports the policy's own parameter, not the inner one."""
    with pytest.raises(resilient.ConfigError) as caught:
        policy(**given)  # type: ignore[arg-type]
    assert caught.value.parameter == parameter


def test_a_breaker_dict_takes_breaker_config_fields() -> None:
    """breaker = {name, config, failure_threshold} is the preset with that field changed."""
    loaded = load_policies(
        {"db": {"breaker": {"name": "p-db", "config": "database", "reset_timeout": 5}}}
    )
    config = loaded["db"].describe()[0]["config"]
    assert config == resilient.BreakerConfig.database.replace(reset_timeout=5)


def test_a_toml_array_gives_the_name_and_preset_form_of_a_breaker(tmp_path: Path) -> None:
    """breaker = ["p-arr", "database"] in a file is the (name, preset) pair, as in Python."""
    file = tmp_path / "policies.toml"
    file.write_text('[policies.db]\nbreaker = ["p-arr", "database"]\n')
    step = load_policies(file)["db"].describe()[0]
    assert step["name"] == "p-arr"
    assert step["config"] == resilient.BreakerConfig.database


def test_a_long_extends_chain_loads_without_recursion() -> None:
    """A 1,200-deep chain of extends loads; every policy inherits the deepest step."""
    tables: dict[str, object] = {f"p{i}": {"extends": f"p{i + 1}"} for i in range(1200)}
    tables["p1200"] = {"timeout": 3}
    loaded = load_policies(tables)  # type: ignore[arg-type]
    assert len(loaded) == 1201
    assert loaded["p0"].describe()[0]["seconds"] == 3.0


def test_an_extends_cycle_is_refused_naming_it() -> None:
    """A cycle in a long chain is a ConfigError that shows the loop, not a RecursionError."""
    tables: dict[str, object] = {f"p{i}": {"extends": f"p{i + 1}"} for i in range(1200)}
    tables["p1200"] = {"extends": "p3"}
    with pytest.raises(resilient.ConfigError) as caught:
        load_policies(tables)  # type: ignore[arg-type]
    assert caught.value.parameter == "<dict>: policies.p1200.extends"
    assert "p3 -> p4" in str(caught.value)
    with pytest.raises(resilient.ConfigError, match="a -> a"):
        load_policies({"a": {"extends": "a", "timeout": 1}})


@pytest.mark.parametrize("source", [42, None, b"policies.toml", ["x"]])
def test_a_source_that_is_neither_a_path_nor_a_dict_is_refused(source: object) -> None:
    """load_policies(42) raises ConfigError naming source, not a TypeError."""
    with pytest.raises(resilient.ConfigError) as caught:
        load_policies(source)  # type: ignore[arg-type]
    assert caught.value.parameter == "source"


# Policy files are code: imports are opt-in and fenced.


@pytest.fixture
def app_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An importable package ``polapp`` whose modules record that they were imported."""
    package = tmp_path / "polapp"
    package.mkdir()
    marker = tmp_path / "imported.txt"
    body = (
        f"with open({str(marker)!r}, 'a') as marker:\n    marker.write(__name__ + '\\n')\n"
        "def offline(*args, **kwargs):\n    return 'offline'\n"
    )
    (package / "__init__.py").write_text(body)
    (package / "fallbacks.py").write_text(body)
    (tmp_path / "polappevil.py").write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield marker
    for name in ("polapp", "polapp.fallbacks", "polappevil"):
        sys.modules.pop(name, None)


@pytest.mark.parametrize(
    ("step", "key"),
    [
        ('fallback = "builtins:eval"', "fallback"),
        ('fallback = { values = ["polapp.fallbacks:offline"] }', "fallback.values"),
        ('retry = { on = ["polapp:offline"] }', "retry.on"),
        ('breaker = { name = "b", record = "polappevil:offline" }', "breaker.record"),
    ],
)
def test_a_policy_file_imports_nothing_unless_allowed(
    tmp_path: Path, app_package: Path, step: str, key: str
) -> None:
    """Without imports=, a module:attribute is refused naming file, policy and key; none runs."""
    path = tmp_path / "hostile.toml"
    path.write_text(f"[policies.billing]\n{step}\n")
    with pytest.raises(resilient.ConfigError) as caught:
        load_policies(path)
    assert caught.value.parameter == f"{path}: policies.billing.{key}"
    assert "imports=" in str(caught.value)
    assert not app_package.exists()  # no module's top-level code ran


def test_imports_allow_only_the_listed_packages(tmp_path: Path, app_package: Path) -> None:
    """imports=("polapp",) allows polapp and polapp.*, never a module that merely starts alike."""
    path = tmp_path / "app.toml"
    path.write_text('[policies.ok]\nfallback = "polapp.fallbacks:offline"\n')
    loaded = load_policies(path, imports=("polapp",))

    @loaded["ok"]
    def broken() -> str:
        raise ConnectionError

    assert broken() == "offline"
    path.write_text('[policies.evil]\nfallback = "polappevil:offline"\n')
    with pytest.raises(resilient.ConfigError, match=r"policies\.evil\.fallback"):
        load_policies(path, imports=("polapp.",))
    assert app_package.read_text().split() == ["polapp", "polapp.fallbacks"]


def test_an_allowed_module_does_not_open_the_modules_it_imports(
    tmp_path: Path, app_package: Path
) -> None:
    """polapp:system.system (polapp did import os as system) is refused: os is not allowed."""
    path = tmp_path / "reach.toml"
    (tmp_path / "polapp" / "__init__.py").write_text("import os as system\n")
    path.write_text('[policies.reach]\nfallback = "polapp:system.system"\n')
    with pytest.raises(resilient.ConfigError, match="not of os"):
        load_policies(path, imports=("polapp",))


@pytest.mark.parametrize("imports", [42, [3], ["my app"], [""]])
def test_bad_import_allow_lists_are_refused(imports: object) -> None:
    """imports= takes module prefixes only."""
    with pytest.raises(resilient.ConfigError) as caught:
        load_policies({"x": {"timeout": 1}}, imports=imports)  # type: ignore[arg-type]
    assert caught.value.parameter == "imports"


def test_breaker_names_are_never_import_paths(tmp_path: Path) -> None:
    """A breaker called "os:sep" keeps its name; "billing:primary" loads as a plain name."""
    path = tmp_path / "names.toml"
    path.write_text(
        '[policies.a]\nbreaker = "os:sep"\n'
        '[policies.b]\nbreaker = { name = "billing:primary", config = "critical" }\n'
    )
    loaded = load_policies(path)
    assert loaded["a"].describe()[0]["name"] == "os:sep"
    assert loaded["b"].describe()[0]["name"] == "billing:primary"


def test_text_fallbacks_and_builtin_exceptions_need_no_imports(tmp_path: Path) -> None:
    """fallback = { value = "a:b" } is text, and on = ["ConnectionError"] names the builtin."""
    path = tmp_path / "plain.toml"
    path.write_text(
        '[policies.plain]\nfallback = { value = "status:unknown", on = ["ConnectionError"] }\n'
    )
    loaded = load_policies(path)

    @loaded["plain"]
    def down() -> str:
        raise ConnectionError

    @loaded["plain"]
    def wrong() -> str:
        raise KeyError

    assert down() == "status:unknown"
    with pytest.raises(KeyError):
        wrong()


def test_checks_made_when_decorating_name_the_policy_step() -> None:
    """An async fallback on a def, refused when the policy is applied, names the step's key."""

    async def offline(*args: object, **kwargs: object) -> str:
        return "offline"

    declared = policy(degradable={"feature": "ai_assistant", "fallback": offline})
    with pytest.raises(resilient.ConfigError) as caught:

        @declared
        def hint() -> str:
            return "x"

    assert caught.value.parameter == "degradable.fallback"
    with pytest.raises(resilient.ConfigError) as caught:

        @policy(fallback=offline)
        def answer() -> str:
            return "x"

    assert caught.value.parameter == "fallback"
