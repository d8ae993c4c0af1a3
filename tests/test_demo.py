"""The README's main command, ``python -m resilient demo``, run for real on loopback."""

from __future__ import annotations

import socket

import pytest

from resilient.__main__ import main

pytestmark = pytest.mark.realtime


def test_the_demo_runs_every_phase_and_sends_statsd(capsys: pytest.CaptureFixture[str]) -> None:
    """A short run goes through all phases, shows the client's reactions and a summary."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as statsd:
        statsd.bind(("127.0.0.1", 0))
        statsd.settimeout(2)
        port = statsd.getsockname()[1]
        assert (
            main(["demo", "--duration", "1.5", "--seed", "3", "--statsd", f"127.0.0.1:{port}"]) == 0
        )
        packet = statsd.recv(65536).decode()
    out = capsys.readouterr().out
    for phase in ("healthy", "latency spikes", "5xx burst", "captive portal", "outage", "recovery"):
        assert f"--- phase: {phase} ---" in out
    assert "CaptivePortalError" in out
    assert "degradation level none -> severe" in out
    assert "OPEN" in out
    assert "fallback: last good answer" in out
    assert "=== summary ===" in out
    assert out.rstrip().endswith("no request reached the user as an error")
    assert "now CLOSED" in out  # the breaker recovered with the service
    # offline answers wait in the outbox and reach the service once, after recovery
    assert "offline -> kept in the outbox" in out
    assert "queued answer(s) synced" in out
    assert "0 still pending" in out
    assert "0 lost, 0 received twice" in out
    assert packet.startswith("resilient_demo.")


def test_bad_statsd_address_is_refused() -> None:
    """``--statsd`` must be HOST:PORT."""
    with pytest.raises(SystemExit, match="HOST:PORT"):
        main(["demo", "--statsd", "localhost"])


def test_unknown_command_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """Only known commands run."""
    with pytest.raises(SystemExit):
        main(["explode"])
