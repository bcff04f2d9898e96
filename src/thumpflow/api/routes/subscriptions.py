"""FHIR Subscriptions rest-hook receiver: `POST /api/subscriptions/{channel}` and its state.

The notifying server posts each notification Bundle (R4 Backport IG or R5)
with a thumpflow token of the `sender` role in its channel headers. Answers:

- `200` with what the notification produced: a handshake or heartbeat is
  recorded; an event notification's events are durably committed (or were
  already: a repeated notification creates nothing) before the answer.
- `400` OperationOutcome naming the element path for a Bundle that is not a
  usable notification (or is for another subscription or topic); the body
  is kept as a reject.
- `503` OperationOutcome with `Retry-After` when a focus resource could not
  be read back or the store failed: notify again; nothing is committed twice.
- `429` with `Retry-After` under backpressure (nothing read), `404` unknown
  channel, `409` a channel that does not receive notifications.

`GET /api/subscriptions/{channel}` (viewer) shows heartbeats and gaps.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse

from thumpflow.api.auth import Reader
from thumpflow.api.deps import EngineDep
from thumpflow.api.ingest_schemas import NotificationAnswer, SubscriptionState, operation_outcome
from thumpflow.api.routes.ingest import (
    STORE_RETRY_AFTER,
    Ingester,
    RefusalError,
    error_answer,
    open_ingress,
    read_body,
)
from thumpflow.api.schemas import Problem
from thumpflow.flow.fhir_events import FHIR_JSON
from thumpflow.flow.subscription import SubscriptionReceiver
from thumpflow.flow.subscription_status import SubscriptionView
from thumpflow.runtime.engine import Engine

router = APIRouter()

NOTIFICATION_LIMIT = 16 * 1024 * 1024


def _receiver(engine: Engine, channel: str) -> SubscriptionReceiver:
    receiver = engine.subscriptions.get(channel)
    if receiver is None:
        raise RefusalError(
            409, f"channel {channel!r} does not receive FHIR Subscription notifications"
        )
    return receiver


def state(view: SubscriptionView) -> SubscriptionState:
    return SubscriptionState(
        channel=view.channel_id,
        subscription_id=view.subscription_id,
        status=view.status,
        handshake_at=view.handshake_at,
        last_heartbeat_at=view.last_heartbeat_at,
        last_notification_at=view.last_notification_at,
        heartbeat_period=view.heartbeat_period,
        heartbeat_overdue=view.heartbeat_overdue,
        last_event_number=view.last_event_number,
        missed_events=list(view.missed_events),
    )


@router.post(
    "/api/subscriptions/{channel}",
    tags=["ingest"],
    response_model=NotificationAnswer,
    openapi_extra={
        "requestBody": {"required": True, "content": {FHIR_JSON: {"schema": {"type": "object"}}}}
    },
    responses={
        400: error_answer("not a usable notification, kept as a reject"),
        404: error_answer("no such channel"),
        409: error_answer("the channel is disabled or receives no subscription"),
        429: error_answer("backpressure: notify again after Retry-After"),
        503: error_answer("notify again later"),
    },
)
async def notification(
    channel: str, request: Request, engine: EngineDep, _: Ingester
) -> JSONResponse:
    """Receive one Subscription notification Bundle (rest-hook); see the module docstring."""
    try:
        open_ingress(engine, channel, http=False)
        receiver = _receiver(engine, channel)
        raw = await read_body(request, NOTIFICATION_LIMIT)
    except RefusalError as refusal:
        return refusal.response(fhir=True)
    result = await receiver.notify(raw)
    if result.status == "invalid":
        path, _sep, reason = (result.reason or "").partition(": ")
        note = f"kept as reject {result.reject_id}" if result.reject_id is not None else None
        outcome = operation_outcome(note=note)
        outcome["issue"].insert(
            0, {"severity": "error", "code": "invalid", "diagnostics": reason, "expression": [path]}
        )
        return JSONResponse(outcome, status_code=400, media_type=FHIR_JSON)
    if result.status == "retry":
        return JSONResponse(
            operation_outcome(diagnostics=result.reason or "", code="transient"),
            status_code=503,
            headers={"Retry-After": STORE_RETRY_AFTER},
            media_type=FHIR_JSON,
        )
    answer = NotificationAnswer(
        type=result.type or "",
        accepted=list(result.accepted),
        duplicates=list(result.duplicates),
        missed=list(result.missed),
    )
    return JSONResponse(answer.model_dump())


@router.get(
    "/api/subscriptions/{channel}",
    tags=["ingest"],
    responses={404: {"model": Problem}, 409: {"model": Problem}},
)
async def subscription_state(channel: str, engine: EngineDep, _: Reader) -> SubscriptionState:
    """A subscription channel's handshake, heartbeats (and whether overdue) and open gaps."""
    if not any(c.id == channel for c in engine.config.channels):
        raise HTTPException(404, f"no channel {channel!r}")
    try:
        receiver = _receiver(engine, channel)
    except RefusalError as refusal:
        raise HTTPException(refusal.status, refusal.detail) from None
    return state(receiver.view())
