"""Channels, destinations and jobs with live figures; pausing and resuming; job runs.

Listings need the viewer role and carry ids, counts, times and states only.
Pause and resume are acts: operator role and a reason, recorded durably with
an audit entry (`paused` / `resumed`, subject `destination:<id>` or
`channel:<id>`) before they take effect, and kept across restarts.

- A paused destination starts no new send; its queue keeps filling durably
  (and still counts toward backpressure), and on resume it sends in order.
- A paused channel stops reading from its MLLP connections (new connections
  are accepted but not read): the sender is held by TCP flow control with its
  messages unread and unacknowledged, and on resume reading goes on where it
  stopped. No negative ACK is sent: a sender retries an AE or AR at once, in
  a loop, and many interfaces stop or skip the message on a NAK, while a
  held sender just waits (or times out, reconnects and resends, which the
  idempotency keys make harmless).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query

from thumpflow.api.auth import Operator, Reader
from thumpflow.api.auth_first import AuthFirstRoute
from thumpflow.api.browse_schemas import (
    ActRequest,
    Channels,
    ChannelView,
    Destinations,
    DestinationView,
    Jobs,
    JobView,
    ManifestView,
    PauseInfo,
    PauseState,
    RunCountsView,
    Runs,
    RunView,
)
from thumpflow.api.deps import EngineDep
from thumpflow.api.masking import shown
from thumpflow.api.schemas import Problem
from thumpflow.config.jobs import Job
from thumpflow.core.access import Principal
from thumpflow.core.batch import Manifest, RunRecord, RunStatus
from thumpflow.core.search import Pause, PauseKind
from thumpflow.runtime.engine import Engine, UnknownTargetError
from thumpflow.thump.scheduler import schedule_of

router = APIRouter(route_class=AuthFirstRoute)

TargetId = Annotated[str, Path(min_length=1, max_length=200)]


async def _pauses(engine: Engine) -> dict[tuple[PauseKind, str], Pause]:
    return {(pause.kind, pause.target_id): pause for pause in await engine.store.pauses()}


def _pause_info(pause: Pause | None) -> PauseInfo | None:
    if pause is None:
        return None
    return PauseInfo(paused_at=pause.paused_at, paused_by=pause.actor, reason=pause.reason)


@router.get("/api/destinations", tags=["destinations"])
async def destinations(engine: EngineDep, _: Reader) -> Destinations:
    """Every running destination: counts, pending, oldest pending age, circuit, pause."""
    stats = await engine.outbox_stats()
    pauses = await _pauses(engine)
    now = engine.clock.now()
    views = []
    for channel in engine.config.channels:
        for spec in channel.destinations:
            outbox = engine.outboxes.get(spec.id)
            if outbox is None:
                continue
            figures = stats.get(spec.id)
            oldest = figures.oldest_pending_at if figures and outbox.pending > 0 else None
            views.append(
                DestinationView(
                    destination_id=spec.id,
                    channel_id=channel.id,
                    type=spec.type,
                    delivered=figures.delivered if figures else 0,
                    pending=outbox.pending,
                    dead=figures.dead if figures else 0,
                    superseded=figures.superseded if figures else 0,
                    oldest_pending_at=oldest,
                    oldest_pending_age=None if oldest is None else max(0.0, now - oldest),
                    last_delivered_at=figures.last_delivered_at if figures else None,
                    circuit=outbox.breaker.state.value,
                    blocking_ingress=outbox.blocking,
                    paused=outbox.paused,
                    pause=_pause_info(pauses.get((PauseKind.DESTINATION, spec.id))),
                )
            )
    return Destinations(destinations=views)


@router.get("/api/channels", tags=["channels"])
async def channels(engine: EngineDep, _: Reader) -> Channels:
    """Every configured channel: received, duplicates, rejects, pending, dead, pause,
    conversion warnings by code."""
    stats = {channel.channel_id: channel for channel in await engine.stats()}
    pauses = await _pauses(engine)
    views = []
    for channel in engine.config.channels:
        figures = stats.get(channel.id)
        running = engine.channels.get(channel.id)
        views.append(
            ChannelView(
                channel_id=channel.id,
                enabled=channel.enabled,
                running=running is not None,
                accepting=running is not None and running.ingress.is_open(),
                paused=running is not None and running.ingress.paused,
                pause=_pause_info(pauses.get((PauseKind.CHANNEL, channel.id))),
                received=figures.received if figures else 0,
                duplicates=figures.duplicates if figures else 0,
                rejected=figures.rejected if figures else 0,
                last_received_at=figures.last_received_at if figures else None,
                pending=sum(o.pending for o in figures.outboxes) if figures else 0,
                dead=sum(o.dead for o in figures.outboxes) if figures else 0,
                destinations=[spec.id for spec in channel.destinations],
                conversion_warnings=engine.metrics.conversion.counts(channel.id),
            )
        )
    return Channels(channels=views)


_ACT_RESPONSES: dict[int | str, dict[str, Any]] = {
    403: {"model": Problem},
    404: {"model": Problem},
}

_ACTS = {
    (PauseKind.DESTINATION, True): "Stop sending to a destination (its queue keeps filling "
    "durably); audited.",
    (PauseKind.DESTINATION, False): "Send again, in order, from where the pause left off; audited.",
    (PauseKind.CHANNEL, True): "Stop reading from the channel's senders (they are held, not "
    "refused); audited.",
    (PauseKind.CHANNEL, False): "Read from the channel's senders again; audited.",
}


def _act_endpoint(kind: PauseKind, paused: bool) -> Callable[..., Awaitable[PauseState]]:
    async def act(
        target_id: TargetId, body: ActRequest, engine: EngineDep, principal: Operator
    ) -> PauseState:
        try:
            changed = await engine.set_paused(
                kind, target_id, paused, actor=principal.name, reason=body.reason.strip()
            )
        except UnknownTargetError as err:
            raise HTTPException(404, str(err)) from None
        return PauseState(kind=kind.value, id=target_id, paused=paused, changed=changed)

    act.__doc__ = _ACTS[kind, paused]
    return act


for (_kind, _paused), _summary in _ACTS.items():
    _verb = "pause" if _paused else "resume"
    router.add_api_route(
        f"/api/{_kind.value}s/{{target_id}}/{_verb}",
        _act_endpoint(_kind, _paused),
        methods=["POST"],
        name=f"{_verb}_{_kind.value}",
        tags=[f"{_kind.value}s"],
        responses=_ACT_RESPONSES,
    )


def _manifest(manifest: Manifest) -> ManifestView:
    return ManifestView(
        name=manifest.name,
        record_count=manifest.record_count,
        sha256=manifest.sha256,
        created_at=manifest.created_at,
        source=manifest.source,
        window_start=manifest.window.start,
        window_end=manifest.window.end,
    )


def run_view(principal: Principal, run: RunRecord) -> RunView:
    counts = run.counts
    return RunView(
        run_id=run.run_id,
        job_id=run.job_id,
        trigger=run.trigger.value,
        status=run.status.value,
        window_start=run.window.start,
        window_end=run.window.end,
        scheduled_for=run.scheduled_for,
        started_at=run.started_at,
        finished_at=run.finished_at,
        counts=RunCountsView(
            read=counts.read,
            valid=counts.valid,
            rejected=counts.rejected,
            written=counts.written,
            skipped=counts.skipped,
        ),
        rejects=counts.rejected,
        manifests_checked=[_manifest(m) for m in run.manifests_checked],
        manifests_written=[_manifest(m) for m in run.manifests_written],
        error=None if run.error is None else shown(principal, run.error),
        findings=None if run.findings is None else dict(run.findings),
    )


def _schedule_text(job: Job) -> str:
    if job.schedule.cron is not None:
        return f"cron {job.schedule.cron} ({job.schedule.timezone})"
    return f"every {job.schedule.interval:g} s"


@router.get("/api/jobs", tags=["jobs"])
async def jobs(engine: EngineDep, principal: Reader) -> Jobs:
    """Every configured job: schedule, last run, next due time."""
    scheduled = set(engine.scheduler.job_ids) if engine.scheduler is not None else set()
    now = engine.clock.now()
    views = []
    for job in engine.config.jobs:
        last = await engine.store.runs(job.id, 1)
        last_run = last[0] if last else None
        views.append(
            JobView(
                job_id=job.id,
                kind=job.kind,
                enabled=job.enabled,
                schedule=_schedule_text(job),
                missed_runs=job.missed_runs,
                running=last_run is not None and last_run.status is RunStatus.RUNNING,
                last_run=None if last_run is None else run_view(principal, last_run),
                next_due=(
                    schedule_of(job.schedule).next_after(now) if job.id in scheduled else None
                ),
            )
        )
    return Jobs(jobs=views)


@router.get("/api/jobs/{job}/runs", tags=["jobs"], responses={404: {"model": Problem}})
async def job_runs(
    job: TargetId,
    engine: EngineDep,
    principal: Reader,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Runs:
    """A configured job's runs, newest first, with counts and manifests."""
    if all(configured.id != job for configured in engine.config.jobs):
        raise HTTPException(404, f"no job {job!r}")
    return Runs(runs=[run_view(principal, run) for run in await engine.store.runs(job, limit)])


@router.get("/api/runs/{run_id}", tags=["jobs"], responses={404: {"model": Problem}})
async def run(
    run_id: Annotated[int, Path(ge=1, le=2**62)], engine: EngineDep, principal: Reader
) -> RunView:
    """One run: window, status, counts, rejects, manifests checked and written."""
    found = await engine.store.run(run_id)
    if found is None:
        raise HTTPException(404, f"no run {run_id}")
    return run_view(principal, found)
