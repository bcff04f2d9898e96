"""Every rule of `core.health`: the status words of destinations, channels and jobs."""

from __future__ import annotations

from dataclasses import replace

import pytest

from thumpflow.core.health import (
    Health,
    JobFacts,
    OutboxFacts,
    Thresholds,
    Verdict,
    classify_job,
    classify_outbox,
    error_rate,
    minute_series,
    percentile,
    worst,
)

NOW = 1_000_000.0
RULES = Thresholds()
IDLE = OutboxFacts(
    latency_budget=10.0,
    pending=0,
    oldest_pending_at=None,
    last_delivered_at=NOW - 3600,
    circuit="closed",
    blocking_ingress=False,
    delivered_recent=0,
    dead_recent=0,
    lag_p99=None,
)


def outbox(**changes: object) -> Verdict:
    return classify_outbox(replace(IDLE, **changes), NOW, RULES)  # type: ignore[arg-type]


def test_an_idle_destination_is_current() -> None:
    assert outbox() == Verdict(Health.CURRENT)
    assert outbox(circuit=None, last_delivered_at=None) == Verdict(Health.CURRENT)


def test_a_flowing_destination_within_budget_is_current() -> None:
    verdict = outbox(
        pending=3, oldest_pending_at=NOW - 9.9, last_delivered_at=NOW - 0.1, lag_p99=9.9
    )
    assert verdict.status is Health.CURRENT


def test_oldest_undelivered_older_than_the_budget_is_delayed() -> None:
    verdict = outbox(pending=1, oldest_pending_at=NOW - 10.5, last_delivered_at=NOW - 1)
    assert verdict.status is Health.DELAYED
    assert verdict.reasons == ("oldest undelivered 10.5 s > budget 10.0 s",)


def test_p99_lag_over_the_budget_is_delayed_even_with_an_empty_queue() -> None:
    verdict = outbox(lag_p99=12.0, delivered_recent=100)
    assert verdict == Verdict(Health.DELAYED, ("p99 lag 12.0 s > budget 10.0 s",))
    assert outbox(lag_p99=10.0).status is Health.CURRENT


def test_a_queue_past_its_high_water_mark_is_delayed() -> None:
    verdict = outbox(blocking_ingress=True)
    assert verdict == Verdict(Health.DELAYED, ("queue past its high-water mark; ingress paused",))


def test_a_half_open_circuit_is_delayed_and_an_open_one_failing() -> None:
    assert outbox(circuit="half_open") == Verdict(Health.DELAYED, ("circuit half-open (probing)",))
    assert outbox(circuit="open") == Verdict(Health.FAILING, ("circuit open",))


def test_no_progress_for_stuck_factor_budgets_with_pending_is_stuck() -> None:
    # Last delivery 31 s ago, oldest pending arrived 40 s ago: idle since the delivery.
    verdict = outbox(pending=4, oldest_pending_at=NOW - 40, last_delivered_at=NOW - 31)
    assert verdict.status is Health.STUCK
    assert verdict.reasons == (
        "nothing delivered for 31.0 s with 4 pending",
        "oldest undelivered 40.0 s > budget 10.0 s",
    )
    # A delivery 29 s ago is progress within 3 budgets: only delayed.
    assert outbox(pending=4, oldest_pending_at=NOW - 40, last_delivered_at=NOW - 29).status is (
        Health.DELAYED
    )


def test_stuck_counts_from_the_oldest_pending_arrival_when_it_is_later() -> None:
    # Delivered long ago, the queue started 20 s ago: not stuck yet (30 s needed).
    verdict = outbox(pending=1, oldest_pending_at=NOW - 20, last_delivered_at=NOW - 3600)
    assert verdict.status is Health.DELAYED
    never = outbox(pending=1, oldest_pending_at=NOW - 30, last_delivered_at=None)
    assert never.status is Health.STUCK


def test_nothing_pending_is_never_stuck() -> None:
    assert outbox(pending=0, last_delivered_at=NOW - 10_000).status is Health.CURRENT


def test_a_dead_letter_rate_at_the_threshold_is_failing() -> None:
    verdict = outbox(delivered_recent=5, dead_recent=5)
    assert verdict == Verdict(Health.FAILING, ("50% of recent deliveries dead-lettered (5)",))
    assert outbox(delivered_recent=6, dead_recent=5).status is Health.CURRENT
    assert outbox(delivered_recent=0, dead_recent=1).status is Health.FAILING


def test_the_worst_rule_wins_and_every_reason_is_kept_most_severe_first() -> None:
    verdict = outbox(
        circuit="open",
        pending=2,
        oldest_pending_at=NOW - 100,
        last_delivered_at=NOW - 100,
        lag_p99=50.0,
    )
    assert verdict.status is Health.FAILING
    assert verdict.reasons == (
        "circuit open",
        "nothing delivered for 100.0 s with 2 pending",
        "oldest undelivered 100.0 s > budget 10.0 s",
        "p99 lag 50.0 s > budget 10.0 s",
    )


def test_a_channel_takes_the_worst_of_its_destinations_naming_each() -> None:
    verdict = worst(
        [
            ("ehr", Verdict(Health.DELAYED, ("p99 lag 12.0 s > budget 10.0 s",))),
            ("lab", Verdict(Health.CURRENT)),
            ("archive", Verdict(Health.STUCK, ("nothing delivered",))),
        ]
    )
    assert verdict == Verdict(
        Health.STUCK, ("archive: nothing delivered", "ehr: p99 lag 12.0 s > budget 10.0 s")
    )
    assert worst([("lab", Verdict(Health.CURRENT))]) == Verdict(Health.CURRENT)


HOURLY = JobFacts(
    last_status="succeeded",
    last_read=10,
    last_started_at=NOW - 600,
    running_since=None,
    due_after_last_start=NOW + 3000,
    period=3600.0,
    expect_records=True,
)


def job(**changes: object) -> Verdict:
    return classify_job(replace(HOURLY, **changes), NOW, RULES)  # type: ignore[arg-type]


def test_a_job_that_ran_on_time_is_current_and_so_is_one_never_run() -> None:
    assert job() == Verdict(Health.CURRENT)
    assert job(last_status="partial").status is Health.CURRENT
    never = job(last_status=None, last_read=None, last_started_at=None, due_after_last_start=None)
    assert never == Verdict(Health.CURRENT)


def test_a_failed_last_run_is_failing() -> None:
    assert job(last_status="failed") == Verdict(Health.FAILING, ("last run failed",))


def test_a_run_longer_than_its_period_is_stuck() -> None:
    verdict = job(running_since=NOW - 3700, last_started_at=NOW - 3700)
    assert verdict.status is Health.STUCK
    assert verdict.reasons == ("running for 62 min, longer than its period 60 min",)
    assert job(running_since=NOW - 3500, due_after_last_start=NOW - 100).status is Health.CURRENT


def test_a_due_run_not_started_after_the_grace_is_delayed() -> None:
    assert job(due_after_last_start=NOW - 59).status is Health.CURRENT
    verdict = job(due_after_last_start=NOW - 61)
    assert verdict == Verdict(Health.DELAYED, ("a run due 61.0 s ago has not started",))


def test_the_grace_is_at_most_one_period() -> None:
    frequent = job(period=10.0, due_after_last_start=NOW - 11)
    assert frequent.status is Health.DELAYED


def test_a_skipped_last_run_is_delayed() -> None:
    assert job(last_status="skipped", last_read=0) == Verdict(
        Health.DELAYED, ("last due run was skipped",)
    )


def test_a_zero_record_run_is_delayed_unless_the_job_expects_none() -> None:
    assert job(last_read=0) == Verdict(Health.DELAYED, ("last run read zero records",))
    assert job(last_read=0, expect_records=False).status is Health.CURRENT


def test_error_rate_and_percentiles() -> None:
    assert error_rate(0, 0) is None
    assert error_rate(3, 1) == 0.25
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    values = [float(n) for n in range(1, 101)]
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0


def test_minute_series_buckets_counts_and_lags_and_ignores_outside_times() -> None:
    start = 600.0
    points = minute_series(
        [(600.0, 1.0), (659.9, 3.0), (660.0, 2.0), (599.0, 9.0), (780.0, 9.0)],
        [610.0, 725.0, 10.0],
        start,
        3,
    )
    assert [(p.at, p.delivered, p.dead) for p in points] == [
        (600.0, 2, 1),
        (660.0, 1, 0),
        (720.0, 0, 1),
    ]
    assert (points[0].lag_p50, points[0].lag_p99) == (1.0, 3.0)
    assert (points[2].lag_p50, points[2].lag_p99) == (None, None)


@pytest.mark.parametrize("status", list(Health))
def test_severity_orders_the_words(status: Health) -> None:
    order = [Health.CURRENT, Health.DELAYED, Health.STUCK, Health.FAILING]
    assert status.severity == order.index(status)
