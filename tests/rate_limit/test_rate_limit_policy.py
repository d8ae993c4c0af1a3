"""``rate_limit`` as a policy step (keywords, TOML) and beside chaos injection."""

from __future__ import annotations

from pathlib import Path

import pytest

import resilient as rs
from resilient.chaos import inject_fault
from resilient.testing import FakeClock


def test_a_policy_puts_the_rate_limit_between_retry_and_breaker() -> None:
    """``policy(...)`` places ``rate_limit`` inside ``retry`` (each attempt takes a token)
    and outside ``breaker`` (a refused call never counts against the breaker)."""
    p = rs.policy(timeout=5, retry="quick", breaker="rl-br", rate_limit=10)

    @p
    def call() -> None:
        return None

    kinds = [step["layer"] for step in rs.describe(call)]
    assert kinds == ["retry", "rate_limit", "breaker", "timeout"]
    assert repr(p) == "<resilient.Policy retry > rate_limit > breaker > timeout>"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (5, {"rate": 5, "per": 1.0, "burst": 5, "mode": "wait"}),
        ((600, 60), {"rate": 600, "per": 60.0, "burst": 600, "mode": "wait"}),
        (
            {"rate": 2, "burst": 1, "mode": "reject", "name": "rl-dict"},
            {"rate": 2, "per": 1.0, "burst": 1, "mode": "reject", "name": "rl-dict"},
        ),
        (rs.rate_limit(3, name="rl-given"), {"rate": 3, "name": "rl-given"}),
    ],
    ids=["rate", "rate-per", "keywords", "decorator"],
)
def test_every_form_of_the_step(spec: object, expected: dict[str, object]) -> None:
    """The step takes a rate, ``(rate, per)``, a dict of keywords or the decorator."""
    (step,) = rs.policy(rate_limit=spec).describe()
    assert {key: step[key] for key in expected} == expected


def test_a_misspelt_key_names_the_step_and_key() -> None:
    """A key ``rate_limit`` does not take raises ``ConfigError`` naming it."""
    with pytest.raises(rs.ConfigError) as caught:
        rs.policy(rate_limit={"rate": 1, "brust": 2})
    assert caught.value.parameter == "rate_limit.brust"
    assert "did you mean 'burst'?" in str(caught.value)


def test_a_toml_policy_rate_limits(fake_clock: FakeClock, tmp_path: Path) -> None:
    """A named policy from TOML with a ``rate_limit`` table limits like the decorator."""
    path = tmp_path / "policies.toml"
    path.write_text(
        '[policies.quota]\nretry = "quick"\n'
        'rate_limit = { rate = 2, burst = 1, mode = "reject", name = "rl-toml" }\n'
    )
    rs.load_policies(path)

    @rs.policy("quota")
    def call() -> float:
        return fake_clock.monotonic()

    assert call() == 0.0
    assert call() == 0.5  # refused once; the retry waited its retry_after


def test_chaos_faults_reach_the_call_after_its_token(fake_clock: FakeClock) -> None:
    """Under a chaos context manager the fault is raised inside the limit: the call
    took its token, the fault reaches the caller unchanged."""

    @rs.rate_limit(1, burst=1, mode="reject", name="rl-chaos")
    def call() -> int:
        return 1

    with inject_fault(ConnectionError("injected"), enabled=True), pytest.raises(ConnectionError):
        call()
    with pytest.raises(rs.RateLimitedError):
        call()
