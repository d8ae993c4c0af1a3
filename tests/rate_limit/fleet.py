"""A fleet of real processes sharing one rate limit through Redis.

``run_fleet`` starts the workers (this module, run as a script), releases them together
and collects, from each, the wall-clock times of the calls its limit let through and the
round trips it made. ``figures`` turns those into what the README promises: the
over-admission of the whole run and of the worst one-second window, and the round trips
per call. The benchmark (``benchmarks/bench_rate_limit.py``) uses it too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
WAIT = 30.0


def run_fleet(
    url: str,
    prefix: str,
    *,
    processes: int,
    rate: float,
    burst: int,
    seconds: float,
    pace: float = 0.0,
    flavour: str = "sync",
) -> list[dict[str, Any]]:
    """``processes`` workers call one function limited to ``rate`` per second (``burst``)
    for ``seconds``; each waits ``pace`` seconds between calls (0: as fast as allowed)."""
    import redis
    from processes import die_with_parent

    client = redis.Redis.from_url(url)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(HERE.parent), env.get("PYTHONPATH", "")])
    args = [url, prefix, str(rate), str(burst), str(seconds), str(pace), flavour]
    workers = [
        subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            preexec_fn=die_with_parent,
        )
        for _ in range(processes)
    ]
    try:
        deadline = time.monotonic() + WAIT
        while client.llen(f"{prefix}:ready") < processes:
            assert time.monotonic() < deadline, [w.poll() for w in workers]
            assert all(w.poll() is None for w in workers), [w.communicate() for w in workers]
            time.sleep(0.01)
        client.rpush(f"{prefix}:go", *[str(time.time() + 0.05)] * processes)
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
            worker.communicate()  # reaps it and closes its pipes
        client.close()


def figures(results: list[dict[str, Any]], rate: float, burst: int) -> dict[str, float]:
    """Calls admitted, the over-admission of the run and of its worst one-second window
    (as fractions of what the limit allows there), and round trips per call."""
    times = sorted(t for result in results for t in result["times"])
    calls = len(times)
    span = times[-1] - times[0] if calls > 1 else 0.0
    allowed = burst + rate * span
    worst, j = 0, 0
    for i, first in enumerate(times):
        while j < calls and times[j] <= first + 1.0:
            j += 1
        worst = max(worst, j - i)
    leases = sum(result["leases"] for result in results)
    return {
        "calls": calls,
        "seconds": span,
        "allowed": allowed,
        "over_run": max(0.0, calls - allowed) / allowed,
        "worst_second": worst,
        "over_second": max(0.0, worst - (burst + rate)) / (burst + rate),
        "round_trips_per_call": leases / calls if calls else 0.0,
    }


def main(argv: list[str]) -> None:
    """The worker: call the limited function until the time is up; print a JSON line."""
    url, prefix, rate, burst, seconds, pace, flavour = argv
    import asyncio

    import redis

    import resilient as rs
    from resilient.stores.redis import AsyncRedisStore, RedisStore

    client = redis.Redis.from_url(url)
    client.rpush(f"{prefix}:ready", os.getpid())
    released = client.blpop([f"{prefix}:go"], timeout=WAIT)
    if released is None:
        raise SystemExit("never released")
    start = float(released[1])
    end = start + float(seconds)
    times: list[float] = []
    # A loaded CI machine can hold a round trip past the default 50 ms, and an outage
    # makes each process fall back to its own bucket: this test is about a healthy fleet.
    sink = rs.metrics.MemorySink()
    rs.configure(metrics=sink)
    store: Any = (AsyncRedisStore if flavour == "async" else RedisStore)(
        url, prefix=prefix, timeout=2.0
    )
    limit = rs.rate_limit(float(rate), burst=int(burst), name="fleet", store=store)
    time.sleep(max(0.0, start - time.time()))

    if flavour == "async":

        @limit
        async def acall() -> None:
            times.append(time.time())

        async def run() -> None:
            while time.time() < end:
                await acall()
                if float(pace):
                    await asyncio.sleep(float(pace))

        asyncio.run(run())
    else:

        @limit
        def call() -> None:
            times.append(time.time())

        while time.time() < end:
            call()
            if float(pace):
                time.sleep(float(pace))
    limiter = rs.get_rate_limiter("fleet")
    assert limiter is not None
    leases = getattr(limiter, "leases", 0)
    store.close()
    errors = sink.counter("store_errors_total")
    found = {"times": [t for t in times if t <= end], "leases": leases, "store_errors": errors}
    print(json.dumps(found), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
