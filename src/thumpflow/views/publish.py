"""What a bed status change is sent as: a FHIR R4 Location or an HL7 v2.5.1 ADT^A20. Pure.

The Location goes in a transaction Bundle of one `PUT Location/<id>` entry
(the id is deterministic from the bed), as a `type: fhir` destination writes.

One publication per (bed, commit position of the change): its idempotency
key `views|<bed>|<position>` makes a second admission of the same change a
duplicate, so a change is sent once however often it is published (after a
restart every bed's current state is published again and only the changes
never admitted go out). Its ordering key is the bed (`Location/<bed>`) and
its entity version the position, so a bed's changes reach each destination
in order and a stale one is superseded.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from thumpflow.core.event import HL7V2_CONTENT_TYPE, Event
from thumpflow.core.ids import new_ulid
from thumpflow.fhir import deterministic_id

FHIR_JSON = "application/fhir+json"
WORDS = {
    "O": "Occupied",
    "U": "Unoccupied",
    "H": "Housekeeping",
    "K": "Contaminated",
    "C": "Closed",
    "I": "Isolated",
}


def publication(
    bed: str, status: str, position: int, as_of: float, *, fmt: str, channel: str, now: float
) -> Event:
    """The event that sends `bed`'s new `status` (changed at `position`, source time `as_of`)."""
    if fmt == "hl7_a20":
        content_type, body = HL7V2_CONTENT_TYPE, _a20(bed, status, position, as_of)
    else:
        content_type, body = FHIR_JSON, _location(bed, status)
    return Event(
        event_id=new_ulid(int(now * 1000)),
        idempotency_key=f"views|{bed}|{position}",
        source_system="thumpflow-views",
        channel_id=channel,
        event_type="bed.status",
        entity_type="Location",
        entity_id=bed,
        occurred_at=as_of,
        received_at=now,
        body=body,
        content_type=content_type,
        sequence=position,
    )


def _location(bed: str, status: str) -> bytes:
    resource = {
        "resourceType": "Location",
        "id": deterministic_id("Location", bed),
        "identifier": [{"system": "urn:thumpflow:bed", "value": bed}],
        "status": "active",
        "name": bed,
        "mode": "instance",
        "physicalType": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/location-physical-type",
                    "code": "bd",
                }
            ]
        },
        "operationalStatus": {
            "system": "http://terminology.hl7.org/CodeSystem/v2-0116",
            "code": status,
            "display": WORDS[status],
        },
    }
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": f"urn:uuid:{resource['id']}",
                "resource": resource,
                "request": {"method": "PUT", "url": f"Location/{resource['id']}"},
            }
        ],
    }
    return json.dumps(bundle, sort_keys=True, separators=(",", ":")).encode()


def _a20(bed: str, status: str, position: int, as_of: float) -> bytes:
    when = datetime.fromtimestamp(as_of, UTC).strftime("%Y%m%d%H%M%S+0000")
    unit, _, name = bed.partition("/")
    room, _, letter = name.partition("-")
    place = f"{unit}^{room}^{letter}" if letter else f"{unit}^^{room}"
    return (
        f"MSH|^~\\&|THUMPFLOW|VIEWS|||{when}||ADT^A20^ADT_A20|V{position}|P|2.5.1\r"
        f"EVN|A20|{when}\rNPU|{place}|{status}\r"
    ).encode()
