"""BreakerState.to_dict: the plain data a store writes, field by field."""

from __future__ import annotations

from resilient._circuit import BreakerMode, BreakerState


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
