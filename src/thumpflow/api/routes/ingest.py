"""HTTP ingest: `POST /api/channels/{channel}/messages` (roles sender, operator, admin).

Guarantees:

- `202 Accepted` only after the event and its deliveries are durably
  committed (the same `ChannelIngress` and store commit as MLLP); the body
  names the event and links to it, `Location` too.
- `Idempotency-Key` (optional, at most 255 characters, scoped to the
  channel): a repeat with the same key and the same body (and content type)
  is answered exactly as the first time (same status, same body) with
  `Idempotent-Replayed: true`, and creates no second event; the same key
  with a different body is `422` and nothing is written. Only accepted
  requests are remembered: a refused one may be corrected and sent again
  with its key. Without the header, HL7 v2 is deduplicated by sender and
  MSH-10 as over MLLP; FHIR content without it is not deduplicated (every
  POST is a new event).
- Refused content is kept as a reject (for inspection and replay) and
  answered `400`: HL7 v2 with JSON naming segment and field, FHIR with an
  OperationOutcome whose issues carry the element path (`expression`).
- Backpressure: while any outbox of the channel is past its high-water mark
  the answer is `429` with `Retry-After` (the channel's
  `http_ingest.retry_after`) and nothing is written; a request is never
  accepted and then dropped. A channel an operator paused, and a failing
  store, answer `503` with `Retry-After`.
- Unknown channel `404`; a channel that is disabled or does not accept HTTP
  ingest `409`; an unsupported content type `415`; a body over
  `http_ingest.max_body_bytes` `413`.

Errors are `{"detail": ...}` for HL7 v2 and other content types, and an
OperationOutcome when the request's content type is FHIR JSON.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from thumpflow.api.auth import require
from thumpflow.api.deps import EngineDep
from thumpflow.api.ingest_schemas import Accepted, EventLinks, Hl7Problem, operation_outcome
from thumpflow.api.schemas import Problem
from thumpflow.core.access import Permission, Principal
from thumpflow.core.event import HL7V2_CONTENT_TYPE
from thumpflow.flow.fhir_events import FHIR_JSON
from thumpflow.flow.ingress import ChannelIngress, Submission
from thumpflow.flow.reading import decode_fhir
from thumpflow.runtime.engine import Engine
from thumpflow.runtime.rejects import submit_bed_status
from thumpflow.views.facts import BED_STATUS_JSON

router = APIRouter()

Ingester = Annotated[Principal, Depends(require(Permission.INGEST))]

HL7_TYPES = frozenset({HL7V2_CONTENT_TYPE, "text/plain", "application/hl7-v2"})
FHIR_TYPES = frozenset({FHIR_JSON, "application/json"})
STORE_RETRY_AFTER = "5"
MAX_KEY = 255
OUTCOME_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"resourceType": {"const": "OperationOutcome"}},
    "required": ["resourceType"],
}


def error_answer(description: str, model: type[BaseModel] | None = None) -> dict[str, Any]:
    """An error answer for OpenAPI: an OperationOutcome for FHIR callers and, when
    `model` is given, that JSON body for HL7 v2 callers."""
    answer: dict[str, Any] = {
        "description": description,
        "content": {FHIR_JSON: {"schema": OUTCOME_SCHEMA}},
    }
    if model is not None:
        answer["model"] = model
    return answer


class RefusalError(Exception):
    """An answer other than 202, decided before or after admission."""

    def __init__(self, status: int, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}

    def response(self, fhir: bool) -> JSONResponse:
        body: dict[str, Any] = (
            operation_outcome(diagnostics=self.detail, code=_issue_code(self.status))
            if fhir
            else {"detail": self.detail}
        )
        return JSONResponse(
            body,
            status_code=self.status,
            headers=self.headers,
            media_type=FHIR_JSON if fhir else None,
        )


def _issue_code(status: int) -> str:
    return {404: "not-found", 409: "conflict", 413: "too-costly", 415: "not-supported"}.get(
        status, "transient" if status in (429, 503) else "invalid"
    )


def open_ingress(engine: Engine, channel_id: str, *, http: bool) -> ChannelIngress:
    """The running channel's ingress, open for admission; `RefusalError` otherwise.

    404 unknown channel, 409 disabled or not taking HTTP, 503 paused by an
    operator, 429 backpressure; the last two carry `Retry-After`.

    `http` asks that the channel accept HTTP ingest (`http_ingest.enabled`).
    """
    configured = next((c for c in engine.config.channels if c.id == channel_id), None)
    if configured is None:
        raise RefusalError(404, f"no channel {channel_id!r}")
    running = engine.channels.get(channel_id)
    if running is None:
        raise RefusalError(409, f"channel {channel_id!r} is disabled (enabled: false)")
    if http and not configured.http_ingest.enabled:
        raise RefusalError(
            409,
            f"channel {channel_id!r} does not accept messages over HTTP "
            "(set http_ingest: {enabled: true})",
        )
    wait = str(max(1, math.ceil(configured.http_ingest.retry_after)))
    if running.ingress.paused:
        raise RefusalError(
            503,
            f"channel {channel_id!r} is paused by an operator; nothing was accepted, send "
            "again later",
            headers={"Retry-After": wait},
        )
    if not running.ingress.is_open():
        raise RefusalError(
            429,
            f"channel {channel_id!r} is applying backpressure (a destination's queue is past "
            "its high-water mark); nothing was accepted, send again later",
            headers={"Retry-After": wait},
        )
    return running.ingress


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, or `RefusalError` 413 once it passes `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RefusalError(413, f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def accepted(channel_id: str, event_id: str, *, replayed: bool) -> JSONResponse:
    """The 202 answer; built from the channel and event id only, so a repeat is identical."""
    location = f"/api/events/{event_id}/timeline"
    body = Accepted(channel=channel_id, event_id=event_id, links=EventLinks(event=location))
    headers = {"Location": location}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(body.model_dump(), status_code=202, headers=headers)


_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            HL7V2_CONTENT_TYPE: {"schema": {"type": "string"}},
            "text/plain": {"schema": {"type": "string"}},
            FHIR_JSON: {"schema": {"type": "object"}},
        },
    }
}


@router.post(
    "/api/channels/{channel}/messages",
    status_code=202,
    tags=["ingest"],
    response_model=Accepted,
    openapi_extra=_REQUEST_BODY,
    responses={
        400: error_answer("refused, kept as a reject (FHIR: OperationOutcome)", Hl7Problem),
        404: error_answer("no such channel", Problem),
        409: error_answer("the channel does not take HTTP ingest, or is disabled", Problem),
        413: error_answer("the body is too large", Problem),
        415: error_answer("the content type is not accepted", Problem),
        422: error_answer("Idempotency-Key reused for another body", Problem),
        429: error_answer("backpressure: send again after Retry-After", Problem),
        503: error_answer("the store could not commit: send again after Retry-After", Problem),
    },
)
async def post_message(
    channel: str,
    request: Request,
    engine: EngineDep,
    principal: Ingester,
    idempotency_key: Annotated[
        str | None,
        Header(alias="Idempotency-Key", description="1 to 255 characters; a repeat is harmless"),
    ] = None,
) -> JSONResponse:
    """Submit one HL7 v2 message or one FHIR R4 resource/Bundle to a channel.

    See the module docstring for what each answer means; `202` only after
    the durable commit.
    """
    kind = media_type(request)
    fhir = kind in FHIR_TYPES
    try:
        ingress = open_ingress(engine, channel, http=True)
        if idempotency_key is not None and not 1 <= len(idempotency_key) <= MAX_KEY:
            raise RefusalError(400, f"Idempotency-Key must be 1 to {MAX_KEY} characters")
        if kind == BED_STATUS_JSON:
            return await _bed_status(
                engine, ingress, request, channel, principal=principal, key=idempotency_key
            )
        if not fhir and kind not in HL7_TYPES:
            raise RefusalError(
                415,
                f"content type {kind or '(none)'!r} is not accepted; send HL7 v2 as "
                f"{HL7V2_CONTENT_TYPE} or text/plain, FHIR as {FHIR_JSON}, bed status as "
                f"{BED_STATUS_JSON}",
            )
        limit = next(c for c in engine.config.channels if c.id == channel).http_ingest
        raw = await read_body(request, limit.max_body_bytes)
        peer = f"http:{principal.name}"
        via = f"over HTTP from {principal.name!r}"
        if fhir:
            submission = await ingress.submit_fhir(
                decode_fhir(raw), raw, peer, idempotency_key, source_system=peer, via=via
            )
        else:
            submission = await ingress.submit_hl7(raw, peer, idempotency_key, via)
        return _answer(channel, submission, fhir, idempotency_key)
    except RefusalError as refusal:
        return refusal.response(fhir)


async def _bed_status(
    engine: Engine,
    ingress: ChannelIngress,
    request: Request,
    channel: str,
    *,
    principal: Principal,
    key: str | None,
) -> JSONResponse:
    """A bed-status JSON document (see `thumpflow.views.facts`): checked, then admitted."""
    limit = next(c for c in engine.config.channels if c.id == channel).http_ingest
    raw = await read_body(request, limit.max_body_bytes)
    via = f"over HTTP from {principal.name!r}"
    now = engine.clock.now()
    submission = await submit_bed_status(
        ingress, raw, f"http:{principal.name}", key, via=via, now=now
    )
    if submission.status == "invalid":
        assert submission.error is not None
        found = submission.error.describe()
        return JSONResponse(
            {
                "detail": f"{found} (kept as reject {submission.reject_id})",
                "reject_id": submission.reject_id,
            },
            status_code=400,
        )
    return _answer(channel, submission, False, key)


def _answer(channel: str, submission: Submission, fhir: bool, key: str | None) -> JSONResponse:
    if submission.status in ("accepted", "duplicate"):
        assert submission.event_id is not None
        return accepted(channel, submission.event_id, replayed=submission.status == "duplicate")
    if submission.status == "conflict":
        raise RefusalError(
            422,
            f"Idempotency-Key {key!r} was first used for a different body; nothing was "
            "written (use a new key for a new message)",
        )
    if submission.status == "unavailable":
        raise RefusalError(
            503,
            "the store could not commit the message; nothing was accepted, send it again later",
            headers={"Retry-After": STORE_RETRY_AFTER},
        )
    assert submission.reject_id is not None
    note = f"kept as reject {submission.reject_id}"
    if fhir:
        outcome = operation_outcome(submission.issues, note=note)
        return JSONResponse(outcome, status_code=400, media_type=FHIR_JSON)
    error = submission.error
    assert error is not None
    problem = Hl7Problem(
        detail=f"{error.describe()} ({note})",
        segment=error.segment,
        segment_index=error.segment_index,
        field=error.field,
        reject_id=submission.reject_id,
    )
    return JSONResponse(problem.model_dump(), status_code=400)
