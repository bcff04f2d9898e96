"""The `modes:` section: what `surge` and `diversion` do to the flow, and the rules declaring them.

The engine is always in one operating mode (`core.modes`): `normal`,
`surge` or `diversion`. An operator declares one (`thumpflow views mode`,
`POST /api/mode`, the dashboard), or the rules here decide from the views
(e.g. ED boarding at or over a threshold). Each mode other than `normal`
says, for every destination's outbox, how lanes are weighted, which lanes
are deferred (kept durably, sent when the mode ends), which destinations
are paced (a rate limit on top of their own) and which are held (send
nothing until the mode ends). `normal` is the destinations' own settings.
One definition drives validation, the JSON Schema and `docs/configuration.md`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from thumpflow.connectors.fields import Duration
from thumpflow.core.lanes import Lane
from thumpflow.core.modes import OperatingMode

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class LaneWeights(_Model):
    """Weighted service of the lanes: out of every (sum of weights) sends when all lanes have
    work, each lane gets its weight (a starvation guard still serves a lane that waited 30s)."""

    stat: int = Field(default=8, ge=1, le=1000, description="Weight of `stat`.")
    urgent: int = Field(default=8, ge=1, le=1000, description="Weight of `urgent`.")
    routine: int = Field(default=2, ge=1, le=1000, description="Weight of `routine`.")
    bulk: int = Field(default=1, ge=1, le=1000, description="Weight of `bulk`.")

    def by_lane(self) -> dict[Lane, int]:
        return {lane: getattr(self, lane.label) for lane in Lane}


class Pace(_Model):
    """A rate limit on one destination while the mode holds (the slower of this and the
    destination's own `rate_limit` applies)."""

    destination: str = Field(description="A destination id of any channel.")
    per_second: float = Field(gt=0, le=100_000, description="Sends per second at most.")
    burst: int = Field(default=1, ge=1, le=100_000, description="Sends allowed at once.")

    example: ClassVar[dict[str, Any]] = {"destination": "warehouse", "per_second": 2}


def _lanes(value: Any) -> Any:
    if isinstance(value, list):
        return [Lane.parse(item) if isinstance(item, str) else item for item in value]
    return value


class ModeSpec(_Model):
    """What one mode does to every outbox while it holds."""

    lane_weights: LaneWeights = Field(
        default_factory=LaneWeights,
        description="Lane weights while the mode holds (default 8/8/2/1: urgent gets as much "
        "as stat, twice the normal 4).",
    )
    defer: list[Lane] = Field(
        default_factory=lambda: [Lane.BULK],
        description="Lanes not sent while the mode holds: their deliveries stay durable and go "
        "out, in order, when it ends (they still count toward `high_water`). `stat` cannot be "
        "deferred.",
    )
    pace: list[Pace] = Field(
        default_factory=list, description="Destinations (non-urgent ones) sent to more slowly."
    )
    hold: list[str] = Field(
        default_factory=list,
        description="Destination ids that send nothing while the mode holds (their deliveries "
        "wait durably, as under a pause).",
    )

    example: ClassVar[dict[str, Any]] = {
        "lane_weights": {"stat": 8, "urgent": 8, "routine": 2, "bulk": 1},
        "defer": ["bulk"],
        "pace": [{"destination": "warehouse", "per_second": 2}],
    }

    @field_validator("defer", mode="before")
    @classmethod
    def _defer(cls, value: Any) -> Any:
        return _lanes(value)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if Lane.STAT in self.defer:
            raise ValueError("defer: `stat` is never deferred (it keeps moving in every mode)")
        paced = [pace.destination for pace in self.pace]
        for name, ids in (("pace", paced), ("hold", self.hold)):
            twice = sorted({d for d in ids if ids.count(d) > 1})
            if twice:
                raise ValueError(f"{name}: destination {twice[0]!r} is listed twice")
        both = sorted(set(paced) & set(self.hold))
        if both:
            raise ValueError(f"destination {both[0]!r} is both paced and held; choose one")
        return self

    def destinations(self) -> list[str]:
        """Every destination id this mode names."""
        return [pace.destination for pace in self.pace] + list(self.hold)


class Measure(StrEnum):
    """What a rule reads from the views."""

    ED_BOARDING = "ed_boarding"
    """Admitted patients still in an ED unit (the ED boarding list)."""
    OPEN_BEDS = "open_beds"
    """Beds open for a patient (status `U`), in `unit` or in all units."""
    OCCUPIED_PERCENT = "occupied_percent"
    """Occupied beds in percent of the configured beds, in `unit` or in all units."""
    DIRTY_BEDS = "dirty_beds"
    """Free beds waiting for cleaning (`H`, `K`), in `unit` or in all units."""
    PENDING_TRANSFERS = "pending_transfers"
    """Pending transfer and discharge requests (the transfer queue)."""


_BY_UNIT = frozenset({Measure.OPEN_BEDS, Measure.OCCUPIED_PERCENT, Measure.DIRTY_BEDS})


class ModeRule(_Model):
    """Declares `mode` while a measure of the views is at or past a threshold.

    Give `at_least` (holds while the measure is at least this) or `at_most`
    (holds while it is at most this). Once holding, a rule keeps holding
    until the measure passes `leave_below` / `leave_above` (hysteresis, so
    the mode does not flap); by default the threshold itself.
    """

    id: str = Field(pattern=ID_PATTERN, description="Rule id (named in the audit trail).")
    mode: OperatingMode = Field(description="`surge` or `diversion`.")
    measure: Measure = Field(
        description="`ed_boarding`, `open_beds`, `occupied_percent`, `dirty_beds` or "
        "`pending_transfers`."
    )
    unit: str | None = Field(
        default=None,
        description="Only this unit (for `open_beds`, `occupied_percent`, `dirty_beds`).",
    )
    at_least: float | None = Field(default=None, ge=0, description="Holds at or above this.")
    at_most: float | None = Field(default=None, ge=0, description="Holds at or below this.")
    leave_below: float | None = Field(
        default=None, ge=0, description="With `at_least`: stops holding below this."
    )
    leave_above: float | None = Field(
        default=None, ge=0, description="With `at_most`: stops holding above this."
    )

    example: ClassVar[dict[str, Any]] = {
        "id": "ed-boarding",
        "mode": "surge",
        "measure": "ed_boarding",
        "at_least": 10,
        "leave_below": 6,
    }

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.mode is OperatingMode.NORMAL:
            raise ValueError("mode: a rule declares `surge` or `diversion`; `normal` is no rule")
        if (self.at_least is None) == (self.at_most is None):
            raise ValueError("a rule needs exactly one of `at_least`, `at_most`")
        if self.at_least is not None:
            if self.leave_above is not None:
                raise ValueError("`leave_above` goes with `at_most`; use `leave_below`")
            if self.leave_below is not None and self.leave_below > self.at_least:
                raise ValueError("leave_below: must not be above `at_least`")
        if self.at_most is not None:
            if self.leave_below is not None:
                raise ValueError("`leave_below` goes with `at_least`; use `leave_above`")
            if self.leave_above is not None and self.leave_above < self.at_most:
                raise ValueError("leave_above: must not be below `at_most`")
        if self.unit is not None and self.measure not in _BY_UNIT:
            raise ValueError(f"unit: `{self.measure.value}` is not measured per unit")
        return self


class ModesSpec(_Model):
    """Operating modes (`normal`, `surge`, `diversion`): what each does to the flow and the
    rules that declare them. An operator's declaration holds until an operator hands the
    choice back to the rules (`thumpflow views mode auto`)."""

    surge: ModeSpec = Field(
        default_factory=ModeSpec,
        description="Surge: urgent weighted up, `bulk` deferred, listed destinations paced.",
    )
    diversion: ModeSpec = Field(
        default_factory=ModeSpec,
        description="Diversion (the hospital turns ambulances away and sheds load): by "
        "default as surge; `hold` the feeds that must stop (e.g. elective scheduling), `pace` "
        "those to slow, and add `routine` to `defer` to keep only `stat` and `urgent` moving.",
    )
    rules: list[ModeRule] = Field(
        default_factory=list,
        description="Rules evaluated on the views (needs `views:`); the most severe mode "
        "among the rules that hold is declared, `normal` when none holds.",
    )
    interval: Duration = Field(
        default=15.0, gt=0, description="How often the rules are evaluated (or `15s`)."
    )

    example: ClassVar[dict[str, Any]] = {
        "surge": {"defer": ["bulk"], "pace": [{"destination": "warehouse", "per_second": 2}]},
        "diversion": {"defer": ["bulk", "routine"], "hold": ["elective-out"]},
        "rules": [{"id": "ed-boarding", "mode": "surge", "measure": "ed_boarding", "at_least": 10}],
    }

    @model_validator(mode="after")
    def _unique_rules(self) -> Self:
        ids = [rule.id for rule in self.rules]
        twice = sorted({rule_id for rule_id in ids if ids.count(rule_id) > 1})
        if twice:
            raise ValueError(f"rules: rule id {twice[0]!r} is used twice")
        return self

    def spec(self, mode: OperatingMode) -> ModeSpec | None:
        """What `mode` does (None for `normal`: the destinations' own settings)."""
        if mode is OperatingMode.SURGE:
            return self.surge
        if mode is OperatingMode.DIVERSION:
            return self.diversion
        return None


def mode_problems(
    modes: ModesSpec, destinations: set[str], units: set[str] | None
) -> list[tuple[tuple[str | int, ...], str]]:
    """(where in the configuration, what is wrong) for every destination a mode names that
    does not exist and every rule without the views (`units` is None without them)."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    for name, spec in (("surge", modes.surge), ("diversion", modes.diversion)):
        for number, pace in enumerate(spec.pace):
            if pace.destination not in destinations:
                problems.append(
                    (
                        ("modes", name, "pace", number, "destination"),
                        f"{pace.destination!r} is not a destination of any channel",
                    )
                )
        for number, held in enumerate(spec.hold):
            if held not in destinations:
                problems.append(
                    (
                        ("modes", name, "hold", number),
                        f"{held!r} is not a destination of any channel",
                    )
                )
    for number, rule in enumerate(modes.rules):
        if units is None:
            problems.append((("modes", "rules", number), "rules read the views; add `views:`"))
        elif rule.unit is not None and rule.unit not in units:
            problems.append(
                (
                    ("modes", "rules", number, "unit"),
                    f"{rule.unit!r} is not a unit in views.units",
                )
            )
    return problems
