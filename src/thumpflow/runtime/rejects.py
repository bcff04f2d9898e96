"""Reprocessing a flow reject: its kept bytes, as they are or as an operator edited them.

`reprocess_reject` hands the bytes to the running channel the way they first
came in, so the answer is what their sender would have got on a resend:

- kept from MLLP (or any source but HTTP ingest): the channel's `receive`,
  answered with an HL7 ACK (`ack_code` AA/CA, or the NAK's code and text);
- kept from HTTP ingest or a FHIR Subscription: HTTP ingest's own path for
  its content, with no ACK (`ack_code` empty) but a `status` and, once
  accepted, the `event_id`. FHIR JSON (a reject whose reason is `invalid
  FHIR`, or a JSON resource) goes through `submit_fhir`, validated against
  R4, under the original sender as `source_system`; a bed-status document
  through `submit_bed_status`; HL7 v2 through `submit_hl7`. FHIR and bed
  status are admitted under the key `reprocess:<reject id>|<sha256 prefix>`,
  so the same bytes reprocessed twice are one event (HL7 v2 is recognised
  by sender and MSH-10, as always).

Either way it is accepted (a new event, admitted durably), a duplicate of
an event already admitted, or refused again (kept as a new reject with the
new reason). Before that, the act is audited (`reject.reprocessed`, subject
`reject:<id>`, the caller, the reason, `as received` or `edited` with the
SHA-256 of the bytes sent; never the bytes). The original reject is never
changed or removed: an edit is a new input beside it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from thumpflow.core.errors import MessageError, ThumpflowError
from thumpflow.core.event import HL7V2_CONTENT_TYPE, AuditEntry, Reject
from thumpflow.flow.fhir_events import FHIR_JSON
from thumpflow.flow.ingress import ChannelIngress, Submission
from thumpflow.flow.reading import decode_fhir
from thumpflow.views.facts import BED_STATUS_JSON, read_bed_status

if TYPE_CHECKING:
    from thumpflow.runtime.engine import Engine

_ACCEPTED = frozenset({"AA", "CA"})


class RejectNotFoundError(ThumpflowError):
    """No kept reject has this id."""


@dataclass(frozen=True, slots=True)
class Reprocessed:
    """What the channel made of the bytes sent again.

    `status`: accepted, duplicate, refused or unavailable (the store failed;
    nothing kept). `ack_code` is the HL7 ACK's MSA-1 for input that is
    answered with an ACK (MLLP), empty otherwise; `error` says why, for a
    refusal; `event_id` (HTTP ingest's path) names the event admitted.
    """

    reject_id: int
    channel_id: str
    edited: bool
    content_type: str
    status: str
    ack_code: str
    error: str | None
    event_id: str | None = None

    @property
    def accepted(self) -> bool:
        return self.status in ("accepted", "duplicate")


async def reprocess_reject(
    engine: Engine, reject_id: int, actor: str, reason: str, body: bytes | None = None
) -> Reprocessed:
    """Send a reject's bytes (or `body`, the edited bytes) through its channel again; audited."""
    reject = await engine.store.reject_by_id(reject_id)
    if reject is None:
        raise RejectNotFoundError(f"no reject {reject_id}")
    running = engine.channels.get(reject.channel_id)
    if running is None:
        raise ThumpflowError(f"channel {reject.channel_id!r} is not running here")
    raw = reject.raw if body is None else body
    how = "as received" if body is None else "edited"
    digest = hashlib.sha256(raw).hexdigest()[:16]
    await engine.store.append_audit(
        AuditEntry(
            engine.clock.now(),
            actor,
            "reject.reprocessed",
            f"reject:{reject_id}",
            f"{reason} ({how}, sha256 {digest})",
        )
    )
    kind = content_type(reject)
    ingress = running.ingress
    peer = f"reprocess:{actor}"
    if kind == HL7V2_CONTENT_TYPE and not reject.peer.startswith("http:"):
        code, error = _ack(await ingress.receive(raw, peer))
        status = "accepted" if code in _ACCEPTED else ("refused" if code else "unavailable")
        return Reprocessed(
            reject_id, reject.channel_id, body is not None, kind, status, code, error
        )
    via = f"reprocessed from reject {reject_id} by {actor!r}"
    key = f"reprocess:{reject_id}|{digest}"
    if kind == FHIR_JSON:
        submission = await ingress.submit_fhir(
            decode_fhir(raw), raw, peer, scoped_key=key, source_system=reject.peer, via=via
        )
    elif kind == BED_STATUS_JSON:
        submission = await submit_bed_status(
            ingress, raw, peer, key, via=via, now=engine.clock.now()
        )
    else:
        submission = await ingress.submit_hl7(raw, peer, via=via)
    return Reprocessed(
        reject_id,
        reject.channel_id,
        body is not None,
        kind,
        "refused" if submission.status == "invalid" else submission.status,
        "",
        _why(submission),
        submission.event_id,
    )


def content_type(reject: Reject) -> str:
    """The content type `reject` came in as: rejects keep bytes and a reason, not the type.

    FHIR's rejects are the ones whose reason says `invalid FHIR` (whatever
    the bytes); other JSON from HTTP ingest is FHIR when it is a resource
    and a bed-status document otherwise; the rest is HL7 v2.
    """
    if reject.reason.startswith("invalid FHIR"):
        return FHIR_JSON
    if reject.peer.startswith("http:") and reject.raw.lstrip()[:1] == b"{":
        return FHIR_JSON if decode_fhir(reject.raw) is not None else BED_STATUS_JSON
    return HL7V2_CONTENT_TYPE


async def submit_bed_status(
    ingress: ChannelIngress, raw: bytes, peer: str, key: str | None, *, via: str, now: float
) -> Submission:
    """Admit one bed-status JSON document (`thumpflow.views.facts`), or keep it as a reject.

    HTTP ingest's path for that content type; an unreadable document is
    kept as a reject whose reason names what is wrong (never a value).
    """
    found = read_bed_status(raw)
    if isinstance(found, str):
        reject_id = await ingress.keep(raw, peer, found, now, "structure")
        if reject_id is None:
            return Submission("unavailable")
        return Submission("invalid", reject_id=reject_id, error=MessageError(found, code="100"))
    bed, at = found
    return await ingress.submit_document(
        raw,
        peer,
        key,
        content_type=BED_STATUS_JSON,
        event_type="bed.status",
        entity=("Bed", bed),
        occurred_at=at,
        via=via,
    )


def _why(submission: Submission) -> str | None:
    if submission.status == "unavailable":
        return "the store could not commit the message; reprocess it again later"
    if submission.status != "invalid":
        return None
    note = f" (kept as reject {submission.reject_id})"
    if submission.error is not None:
        return submission.error.describe() + note
    return "invalid FHIR: " + "; ".join(str(issue) for issue in submission.issues[:5]) + note


def _ack(answer: bytes | None) -> tuple[str, str | None]:
    """(MSA-1, ERR-8 or MSA-3 text) of an ACK; the text only for a negative code."""
    if answer is None:
        return "", None
    code = ""
    error = None
    for segment in answer.replace(b"\n", b"\r").split(b"\r"):
        fields = segment.decode("utf-8", "replace").split("|")
        if fields[0] == "MSA" and len(fields) > 1:
            code = fields[1]
            error = fields[3] if len(fields) > 3 and fields[3] else error
        elif fields[0] == "ERR" and len(fields) > 8 and fields[8]:
            error = fields[8]
    return code, None if code in _ACCEPTED else error
