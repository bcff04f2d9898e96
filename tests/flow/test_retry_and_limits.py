"""Backoff with full jitter and Retry-After, token bucket, circuit breaker."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from thumpflow.flow.limits import BreakerState, CircuitBreaker, TokenBucket
from thumpflow.flow.retry import RetryPolicy


@given(st.integers(min_value=1, max_value=200), st.integers(min_value=0, max_value=2**32))
def test_backoff_is_full_jitter_under_an_exponential_ceiling(attempts: int, seed: int) -> None:
    policy = RetryPolicy(base_seconds=0.5, cap_seconds=60)
    wait = policy.delay(attempts, None, random.Random(seed))
    assert 0.0 <= wait <= min(60, 0.5 * 2 ** (attempts - 1))


def test_backoff_spreads_over_the_whole_range() -> None:
    policy = RetryPolicy(base_seconds=1, cap_seconds=1000)
    rng = random.Random(7)
    waits = [policy.delay(5, None, rng) for _ in range(2000)]
    assert min(waits) < 1.0
    assert max(waits) > 15.0
    assert 7.0 < sum(waits) / len(waits) < 9.0


def test_retry_after_is_a_floor_and_is_capped() -> None:
    policy = RetryPolicy(base_seconds=0.1, cap_seconds=1, max_retry_after_seconds=120)
    rng = random.Random(1)
    assert all(policy.delay(1, 30, rng) >= 30 for _ in range(100))
    assert policy.delay(1, 10**9, rng) == 120


def test_exhaustion_by_attempts_and_by_age() -> None:
    policy = RetryPolicy(max_attempts=3, max_age_seconds=100)
    assert policy.exhausted(2, first_failed_at=0, now=50) is None
    assert policy.exhausted(3, first_failed_at=0, now=50) == "gave up after 3 attempts"
    reason = policy.exhausted(1, first_failed_at=0, now=100)
    assert reason is not None
    assert "100s" in reason


def test_token_bucket_rate_and_burst() -> None:
    bucket = TokenBucket(rate=10, burst=5, now=0)
    assert bucket.take(100, now=0) == 5
    assert bucket.take(1, now=0) == 0
    assert abs(bucket.wait_for_one(now=0) - 0.1) < 1e-9
    assert bucket.take(100, now=1.0) == 5
    granted = sum(bucket.take(1, now=1.0 + step / 100) for step in range(1, 1001))
    assert 99 <= granted <= 101


def test_breaker_opens_after_threshold_then_probes_once() -> None:
    breaker = CircuitBreaker(failure_threshold=3, cooldown_seconds=10)
    for _ in range(3):
        assert breaker.allows(0) == 0.0
        breaker.failure(0)
    assert breaker.state is BreakerState.OPEN
    assert breaker.allows(5) == 5.0
    assert breaker.allows(10) == 0.0
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allows(10) > 0
    breaker.failure(11)
    assert breaker.state is BreakerState.OPEN
    assert breaker.allows(21) == 0.0
    breaker.success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allows(21) == 0.0


def test_breaker_success_resets_the_count() -> None:
    breaker = CircuitBreaker(failure_threshold=2, cooldown_seconds=10)
    breaker.failure(0)
    breaker.success()
    breaker.failure(0)
    assert breaker.state is BreakerState.CLOSED
