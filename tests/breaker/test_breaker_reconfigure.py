"""Changing a breaker's rules while it runs: reconfigure(), configure(breaker_defaults=...),
reload_policies(), and error_on_trip (pybreaker's throw_new_error_on_trip).

The state is kept through every change: the counts, the open period, the probes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from strategies import BoomError

import resilient
from resilient import (
    BreakerConfig,
    BreakerMode,
    CircuitBreaker,
    CircuitOpenError,
    ConfigError,
    breaker,
    get_breaker,
)
from resilient.testing import FakeClock

FIVE = BreakerConfig(failure_threshold=5, reset_timeout=60)


def fail() -> None:
    raise BoomError("down")


async def afail() -> None:
    raise BoomError("down")


def ok() -> str:
    return "ok"


def failures(b: CircuitBreaker, count: int) -> None:
    for _ in range(count):
        with pytest.raises(BoomError):
            b.call(fail)


# --- reconfigure() ---------------------------------------------------------------------


def test_reconfigure_applies_a_new_threshold_to_the_failures_already_counted(
    make_store: Any, fake_clock: FakeClock
) -> None:
    """Two failures under threshold 5, then threshold 3: the third failure trips it."""
    b = CircuitBreaker("reconf-threshold", FIVE, store=make_store())
    failures(b, 2)
    config = b.reconfigure(failure_threshold=3)
    assert config == FIVE.replace(failure_threshold=3) == b.config
    assert b.failures == 2
    failures(b, 1)
    assert b.mode is BreakerMode.OPEN


async def test_reconfigure_keeps_an_open_breaker_open_and_new_trips_use_the_new_timeout(
    make_store: Any, fake_clock: FakeClock
) -> None:
    """An open breaker stays open until its old time; the next trip waits the new timeout."""
    b = CircuitBreaker(
        "reconf-open", BreakerConfig(failure_threshold=1, reset_timeout=60), store=make_store()
    )
    with pytest.raises(BoomError):
        await b.acall(afail)
    b.reconfigure(reset_timeout=5)
    assert b.mode is BreakerMode.OPEN
    assert b.retry_after == pytest.approx(60)
    fake_clock.advance(60)
    with pytest.raises(BoomError):
        await b.acall(afail)  # the probe fails
    assert b.retry_after == pytest.approx(5)


def test_reconfigure_validates_like_construction_and_changes_nothing_on_error(
    fake_clock: FakeClock,
) -> None:
    """A bad value raises ConfigError naming the parameter; the old config stays."""
    b = CircuitBreaker("reconf-bad", FIVE)
    with pytest.raises(ConfigError) as caught:
        b.reconfigure(failure_threshold=0)
    assert caught.value.parameter == "failure_threshold"
    with pytest.raises(ConfigError) as unknown:
        b.reconfigure(failure_treshold=3)
    assert unknown.value.parameter == "failure_treshold"
    with pytest.raises(ConfigError) as whole:
        b.reconfigure("standard")  # type: ignore[arg-type]
    assert whole.value.parameter == "config"
    assert b.config is FIVE


def test_reconfigure_to_a_rate_rule_counts_every_call_of_decorated_functions(
    fake_clock: FakeClock,
) -> None:
    """A function decorated under a threshold rule follows a rate rule given later."""
    b = CircuitBreaker("reconf-rate", FIVE)
    calls = iter([True, False, True, True])

    @b
    def call() -> str:
        if next(calls):
            return "ok"
        raise BoomError

    b.reconfigure(failure_rate=0.5, window_size=4, minimum_calls=4)
    assert call() == "ok"
    with pytest.raises(BoomError):
        call()
    call()
    call()
    assert b.window() == (4, 1, 0)
    assert b.mode is BreakerMode.CLOSED


async def test_reconfigure_to_a_result_rule_judges_async_results(fake_clock: FakeClock) -> None:
    """A failure_result rule given later judges a coroutine function decorated before."""
    b = CircuitBreaker("reconf-result", FIVE)

    @b
    async def call() -> int:
        return 503

    b.reconfigure(failure_result=lambda status: status >= 500, failure_threshold=2)
    await call()
    await call()
    assert b.mode is BreakerMode.OPEN


def test_reconfigure_with_a_whole_config(fake_clock: FakeClock) -> None:
    """reconfigure(config) takes a whole BreakerConfig (changes on top); describe() shows it."""
    b = CircuitBreaker("reconf-whole", FIVE)
    guarded = b(ok)
    new = b.reconfigure(BreakerConfig.critical, reset_timeout=20)
    assert new == BreakerConfig.critical.replace(reset_timeout=20)
    assert "failure_threshold=3" in repr(resilient.describe(guarded))


# --- configure(breaker_defaults=...) ------------------------------------------------------


def test_breakers_naming_no_config_take_the_configured_defaults(fake_clock: FakeClock) -> None:
    """@breaker("name") and CircuitBreaker("name") use configure(breaker_defaults=...)."""
    defaults = BreakerConfig(failure_threshold=2, reset_timeout=9)
    resilient.configure(breaker_defaults=defaults)
    assert resilient.configuration().breaker_defaults is defaults

    @breaker("defaults-decorated")
    def call() -> None:
        fail()

    for _ in range(2):
        with pytest.raises(BoomError):
            call()
    assert get_breaker("defaults-decorated").retry_after == pytest.approx(9)
    assert CircuitBreaker("defaults-by-hand").config is defaults
    assert CircuitBreaker("defaults-explicit", FIVE).config is FIVE


async def test_async_breakers_naming_no_config_take_the_configured_defaults(
    fake_clock: FakeClock,
) -> None:
    """A decorated coroutine function with no config trips on the configured threshold."""

    @breaker("defaults-async")
    async def call() -> None:
        await afail()

    resilient.configure(breaker_defaults=BreakerConfig(failure_threshold=1))
    with pytest.raises(BoomError):
        await call()
    with pytest.raises(CircuitOpenError):
        await call()


def test_breakers_made_before_configure_take_new_defaults_keeping_their_state(
    fake_clock: FakeClock,
) -> None:
    """A breaker made at import time, before configure(), follows the defaults set later."""
    early = CircuitBreaker("defaults-early")
    fixed = CircuitBreaker("defaults-fixed", FIVE)
    failures(early, 2)
    resilient.configure(breaker_defaults=BreakerConfig(failure_threshold=3))
    assert (early.config.failure_threshold, fixed.config) == (3, FIVE)
    failures(early, 1)
    assert early.mode is BreakerMode.OPEN
    resilient.configure(breaker_defaults=None)
    assert early.config is BreakerConfig.standard


def test_a_reconfigured_breaker_no_longer_follows_the_defaults(fake_clock: FakeClock) -> None:
    """reconfigure() gives a breaker its own config: new defaults leave it alone."""
    b = CircuitBreaker("defaults-left")
    b.reconfigure(failure_threshold=9)
    resilient.configure(breaker_defaults=BreakerConfig(failure_threshold=2))
    assert b.config.failure_threshold == 9


def test_defaults_configured_before_any_breaker_module_loads_are_used() -> None:
    """configure(breaker_defaults=...) right after ``import resilient`` (no breaker module
    loaded yet, nor BreakerConfig) reaches the breakers made afterwards."""
    code = (
        "import resilient, sys\n"
        "loaded = 'resilient._circuit.config' in sys.modules\n"
        "resilient.configure(breaker_defaults=resilient.BreakerConfig(failure_threshold=2))\n"
        "print(loaded, resilient.CircuitBreaker('early').config.failure_threshold)"
    )
    out = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["False", "2"]


def test_testing_reset_forgets_the_breaker_defaults(fake_clock: FakeClock) -> None:
    """resilient.testing.reset() puts breakers back on BreakerConfig.standard."""
    resilient.configure(breaker_defaults=BreakerConfig(failure_threshold=2))
    b = CircuitBreaker("defaults-reset")
    resilient.testing.reset()
    assert resilient.configuration().breaker_defaults is None
    assert b.config is BreakerConfig.standard


# --- error_on_trip="open" (pybreaker's throw_new_error_on_trip) -----------------------------


def test_the_tripping_call_raises_circuit_open_chained_to_its_error(fake_clock: FakeClock) -> None:
    """With error_on_trip="open", the call that trips raises CircuitOpenError from its error."""
    b = CircuitBreaker("trip-open", BreakerConfig(failure_threshold=2, error_on_trip="open"))

    @b
    def call() -> None:
        fail()

    with pytest.raises(BoomError):
        call()  # the first failure does not trip: its own error
    with pytest.raises(CircuitOpenError) as caught:
        call()
    assert isinstance(caught.value.__cause__, BoomError)
    assert caught.value.retry_after == pytest.approx(30)
    with pytest.raises(CircuitOpenError) as later:
        call()
    assert later.value.__cause__ is None


async def test_the_tripping_async_call_raises_circuit_open(fake_clock: FakeClock) -> None:
    """The same for coroutine functions, acall() and a failed half-open probe."""
    b = CircuitBreaker(
        "trip-open-async", BreakerConfig(failure_threshold=1, reset_timeout=5, error_on_trip="open")
    )

    @b
    async def call() -> None:
        await afail()

    with pytest.raises(CircuitOpenError) as caught:
        await call()
    assert isinstance(caught.value.__cause__, BoomError)
    fake_clock.advance(5)
    with pytest.raises(CircuitOpenError) as probe:
        await b.acall(afail)
    assert isinstance(probe.value.__cause__, BoomError)


def test_the_tripping_call_in_a_with_block_raises_circuit_open(fake_clock: FakeClock) -> None:
    """A with-block whose failure trips the breaker raises CircuitOpenError from it."""
    b = CircuitBreaker("trip-open-with", BreakerConfig(failure_threshold=1, error_on_trip="open"))
    with pytest.raises(CircuitOpenError) as caught, b:
        fail()
    assert isinstance(caught.value.__cause__, BoomError)


@pytest.mark.parametrize("windowed", [False, True])
def test_by_default_the_tripping_call_raises_its_own_error(
    fake_clock: FakeClock, windowed: bool
) -> None:
    """error_on_trip defaults to "call": the tripping call's own error reaches the caller."""
    config = BreakerConfig(failure_threshold=1)
    if windowed:
        config = BreakerConfig(failure_rate=0.5, window_size=2, minimum_calls=1)
    b = CircuitBreaker(f"trip-call-{windowed}", config)
    assert config.error_on_trip == "call"
    with pytest.raises(BoomError):
        b(fail)()
    assert b.mode is BreakerMode.OPEN


def test_error_on_trip_can_be_switched_on_later(fake_clock: FakeClock) -> None:
    """reconfigure(error_on_trip="open") changes what the next tripping call raises."""
    b = CircuitBreaker("trip-later", BreakerConfig(failure_threshold=1))
    b.reconfigure(error_on_trip="open")
    with pytest.raises(CircuitOpenError):
        b.call(fail)


# --- reload_policies() ----------------------------------------------------------------


POLICY = """
[policies.db]
retry = {{ attempts = 1 }}
breaker = {{ name = "reload-db", failure_threshold = {threshold}, reset_timeout = 30 }}
"""


def test_reload_policies_reconfigures_breakers_keeping_their_state(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    """A threshold changed in the TOML applies after reload_policies(); counts are kept."""
    path = tmp_path / "policies.toml"
    path.write_text(POLICY.format(threshold=5))
    resilient.load_policies(path)
    held = resilient.policy("db")

    @held
    def query() -> None:
        fail()

    for _ in range(2):
        with pytest.raises(BoomError):
            query()
    path.write_text(POLICY.format(threshold=3))
    reloaded = resilient.reload_policies()
    assert list(reloaded) == ["db"]
    assert reloaded["db"] is held
    found = get_breaker("reload-db")
    assert (found.config.failure_threshold, found.failures) == (3, 2)
    with pytest.raises(BoomError):
        query()
    assert found.mode is BreakerMode.OPEN


def test_reload_policies_changes_nothing_when_a_file_no_longer_loads(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    """A broken file raises ConfigError on reload; policies and breakers keep their config."""
    path = tmp_path / "policies.toml"
    path.write_text(POLICY.format(threshold=5))
    resilient.load_policies(path)
    resilient.policy("db")(ok)
    path.write_text(POLICY.format(threshold=2) + "\n[policies.broken]\nretry = { attemps = 2 }\n")
    with pytest.raises(ConfigError):
        resilient.reload_policies()
    assert get_breaker("reload-db").config.failure_threshold == 5
    assert resilient.policy("db").specs["breaker"]["failure_threshold"] == 5


def test_reload_policies_drops_policies_gone_from_their_file(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    """A policy removed from its file is no longer found after reload_policies()."""
    path = tmp_path / "policies.toml"
    path.write_text(POLICY.format(threshold=5) + "\n[policies.cache]\ntimeout = 1\n")
    resilient.load_policies(path)
    resilient.load_policies({"inline": {"timeout": 2}})
    path.write_text(POLICY.format(threshold=5))
    assert sorted(resilient.reload_policies()) == ["db"]
    with pytest.raises(ConfigError):
        resilient.policy("cache")
    assert resilient.policy("inline").specs == {"timeout": 2}


def test_reload_refuses_two_configs_for_one_breaker_as_loading_does(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    """A reloaded file giving one breaker two configs (in two policies) is refused, as
    load_policies() refuses it, and changes nothing; the last one does not silently win."""
    path = tmp_path / "policies.toml"
    path.write_text(POLICY.format(threshold=5))
    resilient.load_policies(path)
    resilient.policy("db")(ok)
    path.write_text(
        POLICY.format(threshold=3)
        + '\n[policies.other]\nbreaker = { name = "reload-db", failure_threshold = 9 }\n'
    )
    with pytest.raises(ConfigError):
        resilient.reload_policies()
    assert get_breaker("reload-db").config.failure_threshold == 5
    assert resilient.policy("db").specs["breaker"]["failure_threshold"] == 5


def test_loading_a_changed_config_without_reload_is_still_refused(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    """load_policies() itself still refuses a name claimed with another config."""
    path = tmp_path / "policies.toml"
    path.write_text(POLICY.format(threshold=5))
    resilient.load_policies(path)
    resilient.policy("db")(ok)
    path.write_text(POLICY.format(threshold=4))
    with pytest.raises(ConfigError):
        resilient.load_policies(path)
    assert get_breaker("reload-db").config.failure_threshold == 5


def test_error_on_trip_is_a_policy_setting(tmp_path: Path, fake_clock: FakeClock) -> None:
    """error_on_trip = "open" in a TOML policy's breaker table takes effect."""
    path = tmp_path / "policies.toml"
    path.write_text(
        '[policies.strict]\nbreaker = { name = "toml-trip", failure_threshold = 1, '
        'error_on_trip = "open" }\n'
    )
    resilient.load_policies(path)

    @resilient.policy("strict")
    def call() -> None:
        fail()

    with pytest.raises(CircuitOpenError) as caught:
        call()
    assert isinstance(caught.value.__cause__, BoomError)
    assert get_breaker("toml-trip").config.error_on_trip == "open"


def test_a_bad_error_on_trip_in_a_policy_names_the_key(fake_clock: FakeClock) -> None:
    """load_policies names breaker.error_on_trip when its value is not "call" or "open"."""
    with pytest.raises(ConfigError) as caught:
        resilient.load_policies({"p": {"breaker": {"name": "toml-bad", "error_on_trip": "x"}}})
    assert caught.value.parameter.endswith("breaker.error_on_trip")
