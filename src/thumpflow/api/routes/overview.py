"""Are we current? One row per channel, destination and job, and per-minute series.

`GET /api/overview` classifies every enabled channel, its destinations and
every enabled job with `core.health` (the rules are there and in README,
"Dashboard"); `GET /api/overview/series` gives per-minute throughput and lag
for charts (a job's runs are `GET /api/jobs/{job}/runs`, in `targets`). Both
are reads (viewer and up) and hold no patient data: ids, counts, times (a
job row's `last_run` is the `RunView` of `/api/jobs`, its `error` masked alike).

Figures of a recent window come from the store through bounded, indexed
reads (`FreshnessStore.delivery_sample`); queue depths and totals from the
store's counters (the numbers of `/api/status`); circuits and backpressure
from the running outboxes. Lag is measured from the event's `received_at`
(the engine's clock) to `delivered_at`: the sender's `occurred_at` comes from
another clock, often without a time zone.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel

from thumpflow.api.auth import Reader
from thumpflow.api.browse_schemas import RunView
from thumpflow.api.deps import EngineDep
from thumpflow.api.routes.targets import run_view
from thumpflow.api.schemas import Problem
from thumpflow.config.jobs import Job
from thumpflow.config.model import Channel
from thumpflow.core.access import Principal
from thumpflow.core.batch import RunStatus
from thumpflow.core.event import OutboxStats
from thumpflow.core.health import (
    DeliverySample,
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
from thumpflow.runtime.engine import Engine
from thumpflow.thump.scheduler import schedule_of

router = APIRouter(tags=["overview"])

THRESHOLDS = Thresholds()
OVERVIEW_SAMPLE = 10_000
SERIES_SAMPLE = 100_000
_RECENT_RUNS = 10


class OverviewRow(BaseModel):
    """One channel, destination or job, with its status word and the figures behind it.

    Totals (`delivered`, `dead`, `queue_depth`) are the store's counters, as in
    `/api/status`; `*_recent`, `error_rate` and lags cover the last
    `window_seconds`. `paused` is true while an operator's pause holds the
    destination (no sends) or the channel (no reading from its senders).
    """

    kind: Literal["channel", "destination", "job"]
    id: str
    channel_id: str | None = None
    status: Health
    paused: bool = False
    reasons: list[str]
    latency_budget: float | None = None
    oldest_pending_at: float | None = None
    lag_p50: float | None = None
    lag_p99: float | None = None
    queue_depth: int | None = None
    delivered: int | None = None
    dead: int | None = None
    delivered_recent: int | None = None
    dead_recent: int | None = None
    error_rate: float | None = None
    circuit: str | None = None
    last_delivered_at: float | None = None
    last_received_at: float | None = None
    last_run: RunView | None = None
    next_due_at: float | None = None


class Overview(BaseModel):
    at: float
    window_seconds: float
    rows: list[OverviewRow]


class SeriesPoint(BaseModel):
    """One minute: deliveries and dead letters finished in it, and their lag percentiles."""

    at: float
    delivered: int
    dead: int
    lag_p50: float | None
    lag_p99: float | None


class Series(BaseModel):
    """Per-minute figures of `destinations`, oldest minute first.

    Minutes before `sampled_from` are left out when the window held more
    deliveries than one read takes (100,000 per destination).
    """

    at: float
    minutes: int
    destinations: list[str]
    sampled_from: float
    points: list[SeriesPoint]


async def _destination_row(
    engine: Engine, channel: Channel, destination_id: str, stats: OutboxStats | None, now: float
) -> tuple[OverviewRow, DeliverySample, Verdict]:
    sample = await engine.store.delivery_sample(
        destination_id, now - THRESHOLDS.window_seconds, OVERVIEW_SAMPLE
    )
    lags = [lag for _, lag in sample.recent]
    live = engine.outboxes.get(destination_id)
    circuit = live.breaker.state.value if live is not None else None
    pending = stats.pending if stats else 0
    facts = OutboxFacts(
        latency_budget=channel.latency_budget,
        pending=pending,
        oldest_pending_at=stats.oldest_pending_at if stats else None,
        last_delivered_at=stats.last_delivered_at if stats else None,
        circuit=circuit,
        blocking_ingress=live.blocking if live is not None else False,
        delivered_recent=sample.delivered,
        dead_recent=sample.dead,
        lag_p99=percentile(lags, 99),
    )
    verdict = classify_outbox(facts, now, THRESHOLDS)
    row = OverviewRow(
        kind="destination",
        id=destination_id,
        channel_id=channel.id,
        status=verdict.status,
        reasons=list(verdict.reasons),
        latency_budget=channel.latency_budget,
        oldest_pending_at=facts.oldest_pending_at,
        lag_p50=percentile(lags, 50),
        lag_p99=facts.lag_p99,
        queue_depth=pending,
        delivered=stats.delivered if stats else 0,
        dead=stats.dead if stats else 0,
        delivered_recent=sample.delivered,
        dead_recent=sample.dead,
        error_rate=error_rate(sample.delivered, sample.dead),
        circuit=circuit,
        last_delivered_at=facts.last_delivered_at,
        paused=live.paused if live is not None else False,
    )
    return row, sample, verdict


def _channel_row(
    channel: Channel,
    last_received_at: float | None,
    paused: bool,
    parts: list[tuple[OverviewRow, DeliverySample, Verdict]],
) -> OverviewRow:
    verdict = worst((row.id, part_verdict) for row, _, part_verdict in parts)
    lags = [lag for _, sample, _ in parts for _, lag in sample.recent]
    delivered_recent = sum(sample.delivered for _, sample, _ in parts)
    dead_recent = sum(sample.dead for _, sample, _ in parts)
    rows = [row for row, _, _ in parts]
    oldest = [row.oldest_pending_at for row in rows if row.oldest_pending_at is not None]
    last = [row.last_delivered_at for row in rows if row.last_delivered_at is not None]
    circuits = [row.circuit for row in rows if row.circuit is not None]
    return OverviewRow(
        kind="channel",
        id=channel.id,
        channel_id=channel.id,
        status=verdict.status,
        reasons=list(verdict.reasons),
        latency_budget=channel.latency_budget,
        oldest_pending_at=min(oldest) if oldest else None,
        lag_p50=percentile(lags, 50),
        lag_p99=percentile(lags, 99),
        queue_depth=sum(row.queue_depth or 0 for row in rows),
        delivered=sum(row.delivered or 0 for row in rows),
        dead=sum(row.dead or 0 for row in rows),
        delivered_recent=delivered_recent,
        dead_recent=dead_recent,
        error_rate=error_rate(delivered_recent, dead_recent),
        circuit=_worst_circuit(circuits),
        last_delivered_at=max(last) if last else None,
        last_received_at=last_received_at,
        paused=paused,
    )


def _worst_circuit(circuits: list[str]) -> str | None:
    for state in ("open", "half_open", "closed"):
        if state in circuits:
            return state
    return None


async def _job_row(engine: Engine, principal: Principal, job: Job, now: float) -> OverviewRow:
    runs = await engine.store.runs(job.id, _RECENT_RUNS)
    running = next((run for run in runs if run.status is RunStatus.RUNNING), None)
    finished = next((run for run in runs if run.status is not RunStatus.RUNNING), None)
    schedule = schedule_of(job.schedule)
    next_due = schedule.next_after(now)
    last_started = runs[0].started_at if runs else None
    facts = JobFacts(
        last_status=finished.status.value if finished else None,
        last_read=finished.counts.read if finished else None,
        last_started_at=last_started,
        running_since=running.started_at if running else None,
        due_after_last_start=schedule.next_after(last_started) if last_started else None,
        period=schedule.next_after(next_due) - next_due,
        expect_records=job.expect_records,
    )
    verdict = classify_job(facts, now, THRESHOLDS)
    shown = running or finished
    return OverviewRow(
        kind="job",
        id=job.id,
        status=verdict.status,
        reasons=list(verdict.reasons),
        last_run=run_view(principal, shown) if shown else None,
        next_due_at=next_due,
    )


@router.get("/api/overview")
async def overview(engine: EngineDep, principal: Reader) -> Overview:
    """Every enabled channel, each followed by its destinations, then every enabled job."""
    now = engine.clock.now()
    stats = {item.channel_id: item for item in await engine.stats()}
    rows: list[OverviewRow] = []
    for channel in engine.config.channels:
        if not channel.enabled:
            continue
        found = stats.get(channel.id)
        outboxes = {o.destination_id: o for o in found.outboxes} if found else {}
        parts = [
            await _destination_row(engine, channel, spec.id, outboxes.get(spec.id), now)
            for spec in channel.destinations
        ]
        running = engine.channels.get(channel.id)
        paused = running is not None and running.ingress.paused
        last_received = found.last_received_at if found else None
        rows.append(_channel_row(channel, last_received, paused, parts))
        rows.extend(row for row, _, _ in parts)
    for job in engine.config.jobs:
        if job.enabled:
            rows.append(await _job_row(engine, principal, job, now))
    return Overview(at=now, window_seconds=THRESHOLDS.window_seconds, rows=rows)


@router.get("/api/overview/series", responses={404: {"model": Problem}})
async def series(
    engine: EngineDep,
    _: Reader,
    minutes: Annotated[int, Query(ge=1, le=180, description="Minutes back from now.")] = 60,
    destination: Annotated[str | None, Query(max_length=200)] = None,
    channel: Annotated[str | None, Query(max_length=200)] = None,
) -> Series:
    """Per-minute deliveries, dead letters and lag p50/p99 of one destination, one
    channel's destinations, or every destination (neither given)."""
    chosen = [
        spec.id
        for item in engine.config.channels
        if channel is None or item.id == channel
        for spec in item.destinations
        if destination is None or spec.id == destination
    ]
    if not chosen:
        what = f"destination {destination!r}" if destination else f"channel {channel!r}"
        raise HTTPException(404, f"no {what} in the configuration")
    now = engine.clock.now()
    start = (math.floor(now / 60) - minutes + 1) * 60.0
    delivered: list[tuple[float, float]] = []
    died: list[float] = []
    sampled_from = start
    for destination_id in chosen:
        sample = await engine.store.delivery_sample(destination_id, start, SERIES_SAMPLE)
        delivered.extend(sample.recent)
        died.extend(sample.died)
        cut = [sample.recent[-1][0]] if len(sample.recent) < sample.delivered else []
        cut += [sample.died[-1]] if len(sample.died) < sample.dead else []
        if cut:
            sampled_from = max(sampled_from, math.ceil(max(cut) / 60) * 60.0)
    points = [
        SeriesPoint(
            at=p.at, delivered=p.delivered, dead=p.dead, lag_p50=p.lag_p50, lag_p99=p.lag_p99
        )
        for p in minute_series(delivered, died, start, minutes)
        if p.at >= sampled_from
    ]
    return Series(
        at=now, minutes=minutes, destinations=chosen, sampled_from=sampled_from, points=points
    )
