"""Searching events and deliveries, an event's timeline, its payload, and the audit trail.

Reads need the viewer role; patient data (ordering keys, receiver text that
may echo a message) is masked for roles without `read_patient_data`, and
searching *by* a patient identifier needs that permission (403 otherwise),
so a viewer cannot confirm who is in the store. Opening a payload needs it
too, plus a reason, and is audited (`payload.viewed`) before the body is
sent: if the audit cannot be written, the payload is not shown.

Pages are keyset pages (see `core.search`): pass `next_cursor` back as
`cursor`; a cursor that was not issued by this API is a 400.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query

from thumpflow.api.auth import Reader, require
from thumpflow.api.browse_schemas import (
    AttemptView,
    AuditPage,
    AuditSearch,
    AuditView,
    DeliveryPage,
    DeliverySearch,
    DeliveryTimeline,
    DeliveryView,
    EventPage,
    EventSearch,
    EventView,
    PayloadView,
    Step,
    TimelineView,
)
from thumpflow.api.deps import EngineDep
from thumpflow.api.masking import shown
from thumpflow.api.schemas import Problem
from thumpflow.core.access import Permission, Principal
from thumpflow.core.event import AuditEntry, DeliveryStatus
from thumpflow.core.search import (
    DeliveryQuery,
    DeliveryRecord,
    EventQuery,
    EventSummary,
    Position,
)

router = APIRouter(tags=["events"])

PatientReader = Annotated[Principal, Depends(require(Permission.READ_PATIENT_DATA))]
EventId = Annotated[str, Path(min_length=1, max_length=200)]

# Audit actions whose detail is text from a receiver or a parser, which may
# quote the message; shown only to roles allowed patient data.
RECEIVER_TEXT = frozenset({"retry_scheduled", "delivered", "dead_lettered", "rejected"})

_STEP_NAMES = {
    "retry_scheduled": "attempt_failed",
    "dead_lettered": "dead",
    "replayed.out_of_order": "replayed_out_of_order",
    "payload.viewed": "payload_viewed",
}


def encode_cursor(position: Position) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(position)).encode()).decode()


def decode_cursor(cursor: str | None) -> Position | None:
    """The position a cursor names; 400 when it is not one this API issued."""
    if cursor is None:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
        time, row_id = value
        if (
            isinstance(time, (int, float))
            and not isinstance(time, bool)
            and type(row_id) is int
            and 0 <= time < 1e11
            and 0 <= row_id < 2**62
        ):
            return (float(time), row_id)
    except (ValueError, TypeError, UnicodeError, binascii.Error):
        pass
    raise HTTPException(400, "cursor: not a cursor this API issued; pass `next_cursor` back")


def _status(value: str | None) -> DeliveryStatus | None:
    return None if value is None else DeliveryStatus(value)


def event_view(principal: Principal, event: EventSummary) -> EventView:
    return EventView(
        event_id=event.event_id,
        channel_id=event.channel_id,
        event_type=event.event_type,
        ordering_key=shown(principal, f"{event.entity_type}/{event.entity_id}"),
        source_system=event.source_system,
        control_id=event.control_id,
        received_at=event.received_at,
        occurred_at=event.occurred_at,
        lane=event.lane.label,
        causation_id=event.causation_id,
        deliveries={status.value: count for status, count in event.statuses.items()},
    )


def _masked(principal: Principal, text: str | None) -> str | None:
    return None if text is None else shown(principal, text)


def delivery_view(principal: Principal, delivery: DeliveryRecord) -> DeliveryView:
    return DeliveryView(
        delivery_id=delivery.delivery_id,
        event_id=delivery.event_id,
        destination_id=delivery.destination_id,
        channel_id=delivery.channel_id,
        ordering_key=shown(principal, delivery.ordering_key),
        lane=delivery.lane.label,
        status=delivery.status.value,
        attempts=delivery.attempts,
        created_at=delivery.created_at,
        next_attempt_at=delivery.next_attempt_at,
        delivered_at=delivery.delivered_at,
        died_at=delivery.died_at,
        last_error=_masked(principal, delivery.last_error),
        reason=_masked(principal, delivery.reason),
    )


def audit_view(principal: Principal, entry: AuditEntry) -> AuditView:
    detail = shown(principal, entry.detail) if entry.action in RECEIVER_TEXT else entry.detail
    return AuditView(
        entry_id=entry.entry_id,
        at=entry.at,
        actor=entry.actor,
        action=entry.action,
        subject=entry.subject,
        detail=detail,
    )


@router.get(
    "/api/events",
    responses={400: {"model": Problem}, 403: {"model": Problem}},
)
async def search_events(
    search: Annotated[EventSearch, Query()], engine: EngineDep, principal: Reader
) -> EventPage:
    """Stored events, newest first, by patient, control id, type, channel, status, time
    and whether their conversion to FHIR left something out."""
    if search.patient is not None and not principal.may(Permission.READ_PATIENT_DATA):
        raise HTTPException(
            403, f"role {principal.role.value!r} may not search by patient identifier"
        )
    query = EventQuery(
        entity_id=search.patient,
        control_id=search.control_id,
        event_type=search.event_type,
        channel_id=search.channel,
        status=_status(search.status),
        converted_in_part=search.converted_in_part,
        since=search.since,
        until=search.until,
        after=decode_cursor(search.cursor),
        limit=search.limit,
    )
    events = await engine.store.search_events(query)
    return EventPage(
        events=[event_view(principal, event) for event in events],
        next_cursor=encode_cursor(events[-1].position) if len(events) == search.limit else None,
    )


@router.get("/api/deliveries", tags=["deliveries"], responses={400: {"model": Problem}})
async def search_deliveries(
    search: Annotated[DeliverySearch, Query()], engine: EngineDep, principal: Reader
) -> DeliveryPage:
    """Deliveries, newest first, by destination, channel, status, event and time."""
    query = DeliveryQuery(
        destination_id=search.destination,
        channel_id=search.channel,
        status=_status(search.status),
        event_id=search.event_id,
        since=search.since,
        until=search.until,
        after=decode_cursor(search.cursor),
        limit=search.limit,
    )
    deliveries = await engine.store.search_deliveries(query)
    last = deliveries[-1].position if len(deliveries) == search.limit else None
    return DeliveryPage(
        deliveries=[delivery_view(principal, delivery) for delivery in deliveries],
        next_cursor=None if last is None else encode_cursor(last),
    )


@router.get("/api/events/{event_id}/timeline", responses={404: {"model": Problem}})
async def timeline(event_id: EventId, engine: EngineDep, principal: Reader) -> TimelineView:
    """Everything that happened to one event: received (parsed, or it would be a reject),
    filtered, mapped to derived events, queued per destination, each attempt with the
    receiver's answer, superseded, delivered, dead, replayed (by whom, why), payload views."""
    found = await engine.store.timeline(event_id)
    if found is None:
        raise HTTPException(404, f"no event {event_id!r}")
    steps = [_step(principal, entry) for entry in found.audit]
    steps += [
        Step(
            at=derived.received_at,
            step="mapped",
            subject=derived.event_id,
            actor="flow",
            detail=derived.event_type,
        )
        for derived in found.derived
    ]
    steps += [
        Step(
            at=delivery.created_at,
            step="queued",
            subject=f"delivery:{delivery.delivery_id}",
            actor="flow",
            detail=delivery.destination_id,
        )
        for delivery in found.deliveries
    ]
    steps.sort(key=lambda step: step.at)
    return TimelineView(
        event=event_view(principal, found.event),
        derived=[event_view(principal, derived) for derived in found.derived],
        deliveries=[
            DeliveryTimeline(
                **delivery_view(principal, delivery).model_dump(),
                attempt_log=[
                    AttemptView(
                        attempt=attempt.attempt,
                        at=attempt.at,
                        outcome=attempt.outcome,
                        detail=shown(principal, attempt.detail),
                    )
                    for attempt in delivery.attempt_log
                ],
            )
            for delivery in found.deliveries
        ],
        steps=steps,
    )


def _step(principal: Principal, entry: AuditEntry) -> Step:
    view = audit_view(principal, entry)
    step = _STEP_NAMES.get(entry.action, entry.action)
    if entry.action == "received" and entry.detail == "filtered":
        step = "filtered"
    return Step(at=view.at, step=step, subject=view.subject, actor=view.actor, detail=view.detail)


@router.get(
    "/api/events/{event_id}/payload",
    responses={403: {"model": Problem}, 404: {"model": Problem}},
)
async def payload(
    event_id: EventId,
    reason: Annotated[
        str,
        Query(min_length=1, max_length=500, pattern=r"\S", description="Why; audited."),
    ],
    engine: EngineDep,
    principal: PatientReader,
) -> PayloadView:
    """The raw message as received. Needs `read_patient_data` and a reason; every view is
    audited (`payload.viewed`, subject the event id, the caller and the reason)."""
    event = await engine.store.event(event_id)
    if event is None:
        raise HTTPException(404, f"no event {event_id!r}")
    await engine.store.append_audit(
        AuditEntry(
            at=engine.clock.now(),
            actor=principal.name,
            action="payload.viewed",
            subject=event_id,
            detail=reason.strip(),
        )
    )
    view = PayloadView(
        event_id=event.event_id, content_type=event.content_type, encoding="utf-8", body=""
    )
    try:
        view.body = event.body.decode("utf-8")
    except UnicodeDecodeError:
        view.encoding = "base64"
        view.body = base64.b64encode(event.body).decode("ascii")
    return view


@router.get("/api/audit", tags=["audit"])
async def audit(
    search: Annotated[AuditSearch, Query()], engine: EngineDep, principal: Reader
) -> AuditPage:
    """The audit trail, newest first; pass `next_before` back as `before` for the next page."""
    entries = await engine.store.audit_page(search.before, search.limit, search.action)
    return AuditPage(
        entries=[audit_view(principal, entry) for entry in entries],
        next_before=entries[-1].entry_id if len(entries) == search.limit else None,
    )
