"""Health, figures, dead letters, replay, manual job runs and Prometheus metrics.

Replays and job runs are acts: they need the operator role and are audited
under the caller's name (replay also with the given reason).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response

from thumpflow.api.auth import Operator, Reader
from thumpflow.api.auth_first import AuthFirstRoute
from thumpflow.api.deps import EngineDep
from thumpflow.api.masking import shown
from thumpflow.api.routes.subscriptions import state
from thumpflow.api.schemas import (
    ChannelFigures,
    DeadLetterQuery,
    DeadLetters,
    DeadLetterView,
    Health,
    LiveOutbox,
    OutboxFigures,
    Problem,
    RefusedReplay,
    Replayed,
    ReplayRequest,
    RunRequest,
    RunStarted,
    Status,
)
from thumpflow.core.event import AuditEntry, DeadLetterFilter
from thumpflow.core.metrics import CONTENT_TYPE
from thumpflow.thump.scheduler import UnknownJobError

router = APIRouter(route_class=AuthFirstRoute)


@router.get("/api/health", tags=["operations"])
async def health() -> Health:
    """Liveness: answers while the engine's event loop runs. Needs no credential."""
    return Health(status="ok")


@router.get("/api/status", tags=["operations"])
async def status(engine: EngineDep, _: Reader) -> Status:
    """Per channel and destination counts from the store, and live outbox state."""
    stats = await engine.stats()
    channels = [
        ChannelFigures(
            channel_id=item.channel_id,
            received=item.received,
            duplicates=item.duplicates,
            rejected=item.rejected,
            last_received_at=item.last_received_at,
            outboxes=[
                OutboxFigures(
                    channel_id=outbox.channel_id,
                    destination_id=outbox.destination_id,
                    delivered=outbox.delivered,
                    pending=outbox.pending,
                    dead=outbox.dead,
                    superseded=outbox.superseded,
                    oldest_pending_at=outbox.oldest_pending_at,
                    last_delivered_at=outbox.last_delivered_at,
                )
                for outbox in item.outboxes
            ],
        )
        for item in stats
    ]
    live = {
        destination_id: LiveOutbox(
            pending=outbox.pending,
            in_memory=outbox.in_memory,
            blocking_ingress=outbox.blocking,
            circuit=outbox.breaker.state.value,
            in_memory_by_lane={lane.label: depth for lane, depth in outbox.lane_depths().items()},
        )
        for destination_id, outbox in engine.outboxes.items()
    }
    subscriptions = {
        channel_id: state(receiver.view()) for channel_id, receiver in engine.subscriptions.items()
    }
    return Status(channels=channels, outboxes=live, subscriptions=subscriptions)


def _dead_letter_filter(
    given: DeadLetterQuery | ReplayRequest, delivery_ids: tuple[int, ...] | None = None
) -> DeadLetterFilter:
    """The store's filter of the fields a caller gave; empty strings match anything."""
    return DeadLetterFilter(
        destination_id=given.destination or None,
        channel_id=given.channel or None,
        event_type=given.event_type or None,
        reason_contains=given.reason_contains or None,
        delivery_ids=delivery_ids,
    )


@router.get("/api/dead-letters", tags=["dead letters"])
async def dead_letters(
    query: Annotated[DeadLetterQuery, Query()], engine: EngineDep, principal: Reader
) -> DeadLetters:
    """Dead deliveries, oldest first; ordering keys masked without patient-data access."""
    only = (query.delivery,) if query.delivery is not None else None
    letters = await engine.dead_letters(_dead_letter_filter(query, only), query.limit)
    return DeadLetters(
        dead_letters=[
            DeadLetterView(
                delivery_id=letter.delivery_id,
                event_id=letter.event_id,
                destination_id=letter.destination_id,
                channel_id=letter.channel_id,
                event_type=letter.event_type,
                ordering_key=shown(principal, letter.ordering_key),
                lane=letter.lane.label,
                attempts=letter.attempts,
                reason=letter.reason,
                created_at=letter.created_at,
                died_at=letter.died_at,
            )
            for letter in letters
        ]
    )


@router.post(
    "/api/dead-letters/replay",
    tags=["dead letters"],
    responses={400: {"model": Problem}},
)
async def replay(body: ReplayRequest, engine: EngineDep, principal: Operator) -> Replayed:
    """Return dead deliveries to their outboxes: by id, by filter, or all (`all: true`).

    Audited as `replayed` under the caller's name with the reason. A dead
    delivery whose ordering key has had a newer delivery delivered to the same
    destination is refused (it stays dead and is listed in `refused`, with
    why) unless `out_of_order` is true; then it is replayed and audited as
    `replayed.out_of_order`. Each matching dead delivery is judged on its own,
    so a replay by filter may replay some and refuse others. Replaying a
    delivery that is no longer dead does nothing (it is not listed).
    """
    flt = _dead_letter_filter(body, tuple(body.delivery_ids) if body.delivery_ids else None)
    if flt == DeadLetterFilter() and not body.all:
        raise HTTPException(400, "name deliveries or a filter, or pass `all: true`")
    result = await engine.replay(
        flt, principal.name, body.reason.strip() or body.reason, out_of_order=body.out_of_order
    )
    return Replayed(
        replayed=[delivery.delivery_id for delivery in result.replayed],
        out_of_order=[conflict.delivery_id for conflict in result.out_of_order],
        refused=[
            RefusedReplay(
                delivery_id=conflict.delivery_id,
                destination_id=conflict.destination_id,
                newer_delivery_id=conflict.newer_delivery_id,
                newer_delivered_at=conflict.newer_delivered_at,
                reason=conflict.explain(),
            )
            for conflict in result.refused
        ],
    )


@router.post(
    "/api/jobs/{job}/runs",
    status_code=202,
    tags=["jobs"],
    responses={404: {"model": Problem}, 409: {"model": Problem}},
)
async def start_run(
    job: str, body: RunRequest, engine: EngineDep, principal: Operator
) -> RunStarted:
    """Start a manual run of an enabled job now; 409 while one of its runs is going.

    Audited as `run.requested` under the caller's name with the reason,
    besides the run's own `started` entry.
    """
    try:
        run_id = await engine.start_run(job)
    except UnknownJobError:
        raise HTTPException(404, f"no enabled job {job!r}") from None
    if run_id is None:
        raise HTTPException(409, f"job {job!r} has a run in progress")
    await engine.store.append_audit(
        AuditEntry(
            engine.clock.now(),
            principal.name,
            "run.requested",
            job,
            f"run {run_id}: {body.reason.strip() or body.reason}",
        )
    )
    return RunStarted(job=job, run_id=run_id)


@router.get(
    "/metrics",
    tags=["operations"],
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text 0.0.4"}},
)
async def metrics(engine: EngineDep, _: Reader) -> Response:
    """Every metric in Prometheus text format; labels are ids only, never patient data."""
    return Response(content=await engine.render_metrics(), media_type=CONTENT_TYPE)
