"""``python -m resilient demo``: a school network's bad day, handled live.

A real HTTP service starts on loopback and goes through phases: healthy, latency spikes,
a 5xx burst, a captive portal, an outage, recovery. An ``AsyncClient`` asks it for
lessons under stacked policies (fallback to the last good answer, a total timeout,
the client's own retries and host breaker) and the demo prints what happens as it
happens: retries, fallbacks, breaker states, the degradation level and the health
status, then a summary. Answers a student submits while the service is unreachable are
kept in an outbox (``resilient.outbox``) and synced once it answers again. Phases scale
with ``--duration`` (20 s by default).

This module ships in the installed package on purpose, so that ``resilient demo`` shows
the library at work from any installation, without a checkout of the repository.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import shutil
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from . import telemetry
from ._configure import configuration, configure
from ._runtime.clock import SYSTEM_CLOCK

PHASES = (
    ("healthy", 0.15),
    ("latency spikes", 0.15),
    ("5xx burst", 0.15),
    ("captive portal", 0.15),
    ("outage", 0.20),
    ("recovery", 0.20),
)
"""Each phase and the share of the run it lasts."""

LESSONS = {
    1: "Photosynthesis",
    2: "Fractions",
    3: "The water cycle",
    4: "Volcanoes",
    5: "Poetry: the sonnet",
}


class Timeline:
    """Which phase the service is in, from the time since the start."""

    def __init__(self, duration: float) -> None:
        self.duration = duration
        self.scale = duration / 20.0
        self.start = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def phase(self) -> str:
        share = self.elapsed() / self.duration
        for name, part in PHASES:
            if share < part:
                return name
            share -= part
        return PHASES[-1][0]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Service

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        service = self.server
        phase = service.timeline.phase()
        scale = service.timeline.scale
        with service.lock:
            roll = service.rng.random()
            spike = service.rng.uniform(0.6, 2.5) * scale
        if phase == "outage":
            self.close_connection = True
            self.connection.close()  # connection dropped: the client sees it broken
            return
        if phase == "captive portal":
            self._answer(302, b"", "text/html", {"Location": "http://login.schoolnet.test/"})
            return
        if phase == "latency spikes" and roll < 0.35:
            time.sleep(spike)
        elif phase == "5xx burst" and roll < 0.5:
            after = f"{0.4 * scale:.2f}"
            self._answer(503, b'{"error": "busy"}', "application/json", {"Retry-After": after})
            return
        else:
            time.sleep((0.01 + 0.02 * roll) * scale)
        number = int(self.path.rsplit("/", 1)[-1] or 0)
        body = json.dumps({"lesson": number, "title": LESSONS.get(number, "?")}).encode()
        self._answer(200, body, "application/json", {})

    def do_POST(self) -> None:
        """``/answers``: a student's answer, kept once per answer id (idempotent)."""
        service = self.server
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if service.timeline.phase() in ("outage", "captive portal"):
            self.close_connection = True
            self.connection.close()  # offline: the answer never arrives
            return
        answer = json.loads(body or b"{}")
        with service.lock:
            service.answers[str(answer.get("id"))] += 1
        self._answer(200, b'{"saved": true}', "application/json", {})

    def _answer(self, status: int, body: bytes, kind: str, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


class _Service(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def __init__(self, timeline: Timeline, seed: int) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.timeline = timeline
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.answers: Counter[str] = Counter()
        """How many times each answer id arrived."""

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients hanging up on slow answers are part of the show


@dataclass
class Tally:
    """What happened, for the summary."""

    requests: int = 0
    served: int = 0
    fallbacks: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    breaker_opens: int = 0
    worst_level: str = "none"
    latencies: list[float] = field(default_factory=list)
    answers: int = 0
    queued: int = 0


class _Show:
    """Prints lines stamped with the time since the start."""

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline

    def say(self, message: str) -> None:
        print(f"[{self.timeline.elapsed():5.1f}s] {message}", flush=True)


_SHOWN_ELSEWHERE = ("resilient: circuit breaker", "resilient: degradation level")
"""Log lines the demo shows in its own words (its breaker and level listeners)."""


class _LogPrinter(logging.Handler):
    """Shows resilient's log records as they are emitted: retries, and warnings."""

    def __init__(self, show: _Show, tally: Tally) -> None:
        super().__init__(logging.INFO)
        self.show, self.tally = show, tally

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "retrying in" in message:
            self.tally.retries += 1
            self.show.say(f"    retry: {message.split(': ', 1)[-1]}")
        elif record.levelno >= logging.WARNING and not message.startswith(_SHOWN_ELSEWHERE):
            self.show.say(f"    log: {message}")


def _parse_statsd(value: str | None) -> tuple[str, int] | None:
    if not value:
        return None
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise SystemExit(f"--statsd expects HOST:PORT, not {value!r}")
    return host, int(port)


def run(duration: float = 20.0, seed: int = 7, statsd: str | None = None) -> int:
    """Run the demo for about ``duration`` seconds; returns the exit status."""
    try:
        import httpx  # noqa: F401 - the client is built on it
    except ImportError:
        print("the demo drives resilient.http: pip install 'resilient-toolkit[http]'")
        return 1
    if duration <= 0:
        raise SystemExit("--duration must be positive")
    target = _parse_statsd(statsd)
    from .metrics import FanoutSink, MemorySink, StatsdSink

    memory = MemorySink()
    remote = StatsdSink(target[0], target[1], prefix="resilient_demo") if target else None
    saved = configuration()
    saved_window = telemetry.window.seconds
    configure(clock=SYSTEM_CLOCK, metrics=FanoutSink(memory, remote) if remote else memory)
    telemetry.window.seconds = max(1.0, duration / 6)  # so health recovers within the run
    try:
        return asyncio.run(_drive(duration, seed, target))
    finally:
        telemetry.window.seconds = saved_window
        configure(clock=saved.clock, metrics=saved.metrics)
        if remote is not None:
            remote.close()


async def _drive(duration: float, seed: int, statsd: tuple[str, int] | None) -> int:
    from ._circuit.config import BreakerConfig
    from ._degradation import DegradationLevel, DegradationService
    from ._fallback import fallback, last_fallback
    from ._retry.decorator import RetryConfig
    from ._runtime.listeners import add_listener, remove_listener
    from ._timeout.decorator import timeout
    from .http import AsyncClient, RequestConfig, RequestFailedError
    from .outbox import Deferred, Outbox

    timeline = Timeline(duration)
    scale = timeline.scale
    show, tally = _Show(timeline), Tally()
    service = _Service(timeline, seed)
    server = threading.Thread(target=service.serve_forever, args=(0.02,), daemon=True)
    server.start()
    host = f"127.0.0.1:{service.server_address[1]}"
    config = RequestConfig(
        connect=max(0.1, 0.5 * scale),
        receive=max(0.1, 0.5 * scale),
        total=max(0.3, 2.5 * scale),
        retry=RetryConfig(attempts=3, initial_delay=0.15 * scale, max_delay=1.0 * scale),
    )
    breaker = BreakerConfig(failure_threshold=5, reset_timeout=max(0.1, 1.0 * scale))
    show.say(f"resilient demo: a flaky lesson service on http://{host}, about {duration:g}s")
    show.say(
        f"policies: fallback(last good answer) > timeout({config.total:.2g}s) > "
        f"client retries (3 attempts, honours Retry-After) > breaker '{host}' "
        f"(opens after {breaker.failure_threshold} failures in a row, probes after "
        f"{breaker.reset_timeout:.2g}s)"
    )
    if statsd:
        show.say(f"metrics also go to StatsD at {statsd[0]}:{statsd[1]} (prefix resilient_demo)")

    def on_breaker(event: object) -> None:
        kind = type(event).__name__
        if kind == "BreakerOpened":
            tally.breaker_opens += 1
            show.say(f"  ** breaker '{host}' OPEN: requests are refused for a while")
        elif kind == "BreakerHalfOpened":
            show.say(f"  ** breaker '{host}' HALF-OPEN: one probe may go through")
        elif kind == "BreakerClosed":
            show.say(f"  ** breaker '{host}' CLOSED: the service answers again")

    def on_level(old: DegradationLevel, new: DegradationLevel) -> None:
        if new > DegradationLevel[tally.worst_level]:
            tally.worst_level = new.name
        show.say(f"  ** degradation level {old.name} -> {new.name} ({new.description})")

    add_listener(on_breaker)
    degradation = DegradationService.instance
    degradation.add_listener(on_level)
    printer = _LogPrinter(show, tally)
    log = logging.getLogger("resilient")
    log.addHandler(printer)
    saved_level = log.level
    log.setLevel(logging.INFO)
    rng = random.Random(seed)

    level = degradation.level
    folder = tempfile.mkdtemp(prefix="resilient-demo-")
    outbox = Outbox(
        f"sqlite:///{folder}/outbox.db",
        backoff=RetryConfig(initial_delay=0.2 * scale, max_delay=1.0 * scale),
        lease=max(1.0, duration),
    )
    async with AsyncClient(
        f"http://{host}", tenant_id="demo-school", config=config, breaker=breaker
    ) as client:

        @fallback(lambda lesson: {"lesson": lesson, "title": "(no offline copy)"}, cache=True)
        @timeout(config.total)
        async def get_lesson(lesson: int) -> dict[str, Any]:
            response = await client.get(f"/lessons/{lesson}")
            result: dict[str, Any] = response.json()
            return result

        @outbox.deferrable("answer")
        async def submit_answer(answer_id: int, student: str, text: str) -> None:
            payload = {"id": answer_id, "student": student, "text": text}
            await client.post("/answers", json=payload)

        async def sync_answers() -> None:
            if outbox.pending():
                done = await outbox.drain_async()
                if done.delivered:
                    show.say(f"  ** outbox: {done.delivered} queued answer(s) synced")

        phase, health = "", "healthy"
        interval = duration / 80
        try:
            while timeline.elapsed() < duration:
                now_phase = timeline.phase()
                if now_phase != phase:
                    phase = now_phase
                    show.say(f"--- phase: {phase} ---")
                lesson = rng.randint(1, len(LESSONS))
                started = time.monotonic()
                answer = await get_lesson(lesson)
                took = (time.monotonic() - started) * 1000
                tally.requests += 1
                used = last_fallback()
                if used is None:
                    tally.served += 1
                    tally.latencies.append(took)
                    show.say(f"GET /lessons/{lesson}: {answer['title']!r} in {took:.0f} ms")
                else:
                    error = used.error
                    why = type(error).__name__ if error is not None else "rejected result"
                    if isinstance(error, RequestFailedError):
                        tally.errors[error.kind] += 1
                        why = f"{why} ({error.detail})"
                    elif error is not None:
                        tally.errors[type(error).__name__] += 1
                    source = "last good answer" if used.source == "cache" else "default answer"
                    tally.fallbacks[source] += 1
                    show.say(f"GET /lessons/{lesson}: {why} -> fallback: {source}")
                if tally.requests % 4 == 1:
                    tally.answers += 1
                    number = tally.answers
                    receipt = await submit_answer(number, "ana", f"answer {number}")
                    if isinstance(receipt, Deferred):
                        tally.queued += 1
                        show.say(f"POST /answers #{number}: offline -> kept in the outbox")
                    else:
                        show.say(f"POST /answers #{number}: saved")
                await sync_answers()
                level = degradation.level
                now_health = telemetry.generate_report(services=())["summary"]["health_status"]
                if now_health != health:
                    show.say(f"  ** health status {health} -> {now_health}")
                    health = now_health
                await asyncio.sleep(interval)
            ends = time.monotonic() + max(2.0, 0.2 * duration)  # the last ones may be waiting
            while outbox.pending() and time.monotonic() < ends:
                await sync_answers()
                await asyncio.sleep(interval)
            pending = outbox.pending()
        finally:
            outbox.close()
            shutil.rmtree(folder, ignore_errors=True)
            remove_listener(on_breaker)
            log.removeHandler(printer)
            log.setLevel(saved_level)
            service.shutdown()
            service.server_close()
    received = service.answers
    lost = tally.answers - len(received)
    twice = sum(1 for count in received.values() if count > 1)
    answers = (
        f"{tally.answers} submitted, {tally.queued} kept offline in the outbox, "
        f"{pending} still pending; the service has {len(received)}: {lost} lost, "
        f"{twice} received twice"
    )
    _summary(show, tally, host, level.name, health, answers)
    return 0


def _summary(show: _Show, tally: Tally, host: str, level: str, health: str, answers: str) -> None:
    from ._breaker.registry import CircuitBreakerRegistry

    registry = CircuitBreakerRegistry.instance
    state = registry.get(host).mode.name if host in registry else "unknown"
    latencies = sorted(tally.latencies)
    p95 = latencies[int(0.95 * (len(latencies) - 1))] if latencies else 0.0
    fallbacks = sum(tally.fallbacks.values())
    errors = ", ".join(f"{kind} {count}" for kind, count in tally.errors.most_common()) or "none"
    show.say("=== summary ===")
    print(f"  requests        {tally.requests}", flush=True)
    print(f"  served          {tally.served} (p95 {p95:.0f} ms)")
    print(f"  fallbacks       {fallbacks} ({dict(tally.fallbacks) or 'none'})")
    print(f"  retries         {tally.retries}")
    print(f"  errors seen     {errors}")
    print(f"  breaker         '{host}' opened {tally.breaker_opens}x, now {state}")
    print(f"  degradation     worst {tally.worst_level}, now {level}")
    print(f"  health status   {health}")
    print(f"  answers         {answers}")
    print("  every failure above was absorbed: no request reached the user as an error")
