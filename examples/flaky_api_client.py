"""A ``resilient.http`` client against a flaky API: retries, timeouts, a captive portal,
an outage the host's breaker cuts short, a cached fallback, and the recovery.

Run it (a few seconds; it starts its own flaky server on a free loopback port)::

    python flaky_api_client.py
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import resilient as rs
from resilient.http import Client, RequestConfig

# --- a flaky lessons API, scripted by mode ---------------------------------------------


class FlakyAPI(BaseHTTPRequestHandler):
    """``mode`` says how the next requests go: ``healthy``, ``flaky`` (the first request
    for each lesson fails with a 503 or hangs past the client's read timeout), ``portal``
    (a captive portal's redirect) or ``down`` (every request fails with a 503)."""

    mode = "healthy"
    seen: ClassVar[set[str]] = set()
    requests = 0

    def do_GET(self) -> None:
        type(self).requests += 1
        first = self.path not in self.seen
        self.seen.add(self.path)
        if self.mode == "portal":
            self._answer(302, b"", Location="http://login.hotel-wifi.example/")
        elif self.mode == "down":
            self._answer(503, b'{"error": "database unavailable"}')
        elif self.mode == "flaky" and first and self.path.endswith("1"):
            self._answer(503, b'{"error": "overloaded"}')
        elif self.mode == "flaky" and first and self.path.endswith("2"):
            time.sleep(0.5)  # past the client's 0.2 s read timeout
            self._answer(200, b'{"late": true}')
        else:
            lesson = self.path.rsplit("/", 1)[-1]
            self._answer(200, json.dumps({"id": lesson, "title": f"Lesson {lesson}"}).encode())

    def _answer(self, status: int, body: bytes, **headers: str) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (its read timeout)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet


# --- the client ---------------------------------------------------------------------

# Short timeouts and waits so the whole run takes seconds: 0.2 s to read an answer,
# 3 attempts 50 ms apart, and a breaker that opens after 3 failures for 0.5 s.
CONFIG = RequestConfig(
    connect=0.5,
    receive=0.2,
    total=2.0,
    retry=rs.RetryConfig(attempts=3, initial_delay=0.05, max_delay=0.2, jitter=0),
)
BREAKER = rs.BreakerConfig(failure_threshold=3, reset_timeout=0.5)


def main() -> int:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FlakyAPI)
    threading.Thread(target=server.serve_forever, name="flaky-api", daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    events: list[str] = []
    client = Client(base, tenant_id="school-42", config=CONFIG, breaker=BREAKER)

    @rs.fallback(cache=True)  # the last good answer for the same lesson, when all else fails
    def lesson(lesson_id: int) -> Any:
        return client.get(f"/lessons/{lesson_id}").json()

    def ask(lesson_id: int) -> str:
        started = time.monotonic()
        try:
            answer = f"{lesson(lesson_id)}"
        except rs.ResilienceError as error:
            answer = f"{type(error).__name__}: {str(error).split(' [')[0]}"
        used = rs.last_fallback()
        if used is not None:
            answer += f"  (fallback: {used.source}, {used.age:.1f} s old)"
        return f"lesson {lesson_id}: {answer}  [{time.monotonic() - started:.2f} s]"

    rs.add_listener(lambda event: events.append(type(event).__name__))
    try:
        for mode, lessons in (
            ("healthy", (1, 2)),
            ("flaky", (11, 12)),  # a 503, then a read timeout: each retried once
            ("portal", (3,)),  # a captive portal's redirect: never retried
            ("down", (4, 1, 5)),  # 503s: retried until the breaker opens
        ):
            FlakyAPI.mode = mode
            print(f"--- the API is {mode}")
            for lesson_id in lessons:
                print(ask(lesson_id))
        print(f"breaker {base.split('//')[1]}: {rs.get_breaker(base.split('//')[1]).mode.name}")
        FlakyAPI.mode = "healthy"
        print("--- the API is back; the breaker probes after 0.5 s")
        time.sleep(0.6)
        print(ask(6))
        print(f"breaker {base.split('//')[1]}: {rs.get_breaker(base.split('//')[1]).mode.name}")
    finally:
        client.close()
        server.shutdown()
        server.server_close()
    print(
        f"=== {FlakyAPI.requests} requests reached the API; breaker events: "
        + ", ".join(
            f"{name} x{events.count(name)}"
            for name in sorted(set(events))
            if name != "CallRecorded"
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
