"""Flow rejects: listed and searched, shown (audited), reprocessed as received or edited.

A flow reject is input a channel could not admit (framing, structure, a
transform's refusal, invalid FHIR), kept raw with its reason.

- `GET /api/rejects` (viewer): ids, channels, times, peers and reasons, newest
  first; `channel` and `contains` (text in the reason) narrow it. Reasons
  name fields and rules, never message values.
- `GET /api/rejects/{id}/payload?reason=` (patient data permission): the
  kept bytes; the view is audited (`payload.viewed`, subject `reject:<id>`)
  before they are sent.
- `POST /api/rejects/{id}/reprocess` (operator): the kept bytes, or the
  edited `body`, go through the channel again as if resent
  (`runtime/rejects.py`); audited with the reason, the original kept.
- `POST /api/dead-letters/{id}/edit` (operator): an edited copy of a dead
  letter's message goes to its destination as a new derived event
  (`runtime/dead_letters.py`); audited, the original kept.
"""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, Field

from thumpflow.api.auth import Operator, Reader
from thumpflow.api.auth_first import AuthFirstRoute
from thumpflow.api.deps import EngineDep
from thumpflow.api.routes.browse import PatientReader
from thumpflow.api.schemas import Problem, StrictBody
from thumpflow.core.errors import ThumpflowError
from thumpflow.core.event import AuditEntry
from thumpflow.runtime.dead_letters import DeadLetterNotFoundError, reprocess_dead_letter
from thumpflow.runtime.rejects import RejectNotFoundError, reprocess_reject

router = APIRouter(route_class=AuthFirstRoute)

RejectId = Annotated[int, Path(ge=1)]


class FlowReject(BaseModel):
    """A kept flow reject, without its bytes."""

    reject_id: int
    channel_id: str
    received_at: float
    peer: str
    reason: str
    size: int


class FlowRejects(BaseModel):
    rejects: list[FlowReject]


class RejectPayload(BaseModel):
    """The kept bytes: text when they are UTF-8, else base64."""

    reject_id: int
    encoding: str
    body: str


class ReprocessRequest(StrictBody):
    """Why (audited), and optionally the edited message to send instead of the kept one."""

    reason: str = Field(min_length=1, max_length=500, pattern=r"\S")
    body: str | None = Field(
        default=None,
        max_length=10_000_000,
        description="The edited message (segments separated by CR or newlines); none: as kept.",
    )


class ReprocessAnswer(BaseModel):
    """The channel's answer: accepted or not, its ACK code (MLLP input) and, when refused, why."""

    reject_id: int
    channel_id: str
    edited: bool
    content_type: str = Field(description="As the reject first came in: HL7 v2, FHIR JSON, ...")
    status: str = Field(description="accepted, duplicate, refused or unavailable")
    accepted: bool = Field(description="Admitted now, or already admitted before (duplicate)")
    ack_code: str = Field(description="MSA-1 of the channel's ACK; empty for HTTP-ingest input")
    error: str | None
    event_id: str | None = Field(description="The event admitted (HTTP-ingest input)")


@router.get("/api/rejects", tags=["rejects"])
async def list_rejects(
    engine: EngineDep,
    _: Reader,
    channel: Annotated[str | None, Query(max_length=200)] = None,
    contains: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> FlowRejects:
    """Kept flow rejects, newest first (see the module)."""
    found = await engine.store.rejects(channel, limit if contains is None else 10_000)
    needle = (contains or "").lower()
    listed = [
        FlowReject(
            reject_id=reject_id,
            channel_id=reject.channel_id,
            received_at=reject.received_at,
            peer=reject.peer,
            reason=reject.reason,
            size=len(reject.raw),
        )
        for reject_id, reject in found
        if needle in reject.reason.lower()
    ]
    return FlowRejects(rejects=listed[:limit])


@router.get(
    "/api/rejects/{reject_id}/payload",
    tags=["rejects"],
    responses={403: {"model": Problem}, 404: {"model": Problem}},
)
async def reject_payload(
    reject_id: RejectId,
    reason: Annotated[
        str, Query(min_length=1, max_length=500, pattern=r"\S", description="Why; audited.")
    ],
    engine: EngineDep,
    principal: PatientReader,
) -> RejectPayload:
    """The kept bytes of a reject; every view is audited (`payload.viewed`) before it is sent."""
    reject = await engine.store.reject_by_id(reject_id)
    if reject is None:
        raise HTTPException(404, f"no reject {reject_id}")
    await engine.store.append_audit(
        AuditEntry(
            engine.clock.now(), principal.name, "payload.viewed", f"reject:{reject_id}", reason
        )
    )
    try:
        return RejectPayload(reject_id=reject_id, encoding="utf-8", body=reject.raw.decode())
    except UnicodeDecodeError:
        body = base64.b64encode(reject.raw).decode("ascii")
        return RejectPayload(reject_id=reject_id, encoding="base64", body=body)


@router.post(
    "/api/rejects/{reject_id}/reprocess",
    tags=["rejects"],
    responses={404: {"model": Problem}, 409: {"model": Problem}},
)
async def reprocess(
    reject_id: RejectId, body: ReprocessRequest, engine: EngineDep, principal: Operator
) -> ReprocessAnswer:
    """Send a reject through its channel again, as kept or edited (audited; original kept)."""
    edited = None
    if body.body is not None:
        edited = _segments(body.body).encode("utf-8")
    try:
        done = await reprocess_reject(
            engine, reject_id, principal.name, body.reason.strip(), edited
        )
    except RejectNotFoundError as err:
        raise HTTPException(404, str(err)) from None
    except ThumpflowError as err:
        raise HTTPException(409, str(err)) from None
    return ReprocessAnswer(
        reject_id=done.reject_id,
        channel_id=done.channel_id,
        edited=done.edited,
        content_type=done.content_type,
        status=done.status,
        accepted=done.accepted,
        ack_code=done.ack_code,
        error=done.error,
        event_id=done.event_id,
    )


def _segments(text: str) -> str:
    """HL7 v2 text with its line ends as segment separators (CR); other content as given."""
    if text.lstrip()[:3] in ("MSH", "FHS", "BHS"):
        return text.replace("\r\n", "\r").replace("\n", "\r")
    return text


class EditRequest(StrictBody):
    """Why (audited), and the edited message to send to the dead letter's destination."""

    reason: str = Field(min_length=1, max_length=500, pattern=r"\S")
    body: str = Field(min_length=1, max_length=10_000_000, description="The edited message.")


class EditAnswer(BaseModel):
    """The event made from the edit; `duplicate` when this same edit was sent before."""

    delivery_id: int
    destination_id: str
    event_id: str
    duplicate: bool


@router.post(
    "/api/dead-letters/{delivery_id}/edit",
    tags=["dead letters"],
    responses={404: {"model": Problem}, 409: {"model": Problem}},
)
async def edit_dead_letter(
    delivery_id: Annotated[int, Path(ge=1)],
    body: EditRequest,
    engine: EngineDep,
    principal: Operator,
) -> EditAnswer:
    """Send an edited copy of a dead letter's message to its destination (audited)."""
    edited = _segments(body.body).encode("utf-8")
    try:
        done = await reprocess_dead_letter(
            engine, delivery_id, principal.name, body.reason.strip(), edited
        )
    except DeadLetterNotFoundError as err:
        raise HTTPException(404, str(err)) from None
    except ThumpflowError as err:
        raise HTTPException(409, str(err)) from None
    return EditAnswer(
        delivery_id=done.delivery_id,
        destination_id=done.destination_id,
        event_id=done.event_id,
        duplicate=done.duplicate,
    )
