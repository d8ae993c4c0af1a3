"""BreakerState.to_dict: the plain data a store writes, field by field."""

from __future__ import annotations

import pytest

from resilient._circuit.rules import BreakerMode, BreakerState, is_idle


def test_to_dict_gives_plain_strings_numbers_and_lists() -> None:
    """to_dict has every field, the mode as a plain str and probes and buckets as lists."""
    state = BreakerState(
        mode=BreakerMode.HALF_OPEN,
        gen=7,
        failures=3,
        successes=1,
        opened_at=10.5,
        open_until=40.5,
        trips=2,
        probes=((6, 45.0), (7, 46.0)),
        window="sf",
        buckets=((4, 2, 1, 0),),
    )
    data = state.to_dict()
    assert data == {
        "mode": "half_open",
        "gen": 7,
        "failures": 3,
        "successes": 1,
        "opened_at": 10.5,
        "open_until": 40.5,
        "trips": 2,
        "probes": [[6, 45.0], [7, 46.0]],
        "window": "sf",
        "buckets": [[4, 2, 1, 0]],
    }
    assert type(data["mode"]) is str


def test_from_dict_reads_every_field_back() -> None:
    """from_dict(to_dict(state)) is the same state, every field different from its default."""
    state = BreakerState(
        mode=BreakerMode.OPEN,
        gen=4,
        failures=3,
        successes=2,
        opened_at=10.5,
        open_until=40.5,
        trips=2,
        probes=((6, 45.0),),
        window="sf",
        buckets=((4, 2, 1, 0),),
    )
    assert BreakerState.from_dict(state.to_dict()) == state


def test_from_dict_fills_missing_fields_with_a_fresh_state() -> None:
    """Fields missing from the data take the values of a fresh closed state."""
    assert BreakerState.from_dict({}) == BreakerState()
    assert BreakerState.from_dict({"failures": 2}) == BreakerState(failures=2)


@pytest.mark.parametrize(
    ("window", "buckets", "idle"),
    [
        ("ssss", (), True),
        ("ssfs", (), False),
        ("sFss", (), False),
        ("sSss", (), False),
        ("", ((1, 3, 0, 0),), True),
        ("", ((1, 3, 1, 0),), False),
        ("", ((1, 3, 0, 1),), False),
    ],
)
def test_a_closed_state_is_idle_only_with_nothing_but_successes(
    window: str, buckets: tuple[tuple[int, int, int, int], ...], idle: bool
) -> None:
    """is_idle: a closed state whose window or buckets hold only fast successes is idle;
    any failure or slow call in them is not."""
    assert is_idle(BreakerState(window=window, buckets=buckets)) is idle
