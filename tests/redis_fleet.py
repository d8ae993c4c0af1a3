"""A fleet of real processes sharing one breaker through Redis (one server or a cluster).

``run_workers`` starts the workers, releases them together and collects what each
counted; ``release_herd`` runs the half-open herd (callers meeting an open breaker whose
probes wait for a signal). Run as a script, this module is the worker (see ``main``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from redis_server import FLEET_THRESHOLD, HERE, ROOT

from resilient import BreakerConfig, CircuitBreaker

PROCESSES = 4
WAIT = 30.0

HERD = BreakerConfig(
    failure_threshold=1,
    reset_timeout=0.2,
    half_open_max_calls=3,
    success_threshold=3,
    probe_timeout=30,
)
"""The herd's breaker: one failure opens it, 3 probes close it (and hold their lease)."""


# --- the test's side ---------------------------------------------------------------------


def spawn(*args: str) -> subprocess.Popen[str]:
    """Start ``python tests/redis_fleet.py <args>``; it prints one JSON line."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(HERE), env.get("PYTHONPATH", "")])
    return subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def run_workers(
    server: Any, prefix: str, *args: str, between: Any = None, processes: int = PROCESSES
) -> list[Any]:
    """Start ``processes`` workers on ``server`` (a server or a cluster), release them
    together once all are ready, collect their JSON lines; ``between(client)`` runs after
    the release, while they work."""
    client: Any = server.client()
    workers = [spawn(args[0], server.url, prefix, *args[1:]) for _ in range(processes)]
    try:
        deadline = time.monotonic() + WAIT
        while client.llen(f"{prefix}:ready") < processes:
            assert time.monotonic() < deadline, [w.poll() for w in workers]
            assert all(w.poll() is None for w in workers), [w.communicate() for w in workers]
            time.sleep(0.01)
        client.rpush(f"{prefix}:go", *["go"] * processes)
        if between is not None:
            between(client)
        results = []
        for worker in workers:
            out, err = worker.communicate(timeout=WAIT)
            assert worker.returncode == 0, err
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
            for pipe in (worker.stdout, worker.stderr):
                if pipe is not None:
                    pipe.close()
        client.close()


def tripped(store: Any) -> CircuitBreaker:
    """The breaker "herd" (``HERD``) on ``store``, opened by one failing call."""
    from strategies import BoomError  # hypothesis: not for the workers to import

    breaker = CircuitBreaker("herd", HERD, store=store)
    with pytest.raises(BoomError):
        breaker.call(_boom)
    return breaker


def release_herd(
    server: Any,
    tripped: CircuitBreaker,
    prefix: str,
    callers: int,
    timeout: str,
    *,
    processes: int,
    settle: float,
) -> tuple[list[int], list[Any]]:
    """Once ``tripped`` (the breaker "herd" of ``prefix``, see ``tripped``) may probe,
    ``processes`` workers of ``callers`` tasks each call it (store ``timeout``); once
    every task has its answer (within ``settle`` seconds), the probes let in are counted
    and released. Returns that count (in a list) and the workers' results."""
    time.sleep(max(0.0, tripped.retry_after or 0.0))  # the workers start after it anyway
    entered: list[int] = []

    def release_when_settled(client: Any) -> None:
        deadline = time.monotonic() + settle
        while client.llen(f"{prefix}:settled") < processes:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        entered.append(client.llen(f"{prefix}:entered"))
        client.set(f"{prefix}:release", 1)

    results = run_workers(
        server,
        prefix,
        "herd",
        str(callers),
        timeout,
        between=release_when_settled,
        processes=processes,
    )
    return entered, results


def _boom() -> None:
    from strategies import BoomError

    raise BoomError


# --- the worker's side -------------------------------------------------------------------


def client_of(url: str) -> Any:
    """A plain client of ``url`` (a cluster client for ``redis+cluster://``)."""
    import redis
    import redis.cluster

    if url.startswith("redis+cluster://"):
        return redis.cluster.RedisCluster.from_url(url.replace("+cluster", "", 1))
    return redis.Redis.from_url(url)


def _rendezvous(client: Any, prefix: str) -> None:
    """Say this worker is ready, then wait for the test to release every worker at once."""
    client.rpush(f"{prefix}:ready", os.getpid())
    if client.blpop([f"{prefix}:go"], timeout=30) is None:
        raise SystemExit("never released")


def worker_failing(
    url: str, prefix: str, threads: str, calls: str, timeout: str = "0.05"
) -> dict[str, Any]:
    """``threads`` threads make ``calls`` calls each to a function that always fails
    (``timeout``: the store's)."""
    import threading

    from resilient import CircuitOpenError
    from resilient.stores.redis import RedisStore

    store = RedisStore(url, prefix=prefix, timeout=float(timeout))
    config = BreakerConfig(failure_threshold=FLEET_THRESHOLD, reset_timeout=3600)
    breaker = CircuitBreaker("fleet", config, store=store)
    store.listening.wait(10)
    lock = threading.Lock()
    tally = {"reached": 0, "rejected": 0, "failed": 0, "other": 0}

    def failing() -> None:
        with lock:
            tally["reached"] += 1
        time.sleep(0.001)
        raise ValueError("down")

    def run() -> None:
        for _ in range(int(calls)):
            try:
                breaker.call(failing)
            except ValueError:
                key = "failed"
            except CircuitOpenError:
                key = "rejected"
            except BaseException:
                key = "other"
            with lock:
                tally[key] += 1

    _rendezvous(client_of(url), prefix)
    pool = [threading.Thread(target=run) for _ in range(int(threads))]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    store.close()
    return tally


def worker_herd(url: str, prefix: str, callers: str, timeout: str) -> dict[str, Any]:
    """``callers`` concurrent tasks call a half-open breaker; probes wait for release."""
    import asyncio

    from resilient import CircuitOpenError
    from resilient.stores.redis import AsyncRedisStore

    client = client_of(url)
    store = AsyncRedisStore(url, prefix=prefix, timeout=float(timeout))
    breaker = CircuitBreaker("herd", HERD, store=store)
    store.listening.wait(10)
    tally = {"reached": 0, "ok": 0, "rejected": 0, "other": 0}

    async def probe() -> str:
        tally["reached"] += 1
        client.rpush(f"{prefix}:entered", os.getpid())
        while not client.exists(f"{prefix}:release"):  # noqa: ASYNC110 - another process sets it
            await asyncio.sleep(0.01)
        return "ok"

    async def call() -> None:
        try:
            await breaker.acall(probe)
        except CircuitOpenError:
            tally["rejected"] += 1
            return
        except BaseException:
            tally["other"] += 1
            return
        tally["ok"] += 1

    async def main() -> None:
        await store.aconnect()
        tasks = [asyncio.create_task(call()) for _ in range(int(callers))]
        while tally["reached"] + tally["rejected"] + tally["other"] < int(callers):  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        client.rpush(f"{prefix}:settled", os.getpid())
        await asyncio.gather(*tasks)
        tally["reachable"] = store.reachable
        await store.aclose()

    _rendezvous(client, prefix)
    asyncio.run(main())
    return tally


WORKERS: dict[str, Callable[..., dict[str, Any]]] = {
    "failing": worker_failing,
    "herd": worker_herd,
}


def main(argv: list[str]) -> None:
    """Run the worker ``argv[0]`` with the other arguments; print its tally as JSON."""
    print(json.dumps(WORKERS[argv[0]](*argv[1:])), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
