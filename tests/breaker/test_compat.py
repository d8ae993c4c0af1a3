"""``resilient.compat``: the TypeScript-style breaker API (``create_circuit_breaker``, ``.fire()``,
``.opened``, ``CircuitBreakerRegistry.instance``), and its old spellings."""

from __future__ import annotations

import inspect

import pytest
from strategies import BoomError

from resilient import BreakerConfig, BreakerMode, CircuitOpenError, ConfigError, get_breaker
from resilient.compat import CircuitBreakerRegistry, create_circuit_breaker
from resilient.testing import FakeClock


async def test_seed_chaos_test_opens_after_failures(fake_clock: FakeClock) -> None:
    """The seed's backend chaos test: three failing fires open the breaker."""

    async def always_fails() -> None:
        raise BoomError("Test failure")

    failing_breaker = create_circuit_breaker(always_fails, name="test", failure_threshold=3)
    for _ in range(3):
        try:
            await failing_breaker.fire()
        except BoomError:
            pass
    assert failing_breaker.opened is True


async def test_fire_with_a_preset_and_a_fallback(fake_clock: FakeClock) -> None:
    """createCircuitBreaker(fn, {name, ...CircuitConfigs.aiService, fallback})."""
    prompts: list[str] = []

    async def generate(prompt: str) -> dict[str, str]:
        prompts.append(prompt)
        raise BoomError

    ai_breaker = create_circuit_breaker(
        generate,
        name="ai-generate",
        config=BreakerConfig.ai_operation,
        fallback=lambda *args: {"text": "AI is temporarily unavailable"},
    )
    assert inspect.iscoroutinefunction(ai_breaker.fire)
    for _ in range(4):
        assert await ai_breaker.fire("Explain this concept") == {
            "text": "AI is temporarily unavailable"
        }
    assert len(prompts) == 3  # the fourth fire was rejected and fell back without calling
    assert ai_breaker.opened
    assert ai_breaker.breaker is get_breaker("ai-generate")
    assert ai_breaker.mode is BreakerMode.OPEN


async def test_async_fallback_is_awaited(fake_clock: FakeClock) -> None:
    """An async fallback for an async function is awaited, with the fire's arguments."""

    async def down(x: int) -> int:
        raise BoomError

    async def fallback(x: int) -> int:
        return -x

    fb = create_circuit_breaker(down, name="afb", fallback=fallback)
    assert await fb.fire(4) == -4


def test_sync_fire_follows_the_function(fake_clock: FakeClock) -> None:
    """fire() is a plain call for a sync function; without fallback errors propagate."""

    def lookup(key: str) -> str:
        if key == "bad":
            raise BoomError
        return key.upper()

    fb = create_circuit_breaker(lookup, name="lookup", failure_threshold=1, reset_timeout=5)
    assert fb.fire("a") == "A"
    with pytest.raises(BoomError):
        fb.fire("bad")
    with pytest.raises(CircuitOpenError):
        fb.fire("a")
    fake_clock.advance(5)
    assert not fb.opened
    assert fb.fire("b") == "B"
    assert repr(fb) == "<FiringBreaker <CircuitBreaker 'lookup' CLOSED failures=0/1>>"


def test_fire_name_defaults_to_the_function(fake_clock: FakeClock) -> None:
    """Without name= the breaker is named after the function."""

    def named() -> int:
        return 1

    fb = create_circuit_breaker(named)
    assert fb.name.endswith("test_fire_name_defaults_to_the_function.<locals>.named")


def test_create_circuit_breaker_checks_its_arguments() -> None:
    """Unknown options, bad configs and non-callables fail at once, by name."""
    with pytest.raises(ConfigError) as caught:
        create_circuit_breaker(lambda: 1, name="x", failureThreshold=3)
    assert caught.value.parameter == "failureThreshold"
    with pytest.raises(ConfigError):
        create_circuit_breaker(lambda: 1, name="x", config=3)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        create_circuit_breaker(lambda: 1, name="x", fallback="n/a")
    with pytest.raises(ConfigError):
        create_circuit_breaker(42)  # type: ignore[arg-type]
    assert create_circuit_breaker(lambda: 1, name="p", config="critical").breaker.config == (
        BreakerConfig.critical
    )


def test_dart_registry(fake_clock: FakeClock) -> None:
    """CircuitBreakerRegistry.instance.ai_service.call(...) as in the Flutter client."""
    ai_breaker = CircuitBreakerRegistry.instance.ai_service
    assert ai_breaker.call(lambda: "result") == "result"
    for _ in range(3):
        with pytest.raises(BoomError):
            ai_breaker.call(lambda: (_ for _ in ()).throw(BoomError()))
    with pytest.raises(CircuitOpenError) as caught:
        ai_breaker.call(lambda: "result")
    assert caught.value.retry_after == 60.0
    assert CircuitBreakerRegistry.instance.open_names() == ["ai_service"]


def test_registry_presets_and_lookup() -> None:
    """The seed's CircuitBreakerRegistry.instance.ai_service / .standard / .critical."""
    registry = CircuitBreakerRegistry.instance
    assert registry.ai_service.config is BreakerConfig.ai_operation
    assert registry.standard.config is BreakerConfig.standard
    assert registry.critical.config is BreakerConfig.critical
    assert registry.ai_service is registry.get("ai_service")
    assert registry.names() == ["ai_service", "critical", "standard"]
    with pytest.raises(KeyError, match="ai_service, critical, standard"):
        get_breaker("nope")


@pytest.mark.parametrize(
    "name", ["CircuitBreakerRegistry", "FiringBreaker", "create_circuit_breaker"]
)
def test_the_old_main_namespace_spelling_warns_and_gives_the_compat_object(name: str) -> None:
    """``resilient.<name>`` still works for one release, warning that it lives in compat."""
    import resilient
    import resilient.compat

    with pytest.warns(DeprecationWarning, match=f"resilient.compat.{name}") as record:
        found = getattr(resilient, name)
    assert found is getattr(resilient.compat, name)
    assert record[0].filename == __file__  # the warning points at the caller's line


def test_firing_breaker_mode_and_the_deprecated_state(fake_clock: FakeClock) -> None:
    """``FiringBreaker.mode`` is the breaker's mode; ``.state`` says the same with a warning."""

    def fails() -> None:
        raise BoomError("down")

    fb = create_circuit_breaker(fails, name="fb-mode", failure_threshold=1)
    with pytest.raises(BoomError):
        fb.fire()
    assert fb.mode is BreakerMode.OPEN
    with pytest.warns(DeprecationWarning, match=r"\.mode"):
        assert fb.state is BreakerMode.OPEN
