"""bulkhead= and hedge= in policy(), TOML named policies and describe()."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import resilient
from resilient._policy.steps import ORDER


def test_the_canonical_order_puts_the_bulkhead_between_breaker_and_hedge() -> None:
    """Outermost first: breaker, bulkhead, hedge, per-attempt timeout."""
    kept = [step for step in ORDER if step in ("retry", "breaker", "bulkhead", "hedge", "timeout")]
    assert kept == ["retry", "breaker", "bulkhead", "hedge", "timeout"]


def test_a_policy_stacks_both_steps_in_order_and_describes_them() -> None:
    """policy(...) with every step lays bulkhead and hedge out where ORDER says."""
    declared = resilient.policy(
        timeout=5,
        hedge={"delay": 0.5, "max_hedges": 2},
        bulkhead={"max_concurrent": 4, "max_queue": 8, "queue_timeout": 1.5, "name": "pol"},
        breaker="pol-breaker",
        retry={"attempts": 2},
    )

    @declared
    async def call() -> int:
        return 1

    steps = resilient.describe(call)
    assert [step["layer"] for step in steps] == ["retry", "breaker", "bulkhead", "hedge", "timeout"]
    assert steps[2] == {
        "layer": "bulkhead",
        "max_concurrent": 4,
        "max_queue": 8,
        "queue_timeout": 1.5,
        "name": "pol",
    }
    assert steps[3] == {"layer": "hedge", "delay": 0.5, "max_hedges": 2}
    assert "3. bulkhead: max_concurrent=4" in str(steps)
    assert asyncio.run(call()) == 1
    assert "bulkhead > hedge > timeout" in repr(declared)


def test_short_forms_and_decorators_are_accepted() -> None:
    """bulkhead=10, hedge="p95" and the decorators themselves are policy steps."""
    declared = resilient.policy(bulkhead=10, hedge="p95")
    assert declared.describe() == [
        {"layer": "bulkhead", "max_concurrent": 10, "max_queue": 0, "queue_timeout": None},
        {"layer": "hedge", "delay": "p95", "max_hedges": 1},
    ]
    given = resilient.policy(bulkhead=resilient.bulkhead(2), hedge=resilient.hedge(1))
    assert [step["layer"] for step in given.describe()] == ["bulkhead", "hedge"]
    with pytest.raises(resilient.ConfigError) as caught:
        resilient.policy(bulkhead=resilient.hedge(1))
    assert caught.value.parameter == "bulkhead"


def test_a_policy_with_a_hedge_refuses_a_sync_function() -> None:
    """Applying a hedging policy to a def raises TypeError when decorating."""
    with pytest.raises(TypeError, match="async def"):
        resilient.policy(hedge=1.0)(lambda: 1)


def test_named_policies_from_toml_take_both_steps(tmp_path: Path) -> None:
    """[policies.NAME] tables with bulkhead and hedge load and apply."""
    path = tmp_path / "policies.toml"
    path.write_text(
        "[policies.ai]\n"
        "timeout = 30\n"
        'hedge = "p95"\n'
        "bulkhead = { max_concurrent = 3, max_queue = 5, name = 'ai-pool' }\n",
        encoding="utf-8",
    )
    loaded = resilient.load_policies(path)
    assert [step["layer"] for step in loaded["ai"].describe()] == ["bulkhead", "hedge", "timeout"]

    @resilient.policy("ai")
    async def ask() -> str:
        return "ok"

    assert asyncio.run(ask()) == "ok"


def test_a_misspelt_key_in_a_toml_policy_is_named_with_its_file(tmp_path: Path) -> None:
    """A typo inside a bulkhead table is a ConfigError naming file, policy and key."""
    path = tmp_path / "policies.toml"
    path.write_text("[policies.db]\nbulkhead = { max_concurent = 3 }\n", encoding="utf-8")
    with pytest.raises(resilient.ConfigError) as caught:
        resilient.load_policies(path)
    assert caught.value.parameter.endswith("policies.db.bulkhead.max_concurent")
    assert "max_concurrent" in str(caught.value)
