"""Time, injected: everything that waits or stamps asks a Clock.

`SystemClock` is the real one. `thumpflow.testing.FakeClock` advances only when
a test says so, so timers, backoff and schedules are testable without waiting.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Wall-clock time, seconds since the Unix epoch (UTC)."""
        ...

    def monotonic(self) -> float:
        """A monotonic reading in seconds, for measuring intervals."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of this clock's time."""
        ...


class SystemClock:
    """The real clock: `time.time`, `time.monotonic` and `asyncio.sleep`."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))
