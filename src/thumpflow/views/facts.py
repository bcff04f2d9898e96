"""What a committed event says about beds and patients: pure, no I/O.

`changes(event)` reads one event and returns the changes it asks for, in
the order they apply; the projection (`views.state`) decides, field by
field, whether each is applied. Reading never raises: an event whose
content cannot be read, or that says nothing about beds and patients,
yields no change (`Unreadable` when it should have said something).

Beds are named `<unit>/<bed>`: from an HL7 PL (PV1-3, PV1-42, NPU-1) the
unit is PL.1 and the bed `<PL.2>-<PL.3>` (or whichever of room and bed is
present); from FHIR and the bed-status JSON the name is given whole.

HL7 v2 ADT, by trigger (PV1-3 is where the patient is after the event):
A01, A04, A06, A07, A08 (when PV1-3 is present), A12, A13 place the patient
in PV1-3; A02 too, and marks the bed left dirty; A03 discharges (the bed
left is dirty); A11 cancels the admission; A14 assigns PV1-42 (else PV1-3)
and is an admit decision; A15 requests a transfer to PV1-42 and assigns
that bed; A16 requests discharge; A25/A26/A27 cancel A16/A15/A14; A17 swaps
the two patients of its two PID/PV1 pairs atomically; A20 sets a bed's
status from NPU-2 (HL7 table 0116); A21/A52 start and A22/A53 end a leave
of absence (the bed stays held). A01 and A06 with PV1-2 `I` are admit
decisions (the start of ED boarding when the patient is in an ED unit).

FHIR R4: a Location (identifier value `<unit>/<bed>`) with
`operationalStatus` (table 0116 code) sets that bed's status; an Encounter
(subject `Patient/<id>`) places its patient in the `active` location,
assigns the `planned` one, discharges on `finished` and cancels on
`cancelled`/`entered-in-error`; class `IMP` or `ACUTE` is an admit decision.
A Bundle's entries are read in order, each as above.

Bed-status JSON (`application/vnd.thumpflow.bed-status+json`, e.g. from
environmental services): `{"bed": "4W/401-A", "at": "2026-12-05T10:00:00Z",
"cleaning": "clean"}` with any of `cleaning` (`dirty`, `cleaning`, `clean`,
`contaminated`), `isolation`, `block` (booleans) and `occupancy` (`O`/`U`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from thumpflow.core.event import Event
from thumpflow.hl7v2 import Message

BED_STATUS_JSON = "application/vnd.thumpflow.bed-status+json"
SETTLEMENT_JSON = "application/vnd.thumpflow.settlement+json"
FHIR_CONTENT = frozenset({"application/fhir+json", "application/json"})
CLEANING = ("dirty", "cleaning", "clean", "contaminated")
BedField = Literal["occupancy", "cleaning", "isolation", "block"]


@dataclass(frozen=True, slots=True)
class Place:
    """Put `patient` in `bed` (None: out of every bed)."""

    patient: str
    bed: str | None
    vacated_dirty: bool = False
    admit_decision: bool | None = None
    cancel: bool = False


@dataclass(frozen=True, slots=True)
class Swap:
    """Exchange two patients' beds, both or neither."""

    first: str
    first_bed: str
    second: str
    second_bed: str


@dataclass(frozen=True, slots=True)
class Leave:
    """Start (`on`) or end a leave of absence; the bed stays held."""

    patient: str
    on: bool


@dataclass(frozen=True, slots=True)
class Assign:
    """Reserve `bed` for `patient` (None: release)."""

    patient: str
    bed: str | None
    admit_decision: bool = False


@dataclass(frozen=True, slots=True)
class Request:
    """A pending transfer to `target` (a bed or a unit), `discharge`, or None (cancelled)."""

    patient: str
    target: str | None


@dataclass(frozen=True, slots=True)
class SetBed:
    """Write one field of a bed."""

    bed: str
    field: BedField
    value: str | bool


@dataclass(frozen=True, slots=True)
class Unreadable:
    """The event should describe beds or patients but could not be read (named, not quoted)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Settle:
    """A person settles the open conflict of `field` for `subject` that event `event_id`
    raised: `accept` applies that write (with an owner's authority), else it is dismissed."""

    field: str
    subject: str
    event_id: str
    accept: bool


Change = Place | Swap | Leave | Assign | Request | SetBed | Unreadable | Settle


def settlement(field: str, subject: str, event_id: str, accept: bool) -> bytes:
    """The body of a settlement event (content type `SETTLEMENT_JSON`)."""
    document = {"field": field, "subject": subject, "event_id": event_id, "accept": accept}
    return json.dumps(document, sort_keys=True).encode()


def _settlement(body: bytes) -> list[Change]:
    data = json.loads(body)
    parts = [data.get(key) for key in ("field", "subject", "event_id")]
    if not all(isinstance(part, str) for part in parts) or type(data.get("accept")) is not bool:
        return [Unreadable("a settlement needs field, subject, event_id and accept")]
    return [Settle(parts[0], parts[1], parts[2], data["accept"])]


_STATUS_0116: dict[str, tuple[tuple[BedField, str | bool], ...]] = {
    "O": (("occupancy", "O"),),
    "U": (("occupancy", "U"), ("cleaning", "clean"), ("block", False), ("isolation", False)),
    "H": (("cleaning", "dirty"),),
    "K": (("cleaning", "contaminated"),),
    "C": (("block", True),),
    "I": (("isolation", True),),
}


def bed_status_changes(bed: str, code: str) -> list[Change]:
    """The writes an HL7 table 0116 bed status asks for."""
    writes = _STATUS_0116.get(code.upper())
    if writes is None:
        return [Unreadable("bed status is not a code of HL7 table 0116")]
    return [SetBed(bed, field, value) for field, value in writes]


def changes(event: Event) -> list[Change]:
    """The changes `event` asks for (see the module docstring); never raises."""
    try:
        if event.content_type == BED_STATUS_JSON:
            return _bed_status_json(event.body)
        if event.content_type == SETTLEMENT_JSON:
            return _settlement(event.body)
        if event.content_type in FHIR_CONTENT:
            return _fhir(json.loads(event.body))
        if event.event_type.startswith("adt.") or event.body.startswith(b"MSH"):
            return _hl7(Message.parse(event.body))
    except (ValueError, UnicodeDecodeError, TypeError, AttributeError) as err:
        return [Unreadable(f"content not readable ({type(err).__name__})")]
    return []


def read_bed_status(body: bytes) -> tuple[str, float | None] | str:
    """(bed, `at`) of a bed-status JSON document, or what is wrong with it (never quoted)."""
    try:
        found = _bed_status_json(body)
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return "bed-status JSON is not a JSON object"
    problems = [change.reason for change in found if isinstance(change, Unreadable)]
    if problems:
        return problems[0]
    at = data.get("at")
    moment = _instant(at)
    if at is not None and moment is None:
        return "bed-status JSON `at` is not an ISO 8601 time with a zone"
    return str(data["bed"]), moment


def bed_status_time(event: Event) -> float | None:
    """The `at` of a bed-status JSON event, if it has a readable one."""
    if event.content_type != BED_STATUS_JSON:
        return None
    try:
        body = json.loads(event.body)
        return _instant(body.get("at")) if isinstance(body, dict) else None
    except ValueError:
        return None


def _pl(message: Message, sid: str, field: int, occurrence: int = 1) -> str | None:
    """A PL field (point of care, room, bed) as `<unit>/<room>-<bed>`, if it names a bed.

    Reads by compiled indices (`Message.get_at`): this is the hot part of a
    rebuild, which reads a million events back.
    """
    unit = message.get_at(sid, occurrence, field, 0, 1).strip()
    room = message.get_at(sid, occurrence, field, 0, 2).strip()
    bed = message.get_at(sid, occurrence, field, 0, 3).strip()
    name = f"{room}-{bed}" if room and bed else room or bed
    if not unit or not name:
        return None
    return f"{unit}/{name}"


def _hl7(message: Message) -> list[Change]:
    if message.message_type.upper() != "ADT":
        return []
    trigger = message.trigger_event.upper()
    if trigger == "A20":
        bed = _pl(message, "NPU", 1)
        if bed is None:
            return [Unreadable("A20 without a bed in NPU-1")]
        return bed_status_changes(bed, message.get_at("NPU", 1, 2, 0, 1))
    if trigger == "A17":
        return _swap(message)
    patient = message.get_at("PID", 1, 3, 1, 1).strip()
    if not patient:
        return [Unreadable("no patient identifier in PID-3")] if trigger in _ADT else []
    location = _pl(message, "PV1", 3)
    inpatient = message.get_at("PV1", 1, 2).strip().upper() == "I"
    if trigger in {"A01", "A06"}:
        return [Place(patient, location, admit_decision=inpatient)]
    if trigger in {"A04", "A12", "A13"}:
        return [Place(patient, location)]
    if trigger == "A07":
        return [Place(patient, location, admit_decision=False)]
    if trigger == "A08":
        return [Place(patient, location)] if location else []
    if trigger == "A02":
        return [Place(patient, location, vacated_dirty=True)]
    if trigger == "A03":
        return [Place(patient, None, vacated_dirty=True, admit_decision=False)]
    if trigger == "A11":
        return [Place(patient, None, admit_decision=False, cancel=True)]
    if trigger == "A14":
        return [Assign(patient, _pl(message, "PV1", 42) or location, admit_decision=True)]
    if trigger == "A15":
        pending = _pl(message, "PV1", 42) or location
        return [Request(patient, pending), Assign(patient, pending)]
    if trigger == "A16":
        return [Request(patient, "discharge")]
    if trigger == "A25":
        return [Request(patient, None)]
    if trigger == "A26":
        return [Request(patient, None), Assign(patient, None)]
    if trigger == "A27":
        return [Assign(patient, None)]
    if trigger in {"A21", "A52"}:
        return [Leave(patient, on=True)]
    if trigger in {"A22", "A53"}:
        return [Leave(patient, on=False)]
    return []


_ADT = frozenset(
    {"A01", "A02", "A03", "A04", "A06", "A07", "A08", "A11", "A12", "A13"}
    | {"A14", "A15", "A16", "A21", "A22", "A25", "A26", "A27", "A52", "A53"}
)


def _swap(message: Message) -> list[Change]:
    first = message.get_at("PID", 1, 3, 1, 1).strip()
    second = message.get_at("PID", 2, 3, 1, 1).strip()
    first_bed = _pl(message, "PV1", 3, 1)
    second_bed = _pl(message, "PV1", 3, 2)
    if not first or not second or first_bed is None or second_bed is None or first == second:
        return [Unreadable("A17 needs two patients (PID-3) and two beds (PV1-3)")]
    return [Swap(first, first_bed, second, second_bed)]


def _fhir(resource: Any) -> list[Change]:
    if not isinstance(resource, dict):
        return []
    kind = resource.get("resourceType")
    if kind == "Location":
        bed = _identifier(resource)
        status = resource.get("operationalStatus")
        code = status.get("code") if isinstance(status, dict) else None
        if bed is None or not isinstance(code, str):
            return [Unreadable("Location without identifier or operationalStatus.code")]
        return bed_status_changes(bed, code)
    if kind == "Encounter":
        return _encounter(resource)
    if kind == "Bundle":
        entries = resource.get("entry")
        out: list[Change] = []
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict):
                out += _fhir(entry.get("resource"))
        return out
    return []


def _identifier(resource: dict[str, Any]) -> str | None:
    identifiers = resource.get("identifier")
    if isinstance(identifiers, dict):
        identifiers = [identifiers]
    if not isinstance(identifiers, list):
        return None
    for identifier in identifiers:
        value = identifier.get("value") if isinstance(identifier, dict) else None
        if isinstance(value, str) and value.count("/") == 1 and all(value.split("/")):
            return value
    return None


def _encounter(resource: dict[str, Any]) -> list[Change]:
    subject = resource.get("subject")
    reference = subject.get("reference") if isinstance(subject, dict) else None
    if not isinstance(reference, str) or not reference.startswith("Patient/"):
        return [Unreadable("Encounter without subject Patient reference")]
    patient = reference.removeprefix("Patient/")
    status = resource.get("status")
    if status == "finished":
        return [Place(patient, None, vacated_dirty=True, admit_decision=False)]
    if status in {"cancelled", "entered-in-error"}:
        return [Place(patient, None, admit_decision=False, cancel=True)]
    klass = resource.get("class")
    code = klass.get("code") if isinstance(klass, dict) else None
    decision = code in {"IMP", "ACUTE"}
    out: list[Change] = []
    locations = resource.get("location")
    for entry in locations if isinstance(locations, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("location"), dict):
            continue
        bed = _identifier({"identifier": entry["location"].get("identifier")})
        if bed is None:
            continue
        if entry.get("status") == "active":
            out.append(Place(patient, bed, admit_decision=decision or None))
        elif entry.get("status") == "planned":
            out.append(Assign(patient, bed))
    return out


def _bed_status_json(body: bytes) -> list[Change]:
    data = json.loads(body)
    if not isinstance(data, dict) or not isinstance(data.get("bed"), str):
        return [Unreadable("bed-status JSON without `bed`")]
    bed = data["bed"]
    if bed.count("/") != 1 or not all(bed.split("/")):
        return [Unreadable("bed-status JSON `bed` is not `<unit>/<bed>`")]
    out: list[Change] = []
    cleaning = data.get("cleaning")
    if cleaning is not None:
        if cleaning not in CLEANING:
            return [Unreadable("bed-status JSON `cleaning` is not one of " + ", ".join(CLEANING))]
        out.append(SetBed(bed, "cleaning", cleaning))
    for name in ("isolation", "block"):
        value = data.get(name)
        if value is not None:
            if not isinstance(value, bool):
                return [Unreadable(f"bed-status JSON `{name}` is not true or false")]
            out.append(SetBed(bed, "isolation" if name == "isolation" else "block", value))
    occupancy = data.get("occupancy")
    if occupancy is not None:
        if occupancy not in ("O", "U"):
            return [Unreadable("bed-status JSON `occupancy` is not O or U")]
        out.append(SetBed(bed, "occupancy", occupancy))
    return out or [Unreadable("bed-status JSON names no field to set")]


def _instant(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo is not None else None
