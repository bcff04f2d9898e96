"""What an HL7 v2 message means as an event: its type, time and version.

Pure functions of a parsed message. Event types use the glossary's dotted
form (`adt.admit`, `lab.result.final`); result status is kept in the type so
a preliminary result is never mistaken for a final one downstream.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo

from thumpflow.hl7v2 import Message

ADT_EVENTS = {
    "A01": "adt.admit",
    "A02": "adt.transfer",
    "A03": "adt.discharge",
    "A04": "adt.register",
    "A05": "adt.preadmit",
    "A06": "adt.change_to_inpatient",
    "A07": "adt.change_to_outpatient",
    "A08": "adt.update",
    "A11": "adt.cancel_admit",
    "A12": "adt.cancel_transfer",
    "A13": "adt.cancel_discharge",
    "A28": "adt.add_person",
    "A31": "adt.update_person",
    "A40": "adt.merge",
}

# OBR-25 result status (HL7 table 0123) -> event type suffix.
RESULT_STATUS = {
    "F": "final",
    "C": "corrected",
    "P": "preliminary",
    "A": "partial",
    "R": "received",
    "I": "in_progress",
    "S": "scheduled",
    "X": "cancelled",
    "O": "ordered",
    "Y": "no_order",
    "Z": "no_record",
}

# ORC-1 order control (HL7 table 0119) -> event type suffix.
ORDER_CONTROL = {
    "NW": "new",
    "CA": "cancel_request",
    "CR": "cancelled",
    "OC": "cancelled",
    "DC": "discontinue_request",
    "OD": "discontinued",
    "XO": "change_request",
    "XX": "changed",
    "SC": "status_changed",
    "HD": "hold",
    "RL": "release",
    "RP": "replace",
}

_DTM = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,4}))?([+-]\d{4})?$")


def event_type(message: Message) -> str:
    """The glossary event type of a message (`<type>.<trigger>` when not a known one)."""
    kind = message.message_type.upper()
    trigger = message.trigger_event.upper()
    if kind == "ADT" and trigger in ADT_EVENTS:
        return ADT_EVENTS[trigger]
    if kind == "ORU":
        status = RESULT_STATUS.get(message.get("OBR-25").upper(), "unknown")
        return f"lab.result.{status}"
    if kind in {"ORM", "OML", "OMP", "RDE", "OMG"}:
        control = ORDER_CONTROL.get(message.get("ORC-1").upper(), "other")
        return f"order.{control}"
    if kind == "SIU":
        return f"schedule.{trigger.lower() or 'unknown'}"
    if kind == "VXU":
        return "immunization.update"
    if kind == "MDM":
        return f"document.{trigger.lower() or 'unknown'}"
    return f"{kind.lower() or 'unknown'}.{trigger.lower() or 'unknown'}"


def parse_hl7_time(text: str, default_zone: tzinfo) -> float | None:
    """Seconds since the epoch of an HL7 DTM (`YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ]`).

    A time without an offset is read in `default_zone`. None when the text
    is not a valid DTM (the caller falls back to the receive time).
    """
    match = _DTM.match(text.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    zone: tzinfo = default_zone
    if offset is not None:
        sign = 1 if offset[0] == "+" else -1
        delta = timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5]))
        if delta >= timedelta(hours=24):
            return None
        zone = timezone(sign * delta)
    try:
        moment = datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0").ljust(6, "0")[:6]),
            tzinfo=zone,
        )
    except ValueError:
        return None
    return moment.astimezone(UTC).timestamp()


def entity_version(text: str) -> int | None:
    """An integer entity version from a field's digits (e.g. a sequence or a timestamp)."""
    digits = "".join(ch for ch in text if ch.isdigit())
    return int(digits) if digits else None
