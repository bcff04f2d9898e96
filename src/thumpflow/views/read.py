"""The read models, computed from a `Projection`: bed board, census, queues. Pure.

Every value carries its source system, as-of time (the source's time of
the write that set it) and lag (seconds from that time to the event's
receipt). Times that depend on now (waiting times) take `now` as an
argument, so a read is a function of the state and the time asked.

Bed status is HL7 table 0116 (`state.bed_status`).
"""

from __future__ import annotations

import hashlib
from typing import Any

from thumpflow.views.state import Outcome, Projection, Stamp, bed_status

UNAVAILABLE = frozenset({"C", "K", "H", "I"})


def _source(stamp: Stamp | None) -> dict[str, Any]:
    if stamp is None:
        return {"source": None, "as_of": None, "lag": None}
    return {"source": stamp.system, "as_of": stamp.as_of, "lag": round(stamp.lag, 3)}


def board(projection: Projection, unit: str | None = None) -> list[dict[str, Any]]:
    """One row per bed (configured beds first, in order; then beds only events named)."""
    rows = []
    for name, bed in projection.beds.items():
        if unit is not None and bed.unit != unit:
            continue
        status, deciding = bed_status(bed)
        patient = projection.patients.get(bed.occupant) if bed.occupant else None
        rows.append(
            {
                "bed": name,
                "unit": bed.unit,
                "name": bed.name,
                "configured": bed.configured,
                "status": status,
                "patient": bed.occupant,
                "on_leave": bool(patient and patient.leave.value),
                "since": deciding.stamp.as_of if deciding.stamp else None,
                "cleaning": bed.cleaning.value,
                "isolation": bed.isolation.value,
                "block": bed.block.value,
                **_source(deciding.stamp),
            }
        )
    return rows


def census(projection: Projection) -> list[dict[str, Any]]:
    """Per unit: occupied, open, unavailable, pending in, pending out, total beds."""
    out: dict[str, dict[str, Any]] = {}
    for unit, kind in projection.units.items():
        out[unit] = {
            "unit": unit,
            "kind": kind,
            "occupied": 0,
            "open": 0,
            "unavailable": 0,
            "pending_in": 0,
            "pending_out": 0,
            "total": 0,
        }
    for bed in projection.beds.values():
        row = out.get(bed.unit)
        if row is None or not bed.configured:
            continue
        status, _ = bed_status(bed)
        row["total"] += 1
        if status == "O":
            row["occupied"] += 1
        elif status == "U":
            row["open"] += 1
        else:
            row["unavailable"] += 1
    for patient in projection.patients.values():
        here = _unit(patient.location.value)
        targets = {_unit(patient.assigned_bed.value), _unit(patient.transfer_request.value)}
        for target in targets - {None, here}:
            if target is not None and target in out:
                out[target]["pending_in"] += 1
        request = patient.transfer_request.value
        if (
            here in out
            and request is not None
            and (request == "discharge" or _unit(request) != here)
        ):
            out[here]["pending_out"] += 1
    return list(out.values())


def _unit(name: str | None) -> str | None:
    if name is None or name == "discharge":
        return None
    return name.partition("/")[0]


def transfers(projection: Projection) -> list[dict[str, Any]]:
    """Pending transfers and discharges, oldest request first."""
    rows = [
        {
            "patient": patient.id,
            "from": patient.location.value,
            "to": patient.transfer_request.value,
            "assigned_bed": patient.assigned_bed.value,
            "requested_at": patient.transfer_request.stamp.as_of
            if patient.transfer_request.stamp
            else None,
            **_source(patient.transfer_request.stamp),
        }
        for patient in projection.patients.values()
        if patient.transfer_request.value is not None
    ]
    return sorted(rows, key=lambda row: row["requested_at"] or 0.0)


def boarding(projection: Projection, now: float) -> list[dict[str, Any]]:
    """Admitted patients still in an ED unit, longest waiting first."""
    rows = []
    for patient in projection.patients.values():
        here = _unit(patient.location.value)
        if here is None or projection.units.get(here) != "ed":
            continue
        if patient.admit_decision_at is None:
            continue
        rows.append(
            {
                "patient": patient.id,
                "bed": patient.location.value,
                "decision_at": patient.admit_decision_at,
                "waiting": max(0.0, now - patient.admit_decision_at),
                "assigned_bed": patient.assigned_bed.value,
                **_source(patient.location.stamp),
            }
        )
    return sorted(rows, key=lambda row: -row["waiting"])


def dirty_beds(projection: Projection, now: float) -> list[dict[str, Any]]:
    """Free beds waiting for cleaning (`H` and `K`), longest waiting first."""
    rows = []
    for name, bed in projection.beds.items():
        status, deciding = bed_status(bed)
        if status not in ("H", "K"):
            continue
        since = deciding.stamp.as_of if deciding.stamp else None
        rows.append(
            {
                "bed": name,
                "unit": bed.unit,
                "status": status,
                "cleaning": bed.cleaning.value,
                "since": since,
                "waiting": max(0.0, now - since) if since is not None else None,
                **_source(deciding.stamp),
            }
        )
    return sorted(rows, key=lambda row: -(row["waiting"] or 0.0))


def conflict_id(outcome: Outcome) -> str:
    """An open conflict's id for settling it: names neither the subject nor any value."""
    text = f"{outcome.field}|{outcome.subject}|{outcome.event_id}"
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def open_conflict(projection: Projection, identifier: str) -> Outcome | None:
    """The open conflict with this `conflict_id`, if any."""
    for outcome in projection.conflicts.values():
        if conflict_id(outcome) == identifier:
            return outcome
    return None


def outcomes(projection: Projection) -> dict[str, Any]:
    """Counts of writes not applied, the recent ones, and open conflicts (each with the `id`
    that settles it), with their rules."""

    def row(outcome: Any) -> dict[str, Any]:
        return {
            "kind": outcome.kind,
            "field": outcome.field,
            "subject": outcome.subject,
            "system": outcome.system,
            "event_id": outcome.event_id,
            "rule": outcome.rule,
            "as_of": outcome.as_of,
        }

    return {
        "counts": dict(sorted(projection.counts.items())),
        "recent": [row(outcome) for outcome in reversed(projection.history)],
        "conflicts": [
            {**row(outcome), "id": conflict_id(outcome)}
            for outcome in projection.conflicts.values()
        ],
    }


def snapshot(projection: Projection, now: float) -> dict[str, Any]:
    """Every read model at once, with the projection's position and freshness."""
    return {
        "position": projection.position,
        "as_of": projection.as_of,
        "census": census(projection),
        "board": board(projection),
        "transfers": transfers(projection),
        "boarding": boarding(projection, now),
        "dirty_beds": dirty_beds(projection, now),
        "outcomes": outcomes(projection),
    }
