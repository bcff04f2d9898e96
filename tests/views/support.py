"""Events and a views configuration for the views tests."""

from __future__ import annotations

from datetime import UTC

from thumpflow.config.views import ViewsSpec
from thumpflow.core.event import HL7V2_CONTENT_TYPE, Event
from thumpflow.flow.hl7_facts import parse_hl7_time
from thumpflow.hl7v2 import Message

T0 = 1_796_461_200.0

SPEC: dict[str, object] = {
    "systems": [
        {"id": "ehr", "channels": ["adt-in"]},
        {"id": "evs", "channels": ["evs-in"]},
        {"id": "beds", "channels": ["beds-in"]},
    ],
    "units": [
        {"id": "ED", "kind": "ed", "beds": 3},
        {"id": "4W", "beds": ["401-A", "401-B", "402-A"]},
    ],
}


def spec(**ownership: object) -> ViewsSpec:
    """The test views with `ownership` (e.g. `patient={"location": {...}}`)."""
    return ViewsSpec.model_validate({**SPEC, "ownership": ownership})


def event(
    body: bytes,
    n: int,
    *,
    channel: str = "adt-in",
    at: float | None = None,
    content_type: str = HL7V2_CONTENT_TYPE,
    sequence: int | None = None,
) -> Event:
    """An event as committed: id from `n`, source time `at` (default: EVN-2 as the
    pipeline reads it, else T0 + n), received half a second later."""
    when = T0 + n if at is None else at
    if at is None and body.startswith(b"MSH"):
        when = parse_hl7_time(Message.parse(body).get("EVN-2"), UTC) or when
    return Event(
        event_id=f"E{n:06d}",
        idempotency_key=f"k{n}",
        source_system="EHR@HOSP",
        channel_id=channel,
        event_type="adt.x",
        entity_type="Patient",
        entity_id="x",
        occurred_at=when,
        received_at=when + 0.5,
        body=body,
        content_type=content_type,
        sequence=sequence,
    )
