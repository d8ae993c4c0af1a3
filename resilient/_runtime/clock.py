"""The real clock; tests swap in ``resilient.testing.FakeClock`` through ``configure``."""

from __future__ import annotations

import time

__all__ = ["SYSTEM_CLOCK", "SystemClock"]


class SystemClock:
    """Monotonic time and real sleeps."""

    __slots__ = ()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        import asyncio  # here: a process that never awaits never loads asyncio

        await asyncio.sleep(seconds)

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK = SystemClock()
