"""The projection: committed events, in commit order, applied to beds and patients. Pure.

Guarantees (each proven by `tests/views/test_projection.py`):
- Deterministic: the state is a function of the events and their commit
  positions only (no clock, no I/O); applying the event log in commit order
  to a new `Projection` gives exactly the state the live one holds.
- Monotonic: every field keeps the stamp of the write that set it; a write is
  applied only when its field's rule says it beats that stamp (see
  `decide`). A write that loses is recorded (superseded, rejected or a
  conflict) with the rule that decided, never applied, so a late or stale
  update never rolls a field back. A resent event (a higher commit position
  with the same content) changes nothing.
- Conflicts: a non-owner's write under `conflict` stays open (one per field
  and subject, the latest) until a write to that field is applied, or a
  person settles it: a settlement (an event of the `operator` system, in the
  log like any other, so a rebuild settles it again) either applies the
  conflicting write with an owner's authority, stamped as the settlement
  (system `operator`, its time; a later owner's write still supersedes
  it), or dismisses it. A settlement of a conflict no longer open (settled, or
  overtaken by another write) changes nothing and is recorded as such.
- Atomic: one event's changes are applied in full before anything can read
  the state (one synchronous call), and an A17 swap applies both placements
  or neither. No patient is ever in two beds and no bed holds two patients:
  placing a patient in a bed held by an older placement displaces that
  patient (recorded), and a placement older than the bed's holder is
  superseded.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from thumpflow.config.views import OPERATOR, FieldRule, MonotonicKey, Precedence, ViewsSpec
from thumpflow.core.event import Event
from thumpflow.views.facts import (
    Assign,
    Change,
    Leave,
    Place,
    Request,
    SetBed,
    Settle,
    Swap,
    Unreadable,
    bed_status_time,
    changes,
)


@dataclass(frozen=True, slots=True)
class Stamp:
    """Where and when a value comes from: system, event, source time, commit position."""

    system: str
    event_id: str
    as_of: float
    received_at: float
    sequence: int | None
    position: int

    def key(self, mode: MonotonicKey) -> tuple[float, ...]:
        """The monotonic key under `mode`; commit position breaks every tie."""
        version = -1.0 if self.sequence is None else float(self.sequence)
        if mode is MonotonicKey.SOURCE_VERSION:
            return (version, self.as_of, float(self.position))
        return (self.as_of, version, float(self.position))

    @property
    def lag(self) -> float:
        """Seconds from the source's time to the event's receipt."""
        return max(0.0, self.received_at - self.as_of)


@dataclass(slots=True)
class Value:
    """One field's value, the stamp of the write that set it and whether an owner wrote it."""

    value: Any = None
    stamp: Stamp | None = None
    owner: bool = False


@dataclass(slots=True)
class Bed:
    unit: str
    name: str
    configured: bool
    occupant: str | None = None
    occupancy: Value = field(default_factory=Value)
    cleaning: Value = field(default_factory=lambda: Value("clean"))
    isolation: Value = field(default_factory=lambda: Value(False))
    block: Value = field(default_factory=lambda: Value(False))
    status: str = "U"
    changed_at: int = 0
    """Commit position of the event that last changed `status` (0: never)."""


def bed_status(bed: Bed) -> tuple[str, Value]:
    """The bed's HL7 table 0116 status and the value that decides it: `O` occupied (a
    patient is placed, or an occupancy statement says so), else `C` closed, `K`
    contaminated, `H` housekeeping (dirty or being cleaned), `I` isolated, `U` open."""
    if bed.occupant is not None or bed.occupancy.value == "O":
        return "O", bed.occupancy
    if bed.block.value:
        return "C", bed.block
    if bed.cleaning.value == "contaminated":
        return "K", bed.cleaning
    if bed.cleaning.value in ("dirty", "cleaning"):
        return "H", bed.cleaning
    if bed.isolation.value:
        return "I", bed.isolation
    latest = max(
        (v for v in (bed.occupancy, bed.cleaning, bed.block, bed.isolation) if v.stamp),
        key=lambda v: v.stamp.position if v.stamp else 0,
        default=bed.occupancy,
    )
    return "U", latest


@dataclass(slots=True)
class Patient:
    id: str
    location: Value = field(default_factory=Value)
    leave: Value = field(default_factory=lambda: Value(False))
    assigned_bed: Value = field(default_factory=Value)
    transfer_request: Value = field(default_factory=Value)
    admit_decision_at: float | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """A write not applied, or a patient displaced, and the rule that decided."""

    kind: str  # superseded | rejected | conflict | displaced | unreadable | settled | dismissed
    field: str
    subject: str
    system: str
    event_id: str
    rule: str
    as_of: float
    change: Change | None = None
    """For a conflict: the write that lost, which a settlement may apply."""


def decide(rule: FieldRule, name: str, current: Value, system: str, stamp: Stamp) -> Outcome | None:
    """None when the write applies under `rule`; otherwise why it does not."""
    owner = system in rule.owners or system == OPERATOR

    def lost(kind: str, why: str) -> Outcome:
        return Outcome(kind, name, "", system, stamp.event_id, why, stamp.as_of)

    if rule.precedence is Precedence.OWNER_ONLY and not owner:
        return lost("rejected", f"owner_only: {system} does not own {name}")
    if rule.precedence is Precedence.CONFLICT and not owner:
        return lost("conflict", f"conflict: {system} does not own {name}; a person settles it")
    if current.stamp is None:
        return None
    newer = stamp.key(rule.key) > current.stamp.key(rule.key)
    if rule.precedence is Precedence.OWNER_WINS and owner != current.owner:
        if owner:
            return None
        return lost("superseded", f"owner_wins: {name} was set by an owner")
    if not newer:
        return lost("superseded", f"{rule.precedence.value}: not newer by {rule.key.value}")
    return None


class Projection:
    """Beds and patients as the committed events, under the ownership matrix, say they are."""

    def __init__(self, spec: ViewsSpec) -> None:
        self.spec = spec
        self.rules = spec.ownership.rules()
        self.units: dict[str, str] = {unit.id: unit.kind for unit in spec.units}
        self.beds: dict[str, Bed] = {}
        for unit in spec.units:
            for name in unit.bed_names():
                self.beds[f"{unit.id}/{name}"] = Bed(unit.id, name, configured=True)
        self.patients: dict[str, Patient] = {}
        self.history: deque[Outcome] = deque(maxlen=spec.history)
        self.counts: dict[str, int] = {}
        self.conflicts: dict[tuple[str, str], Outcome] = {}
        self.position = 0
        self.changed: dict[str, None] = {}
        """Beds whose status changed since the owner last cleared this (in order)."""
        self._touched: set[str] = set()
        self._change: Change | None = None
        self.as_of: float | None = None
        self.applied_at: float | None = None

    def state(self) -> tuple[Any, ...]:
        """Everything the projection holds, for comparing two projections."""
        return (
            self.beds,
            self.patients,
            list(self.history),
            self.counts,
            self.conflicts,
            self.position,
            self.as_of,
        )

    # -- applying --------------------------------------------------------------

    def apply(self, event: Event, position: int) -> bool:
        """Apply one committed event at commit `position`; False if not a views event.

        Only received events count: a derived event (a transform's output, with
        a `causation_id`) restates its cause, which was applied already.

        Positions must increase; an event at or below the last applied position
        was applied already and changes nothing (resume and replay are safe).
        """
        if position <= self.position:
            return False
        system = self.spec.system_of(event.channel_id)
        if system is None or event.causation_id is not None:
            return False
        self.position = position
        as_of = bed_status_time(event) or event.occurred_at
        stamp = Stamp(system, event.event_id, as_of, event.received_at, event.sequence, position)
        for change in changes(event):
            self._apply(change, stamp)
        for name in self._touched:
            bed = self.beds[name]
            status, _ = bed_status(bed)
            if status != bed.status:
                bed.status, bed.changed_at = status, position
                self.changed.pop(name, None)
                self.changed[name] = None
        self._touched.clear()
        self.as_of = max(self.as_of or as_of, as_of)
        self.applied_at = event.received_at
        return True

    def _note(self, outcome: Outcome, subject: str) -> None:
        outcome = Outcome(
            outcome.kind,
            outcome.field,
            subject,
            outcome.system,
            outcome.event_id,
            outcome.rule,
            outcome.as_of,
            self._change if outcome.kind == "conflict" else None,
        )
        self.history.append(outcome)
        self.counts[outcome.kind] = self.counts.get(outcome.kind, 0) + 1
        if outcome.kind == "conflict":
            self.conflicts[(outcome.field, subject)] = outcome

    def _lose(self, kind: str, name: str, subject: str, stamp: Stamp, rule: str) -> None:
        self._note(
            Outcome(kind, name, "", stamp.system, stamp.event_id, rule, stamp.as_of), subject
        )

    def _write(self, name: str, target: Value, subject: str, value: Any, stamp: Stamp) -> bool:
        rule = self.rules[name]
        lost = decide(rule, name, target, stamp.system, stamp)
        if lost is not None:
            self._note(lost, subject)
            return False
        target.value = value
        target.stamp = stamp
        target.owner = stamp.system in rule.owners
        self.conflicts.pop((name, subject), None)
        return True

    def _apply(self, change: Change, stamp: Stamp) -> None:
        self._change = change
        if isinstance(change, Settle):
            self._settle_conflict(change, stamp)
        elif isinstance(change, Place):
            self._place(change, stamp)
        elif isinstance(change, Swap):
            self._swap(change, stamp)
        elif isinstance(change, Leave):
            patient = self.patient(change.patient)
            self._write("patient.location", patient.leave, patient.id, change.on, stamp)
        elif isinstance(change, Assign):
            patient = self.patient(change.patient)
            if change.bed is not None:
                self.bed(change.bed)
            applied = self._write(
                "patient.assigned_bed", patient.assigned_bed, patient.id, change.bed, stamp
            )
            if applied and change.admit_decision and patient.admit_decision_at is None:
                patient.admit_decision_at = stamp.as_of
        elif isinstance(change, Request):
            patient = self.patient(change.patient)
            self._write(
                "patient.transfer_request",
                patient.transfer_request,
                patient.id,
                change.target,
                stamp,
            )
        elif isinstance(change, SetBed):
            bed = self.bed(change.bed)
            target: Value = getattr(bed, change.field)
            self._write(f"bed.{change.field}", target, change.bed, change.value, stamp)
        elif isinstance(change, Unreadable):
            self._lose("unreadable", "", "", stamp, change.reason)

    def _settle_conflict(self, settle: Settle, stamp: Stamp) -> None:
        """Apply or dismiss the open conflict `settle` names (see the module docstring)."""
        if stamp.system != OPERATOR:
            self._lose("unreadable", "", "", stamp, "only a person settles a conflict")
            return
        key = (settle.field, settle.subject)
        open_ = self.conflicts.get(key)
        if open_ is None or open_.event_id != settle.event_id or open_.change is None:
            self._lose(
                "superseded", settle.field, settle.subject, stamp, "the conflict is no longer open"
            )
            return
        del self.conflicts[key]
        if settle.accept:
            self._lose("settled", settle.field, settle.subject, stamp, "a person applied the write")
            self._apply(open_.change, stamp)
        else:
            self._lose("dismissed", settle.field, settle.subject, stamp, "a person dismissed it")

    def patient(self, patient_id: str) -> Patient:
        patient = self.patients.get(patient_id)
        if patient is None:
            patient = self.patients[patient_id] = Patient(patient_id)
        return patient

    def bed(self, name: str) -> Bed:
        self._touched.add(name)
        bed = self.beds.get(name)
        if bed is None:
            unit, _, short = name.partition("/")
            bed = self.beds[name] = Bed(unit, short, configured=False)
        return bed

    def _holder_blocks(self, bed: Bed, movers: set[str], stamp: Stamp) -> bool:
        """Whether `bed` holds a patient (not moving now) whose placement this write loses to."""
        if bed.occupant is None or bed.occupant in movers:
            return False
        holder = self.patients[bed.occupant].location
        rule = self.rules["patient.location"]
        return decide(rule, "patient.location", holder, stamp.system, stamp) is not None

    def _vacate(self, patient: Patient, stamp: Stamp, dirty: bool) -> None:
        old = patient.location.value
        if old is None:
            return
        bed = self.beds[old]
        self._touched.add(old)
        if bed.occupant == patient.id:
            bed.occupant = None
            _occupancy(bed, "U", stamp)
            if dirty:
                self._write("bed.cleaning", bed.cleaning, old, "dirty", stamp)

    def _settle(self, patient: Patient, bed_name: str | None, stamp: Stamp) -> None:
        """Put `patient` (already vacated) in `bed_name`, displacing an older holder."""
        rule = self.rules["patient.location"]
        patient.location.value = bed_name
        patient.location.stamp = stamp
        patient.location.owner = stamp.system in rule.owners
        self.conflicts.pop(("patient.location", patient.id), None)
        if bed_name is None:
            return
        bed = self.bed(bed_name)
        if bed.occupant is not None and bed.occupant != patient.id:
            holder = self.patients[bed.occupant]
            holder.location.value = None
            holder.location.stamp = stamp
            holder.location.owner = patient.location.owner
            self._lose(
                "displaced", "patient.location", holder.id, stamp, "a newer placement took the bed"
            )
        bed.occupant = patient.id
        _occupancy(bed, "O", stamp)

    def _place(self, change: Place, stamp: Stamp) -> None:
        patient = self.patient(change.patient)
        if change.bed is not None:
            bed = self.bed(change.bed)
            if self._holder_blocks(bed, {patient.id}, stamp):
                self._lose(
                    "superseded",
                    "patient.location",
                    patient.id,
                    stamp,
                    "the bed holds a newer placement",
                )
                return
        lost = decide(
            self.rules["patient.location"],
            "patient.location",
            patient.location,
            stamp.system,
            stamp,
        )
        if lost is not None:
            self._note(lost, patient.id)
            return
        if patient.location.value != change.bed:
            self._vacate(patient, stamp, change.vacated_dirty)
        self._settle(patient, change.bed, stamp)
        if (change.bed is None or change.cancel) and patient.leave.value:
            patient.leave = Value(False, stamp, patient.location.owner)
        if change.admit_decision is True and patient.admit_decision_at is None:
            patient.admit_decision_at = stamp.as_of
        elif change.admit_decision is False:
            patient.admit_decision_at = None
        self._clear_pending(patient, change.bed, stamp)

    def _clear_pending(self, patient: Patient, bed: str | None, stamp: Stamp) -> None:
        """A placement fulfils the reservation and request it reaches; a discharge ends all."""
        assigned = patient.assigned_bed.value
        if assigned is not None and (bed is None or assigned == bed):
            self._write("patient.assigned_bed", patient.assigned_bed, patient.id, None, stamp)
        target = patient.transfer_request.value
        unit = bed.partition("/")[0] if bed else None
        if target is not None and (bed is None or target in (bed, unit)):
            self._write(
                "patient.transfer_request", patient.transfer_request, patient.id, None, stamp
            )

    def _swap(self, change: Swap, stamp: Stamp) -> None:
        first, second = self.patient(change.first), self.patient(change.second)
        beds = (self.bed(change.first_bed), self.bed(change.second_bed))
        movers = {first.id, second.id}
        rule = self.rules["patient.location"]
        for patient in (first, second):
            lost = decide(rule, "patient.location", patient.location, stamp.system, stamp)
            if lost is not None:
                self._note(lost, patient.id)
                return
        if any(self._holder_blocks(bed, movers, stamp) for bed in beds):
            for patient in (first, second):
                self._lose(
                    "superseded",
                    "patient.location",
                    patient.id,
                    stamp,
                    "a swapped bed holds a newer placement",
                )
            return
        for patient in (first, second):
            self._vacate(patient, stamp, dirty=False)
        self._settle(first, change.first_bed, stamp)
        self._settle(second, change.second_bed, stamp)


def _occupancy(bed: Bed, value: str, stamp: Stamp) -> None:
    """A placement states the bed's occupancy (not under the occupancy rule), if newer."""
    current = bed.occupancy.stamp
    if current is None or stamp.position >= current.position:
        bed.occupancy.value = value
        bed.occupancy.stamp = stamp
