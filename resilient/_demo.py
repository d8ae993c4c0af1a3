"""A short demonstration of ``@timeout`` and ``@retry`` against a simulated flaky call.

The "network" is a function that fails, stalls or answers according to a script. Every
wait goes through the configured clock: real but short (about two seconds) by default,
instant under ``resilient.testing.FakeClock``, which is how the test suite runs it.
"""

from __future__ import annotations

import asyncio
import random

import resilient as rs


def _now() -> float:
    return rs.configuration().clock.monotonic()


_start = 0.0


def _say(message: str) -> None:
    print(f"[{_now() - _start:5.2f}s] {message}", flush=True)


class FlakyService:
    """Answers like a school network: drops, stalls, then recovers."""

    def __init__(self, script: list[str], seed: int) -> None:
        self.script = script
        self.rng = random.Random(seed)
        self.calls = 0

    async def fetch(self, lesson: int) -> dict[str, object]:
        step = self.script[min(self.calls, len(self.script) - 1)]
        self.calls += 1
        if step == "drop":
            await rs.configuration().clock.asleep(0.01)
            raise ConnectionResetError("connection reset by a meddling proxy")
        if step == "stall":
            await rs.configuration().clock.asleep(5)  # far longer than the budget below
        await rs.configuration().clock.asleep(0.02 + self.rng.random() * 0.03)
        return {"lesson": lesson, "title": "Photosynthesis"}


def _on_retry(attempt: int, error: BaseException, delay: float) -> None:
    _say(f"  attempt {attempt} failed ({type(error).__name__}: {error}); retry in {delay:.2f}s")


async def _scenario(title: str, script: list[str], seed: int) -> None:
    service = FlakyService(script, seed)

    @rs.retry(rs.RetryConfig.quick, attempts=4, initial_delay=0.1, on_retry=_on_retry)
    @rs.timeout(0.3)  # per attempt; the seed's "quick" preset would be 5 s
    async def get_lesson(lesson: int) -> dict[str, object]:
        return await service.fetch(lesson)

    _say(f"{title}: network script {script}")
    try:
        result = await get_lesson(123)
    except Exception as error:  # the demo reports whatever happened
        _say(f"  gave up: {type(error).__name__}: {error}")
        for note in getattr(error, "__notes__", []):
            _say(f"  note: {note}")
    else:
        _say(f"  got {result} after {service.calls} call(s)")


def run(seed: int = 7) -> int:
    """Run the scenarios and print what each decorator did."""
    global _start
    _start = _now()
    _say("resilient demo: @retry(quick, attempts=4) over @timeout(0.3s) around a flaky call")
    asyncio.run(_scenario("healthy network", ["ok"], seed))
    asyncio.run(_scenario("two dropped connections", ["drop", "drop", "ok"], seed))
    asyncio.run(_scenario("a stalled response", ["stall", "ok"], seed))
    asyncio.run(_scenario("outage", ["drop"], seed))
    _say("done: every failure above was handled or reported with its own error")
    return 0
