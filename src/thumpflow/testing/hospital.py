"""A small simulated hospital: ADT and bed-status traffic for the views, demos and tests.

`adt(...)`, `a17(...)`, `a20(...)` build HL7 v2.5.1 messages with only the
fields the views read (MSH, EVN, PID-3, PV1-2/3/42, NPU); `bed_status(...)`
builds the bed-status JSON of environmental services. `Hospital` walks
patients through a day (ED arrival, admit decision, boarding, transfer to a
unit, pending discharge, discharge, cleaning) and yields each message with
the channel it goes to; it is seeded, so the same seed gives the same day.
Patient identifiers are synthetic (`P000123`).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from thumpflow.views.facts import BED_STATUS_JSON

HL7 = "x-application/hl7-v2+er7"


def _ts(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y%m%d%H%M%S.%f")[:-3] + "+0000"


def _pl(bed: str | None) -> str:
    if bed is None:
        return ""
    unit, _, name = bed.partition("/")
    room, _, letter = name.partition("-")
    return f"{unit}^{room}^{letter}" if letter else f"{unit}^^{room}"


def _msh(trigger: str, control_id: str, at: float, sender: str) -> str:
    structure = {"A17": "ADT_A17", "A20": "ADT_A20"}.get(trigger, "ADT_A01")
    return (
        f"MSH|^~\\&|{sender}|HOSP|VIEWS|HOSP|{_ts(at)}||ADT^{trigger}^{structure}|{control_id}"
        f"|P|2.5.1\rEVN|{trigger}|{_ts(at)}"
    )


def adt(
    trigger: str,
    patient: str,
    bed: str | None,
    at: float,
    control_id: str,
    *,
    patient_class: str = "I",
    pending: str | None = None,
    sender: str = "EHR",
) -> bytes:
    """An ADT message for one patient (PV1-3 = `bed`, PV1-42 = `pending`)."""
    pv1 = ["PV1", "1", patient_class, _pl(bed)] + [""] * 38 + [_pl(pending)]
    text = f"{_msh(trigger, control_id, at, sender)}\rPID|1||{patient}^^^HOSP^MR\r"
    return (text + "|".join(pv1).rstrip("|") + "\r").encode()


def a17(
    first: str, first_bed: str, second: str, second_bed: str, *, at: float, control_id: str
) -> bytes:
    """A17 swap: each patient's PV1-3 is the bed they go to."""
    return (
        f"{_msh('A17', control_id, at, 'EHR')}\r"
        f"PID|1||{first}^^^HOSP^MR\rPV1|1|I|{_pl(first_bed)}\r"
        f"PID|2||{second}^^^HOSP^MR\rPV1|2|I|{_pl(second_bed)}\r"
    ).encode()


def a20(bed: str, status: str, at: float, control_id: str, sender: str = "BEDS") -> bytes:
    """A20 bed status update: NPU-1 the bed, NPU-2 its table 0116 status."""
    return f"{_msh('A20', control_id, at, sender)}\rNPU|{_pl(bed)}|{status}\r".encode()


def bed_status(bed: str, at: float, **fields: object) -> bytes:
    """The bed-status JSON (`cleaning`, `isolation`, `block`, `occupancy`)."""
    moment = datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")
    return json.dumps({"bed": bed, "at": moment, **fields}, sort_keys=True).encode()


@dataclass(frozen=True, slots=True)
class Traffic:
    """One simulated message: the channel it goes to, its content type and body, its time."""

    channel: str
    content_type: str
    body: bytes
    at: float


@dataclass(slots=True)
class _Visit:
    patient: str
    bed: str | None = None
    stage: str = "ed"
    decided: bool = False
    pending: str | None = None


@dataclass
class Hospital:
    """A seeded day of a small hospital (see the module docstring).

    `units` maps unit id to its bed names; `ed` is the ED unit's id. ADT goes
    to `adt_channel`, bed-status JSON to `evs_channel`.
    """

    units: dict[str, list[str]]
    ed: str
    seed: int = 1
    start: float = 1_796_461_200.0  # 2026-12-05 09:00 UTC
    adt_channel: str = "adt-in"
    evs_channel: str = "evs-in"
    _rng: random.Random = field(init=False)
    _visits: dict[str, _Visit] = field(init=False, default_factory=dict)
    _dirty: list[str] = field(init=False, default_factory=list)
    _serial: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def _free(self, unit: str) -> list[str]:
        held = {visit.bed for visit in self._visits.values()}
        held |= {visit.pending for visit in self._visits.values()}
        return [
            f"{unit}/{bed}"
            for bed in self.units[unit]
            if f"{unit}/{bed}" not in held and f"{unit}/{bed}" not in self._dirty
        ]

    def _adt(
        self,
        trigger: str,
        visit: _Visit,
        at: float,
        *,
        patient_class: str = "I",
        pending: str | None = None,
    ) -> Traffic:
        self._serial += 1
        body = adt(
            trigger,
            visit.patient,
            visit.bed,
            at,
            f"S{self._serial:09d}",
            patient_class=patient_class,
            pending=pending,
        )
        return Traffic(self.adt_channel, HL7, body, at)

    def traffic(self, count: int, rate: float = 2.0) -> Iterator[Traffic]:
        """`count` messages at about `rate` per simulated second."""
        at = self.start
        wards = [unit for unit in self.units if unit != self.ed]
        for _ in range(count):
            at += self._rng.expovariate(rate)
            yield self._step(at, wards)

    def _step(self, at: float, wards: list[str]) -> Traffic:
        rng = self._rng
        roll = rng.random()
        if self._dirty and roll < 0.2:
            bed = self._dirty.pop(rng.randrange(len(self._dirty)))
            return Traffic(
                self.evs_channel, BED_STATUS_JSON, bed_status(bed, at, cleaning="clean"), at
            )
        visits = list(self._visits.values())
        if roll < 0.45 or not visits:
            free = self._free(self.ed)
            if free:
                self._serial += 1
                visit = _Visit(f"P{self._serial:06d}", rng.choice(free))
                self._visits[visit.patient] = visit
                return self._adt("A04", visit, at, patient_class="E")
        if not visits:  # the ED is full and nobody is in: a registration update
            return self._adt("A08", _Visit("P000000"), at)
        return self._advance(rng.choice(visits), at, wards)

    def _advance(self, visit: _Visit, at: float, wards: list[str]) -> Traffic:
        """ED: admit decision (A06), bed requested (A15), moved (A02); ward: pending
        discharge (A16), discharge (A03). The beds left are dirty until cleaned."""
        if visit.stage == "ed" and not visit.decided:
            visit.decided = True
            return self._adt("A06", visit, at)
        if visit.stage == "ed":
            free = self._free(self._rng.choice(wards))
            if not free:  # boarding goes on
                return self._adt("A08", visit, at)
            visit.pending, visit.stage = free[0], "requested"
            return self._adt("A15", visit, at, pending=visit.pending)
        if visit.stage == "requested":
            if visit.bed is not None:
                self._dirty.append(visit.bed)
            visit.bed, visit.pending, visit.stage = visit.pending, None, "ward"
            return self._adt("A02", visit, at)
        if visit.stage == "ward":
            visit.stage = "leaving"
            return self._adt("A16", visit, at)
        if visit.bed is not None:
            self._dirty.append(visit.bed)
        del self._visits[visit.patient]
        return self._adt("A03", visit, at)
