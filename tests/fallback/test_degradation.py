"""Graceful degradation: features, levels, overrides in the store, @degradable."""

from __future__ import annotations

import inspect

import pytest

import resilient
from resilient._degradation import (
    DegradationLevel,
    DegradationService,
    Feature,
    Features,
    FeatureUnavailableError,
    degradable,
)
from resilient._fallback import FallbackResponses, fallback
from resilient.stores import MemoryStore
from resilient.testing import FakeClock

ai = Features.ai_assistant


def open_breaker(name: str) -> None:
    resilient.compat.CircuitBreakerRegistry.instance.get_or_create(name).force_open()


def test_levels_carry_the_seed_table() -> None:
    """Each level has its description and UI impact, and levels are ordered."""
    assert [level.name for level in DegradationLevel] == [
        "none",
        "minor",
        "moderate",
        "severe",
        "critical",
    ]
    assert DegradationLevel.moderate.description == "AI unavailable"
    assert DegradationLevel.critical.ui_impact == "Full-screen error"
    assert DegradationLevel.minor < DegradationLevel.severe


def test_feature_follows_its_breaker(fake_clock: FakeClock) -> None:
    """A feature whose breaker is open is unavailable; the level rises to the feature's."""
    service = DegradationService.instance.initialize()
    assert service.is_feature_available(ai)
    assert service.level is DegradationLevel.none
    open_breaker("ai_service")
    assert not service.is_feature_available(ai)
    assert service.level is DegradationLevel.moderate
    resilient.get_breaker("ai_service").reset()
    assert service.is_feature_available("ai_assistant")
    assert service.level is DegradationLevel.none


def test_every_level_is_reached_and_left(fake_clock: FakeClock) -> None:
    """Features of each level degrade the app to it, and recovery brings it back to none."""
    service = DegradationService.instance
    seen: list[tuple[str, str]] = []
    service.add_listener(lambda old, new: seen.append((old.name, new.name)))
    for level in list(DegradationLevel)[1:]:
        Features.register(Feature(f"f-{level.name}", depends_on=(f"b-{level.name}",), level=level))
    for level in list(DegradationLevel)[1:]:
        open_breaker(f"b-{level.name}")
        assert service.level is level
    for level in reversed(list(DegradationLevel)[1:]):
        resilient.get_breaker(f"b-{level.name}").reset()
        assert service.level is DegradationLevel(level - 1)
    assert [new for _, new in seen] == [
        "minor",
        "moderate",
        "severe",
        "critical",
        "severe",
        "moderate",
        "minor",
        "none",
    ]


def test_latency_pushes_the_level_to_minor(fake_clock: FakeClock) -> None:
    """A degraded health report (p95 of 1 to 2 s) makes the level minor."""
    for _ in range(20):
        resilient.telemetry.record_request_latency("/api", 1500)
    assert DegradationService.instance.level is DegradationLevel.minor


def test_overrides_are_seen_by_a_second_service_sharing_the_store() -> None:
    """disable/enable live in the store: another service on the same store agrees."""
    store = MemoryStore()
    first, second = DegradationService(store), DegradationService(store)
    first.disable(ai, "maintenance window")
    assert not second.is_feature_available(ai)
    assert second.why_unavailable(ai) == "disabled: maintenance window"
    assert DegradationService(MemoryStore()).is_feature_available(ai)
    first.enable(ai)
    assert second.is_feature_available(ai)


def test_execute_with_fallback_sync(fake_clock: FakeClock) -> None:
    """Primary when available; fallback when unavailable or when the primary fails."""
    service = DegradationService.instance
    assert (
        service.execute_with_fallback(ai, lambda: "hint", lambda: FallbackResponses.hint) == "hint"
    )

    def broken() -> str:
        raise ConnectionError

    assert service.execute_with_fallback(ai, broken, lambda: "canned") == "canned"
    open_breaker("ai_service")
    assert service.execute_with_fallback(ai, lambda: "hint", lambda: "canned") == "canned"


async def test_execute_with_fallback_async(fake_clock: FakeClock) -> None:
    """The seed's form: await execute_with_fallback with async callables."""

    async def primary() -> str:
        raise TimeoutError

    hint = await DegradationService.instance.execute_with_fallback(
        ai, primary, lambda: FallbackResponses.hint
    )
    assert hint == FallbackResponses.hint


def test_degradable_skips_the_call_while_unavailable(fake_clock: FakeClock) -> None:
    """The function is not called at all while its feature is unavailable."""
    calls = 0

    @degradable(ai, fallback=lambda question: f"offline hint for {question}")
    def hint(question: str) -> str:
        nonlocal calls
        calls += 1
        return "ai hint"

    assert hint("q1") == "ai hint"
    open_breaker("ai_service")
    assert hint("q2") == "offline hint for q2"
    assert calls == 1


async def test_degradable_answers_failures_with_the_fallback(fake_clock: FakeClock) -> None:
    """A failing call answers with the fallback and the failure is recorded."""
    sink = resilient.metrics.MemorySink()
    resilient.configure(metrics=sink)

    @degradable("ai_assistant", fallback=FallbackResponses.hint)
    async def hint() -> str:
        raise ConnectionError

    assert await hint() == FallbackResponses.hint
    assert sink.counter("fallbacks_used_total", policy="ai_assistant") == 1


def test_degradable_without_fallback_raises_a_clear_error(fake_clock: FakeClock) -> None:
    """With no fallback, an unavailable feature raises FeatureUnavailableError."""
    DegradationService.instance.disable(ai, "rolled back")

    @degradable(ai)
    def hint() -> str:
        return "x"

    with pytest.raises(FeatureUnavailableError, match="rolled back"):
        hint()


def test_seed_chaos_scenario_ai_delayed_past_its_timeout(fake_clock: FakeClock) -> None:
    """The seed's chaos test: a 60 s AI delay under a 45 s timeout shows the fallback hint."""

    @fallback(FallbackResponses.hint)
    @resilient.timeout(resilient.Timeouts.ai_operation)
    def get_hint(question: str) -> str:
        fake_clock.sleep(60)  # the mock AI client's response delay
        return "too late"

    assert get_hint("why is the sky blue?") == FallbackResponses.hint
    assert fake_clock.monotonic() == 45


def test_bad_features_are_refused() -> None:
    """Unknown names, bad levels and empty names raise ConfigError."""
    with pytest.raises(resilient.ConfigError):
        degradable("no-such-feature")
    with pytest.raises(resilient.ConfigError):
        Feature("x", level=3)  # type: ignore[arg-type]
    with pytest.raises(resilient.ConfigError):
        Feature("")
    with pytest.raises(resilient.ConfigError):
        Features.register(Feature("ai_assistant", depends_on=("other",)))


def test_a_feature_handed_to_the_service_counts_towards_the_level() -> None:
    """disable(Feature(...)) for a feature never registered degrades the app to its level."""
    service = DegradationService.instance
    beta = Feature("beta-search", level=DegradationLevel.minor)
    service.disable(beta, "rolled back")
    assert not service.is_feature_available("beta-search")
    assert service.level is DegradationLevel.minor
    service.enable(beta)
    assert service.level is DegradationLevel.none


def test_a_feature_given_to_degradable_is_known_by_name(fake_clock: FakeClock) -> None:
    """@degradable(Feature(...)) registers the feature, so disabling it by name works."""
    exports = Feature("exports", depends_on=("export-store",), level=DegradationLevel.severe)

    @degradable(exports, fallback="later")
    def export() -> str:
        return "done"

    DegradationService.instance.disable("exports", "disk full")
    assert export() == "later"
    assert DegradationService.instance.level is DegradationLevel.severe


@pytest.mark.parametrize("service", ["x", 3, object(), MemoryStore()])
def test_degradable_refuses_a_service_that_is_not_one(service: object) -> None:
    """degradable(service=...) takes a DegradationService or None, checked at decoration."""
    with pytest.raises(resilient.ConfigError) as caught:
        degradable(ai, service=service)  # type: ignore[arg-type]
    assert caught.value.parameter == "service"


def test_an_async_fallback_on_a_sync_function_is_refused_at_decoration() -> None:
    """A def cannot await an async fallback: refused when decorated, fine on an async def."""

    async def offline() -> str:
        return "offline"

    with pytest.raises(resilient.ConfigError) as caught:

        @degradable(ai, fallback=offline)
        def hint() -> str:
            return "x"

    assert caught.value.parameter == "fallback"

    @degradable(ai, fallback=offline)
    async def ahint() -> str:
        raise ConnectionError

    assert inspect.iscoroutinefunction(ahint)


async def test_an_async_fallback_answers_an_async_function(fake_clock: FakeClock) -> None:
    """The async fallback of an async def is awaited when the feature is off."""

    async def offline() -> str:
        return "offline"

    @degradable(ai, fallback=offline)
    async def hint() -> str:
        return "online"

    DegradationService.instance.disable(ai)
    assert await hint() == "offline"


@pytest.mark.parametrize("store", ["redis://x", 3, object()])
def test_a_service_refuses_a_store_that_is_not_one(store: object) -> None:
    """DegradationService(store=...) takes a state store or None."""
    with pytest.raises(resilient.ConfigError) as caught:
        DegradationService(store)
    assert caught.value.parameter == "store"


def test_an_unknown_feature_name_suggests_the_closest() -> None:
    """degradable('ai_asistant') says did you mean 'ai_assistant'."""
    with pytest.raises(resilient.ConfigError, match=r"did you mean 'ai_assistant'\?"):
        degradable("ai_asistant")
