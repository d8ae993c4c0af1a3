"""A FastAPI service whose endpoints survive a flaky database and a slow AI service.

Serve it::

    STATUS_TOKEN=change-me-to-a-long-secret uvicorn fastapi_service:app

or run this file for a short tour: it starts the app under uvicorn on a free loopback
port, asks each endpoint once or twice, prints what came back and stops (a few seconds).

What it shows:

- endpoints decorated with ``@fallback``, ``@retry``, ``@breaker`` and ``@timeout``, with
  the route decorator on top (it must see the decorated function);
- ``RequestTimeoutMiddleware``: every request has a budget, one route a shorter one;
- ``HealthMiddleware``: ``/health``, ``/health/live`` and ``/health/ready`` for the load
  balancer;
- ``resilient.asgi.install``: resilient's errors become problem details (503 for an open
  breaker, 504 for a timeout), and ``CorrelationIdMiddleware`` gives every answer an
  ``X-Correlation-ID``;
- the status page mounted at ``/status`` (read-only without the operator's token).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
import socket
import threading
import time

import httpx
import uvicorn
from fastapi import FastAPI

import resilient as rs
from resilient.asgi import (
    HealthApp,
    HealthMiddleware,
    RequestTimeoutMiddleware,
    install,
    status_app,
)

# --- the app's dependencies, simulated: a database that fails one query in three, an AI
# service that is sometimes far too slow, and a payments service that hangs.
_queries = itertools.count(1)
_questions = itertools.count(1)


def query_lesson(lesson_id: int) -> dict[str, object]:
    if next(_queries) % 3 == 0:
        raise ConnectionError("database connection reset")
    return {"id": lesson_id, "title": f"Lesson {lesson_id}"}


async def ask_ai(question: str) -> str:
    if next(_questions) % 2 == 0:
        await asyncio.sleep(5)  # far past the endpoint's timeout
    return f"Think about what '{question}' asks for first."


async def charge(amount: int) -> dict[str, object]:
    await asyncio.sleep(5)  # never answers in time
    return {"charged": amount}


# --- the app ------------------------------------------------------------------------

app = FastAPI(title="lessons")


@app.get("/lessons/{lesson_id}")  # the route decorator on top
@rs.fallback(cache=True)  # the last good answer for this lesson when all else fails
@rs.retry(attempts=3, initial_delay=0.01, on=ConnectionError)
@rs.breaker("lessons-db", rs.BreakerConfig.database)
@rs.timeout(2, strategy="thread")
def lesson(lesson_id: int) -> dict[str, object]:
    return query_lesson(lesson_id)


@app.get("/hint/{question}")
@rs.fallback({"hint": "Try the worked example first."})
@rs.timeout(0.3)
async def hint(question: str) -> dict[str, str]:
    return {"hint": await ask_ai(question)}


@app.post("/payments/{amount}")
@rs.breaker("payments", rs.BreakerConfig(failure_threshold=2, reset_timeout=30), critical=True)
@rs.timeout(0.2)
async def pay(amount: int) -> dict[str, object]:
    return await charge(amount)


@app.get("/report")
async def report() -> dict[str, str]:
    await asyncio.sleep(5)  # longer than this route's budget: answered with 504
    return {"report": "never"}


# A token of at least 16 visible characters lets an operator see and act on the status
# page; without STATUS_TOKEN this run makes one up (and prints it).
STATUS_TOKEN = os.environ.get("STATUS_TOKEN") or secrets.token_urlsafe(24)

app.mount("/status", status_app(token=STATUS_TOKEN))
app.add_middleware(RequestTimeoutMiddleware, timeout=10, routes={"/report": 0.3})
app.add_middleware(HealthMiddleware, health=HealthApp(critical=("lessons-db",)))
install(app)  # problem details, and CorrelationIdMiddleware outermost


# --- the tour -----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _show(response: httpx.Response) -> None:
    kind = response.headers.get("content-type", "").split(";")[0]
    body = response.text if len(response.text) < 110 else response.text[:107] + "..."
    request = response.request
    print(f"{request.method} {request.url.path} -> {response.status_code} {kind}")
    print(f"    {body}")


def tour() -> None:
    """Serve the app on loopback, ask every endpoint, stop."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, name="uvicorn")
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise SystemExit("uvicorn did not start")
            time.sleep(0.02)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            for lesson_id in (1, 2, 1):
                _show(client.get(f"/lessons/{lesson_id}"))
            for question in ("fractions", "decimals"):
                _show(client.get(f"/hint/{question}"))
            for _ in range(3):  # two time out (504); the third finds the breaker open (503)
                _show(client.post("/payments/10"))
            _show(client.get("/report"))
            _show(client.get("/health"))
            sent = client.get("/health/live", headers={"X-Correlation-ID": "tour-1"})
            print(f"X-Correlation-ID sent tour-1, answered {sent.headers['x-correlation-id']}")
            page = client.get("/status/")
            print(f"GET /status/ -> {page.status_code} {page.headers['content-type']}")
    finally:
        server.should_exit = True
        thread.join()
    print("tour done")


if __name__ == "__main__":
    tour()
