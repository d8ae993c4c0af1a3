"""The README's main command, ``python -m resilient demo``."""

from __future__ import annotations

import pytest

from resilient.__main__ import main
from resilient.testing import FakeClock


def test_demo_shows_retries_timeouts_and_giving_up(
    clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    """The demo runs in virtual time and reports each scenario's outcome."""
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "after 3 call(s)" in out  # two drops, then success
    assert "TimeoutExceededError" in out  # the stalled response
    assert "gave up: ConnectionResetError" in out  # the outage
    assert "after 4 attempts" in out


def test_unknown_command_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """Only known commands run."""
    with pytest.raises(SystemExit):
        main(["explode"])
