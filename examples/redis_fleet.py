"""Several worker processes sharing one circuit breaker and one rate limit through Redis.

Run it against any Redis you may write to (it uses keys under a fresh prefix, which
expire)::

    python redis_fleet.py redis://localhost:6379/0

It starts three worker processes. Each calls a payments API that is down, through
``@rate_limit(20, per=1, burst=5)`` and ``@breaker("payments")``, both kept in a
``RedisStore``: the limit is shared by the fleet (about 20 calls a second in all, not
each), and so is the breaker, so the fleet stops calling the API after about five
failures in all instead of five per process. Then it prints a summary and checks both.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import resilient as rs
from resilient.stores import RedisStore

WORKERS = 3
RATE, BURST = 20, 5  # calls per second for the whole fleet, and at once
THRESHOLD = 5  # failures in a row (fleet-wide) that open the breaker
DURATION = 1.5  # seconds each worker keeps calling


def charge() -> None:
    """The payments API, which is down."""
    raise ConnectionError("payments API unreachable")


def worker(url: str, prefix: str) -> None:
    """Say "ready", read the start time, call the payments API for DURATION seconds from
    then, and print what happened."""
    store = RedisStore(url, prefix=prefix, key_ttl=60)

    @rs.rate_limit(RATE, per=1, burst=BURST, name="payments-api", store=store)
    @rs.breaker("payments", rs.BreakerConfig(failure_threshold=THRESHOLD), store=store)
    def pay() -> None:
        charge()

    counts = {"failed": 0, "rejected": 0}
    calls: list[float] = []
    print("ready", flush=True)
    start = float(sys.stdin.readline())
    time.sleep(max(0.0, start - time.time()))  # start together
    while not calls or time.time() < start + DURATION:
        calls.append(time.time())
        try:
            pay()
        except ConnectionError:
            counts["failed"] += 1  # reached the API, which failed
        except rs.CircuitOpenError:
            counts["rejected"] += 1  # the fleet's breaker is open: no call made
    store.close()
    print(json.dumps({**counts, "first": calls[0], "last": calls[-1], "calls": len(calls)}))


def main(url: str) -> int:
    prefix = f"fleet-example-{uuid.uuid4().hex[:8]}"
    workers = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", url, prefix],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(WORKERS)
    ]
    for process in workers:  # every worker has connected to Redis
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            print("a worker did not start")
            return 1
    start = f"{time.time() + 0.1}\n"
    reports = []
    for number, process in enumerate(workers, 1):
        out, _ = process.communicate(start, timeout=30)
        if process.returncode != 0:
            print(f"worker {number} failed (exit {process.returncode})")
            return 1
        report = json.loads(out.strip().splitlines()[-1])
        reports.append(report)
        print(
            f"worker {number}: {report['calls']} calls, {report['failed']} reached the API "
            f"and failed, {report['rejected']} rejected by the open breaker"
        )
    calls = sum(r["calls"] for r in reports)
    failed = sum(r["failed"] for r in reports)
    elapsed = max(r["last"] for r in reports) - min(r["first"] for r in reports)
    allowed = BURST + RATE * (elapsed + 0.5)  # the documented bound, over-admission included
    print(f"=== {WORKERS} workers, one rate limit: {calls} calls in {elapsed:.2f} s")
    print(f"    at most {BURST} + {RATE}/s x (t + 0.5 s) = {allowed:.0f} allowed")
    print(f"=== one breaker: {failed} calls reached the API before the fleet stopped calling")
    print(f"    (threshold {THRESHOLD}; {THRESHOLD * WORKERS} if each worker had its own)")
    every_worker_saw_it_open = all(r["rejected"] > 0 for r in reports)
    ok = calls <= allowed and failed < THRESHOLD * WORKERS and every_worker_saw_it_open
    print("limits held" if ok else "LIMITS BROKEN")
    return 0 if ok else 1


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        worker(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit(main(sys.argv[1] if len(sys.argv) > 1 else "redis://localhost:6379/0"))
