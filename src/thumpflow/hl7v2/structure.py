"""The structure checks every message passes at ingest, before anything reads its content."""

from __future__ import annotations

from thumpflow.core.errors import MessageError
from thumpflow.hl7v2.lines import SEGMENT_ID


def check_structure(message_type: str, control_id: str, segment_ids: list[str]) -> None:
    """Raise `MessageError`, located, for the first structural fault; return otherwise.

    MSH-9.1 (message type) and MSH-10 (control id) must be valued (code
    101); every segment (`segment_ids`, in message order, blank lines
    skipped) must start with a valid segment id (3 characters,
    `[A-Z][A-Z0-9]{2}`) and MSH may occur only first (code 100). Errors name
    the segment and field, never a value from the message.
    """
    if not message_type.strip():
        raise MessageError(
            "message type (MSH-9) missing", segment="MSH", segment_index=1, field=9, code="101"
        )
    if not control_id.strip():
        raise MessageError(
            "message control id (MSH-10) missing",
            segment="MSH",
            segment_index=1,
            field=10,
            code="101",
        )
    for n, sid in enumerate(segment_ids, start=1):
        if not SEGMENT_ID.fullmatch(sid):
            raise MessageError(
                "segment does not start with a valid segment id", segment_index=n, code="100"
            )
    msh = [n for n, sid in enumerate(segment_ids, start=1) if sid == "MSH"]
    if len(msh) > 1:
        raise MessageError(
            "a second MSH segment found; one message per parse",
            segment="MSH",
            segment_index=msh[1],
            code="100",
        )
