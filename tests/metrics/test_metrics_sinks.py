"""Metrics sinks: exact StatsD lines on a real UDP socket, memory, logging, Prometheus."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from statsd_daemon import StatsdDaemon

import resilient
from resilient.metrics import (
    FanoutSink,
    LoggingSink,
    MemorySink,
    NullSink,
    PrometheusSink,
    StatsdSink,
)


def received(sock: socket.socket) -> list[str]:
    """Every line in the datagrams waiting on ``sock``."""
    lines: list[str] = []
    sock.settimeout(2)
    while True:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            return lines
        lines.extend(data.decode().splitlines())
        sock.settimeout(0.05)


def sink_for(sock: socket.socket, **options: object) -> StatsdSink:
    return StatsdSink("127.0.0.1", sock.getsockname()[1], flush_interval=60, **options)  # type: ignore[arg-type]


def test_statsd_lines_are_exact(udp: socket.socket) -> None:
    """Counters are summed per series; gauges, timings and tags follow the StatsD format."""
    sink = sink_for(udp)
    sink.increment("retry_attempts_total", 1, (("policy", "ai"),))
    sink.increment("retry_attempts_total", 2, (("policy", "ai"),))
    sink.gauge("open_circuits", 1, (("breaker", "db"),))
    sink.timing("request_latency_ms", 12.5, ())
    sink.flush()
    assert sorted(received(udp)) == sorted(
        [
            "retry_attempts_total:3|c|#policy:ai",
            "open_circuits:1|g|#breaker:db",
            "request_latency_ms:12.500|ms",
        ]
    )
    sink.close()


def test_statsd_folded_tags_prefix_and_sample_rate(udp: socket.socket) -> None:
    """tag_style='name' folds tag values into the name; the prefix and @rate are applied."""
    sink = sink_for(udp, prefix="aivo", tag_style="name", sample_rate=0.999999)
    sink.increment("timeouts_total", 1, (("policy", "mod.fn"),))
    sink.gauge("active_requests", -2, ())
    for _ in range(200):
        sink.timing("request_latency_ms", 5.0, ())
    sink.flush()
    lines = received(udp)
    assert "aivo.timeouts_total.mod_fn:1|c" in lines
    assert lines.index("aivo.active_requests:0|g") < lines.index("aivo.active_requests:-2|g")
    timings = [line for line in lines if "request_latency_ms" in line]
    assert timings
    assert all(line == "aivo.request_latency_ms:5.000|ms|@0.999999" for line in timings)
    sink.close()


def test_recording_makes_no_system_call_until_flush(udp: socket.socket) -> None:
    """Nothing reaches the socket before a flush: recording only buffers."""
    sink = sink_for(udp)
    sink.increment("sync_success_total")
    udp.settimeout(0.05)
    with pytest.raises(TimeoutError):
        udp.recv(100)
    sink.flush()
    assert received(udp) == ["sync_success_total:1|c"]
    sink.close()


def test_a_full_buffer_drops_the_oldest_and_counts_them(udp: socket.socket) -> None:
    """Past max_buffer, the oldest values go and metrics_dropped_total says how many."""
    sink = StatsdSink(
        "127.0.0.1", udp.getsockname()[1], flush_interval=60, batch_size=5, max_buffer=10
    )
    sink._wake.set = lambda: None  # type: ignore[method-assign]  # keep the flusher asleep
    for value in range(15):
        sink.gauge("pending_sync_items", value, ())
    sink.flush()
    assert sorted(received(udp)) == ["metrics_dropped_total:5|c", "pending_sync_items:14|g"]
    sink.close()


def test_unresolvable_host_is_logged_once_and_never_raises(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A sink that cannot send logs one line; recording keeps working."""
    sink = StatsdSink("no-such-host.invalid", 8125, flush_interval=60)
    with caplog.at_level(logging.WARNING, logger="resilient"):
        for _ in range(3):
            sink.increment("sync_success_total")
            sink.flush()
    lines = [r.getMessage() for r in caplog.records if "metrics not sent" in r.getMessage()]
    assert len(lines) == 1
    sink.close()


def test_a_buggy_sink_never_reaches_the_caller(caplog: pytest.LogCaptureFixture) -> None:
    """A custom sink that raises is logged once; the decorated call still returns."""

    class Broken(NullSink):
        def timing(self, name: str, ms: float, tags: tuple[tuple[str, str], ...] = ()) -> None:
            raise RuntimeError("sink bug")

    resilient.configure(metrics=Broken())

    @resilient.retry()
    def work() -> int:
        return 42

    with caplog.at_level(logging.WARNING, logger="resilient"):
        assert [work() for _ in range(5)] == [42] * 5
    assert sum("sink bug" in r.getMessage() for r in caplog.records) == 1


def test_flush_at_exit_loses_nothing(udp: socket.socket) -> None:
    """Values buffered when the interpreter exits are sent by the exit hook."""
    port = udp.getsockname()[1]
    code = textwrap.dedent(
        f"""
        import resilient
        from resilient.metrics import StatsdSink
        resilient.configure(metrics=StatsdSink("127.0.0.1", {port}, flush_interval=3600))
        @resilient.retry(attempts=2, initial_delay=0)
        def flaky(state=[]):
            state.append(1)
            if len(state) % 2:
                raise ValueError
        for _ in range(100):
            flaky()
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
    lines = received(udp)
    assert "retry_attempts_total:100|c|#policy:__main__.flaky" in lines
    assert sum(1 for line in lines if line.startswith("request_latency_ms:")) == 100


def test_memory_sink_sums_over_omitted_tags() -> None:
    """counter/gauge_value/timings read one series, or all matching ones."""
    sink = MemorySink()
    sink.increment("retry_attempts_total", 1, (("policy", "a"),))
    sink.increment("retry_attempts_total", 2, (("policy", "b"),))
    sink.gauge("open_circuits", 1, (("breaker", "x"),))
    sink.timing("request_latency_ms", 3.0, (("policy", "a"),))
    assert sink.counter("retry_attempts_total") == 3
    assert sink.counter("retry_attempts_total", policy="b") == 2
    assert sink.counter("retry_attempts_total", policy="c") == 0
    assert sink.gauge_value("open_circuits", breaker="x") == 1
    assert sink.gauge_value("active_requests") is None
    assert sink.timings("request_latency_ms") == [3.0]
    assert sink.series()["retry_attempts_total"] == [{"policy": "a"}, {"policy": "b"}]


def test_fanout_reaches_every_sink_even_past_a_broken_one() -> None:
    """One failing sink does not stop the others."""

    class Broken(NullSink):
        def increment(self, name: str, value: float = 1, tags: tuple[()] = ()) -> None:  # type: ignore[override]
            raise RuntimeError("down")

    first, second = MemorySink(), MemorySink()
    fan = FanoutSink(first, Broken(), second)
    fan.increment("fallbacks_used_total")
    assert first.counter("fallbacks_used_total") == second.counter("fallbacks_used_total") == 1


def test_logging_sink_writes_one_summary_per_flush(caplog: pytest.LogCaptureFixture) -> None:
    """Many calls become one log line with counts and latency figures."""
    sink = LoggingSink(flush_interval=60)
    for _ in range(100):
        sink.increment("retry_attempts_total", 1, (("policy", "ai"),))
        sink.timing("request_latency_ms", 10.0, (("policy", "ai"),))
    with caplog.at_level(logging.INFO, logger="resilient.metrics"):
        sink.flush()
        sink.flush()  # nothing new: no line
    (record,) = caplog.records
    assert "retry_attempts_total{policy=ai}=100" in record.getMessage()
    assert "request_latency_ms{policy=ai} n=100" in record.getMessage()
    sink.close()


def test_prometheus_exposition_uses_the_seed_names() -> None:
    """Counters, gauges and the latency histogram appear in the text format."""
    prometheus_client = pytest.importorskip("prometheus_client")
    registry = prometheus_client.CollectorRegistry()
    sink = PrometheusSink(registry)
    resilient.configure(metrics=sink)

    @resilient.retry(attempts=2, initial_delay=0)
    def flaky(state: list[int] = []) -> None:  # noqa: B006 - call counter
        state.append(1)
        if len(state) == 1:
            raise ValueError

    flaky()
    sink.gauge("open_circuits", 1, (("breaker", "db"),))
    text = prometheus_client.generate_latest(registry).decode()
    assert 'retry_attempts_total{policy="test_metrics_sinks.test_prometheus' in text
    assert 'open_circuits{breaker="db"} 1.0' in text
    assert "request_latency_seconds_bucket{" in text
    assert "request_latency_seconds_count{" in text


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"port": 0}, "port"),
        ({"port": 70000}, "port"),
        ({"sample_rate": 0}, "sample_rate"),
        ({"sample_rate": 2}, "sample_rate"),
        ({"tag_style": "graphite"}, "tag_style"),
        ({"protocol": "quic"}, "protocol"),
        ({"flush_interval": -1}, "flush_interval"),
    ],
)
def test_statsd_sink_rejects_bad_settings(kwargs: dict[str, object], parameter: str) -> None:
    """Bad settings raise ConfigError naming the parameter, before any thread starts."""
    with pytest.raises(resilient.ConfigError) as caught:
        StatsdSink(**kwargs)  # type: ignore[arg-type]
    assert caught.value.parameter == parameter


def test_configure_rejects_a_non_sink() -> None:
    """configure(metrics=...) wants a sink."""
    with pytest.raises(resilient.ConfigError, match="metrics"):
        resilient.configure(metrics="statsd://localhost")


@pytest.mark.parametrize(("protocol", "calls"), [("udp", 500), ("tcp", 5000)])
def test_reference_daemon_counts_every_value(
    statsd_daemon: StatsdDaemon, protocol: str, calls: int
) -> None:
    """Through the real daemon: counters, timers and gauges read back from its mgmt port.

    UDP may drop datagrams when the daemon falls behind a burst (the benchmark measures
    that at 50,000 calls); TCP must deliver every value.
    """
    port = statsd_daemon.port if protocol == "udp" else statsd_daemon.tcp_port
    sink = StatsdSink("127.0.0.1", port, protocol=protocol, flush_interval=60)  # type: ignore[arg-type]
    resilient.configure(metrics=sink)

    @resilient.retry(attempts=2, initial_delay=0)
    def flaky(state: list[int] = []) -> None:  # noqa: B006 - call counter
        state.append(1)
        if len(state) % 2:
            raise ConnectionError

    for _ in range(calls):
        flaky()
    sink.gauge("open_circuits", 2, (("breaker", "db"),))
    sink.close()
    statsd_daemon.settle(calls + 2)  # the timings, one or more counter lines, one gauge
    retries = [v for k, v in statsd_daemon.counters().items() if k.startswith("retry_attempts")]
    assert sum(retries) == calls
    timers = statsd_daemon.timer_counts()
    assert sum(n for k, n in timers.items() if k.startswith("request_latency_ms")) == calls
    assert statsd_daemon.gauges().get("open_circuits;breaker=db") == 2


def test_a_full_timing_series_drops_its_oldest_values_and_counts_them(udp: socket.socket) -> None:
    """Past max_buffer a timing series drops its oldest batch_size values, counted as dropped."""
    sink = StatsdSink(
        "127.0.0.1", udp.getsockname()[1], flush_interval=60, batch_size=5, max_buffer=10
    )
    sink._wake.set = lambda: None  # type: ignore[method-assign]  # keep the flusher asleep
    for value in range(25):
        sink.timing("request_latency_ms", float(value), ())
    sink.flush()
    lines = sorted(received(udp))
    assert lines == sorted(
        ["metrics_dropped_total:20|c"] + [f"request_latency_ms:{v}.000|ms" for v in range(20, 25)]
    )
    sink.close()


def test_timings_keep_their_count_and_microsecond_text(udp: socket.socket) -> None:
    """Equal values at the wire's precision share one formatting; every value is still a line."""
    sink = sink_for(udp, batch_size=5_000)
    for _ in range(1_000):
        sink.timing("request_latency_ms", 0.0004, (("policy", "p"),))
    sink.timing("request_latency_ms", 1.0006, (("policy", "p"),))
    sink.timing("request_latency_ms", 7, (("policy", "p"),))
    sink.close()
    lines = received(udp)
    assert lines.count("request_latency_ms:0.000|ms|#policy:p") == 1_000
    assert "request_latency_ms:1.001|ms|#policy:p" in lines
    assert "request_latency_ms:7.000|ms|#policy:p" in lines
    assert len(lines) == 1_002


def test_the_observation_step_records_through_one_recorder_per_series() -> None:
    """Decorated calls reach a buffered sink's series recorder: nothing per call in the deque."""
    sink = StatsdSink("127.0.0.1", 9, flush_interval=60)
    resilient.configure(metrics=sink)

    @resilient.retry(attempts=1)
    def work() -> int:
        return 1

    for _ in range(10):
        work()
    assert not sink._buffer
    (series,) = sink._timers.values()
    assert len(series.values) == 10
    resilient.configure(metrics=None)
    sink.close()


def test_a_sink_subclass_overriding_timing_still_hears_latencies() -> None:
    """A StatsdSink subclass whose timing() renames the metric gets every call's latency
    through its timing(), not past it."""
    heard: list[str] = []

    class Renaming(StatsdSink):
        def timing(self, name: str, ms: float, tags: tuple[tuple[str, str], ...] = ()) -> None:
            heard.append(name)
            super().timing(f"app_{name}", ms, tags)

    sink = Renaming("127.0.0.1", 9, flush_interval=60)
    resilient.configure(metrics=sink)

    @resilient.retry(attempts=1)
    def work() -> int:
        return 1

    work()
    work()
    resilient.configure(metrics=None)
    sink.close()
    assert heard == ["request_latency_ms", "request_latency_ms"]
    assert [name for name, _ in sink._timers] == ["app_request_latency_ms"]


def test_a_forked_child_sends_only_its_own_timings(udp: socket.socket) -> None:
    """After fork the child's timing buffers start empty: no value of the parent twice."""
    port = udp.getsockname()[1]
    code = textwrap.dedent(
        f"""
        import os
        from resilient.metrics import StatsdSink
        sink = StatsdSink("127.0.0.1", {port}, flush_interval=3600)
        sink.timing("request_latency_ms", 1.0, ())
        pid = os.fork()
        if pid == 0:
            sink.timing("request_latency_ms", 2.0, ())
            sink.flush()
            os._exit(0)
        os.waitpid(pid, 0)
        sink.flush()
        """
    )
    subprocess.run([sys.executable, "-W", "ignore", "-c", code], check=True, timeout=30)
    assert sorted(received(udp)) == ["request_latency_ms:1.000|ms", "request_latency_ms:2.000|ms"]


@pytest.mark.realtime
def test_a_series_filling_up_during_a_flush_loses_no_value_uncounted() -> None:
    """A timing series that reaches max_buffer while a flush is taking its values: every
    value recorded is sent or counted as dropped, none twice, none silently lost."""
    import threading

    from resilient.metrics._buffered import Batch, BufferedSink

    class Recording(BufferedSink):
        def __init__(self) -> None:
            self.sent: list[float] = []
            self.dropped_total = 0.0
            super().__init__(flush_interval=60, batch_size=5, max_buffer=10)

        def send(self, batch: Batch) -> None:
            self.sent += [ms for _, _, ms in batch.timings]
            self.dropped_total += batch.counters.get(("metrics_dropped_total", ()), 0)

    sink = Recording()
    sink._wake.set = lambda: None  # type: ignore[method-assign]  # keep the flusher asleep
    record = sink.timing_recorder("request_latency_ms", ())
    for value in range(9):
        record(float(value))
    (series,) = sink._timers.values()
    recorder = threading.Thread(target=record, args=(9.0,))  # the tenth value fills it

    class Taken(list[float]):
        """The series' values; another thread records while the flush copies them."""

        def __getitem__(self, index: Any) -> Any:
            taken = super().__getitem__(index)
            if isinstance(index, slice) and recorder.ident is None:
                recorder.start()  # between the copy and the removal
                recorder.join(0.05)
            return taken

    series.values = Taken(series.values)
    sink.flush()
    recorder.join(5)
    sink.flush()
    sink.close()
    assert len(sink.sent) + sink.dropped_total == 10
    assert sorted(set(sink.sent)) == sorted(sink.sent)
