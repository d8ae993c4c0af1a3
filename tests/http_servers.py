"""Real HTTP servers on loopback, each run by a thread for the length of a ``with`` block.

``ScriptedServer`` is the standard library's threaded server: each path has a list of
``Answer`` objects consumed in order (the last one repeats). An answer can be slow,
trickle its body, reset the connection, or pose as a captive portal or a filter page.
``UvicornServer`` serves an ASGI app, ``WSGIServer`` a WSGI app.
"""

from __future__ import annotations

import functools
import json
import socket
import socketserver
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self

__all__ = [
    "PORTAL_PAGE",
    "TLS",
    "Answer",
    "Received",
    "ScriptedServer",
    "UvicornServer",
    "WSGIServer",
    "filter_page",
    "free_port",
    "json_answer",
]

TLS = ssl.create_default_context()
"""One TLS context for every test client: httpx builds a new one (50 ms) per client."""

PORTAL_PAGE = (
    b"<!DOCTYPE html><html><head><title>Welcome to SchoolNet Wi-Fi</title></head>"
    b"<body><form action='/login'>Accept the terms to continue</form></body></html>"
)


def filter_page(vendor: str = "FortiGuard") -> bytes:
    """A block page like the ones school web filters serve."""
    return (
        f"<html><head><title>Web Page Blocked</title></head><body><h1>{vendor} Web "
        "Filtering</h1><p>This site is blocked by your school's policy.</p></body></html>"
    ).encode()


@dataclass
class Answer:
    """One scripted response (or misbehaviour)."""

    status: int = 200
    body: bytes = b'{"ok": true}'
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    """Seconds to wait before answering."""
    reset: bool = False
    """Reset the connection (TCP RST) instead of answering."""
    trickle: float | None = None
    """Seconds between body bytes, to simulate a server (or proxy) that drips data."""


def json_answer(payload: object, status: int = 200, **headers: str) -> Answer:
    return Answer(status=status, body=json.dumps(payload).encode(), headers=dict(headers))


@dataclass
class Received:
    """A request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep the test output clean

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.owner.received.append(Received(self.command, path, headers, body))
        answer = self.server.owner.next_answer(path)
        if answer.delay:
            time.sleep(answer.delay)
        if answer.reset:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command == "HEAD":
            return
        if answer.trickle is None:
            self.wfile.write(answer.body)
            return
        for index in range(len(answer.body)):
            self.wfile.write(answer.body[index : index + 1])
            self.wfile.flush()
            time.sleep(answer.trickle)

    # http.server dispatches to do_<METHOD>.
    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle  # noqa: N815


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 drops concurrent connects (1 s SYN retry)
    owner: ScriptedServer

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that time out and hang up are part of the script


class _InThread:
    """A server on a loopback port, run by a daemon thread for the length of a ``with``
    block: entering starts it and waits until it accepts connections, leaving stops it,
    waits for the thread to end and releases what it held."""

    def __init__(self, port: int, serve: Callable[[], object]) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._thread = threading.Thread(target=serve, daemon=True)

    def _started(self) -> bool:
        """Whether it accepts connections yet."""
        return True

    def _stop(self) -> None:
        """Make the serving thread return."""
        raise NotImplementedError

    def _close(self) -> None:
        """Release what the server holds, once its thread has ended."""

    def __enter__(self) -> Self:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._started():
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"{type(self).__name__} did not start")
            time.sleep(0.005)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()
        self._thread.join(timeout=10)
        self._close()


class _SocketServerInThread(_InThread):
    """A ``socketserver`` server (listening from the start) in a thread of its own."""

    def __init__(self, server: socketserver.TCPServer) -> None:
        self._server = server
        serve = functools.partial(server.serve_forever, poll_interval=0.01)
        super().__init__(int(server.server_address[1]), serve)

    def _stop(self) -> None:
        self._server.shutdown()

    def _close(self) -> None:
        self._server.server_close()


class ScriptedServer(_SocketServerInThread):
    """A threaded HTTP/1.1 server on 127.0.0.1 answering from a per-path script."""

    def __init__(self) -> None:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.owner = self
        super().__init__(server)
        self.received: list[Received] = []
        self._script: dict[str, list[Answer]] = {}
        self._lock = threading.Lock()

    def script(self, path: str, *answers: Answer) -> ScriptedServer:
        """Answer ``path`` with ``answers`` in order, repeating the last one."""
        with self._lock:
            self._script[path] = list(answers)
        return self

    def next_answer(self, path: str) -> Answer:
        with self._lock:
            answers = self._script.get(path)
            if not answers:
                return Answer(404, b'{"error": "not found"}')
            return answers.pop(0) if len(answers) > 1 else answers[0]

    def hits(self, path: str) -> int:
        """How many requests reached ``path``."""
        return sum(1 for r in self.received if r.path == path)


def free_port() -> int:
    """A port with nothing listening on it (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def running() -> Iterator[ScriptedServer]:
    """Generator body for a ``server`` fixture."""
    with ScriptedServer() as server:
        yield server


class UvicornServer(_InThread):
    """An ASGI app served by uvicorn on a free loopback port, in a background thread."""

    def __init__(self, app: object, *, lifespan: str = "off") -> None:
        import uvicorn

        config = uvicorn.Config(
            app,  # type: ignore[arg-type]
            log_level="critical",
            lifespan=lifespan,  # type: ignore[arg-type]
            access_log=False,
        )
        self._server = uvicorn.Server(config)
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        serve = functools.partial(self._server.run, sockets=[self._socket])
        super().__init__(int(self._socket.getsockname()[1]), serve)

    def _started(self) -> bool:
        return self._server.started

    def _stop(self) -> None:
        self._server.should_exit = True

    def _close(self) -> None:
        self._socket.close()


class WSGIServer(_SocketServerInThread):
    """A WSGI app on Werkzeug's threaded server, on a free loopback port."""

    def __init__(self, app: object) -> None:
        from werkzeug.serving import make_server

        super().__init__(make_server("127.0.0.1", 0, app, threaded=True))  # type: ignore[arg-type]
