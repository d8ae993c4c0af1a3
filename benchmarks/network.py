"""HTTP client scenarios: ``resilient.http`` against plain httpx on a loopback server.

The server runs in its own process (a minimal asyncio HTTP/1.1 keep-alive responder),
so its work does not compete with the client for the GIL; both rows talk to the same
server in the same run, and their repeats are interleaved. The figure that matters is
the ratio: what timeouts, the per-host breaker, the correlation ID and the portal
checks add to a successful GET.

(This module is not called ``http.py``: ``benchmarks/`` comes first on ``sys.path``
and would shadow the standard library's ``http`` package, which httpx imports.)
"""

from __future__ import annotations

import atexit
import dataclasses
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from _harness import Impl, Options, ScenarioResult, Target, TimedScenario, register

REPEATS = 21
"""At least this many interleaved repeats: a socket round trip is noisier than a call."""


@dataclasses.dataclass
class NetworkScenario(TimedScenario):
    """More, shorter repeats than the default (same total time), interleaved row by row.

    A loopback round trip varies with whatever else the machine runs; with many short
    samples a burst of load spoils a few of each row's samples, not the medians.
    """

    def run(self, opts: Options) -> ScenarioResult:
        repeats = max(opts.repeats, REPEATS)
        min_time = opts.min_time * opts.repeats / repeats
        return super().run(dataclasses.replace(opts, repeats=repeats, min_time=min_time))


_SERVER = r"""
import asyncio, os, sys, threading

BODY = b'{"lesson": 123, "title": "Photosynthesis"}'
ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY
)

class Responder(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buffer = transport, b""

    def data_received(self, data):
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            self.buffer = self.buffer[end + 4:]  # GETs carry no body
            self.transport.write(ANSWER)

def watch_parent():
    sys.stdin.read()  # EOF when the benchmark process ends, however it ends
    os._exit(0)

async def main():
    server = await asyncio.get_running_loop().create_server(Responder, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()

threading.Thread(target=watch_parent, daemon=True).start()
asyncio.run(main())
"""

_url: str | None = None


def _server_url() -> str:
    """Start the loopback server once per benchmark run; its base URL."""
    global _url
    if _url is None:
        process = subprocess.Popen(
            [sys.executable, "-c", _SERVER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        port = int(process.stdout.readline())
        atexit.register(_stop, process)
        _url = f"http://127.0.0.1:{port}"
    return _url


def _stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    process.wait(timeout=5)


PATH = "/lessons/123"

# --------------------------------------------------------------------------
# sync


def _sync_httpx() -> Callable[[], int]:
    import httpx

    client = httpx.Client(base_url=_server_url())

    def get() -> int:
        return client.get(PATH).status_code - 199

    return get


def _sync_ours() -> Callable[[], int]:
    from resilient.http import Client

    client = Client(_server_url())

    def get() -> int:
        return client.get(PATH).status_code - 199

    return get


# --------------------------------------------------------------------------
# in-process transport: the client's own CPU cost, without network noise


def _answer(request: Any) -> Any:
    import httpx

    return httpx.Response(200, json={"lesson": 123, "title": "Photosynthesis"})


def _mock_httpx() -> Callable[[], int]:
    import httpx

    client = httpx.Client(base_url="http://api.test", transport=httpx.MockTransport(_answer))

    def get() -> int:
        return client.get(PATH).status_code - 199

    return get


def _mock_ours() -> Callable[[], int]:
    import httpx

    from resilient.http import Client

    client = Client("http://api.test", transport=httpx.MockTransport(_answer))

    def get() -> int:
        return client.get(PATH).status_code - 199

    return get


# --------------------------------------------------------------------------
# async


def _async_httpx() -> Callable[[], Any]:
    import httpx

    client = httpx.AsyncClient(base_url=_server_url())

    async def get() -> int:
        return (await client.get(PATH)).status_code - 199

    return get


def _async_ours() -> Callable[[], Any]:
    from resilient.http import AsyncClient

    client = AsyncClient(_server_url())

    async def get() -> int:
        return (await client.get(PATH)).status_code - 199

    return get


register(
    NetworkScenario(
        "http GET success (sync)",
        [
            Impl("httpx.Client.get", "reference", _sync_httpx),
            Impl("resilient Client", "ours", _sync_ours),
        ],
        Target("reference", 1.15),
        notes=["loopback server in a separate process; breaker, correlation ID, checks on"],
    ),
    NetworkScenario(
        "http GET in-process (sync)",
        [
            Impl("httpx.Client.get", "reference", _mock_httpx),
            Impl("resilient Client", "ours", _mock_ours),
        ],
        Target("reference", None),
        notes=[
            "httpx.MockTransport, no socket: the client's own CPU cost, for information "
            "(the target is on a real loopback round trip)"
        ],
    ),
    NetworkScenario(
        "http GET success (async)",
        [
            Impl("httpx.AsyncClient.get", "reference", _async_httpx),
            Impl("resilient AsyncClient", "ours", _async_ours),
        ],
        Target("reference", 1.15),
        is_async=True,
    ),
)
