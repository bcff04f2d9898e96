"""Are we current? The status words of the dashboard and the rules behind them.

Pure functions of figures passed in (no I/O, no clock): the API gathers the
figures from the store and the running outboxes, these rules turn them into
one of four words a person reads at a glance, with the reasons in words.

A destination (outbox), worst rule wins:

- `failing`: its circuit breaker is open; or in the recent window at least
  one delivery was dead-lettered and dead letters are at least
  `failing_error_rate` of the deliveries finished (delivered + dead).
- `stuck`: deliveries are pending and nothing was delivered for
  `stuck_factor` × the latency budget — counted from the later of the last
  delivery and the arrival of the oldest pending event.
- `delayed`: the oldest undelivered event is older than the latency budget;
  or the p99 lag (receipt to delivery) of the recent window exceeds it; or
  the queue is past its high-water mark (ingress paused); or the circuit is
  half-open (probing after being open).
- `current`: none of these.

A channel takes the worst status of its destinations.

A job, worst rule wins:

- `failing`: its last finished run failed.
- `stuck`: a run has been running for longer than one schedule period (it
  holds back the next run, runs never overlap).
- `delayed`: a due time passed more than `job_grace_seconds` (at most one
  period) ago without a run started since; or its last finished run was
  skipped; or the last finished run read zero records while the job expects
  records.
- `current`: none of these (also before its first run).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum


class Health(StrEnum):
    """The status word, in order of severity."""

    CURRENT = "current"
    DELAYED = "delayed"
    STUCK = "stuck"
    FAILING = "failing"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {Health.CURRENT: 0, Health.DELAYED: 1, Health.STUCK: 2, Health.FAILING: 3}


@dataclass(slots=True, frozen=True)
class Thresholds:
    """The tunables of the rules; the defaults are what the API uses."""

    window_seconds: float = 300.0
    stuck_factor: float = 3.0
    failing_error_rate: float = 0.5
    job_grace_seconds: float = 60.0


@dataclass(slots=True, frozen=True)
class Verdict:
    """A status and why, most severe reasons first (empty when current)."""

    status: Health
    reasons: tuple[str, ...] = ()


@dataclass(slots=True, frozen=True)
class OutboxFacts:
    """What is known of one destination now. Times are Unix seconds."""

    latency_budget: float
    pending: int
    oldest_pending_at: float | None
    last_delivered_at: float | None
    circuit: str | None
    blocking_ingress: bool
    delivered_recent: int
    dead_recent: int
    lag_p99: float | None


@dataclass(slots=True, frozen=True)
class JobFacts:
    """What is known of one job now. Times are Unix seconds.

    `last_status`/`last_read` are of the last finished run (any status but
    running); `due_after_last_start` is the first due time after the latest
    run (running or finished) started; `period` is the schedule's current
    period in seconds.
    """

    last_status: str | None
    last_read: int | None
    last_started_at: float | None
    running_since: float | None
    due_after_last_start: float | None
    period: float
    expect_records: bool


def error_rate(delivered: int, dead: int) -> float | None:
    """Dead letters as a share of finished deliveries; None when nothing finished."""
    finished = delivered + dead
    return None if finished == 0 else dead / finished


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank `q`-th percentile (0 < q <= 100) of `values`; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def _seconds(value: float) -> str:
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.0f} min"
    return f"{value / 3600:.1f} h"


def _verdict(found: list[tuple[Health, str]]) -> Verdict:
    if not found:
        return Verdict(Health.CURRENT)
    found.sort(key=lambda item: -item[0].severity)
    return Verdict(found[0][0], tuple(reason for _, reason in found))


def classify_outbox(facts: OutboxFacts, now: float, thresholds: Thresholds) -> Verdict:
    """The status of one destination (see the module docstring for the rules)."""
    budget = facts.latency_budget
    found: list[tuple[Health, str]] = []
    if facts.circuit == "open":
        found.append((Health.FAILING, "circuit open"))
    rate = error_rate(facts.delivered_recent, facts.dead_recent)
    if facts.dead_recent > 0 and rate is not None and rate >= thresholds.failing_error_rate:
        found.append(
            (
                Health.FAILING,
                f"{rate:.0%} of recent deliveries dead-lettered ({facts.dead_recent})",
            )
        )
    if facts.pending > 0:
        marks = [t for t in (facts.last_delivered_at, facts.oldest_pending_at) if t is not None]
        if marks:
            idle = now - max(marks)
            if idle >= thresholds.stuck_factor * budget:
                found.append(
                    (
                        Health.STUCK,
                        f"nothing delivered for {_seconds(idle)} with {facts.pending} pending",
                    )
                )
    if facts.oldest_pending_at is not None and now - facts.oldest_pending_at > budget:
        age = now - facts.oldest_pending_at
        found.append(
            (
                Health.DELAYED,
                f"oldest undelivered {_seconds(age)} > budget {_seconds(budget)}",
            )
        )
    if facts.lag_p99 is not None and facts.lag_p99 > budget:
        found.append(
            (Health.DELAYED, f"p99 lag {_seconds(facts.lag_p99)} > budget {_seconds(budget)}")
        )
    if facts.blocking_ingress:
        found.append((Health.DELAYED, "queue past its high-water mark; ingress paused"))
    if facts.circuit == "half_open":
        found.append((Health.DELAYED, "circuit half-open (probing)"))
    return _verdict(found)


def classify_job(facts: JobFacts, now: float, thresholds: Thresholds) -> Verdict:
    """The status of one job (see the module docstring for the rules)."""
    found: list[tuple[Health, str]] = []
    if facts.last_status == "failed":
        found.append((Health.FAILING, "last run failed"))
    if facts.running_since is not None and now - facts.running_since > facts.period:
        found.append(
            (
                Health.STUCK,
                f"running for {_seconds(now - facts.running_since)}, "
                f"longer than its period {_seconds(facts.period)}",
            )
        )
    grace = min(thresholds.job_grace_seconds, facts.period)
    due = facts.due_after_last_start
    if due is not None and facts.running_since is None and now - due > grace:
        found.append((Health.DELAYED, f"a run due {_seconds(now - due)} ago has not started"))
    if facts.last_status == "skipped":
        found.append((Health.DELAYED, "last due run was skipped"))
    if facts.expect_records and facts.last_read == 0 and facts.last_status != "skipped":
        found.append((Health.DELAYED, "last run read zero records"))
    return _verdict(found)


def worst(verdicts: Iterable[tuple[str, Verdict]]) -> Verdict:
    """The most severe of named verdicts; reasons name whose they are."""
    found = [
        (verdict.status, f"{name}: {reason}")
        for name, verdict in verdicts
        for reason in verdict.reasons
    ]
    return _verdict(found)


@dataclass(slots=True, frozen=True)
class MinutePoint:
    """One minute of a destination's (or channel's) deliveries."""

    at: float
    delivered: int
    dead: int
    lag_p50: float | None
    lag_p99: float | None


def minute_series(
    delivered: Iterable[tuple[float, float]],
    died: Iterable[float],
    start: float,
    minutes: int,
) -> list[MinutePoint]:
    """Per-minute counts and lag percentiles from `start` (a minute boundary).

    `delivered` holds (delivered_at, lag) pairs and `died` dead-letter times;
    anything outside the `minutes` minutes from `start` is ignored.
    """
    lags: list[list[float]] = [[] for _ in range(minutes)]
    dead = [0] * minutes
    for at, lag in delivered:
        slot = int((at - start) // 60)
        if 0 <= slot < minutes:
            lags[slot].append(lag)
    for at in died:
        slot = int((at - start) // 60)
        if 0 <= slot < minutes:
            dead[slot] += 1
    return [
        MinutePoint(
            at=start + 60 * slot,
            delivered=len(lags[slot]),
            dead=dead[slot],
            lag_p50=percentile(lags[slot], 50),
            lag_p99=percentile(lags[slot], 99),
        )
        for slot in range(minutes)
    ]


@dataclass(slots=True, frozen=True)
class DeliverySample:
    """A destination's deliveries finished since `since`, as the store read them.

    `delivered`/`dead` count every delivery in the window (up to the store's
    counting cap); `recent` holds (delivered_at, lag seconds) of the newest
    deliveries, newest first, and `died` the newest dead-letter times, each at
    most the asked limit. `complete` is True when `recent` and `died` hold
    every delivery of the window.
    """

    destination_id: str
    since: float
    delivered: int
    dead: int
    recent: tuple[tuple[float, float], ...]
    died: tuple[float, ...]
    complete: bool
