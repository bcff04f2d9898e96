"""Bounded, classified retries: exponential backoff with full jitter.

A `Transient` result is retried after `delay`; a `Permanent` one, or a
transient failure past `max_attempts` or `max_age_seconds` since the first
failure, dead-letters the delivery with the reason. A receiver's `Retry-After`
is honoured: the wait is never shorter than what it asked for (capped by
`max_retry_after_seconds`, so a hostile header cannot park a delivery for a
year).
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(slots=True, frozen=True)
class RetryPolicy:
    base_seconds: float = 0.5
    cap_seconds: float = 300.0
    max_attempts: int = 50
    max_age_seconds: float = 86_400.0
    max_retry_after_seconds: float = 3_600.0

    def delay(self, attempts: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait before attempt `attempts + 1` (full jitter, Retry-After floor)."""
        ceiling = min(self.cap_seconds, self.base_seconds * (2 ** min(attempts - 1, 62)))
        wait = rng.uniform(0.0, ceiling)
        if retry_after is not None:
            wait = max(wait, min(max(0.0, retry_after), self.max_retry_after_seconds))
        return wait

    def exhausted(self, attempts: int, first_failed_at: float, now: float) -> str | None:
        """The reason retrying must stop, or None while it may go on."""
        if attempts >= self.max_attempts:
            return f"gave up after {attempts} attempts"
        if now - first_failed_at >= self.max_age_seconds:
            return f"gave up after {now - first_failed_at:.0f}s of failures"
        return None
