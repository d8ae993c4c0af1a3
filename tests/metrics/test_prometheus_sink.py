"""PrometheusSink: one label set per metric, seconds, HELP text, shared registries, and
prometheus_client's multi-process mode under real worker processes."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from processes import die_with_parent

import resilient
from resilient.metrics import PrometheusSink, names

prometheus_client = pytest.importorskip("prometheus_client")
multiprocess = pytest.importorskip("prometheus_client.multiprocess")

ROOT = Path(resilient.__file__).resolve().parent.parent


def exposition(registry: Any) -> str:
    return str(prometheus_client.generate_latest(registry).decode())


def test_decorators_and_the_http_client_share_one_latency_metric(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A policy-tagged and an endpoint-tagged latency both land in request_latency_seconds."""
    registry = prometheus_client.CollectorRegistry()
    resilient.configure(metrics=PrometheusSink(registry))

    @resilient.retry(attempts=1)
    def work() -> str:
        return "ok"

    with caplog.at_level(logging.WARNING, logger="resilient"):
        work()
        resilient.telemetry.record_request_latency("api.example", 1500.0)
    assert not [r for r in caplog.records if "labels differ" in r.getMessage()]
    policy = f"{__name__.rsplit('.', 1)[-1]}.{work.__qualname__}"
    by_policy = {"policy": policy, "endpoint": ""}
    by_endpoint = {"policy": "", "endpoint": "api.example"}
    assert registry.get_sample_value("request_latency_seconds_count", by_policy) == 1
    assert registry.get_sample_value("request_latency_seconds_count", by_endpoint) == 1
    assert registry.get_sample_value("request_latency_seconds_sum", by_endpoint) == 1.5


def test_latencies_are_second_histograms_with_sensible_buckets() -> None:
    """Milliseconds in, seconds out; buckets span a millisecond to a minute."""
    registry = prometheus_client.CollectorRegistry()
    sink = PrometheusSink(registry)
    sink.timing("request_latency_ms", 40.0, (("policy", "ai"),))
    labels = {"policy": "ai", "endpoint": ""}
    assert registry.get_sample_value("request_latency_seconds_sum", labels) == 0.04
    bucket = {**labels, "le": "0.05"}
    assert registry.get_sample_value("request_latency_seconds_bucket", bucket) == 1
    text = exposition(registry)
    assert 'le="0.001"' in text
    assert 'le="60.0"' in text
    assert "request_latency_ms" not in text


def test_help_text_explains_each_metric() -> None:
    """Every declared metric's HELP line is its declared description."""
    registry = prometheus_client.CollectorRegistry()
    sink = PrometheusSink(registry)
    for metric in names.CATALOG.values():
        tags = tuple((label, "x") for label in metric.labels)
        {"counter": sink.increment, "gauge": sink.gauge, "timing": sink.timing}[metric.kind](
            metric.name, 1, tags
        )
    text = exposition(registry)
    for metric in names.CATALOG.values():
        assert f"# HELP {metric.prometheus_name} {metric.help}" in text, metric.name
    assert "HELP retry_attempts_total Retries made by a retry policy" in text


def test_several_sinks_on_one_registry_share_the_series(caplog: pytest.LogCaptureFixture) -> None:
    """Two sinks on the default registry record into the same series, with no error logged."""
    first, second = PrometheusSink(), PrometheusSink()
    tags = (("breaker", "shared-registry-test"),)
    labels = {"breaker": "shared-registry-test"}
    before = prometheus_client.REGISTRY.get_sample_value("calls_rejected_total", labels) or 0
    with caplog.at_level(logging.WARNING, logger="resilient"):
        first.increment("calls_rejected_total", 1, tags)
        second.increment("calls_rejected_total", 2, tags)
    assert prometheus_client.REGISTRY.get_sample_value("calls_rejected_total", labels) == before + 3
    assert not [r for r in caplog.records if r.name.startswith("resilient")]


def test_custom_registries_and_namespaces_are_kept_apart() -> None:
    """Each registry (and namespace) gets its own collectors."""
    one, two = prometheus_client.CollectorRegistry(), prometheus_client.CollectorRegistry()
    PrometheusSink(one).increment("timeouts_total", 1, (("policy", "p"),))
    PrometheusSink(two, namespace="aivo").increment("timeouts_total", 4, (("policy", "p"),))
    assert one.get_sample_value("timeouts_total", {"policy": "p"}) == 1
    assert two.get_sample_value("aivo_timeouts_total", {"policy": "p"}) == 4
    assert two.get_sample_value("timeouts_total", {"policy": "p"}) is None


def test_a_name_taken_by_another_collector_is_logged_once_and_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An application metric of the same name keeps its place; the sink never raises."""
    registry = prometheus_client.CollectorRegistry()
    prometheus_client.Counter("fallbacks_used", "the application's own", registry=registry)
    sink = PrometheusSink(registry)
    with caplog.at_level(logging.WARNING, logger="resilient"):
        sink.increment("fallbacks_used_total", 1, (("policy", "p"),))
        sink.increment("fallbacks_used_total", 1, (("policy", "p"),))
    assert sum("not registered" in r.getMessage() for r in caplog.records) == 1
    assert registry.get_sample_value("fallbacks_used_total") == 0


def test_undeclared_metrics_keep_their_first_label_set() -> None:
    """A metric not in the catalogue takes the labels of its first value; others are skipped."""
    registry = prometheus_client.CollectorRegistry()
    sink = PrometheusSink(registry)
    sink.increment("app_events_total", 1, (("kind", "fault"),))  # an app's own metric
    sink.increment("app_events_total", 1, (("other", "x"),))
    sink.timing("custom_ms", 2000.0, ())
    assert registry.get_sample_value("app_events_total", {"kind": "fault"}) == 1
    assert registry.get_sample_value("custom_seconds_sum") == 2.0


def test_an_undeclared_metrics_labels_may_come_in_any_order(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The same labels given in another order record into the same series, not skipped."""
    registry = prometheus_client.CollectorRegistry()
    sink = PrometheusSink(registry)
    with caplog.at_level(logging.WARNING, logger="resilient"):
        sink.increment("jobs_total", 1, (("queue", "mail"), ("kind", "retry")))
        sink.increment("jobs_total", 2, (("kind", "retry"), ("queue", "mail")))
    assert registry.get_sample_value("jobs_total", {"queue": "mail", "kind": "retry"}) == 3
    assert not [r for r in caplog.records if "labels differ" in r.getMessage()]


# --- multi-process mode -----------------------------------------------------------------

_WORKER = """
import os, sys
import resilient
from resilient.metrics import PrometheusSink

resilient.configure(metrics=PrometheusSink())

@resilient.retry(attempts=2, initial_delay=0)
def work(state=[]):
    state.append(1)
    if len(state) % 2:
        raise ConnectionError

def serve(index):
    for _ in range({calls}):
        work()
    resilient.telemetry.set_gauge("active_requests", 2)
    resilient.telemetry.set_gauge("open_circuits", 1 if index == 0 else 0, breaker="db")
"""

_SPAWNED = _WORKER + "\nserve(int(sys.argv[1]))\nprint(os.getpid())\n"

_FORKED = (
    _WORKER
    + """
children = []
for index in range({workers}):
    pid = os.fork()
    if pid == 0:
        serve(index)
        os._exit(0)
    children.append(pid)
for pid in children:
    assert os.waitpid(pid, 0)[1] == 0
    print(pid)
"""
)


def _run(code: str, directory: Path, *args: str) -> list[int]:
    """Run one worker script with the multiprocess directory set; the pids it printed."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        preexec_fn=die_with_parent,
    )
    assert done.returncode == 0, done.stderr
    return [int(line) for line in done.stdout.split()]


@pytest.mark.parametrize("start", ["spawn", "fork"])
def test_multiprocess_mode_sums_every_worker(tmp_path: Path, start: str) -> None:
    """Workers (separate interpreters, or forked from one that created the sink) each record;
    a collector reading the directory sees the sum, and live gauges leave with their worker."""
    workers, calls = 3, 40
    if start == "spawn":
        code = textwrap.dedent(_SPAWNED).format(calls=calls)
        pids = [pid for index in range(workers) for pid in _run(code, tmp_path, str(index))]
    else:
        code = textwrap.dedent(_FORKED).format(calls=calls, workers=workers)
        pids = _run(code, tmp_path)
    assert len(set(pids)) == workers

    def collected() -> Any:
        registry = prometheus_client.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(tmp_path))
        return registry

    registry = collected()
    (policy,) = {
        sample.labels["policy"]
        for family in registry.collect()
        if family.name == "retry_attempts"
        for sample in family.samples
    }
    assert policy.endswith("work")
    retries = registry.get_sample_value("retry_attempts_total", {"policy": policy})
    assert retries == workers * calls
    latency = {"policy": policy, "endpoint": ""}
    assert registry.get_sample_value("request_latency_seconds_count", latency) == workers * calls
    assert registry.get_sample_value("active_requests") == 2 * workers
    assert registry.get_sample_value("open_circuits", {"breaker": "db"}) == 1

    for pid in pids:  # what gunicorn's child_exit hook does
        multiprocess.mark_process_dead(pid, str(tmp_path))
    registry = collected()
    assert registry.get_sample_value("retry_attempts_total", {"policy": policy}) == retries
    assert registry.get_sample_value("active_requests") is None
    assert registry.get_sample_value("open_circuits", {"breaker": "db"}) is None
