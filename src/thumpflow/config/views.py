"""The `views:` section: units and beds, the systems that feed the views, the ownership matrix.

One definition drives validation, the JSON Schema and `docs/configuration.md`
(as for every other section). The views themselves (bed board, census,
transfer queue, ED boarding, dirty beds) are projected by `thumpflow.views`
from committed events of the channels named here; an event from any other
channel does not touch them.

The ownership matrix says, for each field of operational truth, which
system(s) own it, how competing writes are decided (precedence) and which
key orders writes (monotonic key). A write that loses is never applied: it
is recorded as superseded, rejected or a conflict, with the rule that
decided.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"


OPERATOR = "operator"
"""The system of a person's settlement of a conflict: it writes with an owner's authority."""

SETTLEMENTS_CHANNEL = "views-settlements"
"""The channel id settlements are admitted under (not a configured channel)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Precedence(StrEnum):
    """How a write to a field is decided against the value it would replace."""

    OWNER_ONLY = "owner_only"
    """Only an owner may write; a write from any other system is rejected."""
    NEWEST = "newest"
    """Any system may write; the write with the higher monotonic key wins."""
    OWNER_WINS = "owner_wins"
    """Any system may write; an owner's write beats a non-owner's whatever their keys,
    and among owners (or among non-owners) the higher key wins."""
    CONFLICT = "conflict"
    """Owners write (higher key wins); a non-owner's write is not applied but kept as an
    open conflict for a person to settle."""


class MonotonicKey(StrEnum):
    """What orders writes to a field."""

    SOURCE_TIME = "source_time"
    """The source's event time (HL7 EVN-2, else MSH-7; FHIR `meta.lastUpdated`; the
    bed-status JSON's `at`), then the entity version (sequence), then commit order."""
    SOURCE_VERSION = "source_version"
    """The entity version (the channel's `entity_version`, FHIR `meta.versionId`), then
    the source time, then commit order; a write without a version ranks below any with one."""


class FieldRule(_Model):
    """Ownership of one field: its owners, the precedence rule, the monotonic key."""

    owners: list[str] = Field(
        default_factory=list,
        description="Ids of `views.systems[]` that own the field (empty: no owner; only "
        "`newest` allows that).",
    )
    precedence: Precedence = Field(
        default=Precedence.NEWEST,
        description="`owner_only`, `newest`, `owner_wins` or `conflict` (see docs/capacity.md).",
    )
    key: MonotonicKey = Field(
        default=MonotonicKey.SOURCE_TIME,
        description="Monotonic key: `source_time` (EVN-2/MSH-7, then sequence) or "
        "`source_version` (entity version, then source time).",
    )

    example: ClassVar[dict[str, Any]] = {
        "owners": ["ehr"],
        "precedence": "owner_only",
        "key": "source_time",
    }

    @model_validator(mode="after")
    def _owners_for_precedence(self) -> Self:
        if self.precedence is not Precedence.NEWEST and not self.owners:
            raise ValueError(f"precedence {self.precedence.value!r} needs at least one owner")
        if len(set(self.owners)) != len(self.owners):
            raise ValueError("owners: a system is named twice")
        return self


class PatientFields(_Model):
    """Fields kept per patient."""

    location: FieldRule = Field(
        default_factory=FieldRule,
        description="The bed the patient is in (ADT A01-A13, A17, FHIR Encounter.location "
        "`active`). Placing a patient also sets the bed's occupant.",
    )
    assigned_bed: FieldRule = Field(
        default_factory=FieldRule,
        description="The bed reserved for the patient (A14, A15's pending location, FHIR "
        "Encounter.location `planned`).",
    )
    transfer_request: FieldRule = Field(
        default_factory=FieldRule,
        description="A pending transfer (A15, cancelled by A26) or discharge (A16, cancelled "
        "by A25).",
    )


class BedFields(_Model):
    """Fields kept per bed."""

    occupancy: FieldRule = Field(
        default_factory=FieldRule,
        description="A direct statement that the bed is occupied or free (A20 `O`/`U`, FHIR "
        "Location.operationalStatus `O`/`U`, bed-status JSON `occupancy`); placements "
        "set the occupant without this rule.",
    )
    cleaning: FieldRule = Field(
        default_factory=FieldRule,
        description="`dirty`, `cleaning`, `clean` or `contaminated` (A20 `H`/`K`/`U`, "
        "bed-status JSON `cleaning`; a discharge or transfer marks the vacated bed dirty).",
    )
    isolation: FieldRule = Field(
        default_factory=FieldRule,
        description="The bed is isolated (A20 `I`; cleared by `U`; bed-status JSON `isolation`).",
    )
    block: FieldRule = Field(
        default_factory=FieldRule,
        description="The bed is closed or blocked (A20 `C`; cleared by `U`; bed-status JSON "
        "`block`).",
    )


class Ownership(_Model):
    """The ownership matrix: per domain (patient, bed) and field, who owns it and how writes
    are decided. A field not given is `newest` by `source_time`, from any system."""

    patient: PatientFields = Field(default_factory=PatientFields, description="Patient fields.")
    bed: BedFields = Field(default_factory=BedFields, description="Bed fields.")

    example: ClassVar[dict[str, Any]] = {
        "patient": {
            "location": {"owners": ["ehr"], "precedence": "owner_only"},
            "assigned_bed": {"owners": ["capacity"], "precedence": "owner_wins"},
        },
        "bed": {
            "cleaning": {"owners": ["evs"], "precedence": "newest"},
            "block": {"owners": ["capacity"], "precedence": "conflict"},
        },
    }

    def rules(self) -> dict[str, FieldRule]:
        """Every field's rule by its name `<domain>.<field>`."""
        out: dict[str, FieldRule] = {}
        for domain in ("patient", "bed"):
            fields = getattr(self, domain)
            for name in type(fields).model_fields:
                out[f"{domain}.{name}"] = getattr(fields, name)
        return out


class SystemSpec(_Model):
    """A system that owns part of the operational truth, and the channels its events come in by."""

    id: str = Field(pattern=ID_PATTERN, description="System id, named by `owners`.")
    channels: list[str] = Field(
        min_length=1, description="Channels whose committed events are this system's."
    )

    example: ClassVar[dict[str, Any]] = {"id": "ehr", "channels": ["adt-in"]}


class UnitSpec(_Model):
    """A nursing unit (HL7 PL.1 point of care) and its beds."""

    id: str = Field(pattern=ID_PATTERN, description="Unit id as sent in PL.1 (PV1-3.1).")
    kind: str = Field(
        default="inpatient",
        pattern=r"^(inpatient|ed)$",
        description="`inpatient` or `ed`; admitted patients in an `ed` unit are boarding.",
    )
    beds: list[str] | int = Field(
        description="Bed names (`<room>-<bed>` from PL.2 and PL.3, or either alone), or a "
        "count N for beds `01`..`N`."
    )

    example: ClassVar[dict[str, Any]] = {"id": "4W", "beds": ["401-A", "401-B", "402-A"]}

    @field_validator("beds")
    @classmethod
    def _beds(cls, value: list[str] | int) -> list[str] | int:
        if isinstance(value, int):
            if not 1 <= value <= 10_000:
                raise ValueError("a bed count is between 1 and 10000")
            return value
        if not value:
            raise ValueError("a unit has at least one bed")
        seen: set[str] = set()
        for name in value:
            if not name or "/" in name:
                raise ValueError("a bed name is not empty and has no `/`")
            if name in seen:
                raise ValueError(f"bed {name!r} is listed twice")
            seen.add(name)
        return value

    def bed_names(self) -> list[str]:
        """The unit's bed names in order."""
        if isinstance(self.beds, int):
            width = max(2, len(str(self.beds)))
            return [str(n).zfill(width) for n in range(1, self.beds + 1)]
        return list(self.beds)


class PublishSpec(_Model):
    """Bed status changes sent on: each change of a bed's table 0116 status becomes one event
    on `channel`, delivered to that channel's destinations (without a `when`), in order per
    bed, once per change."""

    channel: str = Field(description="The channel whose destinations receive the changes.")
    format: str = Field(
        default="fhir_location",
        pattern=r"^(fhir_location|hl7_a20)$",
        description="`fhir_location` (a FHIR R4 Location with operationalStatus) or "
        "`hl7_a20` (an HL7 v2.5.1 ADT^A20 with NPU).",
    )

    example: ClassVar[dict[str, Any]] = {"channel": "beds-out", "format": "fhir_location"}


class ViewsSpec(_Model):
    """Operational read models (bed board, census, transfer queue, ED boarding, dirty beds)
    and the ownership matrix that decides what they believe."""

    systems: list[SystemSpec] = Field(
        min_length=1, description="The systems that feed the views, by channel."
    )
    units: list[UnitSpec] = Field(min_length=1, description="The units and their beds.")
    ownership: Ownership = Field(default_factory=Ownership, description="The ownership matrix.")
    publish: PublishSpec | None = Field(
        default=None, description="Send bed status changes to a channel's destinations."
    )
    history: int = Field(
        default=1000,
        ge=0,
        le=1_000_000,
        description="How many superseded, rejected and conflicting writes are kept for "
        "display (the counts are kept whole).",
    )

    example: ClassVar[dict[str, Any]] = {
        "systems": [{"id": "ehr", "channels": ["adt-in"]}, {"id": "evs", "channels": ["evs-in"]}],
        "units": [{"id": "ED", "kind": "ed", "beds": 12}, {"id": "4W", "beds": 24}],
        "ownership": {"patient": {"location": {"owners": ["ehr"], "precedence": "owner_only"}}},
    }

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        ids = [system.id for system in self.systems]
        if len(set(ids)) != len(ids):
            raise ValueError("systems: a system id is used twice")
        if OPERATOR in ids:
            raise ValueError(f"systems: {OPERATOR!r} is reserved for people settling conflicts")
        channels: dict[str, str] = {}
        for system in self.systems:
            for channel in system.channels:
                if channel in channels:
                    raise ValueError(
                        f"systems: channel {channel!r} belongs to both {channels[channel]!r} "
                        f"and {system.id!r}"
                    )
                channels[channel] = system.id
        units = [unit.id for unit in self.units]
        if len(set(units)) != len(units):
            raise ValueError("units: a unit id is used twice")
        for name, rule in self.ownership.rules().items():
            domain, field = name.split(".")
            for owner in rule.owners:
                if owner not in ids:
                    raise ValueError(
                        f"ownership > {domain} > {field} > owners: {owner!r} is not a system "
                        f"in views.systems ({', '.join(ids)})"
                    )
        return self

    def system_of(self, channel_id: str) -> str | None:
        """The system whose events come in by `channel_id`, if any (`operator` for
        settlements)."""
        if channel_id == SETTLEMENTS_CHANNEL:
            return OPERATOR
        for system in self.systems:
            if channel_id in system.channels:
                return system.id
        return None


def check_view_channels(views: ViewsSpec, channels: set[str]) -> None:
    """Every channel a view system names must be a configured channel, and none may take
    the settlements' channel id."""
    if SETTLEMENTS_CHANNEL in channels:
        raise ValueError(
            f"channels: {SETTLEMENTS_CHANNEL!r} is reserved for settlements of view conflicts"
        )
    for system in views.systems:
        for channel in system.channels:
            if channel not in channels:
                raise ValueError(
                    f"views > systems > {system.id} > channels: {channel!r} is not a "
                    "channel in `channels`"
                )
    publish = views.publish
    if publish is not None:
        if publish.channel not in channels:
            raise ValueError(
                f"views > publish > channel: {publish.channel!r} is not a channel in `channels`"
            )
        if views.system_of(publish.channel) is not None:
            raise ValueError(
                f"views > publish > channel: {publish.channel!r} feeds the views; publishing "
                "to it would loop"
            )
