"""A clock for tests of tasks waiting together under the plugin's virtual time."""

from __future__ import annotations

import asyncio

from resilient.testing import FakeClock


class LoopClock:
    """The fake clock, with waits that are the virtual loop's timers: tasks sleeping
    together wake at their own times (``FakeClock.asleep`` moves the clock at once)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock

    def monotonic(self) -> float:
        return self.clock.monotonic()

    def sleep(self, seconds: float) -> None:
        self.clock.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
