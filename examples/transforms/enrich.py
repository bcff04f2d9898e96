"""Enrich: add the ward's name (PV1-3.9) from a lookup table kept beside this file.

The table (`wards.csv`: code,name) is read once, when the engine loads the
transform; the transform itself stays pure. A ward code the table does not
know rejects the message with a reason naming the field, not the code (a
reason is logged; message values never are).
"""

from __future__ import annotations

import csv
from pathlib import Path

from thumpflow.transform import Event, Message, TransformError, derive, editable

with (Path(__file__).with_name("wards.csv")).open(newline="", encoding="utf-8") as table:
    WARDS = {row["code"]: row["name"] for row in csv.DictReader(table)}


def ward_names(event: Event, message: Message) -> list[Event]:
    code = message.get("PV1-3.1")
    if not code:
        return [derive(event, event.body, purpose="enriched")]
    if code not in WARDS:
        raise TransformError("PV1-3.1 (point of care) is not in wards.csv", code="103")
    copy = editable(event)
    copy.set("PV1-3.9", WARDS[code])
    return [derive(event, copy.to_bytes(), purpose="enriched")]
