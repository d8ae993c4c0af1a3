"""StatsD under odd names and values: one bad value never loses a batch, nothing is injected.

Every test reads the exact datagrams from a real UDP socket (or, at the end, what the
reference daemon parsed from them).
"""

from __future__ import annotations

import logging
import math
import socket

import pytest
from statsd_daemon import StatsdDaemon

import resilient
from resilient.exceptions import ConfigError
from resilient.metrics import LoggingSink, StatsdSink


def datagrams(sock: socket.socket) -> list[bytes]:
    """Every datagram waiting on ``sock``, exactly as it arrived."""
    found: list[bytes] = []
    sock.settimeout(2)
    while True:
        try:
            found.append(sock.recv(70_000))
        except TimeoutError:
            return found
        sock.settimeout(0.05)


def lines_of(packets: list[bytes]) -> list[str]:
    return [line for packet in packets for line in packet.decode("utf-8").split("\n")]


def sink_for(sock: socket.socket, **options: object) -> StatsdSink:
    return StatsdSink("127.0.0.1", sock.getsockname()[1], flush_interval=60, **options)  # type: ignore[arg-type]


# --- one value never loses the batch ------------------------------------------------------


def test_a_non_ascii_name_is_sent_as_utf8_with_the_rest_of_the_batch(udp: socket.socket) -> None:
    """A breaker called "café" goes out in UTF-8; every other value of the flush arrives too."""
    sink = sink_for(udp)
    sink.increment("retry_attempts_total", 1, (("policy", "billing"),))
    sink.gauge("open_circuits", 1, (("breaker", "café"),))
    sink.gauge("open_circuits", 0, (("breaker", "db"),))
    sink.timing("request_latency_ms", 3.0, (("policy", "日本"),))
    sink.close()
    assert sorted(lines_of(datagrams(udp))) == sorted(
        [
            "retry_attempts_total:1|c|#policy:billing",
            "open_circuits:1|g|#breaker:café",
            "open_circuits:0|g|#breaker:db",
            "request_latency_ms:3.000|ms|#policy:日本",
        ]
    )


def test_a_name_that_cannot_be_encoded_is_dropped_alone_and_counted(
    udp: socket.socket, caplog: pytest.LogCaptureFixture
) -> None:
    """A lone surrogate cannot be UTF-8: that value is counted as dropped, the rest is sent."""
    sink = sink_for(udp)
    with caplog.at_level(logging.WARNING, logger="resilient"):
        sink.gauge("open_circuits", 1, (("breaker", "file-\udcff"),))
        sink.increment("calls_rejected_total", 1, (("breaker", "file-\udcff"),))
        sink.increment("retry_attempts_total", 4, (("policy", "billing"),))
        sink.flush()
        sink.gauge("open_circuits", 2, (("breaker", "file-\udcff"),))
        sink.flush()
    sink.close()
    assert sorted(lines_of(datagrams(udp))) == [
        "metrics_dropped_total:1|c",
        "metrics_dropped_total:2|c",
        "retry_attempts_total:4|c|#policy:billing",
    ]
    assert sum("metrics dropped" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_and_infinite_values_are_dropped_and_counted(udp: socket.socket, bad: float) -> None:
    """A gauge, timing or counter of NaN or ±inf never reaches the wire; the rest does."""
    sink = sink_for(udp)
    sink.gauge("pending_sync_items", bad, ())
    sink.timing("request_latency_ms", bad, ())
    sink.increment("sync_failures_total", bad, ())
    sink.gauge("active_requests", 3, ())
    sink.timing("request_latency_ms", 12.5, ())
    sink.close()
    assert sorted(lines_of(datagrams(udp))) == [
        "active_requests:3|g",
        "metrics_dropped_total:3|c",
        "request_latency_ms:12.500|ms",
    ]


def test_a_line_too_long_for_any_datagram_is_dropped_alone(udp: socket.socket) -> None:
    """A 70 kB tag cannot fit in UDP: that line is counted, the lines around it arrive."""
    sink = sink_for(udp)
    sink.increment("retry_attempts_total", 1, (("policy", "a"),))
    sink.gauge("open_circuits", 1, (("breaker", "x" * 70_000),))
    sink.increment("retry_attempts_total", 1, (("policy", "b"),))
    sink.close()
    assert sorted(lines_of(datagrams(udp))) == [
        "metrics_dropped_total:1|c",
        "retry_attempts_total:1|c|#policy:a",
        "retry_attempts_total:1|c|#policy:b",
    ]


def test_packets_are_cut_by_bytes_not_characters(udp: socket.socket) -> None:
    """Multibyte names: every datagram stays within max_udp_size bytes, no line is split."""
    sink = sink_for(udp, max_udp_size=200)
    sent = {f"限界-{index}" for index in range(60)}
    for name in sent:
        sink.increment("calls_rejected_total", 1, (("breaker", name),))
    sink.close()
    packets = datagrams(udp)
    assert all(len(packet) <= 200 for packet in packets)
    assert len(packets) > 1
    received = {line.split("#breaker:", 1)[1] for line in lines_of(packets)}
    assert received == sent


# --- nothing is injected ------------------------------------------------------------------


def test_a_gauge_name_cannot_add_a_line(udp: socket.socket) -> None:
    """Separators and newlines in a name become ``_``: one value is one line."""
    sink = sink_for(udp)
    resilient.configure(metrics=sink)
    resilient.telemetry.set_gauge("x:5|c\ninjected", 1)
    sink.gauge("a#b,c@d e\tf\x00g\x85h\u2028i", 2, ())
    sink.close()
    assert sorted(lines_of(datagrams(udp))) == [
        "a_b_c_d_e_f_g_h_i:2|g",
        "x_5_c_injected:1|g",
    ]


def test_tag_keys_and_values_cannot_add_a_line_or_a_tag(udp: socket.socket) -> None:
    """``:|#,`` and control characters in tags are replaced before they reach the wire."""
    sink = sink_for(udp)
    sink.increment("calls_rejected_total", 1, (("breaker\n", "a,b:c|d#e\r\nevil:1|c\x00\x7f"),))
    sink.close()
    assert lines_of(datagrams(udp)) == ["calls_rejected_total:1|c|#breaker_:a_b_c_d_e__evil_1_c__"]


def test_folded_names_cannot_add_a_line(udp: socket.socket) -> None:
    """With tag_style='name' the metric name is cleaned as well as the folded values."""
    sink = sink_for(udp, tag_style="name")
    sink.gauge("depth\nx:1|c", 1, (("queue", "a\nb"),))
    sink.close()
    assert lines_of(datagrams(udp)) == ["depth_x_1_c.a_b:1|g"]


# --- settings that could never work are refused -------------------------------------------


@pytest.mark.parametrize(
    ("options", "parameter"),
    [
        ({"prefix": "x:5|c\ninjected"}, "prefix"),
        ({"prefix": "aivo prod"}, "prefix"),
        ({"prefix": "a|b"}, "prefix"),
        ({"prefix": "a#b"}, "prefix"),
        ({"prefix": "tab\t"}, "prefix"),
        ({"prefix": "bad-\udcff"}, "prefix"),
        ({"prefix": 3}, "prefix"),
        ({"max_udp_size": 65_508}, "max_udp_size"),
        ({"max_udp_size": 1_000_000}, "max_udp_size"),
        ({"max_udp_size": 63}, "max_udp_size"),
        ({"batch_size": 1000, "max_buffer": 999}, "max_buffer"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_settings_that_cannot_work_are_refused(options: dict[str, object], parameter: str) -> None:
    """``ConfigError`` naming the parameter, before any thread starts."""
    with pytest.raises(ConfigError) as caught:
        StatsdSink("127.0.0.1", 8125, **options)  # type: ignore[arg-type]
    assert caught.value.parameter == parameter


def test_the_largest_datagram_is_accepted_and_used(udp: socket.socket) -> None:
    """max_udp_size=65,507 (the UDP limit) works: large packets, each within the limit."""
    # One batch for all 3,000 values: a flush in the middle would cut a packet short.
    sink = sink_for(udp, max_udp_size=65_507, prefix="aivo.prod.", batch_size=5_000)
    for index in range(3_000):
        sink.increment("calls_rejected_total", 1, (("breaker", f"breaker-{index:05}"),))
    sink.close()
    packets = datagrams(udp)
    assert all(60_000 < len(packet) <= 65_507 for packet in packets[:-1])
    lines = lines_of(packets)
    assert len(lines) == 3_000
    assert all(line.startswith("aivo.prod.calls_rejected_total:1|c|#breaker:") for line in lines)


def test_logging_sink_still_accepts_its_own_buffer_bound() -> None:
    """LoggingSink sets batch_size to max_buffer: the new bound check accepts it."""
    sink = LoggingSink(max_buffer=10)
    assert sink.max_buffer == sink.batch_size == 10
    sink.close()


# --- through the reference daemon ---------------------------------------------------------


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
def test_reference_daemon_gets_every_good_value_and_no_injected_one(
    statsd_daemon: StatsdDaemon, protocol: str
) -> None:
    """Odd names, NaN and an injection attempt: the daemon counts every good value, and only
    the series that were sent."""
    port = statsd_daemon.port if protocol == "udp" else statsd_daemon.tcp_port
    sink = StatsdSink("127.0.0.1", port, protocol=protocol, flush_interval=60)  # type: ignore[arg-type]
    for index in range(200):
        sink.increment("retry_attempts_total", 1, (("policy", "billing"),))
        sink.increment("retry_attempts_total", 1, (("policy", f"café-{index % 3}"),))
    sink.gauge("open_circuits", 1, (("breaker", "file-\udcff"),))
    sink.gauge("pending_sync_items", math.nan, ())
    sink.gauge("x:5|c\ninjected", 7, ())
    sink.close()
    statsd_daemon.settle(5)
    counters = statsd_daemon.counters()
    retries = {k: v for k, v in counters.items() if k.startswith("retry_attempts_total")}
    assert sum(retries.values()) == 400
    assert counters.get("metrics_dropped_total") == 2
    assert not any("injected" in key and not key.startswith("x_5_c") for key in counters)
    gauges = statsd_daemon.gauges()
    assert gauges.get("x_5_c_injected") == 7
    assert "pending_sync_items" not in gauges
