"""Rate-limit scenarios: the cost of a local acquire (sync against ``limits``' moving
window in memory, async against aiolimiter's ``async with``), and a fleet of processes
sharing one limit through Redis (round trips per call, over-admission).

The local rows never wait: every limit is far above the call rate, so the figure is the
bookkeeping of one acquire. The peers are used the obvious way, as a decorator would.
"""

from __future__ import annotations

import sys
import uuid
from typing import Any

from _harness import (
    REPO_ROOT,
    Impl,
    Options,
    Row,
    Scenario,
    ScenarioResult,
    Target,
    TargetResult,
    TimedScenario,
    register,
)
from foundation import aplain, plain

BIG = 1_000_000_000
"""A rate no benchmark loop reaches: the rows time the acquire alone."""


def _ours(fn: Any) -> Any:
    import resilient

    return resilient.rate_limit(BIG, name=f"bench-{uuid.uuid4().hex[:8]}")(fn)


def _limits_moving_window() -> Any:
    from limits import parse
    from limits.storage import MemoryStorage
    from limits.strategies import MovingWindowRateLimiter

    limiter = MovingWindowRateLimiter(MemoryStorage())
    item = parse(f"{BIG}/second")

    def call() -> int:
        if not limiter.hit(item, "bench"):
            raise RuntimeError("limited")
        return plain()

    return call


def _aiolimiter() -> Any:
    from aiolimiter import AsyncLimiter

    limiter = AsyncLimiter(BIG, 1)

    async def call() -> int:
        async with limiter:
            return await aplain()

    return call


class FleetScenario(Scenario):
    """4 processes sharing one limit through a real redis-server (tests/rate_limit/fleet.py)."""

    name = "rate_limit: fleet of 4 processes on Redis"

    def run(self, opts: Options) -> ScenarioResult:
        notes = [
            "saturated: 4 processes call as fast as a shared 100/s (burst 10) lets them, 2 s",
            "paced: each process makes 100 calls/s for 2 s under a shared limit of 400/s "
            "(all of it) and 1000/s (burst rate/10); rt/call = lease script calls per call",
            "over run: calls beyond burst + rate x elapsed; worst 1 s: the most calls in any "
            "one-second window (the limit allows burst + rate there)",
        ]
        try:
            from redis_store import server_url

            url = server_url()
        except Exception as error:  # no redis-server, no redis-py
            row = Row("resilient RedisStore", "ours", status=f"not installed: {error}")
            return ScenarioResult(self.name, [row], TargetResult("no redis", "SKIP"), notes)
        for path in (REPO_ROOT / "tests", REPO_ROOT / "tests" / "rate_limit"):
            if str(path) not in sys.path:
                sys.path.append(str(path))
        from fleet import figures, run_fleet

        rows: list[Row] = []
        ok = True
        for flavour in ("sync", "async"):
            found = figures(
                run_fleet(
                    url,
                    f"bench{uuid.uuid4().hex[:8]}",
                    processes=4,
                    rate=100.0,
                    burst=10,
                    seconds=2.0,
                    flavour=flavour,
                ),
                100.0,
                10,
            )
            ok = ok and found["over_run"] <= 0.05
            rows.append(
                Row(
                    f"resilient saturated ({flavour})",
                    "ours",
                    status=f"{found['calls']} calls in {found['seconds']:.2f} s; over run "
                    f"{found['over_run'] * 100:.2f} %; worst 1 s {found['worst_second']} "
                    f"(allowed 110); {found['round_trips_per_call']:.3f} rt/call",
                )
            )
        for rate in (400.0, 1000.0):
            burst = int(rate // 10)
            found = figures(
                run_fleet(
                    url,
                    f"bench{uuid.uuid4().hex[:8]}",
                    processes=4,
                    rate=rate,
                    burst=burst,
                    seconds=2.0,
                    pace=0.01,
                ),
                rate,
                burst,
            )
            ok = ok and found["over_run"] <= 0.05 and found["round_trips_per_call"] <= 0.05
            rows.append(
                Row(
                    f"resilient paced, limit {rate:g}/s",
                    "ours",
                    status=f"{found['calls']} calls; {found['round_trips_per_call']:.4f} "
                    f"rt/call; over run {found['over_run'] * 100:.2f} %",
                )
            )
        text = "over-admission <= 5 %, <= 0.05 rt/call at 100 calls/s per process"
        return ScenarioResult(self.name, rows, TargetResult(text, "PASS" if ok else "FAIL"), notes)


register(
    TimedScenario(
        "rate_limit acquire (sync)",
        [
            Impl("bare", "bare", lambda: plain),
            Impl("resilient", "ours", lambda: _ours(plain)),
            Impl("limits moving window", "reference", _limits_moving_window),
        ],
        Target("reference", 0.5),
        notes=["reference: limits' MovingWindowRateLimiter on MemoryStorage, hit() per call"],
    ),
    TimedScenario(
        "rate_limit acquire (async)",
        [
            Impl("bare", "bare", lambda: aplain),
            Impl("resilient", "ours", lambda: _ours(aplain)),
            Impl("aiolimiter", "reference", _aiolimiter),
        ],
        Target("reference", 0.5),
        is_async=True,
        notes=["reference: aiolimiter.AsyncLimiter, async with per call"],
    ),
    FleetScenario(),
)
