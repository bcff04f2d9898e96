"""Per-destination rate limit (token bucket), circuit breaker, and what one destination's
outboxes share of them (`DestinationLimits`).

All are pure state machines driven by times passed in, so they are tested
without waiting. None loses work: they only say how long to wait.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class TokenBucket:
    """At most `rate` sends per second on average, bursts up to `burst`."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = max(1.0, burst)
        self._tokens = self.burst
        self._at = now

    def _refill(self, now: float) -> None:
        if now > self._at:
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now

    def take(self, wanted: int, now: float) -> int:
        """Take up to `wanted` tokens now; return how many were granted (maybe 0)."""
        self._refill(now)
        granted = min(wanted, int(self._tokens))
        self._tokens -= granted
        return granted

    def wait_for_one(self, now: float) -> float:
        """Seconds until at least one token is available."""
        self._refill(now)
        if self._tokens >= 1.0:
            return 0.0
        return (1.0 - self._tokens) / self.rate

    def rescale(self, rate: float, burst: float) -> None:
        """Change the rate and burst from now on (tokens above the new burst are dropped)."""
        self.rate = rate
        self.burst = max(1.0, burst)
        self._tokens = min(self._tokens, self.burst)


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(slots=True)
class CircuitBreaker:
    """Stops sending to a destination that keeps failing, then probes it.

    After `failure_threshold` consecutive transient failures the breaker
    opens for `cooldown_seconds`: nothing is sent (deliveries wait, none is
    charged an attempt). Then one probe batch goes out (half-open): any answer
    from the destination, even a permanent rejection, closes the breaker (it
    is reachable); a transient failure opens it for another cooldown.
    """

    failure_threshold: int = 5
    cooldown_seconds: float = 30.0
    state: BreakerState = BreakerState.CLOSED
    consecutive_failures: int = 0
    opened_at: float = 0.0
    probing: bool = False

    def allows(self, now: float) -> float:
        """0.0 when a send may start now, else seconds to wait."""
        if self.state is BreakerState.CLOSED:
            return 0.0
        if self.state is BreakerState.OPEN:
            remaining = self.opened_at + self.cooldown_seconds - now
            if remaining > 0:
                return remaining
            self.state = BreakerState.HALF_OPEN
        if self.probing:
            return self.cooldown_seconds
        self.probing = True
        return 0.0

    def cancel_probe(self) -> None:
        """The send `allows` granted did not happen; another may probe instead."""
        self.probing = False

    def success(self) -> None:
        self.state = BreakerState.CLOSED
        self.consecutive_failures = 0
        self.probing = False

    def failure(self, now: float) -> None:
        self.consecutive_failures += 1
        self.probing = False
        if (
            self.state is BreakerState.HALF_OPEN
            or self.consecutive_failures >= self.failure_threshold
        ):
            self.state = BreakerState.OPEN
            self.opened_at = now


class DestinationLimits:
    """What every outbox sending one destination from this process shares.

    An engine alone has one outbox per destination, holding these alone. A
    node of a cluster runs one outbox per partition it holds; they share
    one breaker (the destination's consecutive failures, wherever they
    happen, open it for all), one `Retry-After` pause, and the rate limit
    and the operating mode's pace, each scaled by `share`: the fraction of
    the destination's partitions this node holds. Over the nodes holding
    every partition the shares add up to one, so the destination receives
    at most the configured rate from the whole cluster (bursts likewise).
    """

    def __init__(
        self,
        rate: float | None,
        burst: float,
        breaker: CircuitBreaker,
        now: float,
    ) -> None:
        self._rate = (rate, burst) if rate else None
        self._pace: tuple[float, float] | None = None
        self._share = 1.0
        self.bucket = TokenBucket(rate, burst, now) if rate else None
        self.pace: TokenBucket | None = None
        self.breaker = breaker
        self.paused_until = 0.0

    def set_pace(self, pace: tuple[float, float] | None, now: float) -> None:
        """The operating mode's pace (rate, burst), or none; unchanged if it is the same."""
        if pace == self._pace:
            return
        self._pace = pace
        self.pace = None if pace is None else TokenBucket(*self._scaled(pace), now)

    def set_share(self, share: float) -> None:
        """Scale the rate limit and the pace to `share` (0 < share <= 1) of the configured."""
        self._share = share
        if self.bucket is not None and self._rate is not None:
            self.bucket.rescale(*self._scaled(self._rate))
        if self.pace is not None and self._pace is not None:
            self.pace.rescale(*self._scaled(self._pace))

    def _scaled(self, limit: tuple[float, float]) -> tuple[float, float]:
        rate, burst = limit
        return rate * self._share, burst * self._share
