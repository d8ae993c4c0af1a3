"""Work that survives being offline: answers submitted while the server is down wait in
an outbox and are synced, in order and once each, when it comes back.

Run it (a few seconds; it starts, stops and restarts its own server on loopback, and
keeps the outbox in a temporary SQLite file)::

    python offline_outbox.py
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import resilient as rs
from resilient.http import Client, RequestConfig
from resilient.outbox import Deferred, Outbox

received: list[tuple[str, str]] = []


class Answers(BaseHTTPRequestHandler):
    """The school's server: records every answer it receives."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        received.append((body["student"], body["answer"]))
        reply = b'{"saved": true}'
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet


def serve(port: int = 0) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", port), Answers)
    threading.Thread(target=server.serve_forever, name="answers", daemon=True).start()
    return server


def stop(server: ThreadingHTTPServer) -> None:
    server.shutdown()
    server.server_close()


def main() -> int:
    server = serve()
    port = server.server_port
    client = Client(
        f"http://127.0.0.1:{port}",
        config=RequestConfig(connect=0.5, receive=1.0, total=2.0, retry=rs.RetryConfig.never),
        breaker=rs.BreakerConfig(failure_threshold=2, reset_timeout=0.3),
    )
    folder = tempfile.TemporaryDirectory()
    outbox = Outbox(
        f"sqlite:///{Path(folder.name) / 'outbox.db'}",
        backoff=rs.RetryConfig(initial_delay=0.05, max_delay=0.2),
        poll=0.05,
    )

    @outbox.deferrable("submit_answer", group="class-5b")  # one class's answers in order
    def submit_answer(student: str, answer: str) -> dict[str, Any]:
        return dict(client.post("/answers", json={"student": student, "answer": answer}).json())

    def submit(student: str, answer: str) -> None:
        result = submit_answer(student, answer)
        if isinstance(result, Deferred):
            print(f"  {student}: offline, kept in the outbox (position {result.position})")
        else:
            print(f"  {student}: sent, the server says {result}")

    sent = [("ana", "42"), ("ben", "41"), ("cai", "7 x 6"), ("dan", "forty-two"), ("eva", "42")]
    try:
        print("--- the server is up")
        submit(*sent[0])
        print("--- the server goes down")
        stop(server)
        for student, answer in sent[1:]:
            submit(student, answer)
        print(f"    {outbox.pending()} answer(s) waiting")
        print("--- the server is back; the outbox's drainer syncs them")
        server = serve(port)
        back = time.monotonic()
        outbox.start()  # a background thread; outbox.drain() does the same on this one
        while outbox.pending() and time.monotonic() < back + 10:
            time.sleep(0.05)
        outbox.stop()
        print(f"    synced in {time.monotonic() - back:.2f} s, {outbox.pending()} still waiting")
    finally:
        outbox.close()
        client.close()
        stop(server)
        folder.cleanup()
    lost = [a for a in sent if a not in received]
    twice = [a for a in sent if received.count(a) > 1]
    in_order = received == sent
    print(
        f"=== {len(received)} answer(s) received, {len(lost)} lost, {len(twice)} received "
        f"twice, {'in order' if in_order else 'OUT OF ORDER'}"
    )
    return 0 if not lost and not twice and in_order else 1


if __name__ == "__main__":
    raise SystemExit(main())
