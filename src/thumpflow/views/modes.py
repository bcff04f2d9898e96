"""Which operating mode the configured rules declare, read from the views. Pure.

`measure` reads one number from a projection (ED boarding count, open beds,
occupied percent, dirty beds, pending transfers). `RuleBook.decide` says
which rules hold now, with hysteresis: a rule that holds keeps holding
until its measure passes its `leave_below` / `leave_above`, so a measure
hovering at the threshold does not make the mode flap. The most severe
mode among the rules that hold is declared (the first such rule in the
configuration is named); `normal` when none holds. The reason names the
measure, its value and the threshold: counts, never patient data.
"""

from __future__ import annotations

from dataclasses import dataclass

from thumpflow.config.modes import Measure, ModeRule, ModesSpec
from thumpflow.core.modes import OperatingMode
from thumpflow.views import read
from thumpflow.views.state import Projection


def measure(projection: Projection, what: Measure, unit: str | None, now: float) -> float:
    """The number `what` reads from the views (per `unit` where that applies)."""
    if what is Measure.ED_BOARDING:
        return float(len(read.boarding(projection, now)))
    if what is Measure.PENDING_TRANSFERS:
        return float(len(read.transfers(projection)))
    if what is Measure.DIRTY_BEDS:
        beds = read.dirty_beds(projection, now)
        return float(sum(1 for bed in beds if unit is None or bed["unit"] == unit))
    rows = [row for row in read.census(projection) if unit is None or row["unit"] == unit]
    if what is Measure.OPEN_BEDS:
        return float(sum(row["open"] for row in rows))
    total = sum(row["total"] for row in rows)
    occupied = sum(row["occupied"] for row in rows)
    return 100.0 * occupied / total if total else 0.0


@dataclass(slots=True, frozen=True)
class Decision:
    """The mode the rules declare, the rule that declares it and why (None: no rule holds)."""

    mode: OperatingMode
    rule: str | None
    reason: str


def _holds(rule: ModeRule, value: float, held: bool) -> bool:
    if rule.at_least is not None:
        leave = rule.leave_below if rule.leave_below is not None else rule.at_least
        return value >= rule.at_least or (held and value >= leave)
    assert rule.at_most is not None
    leave = rule.leave_above if rule.leave_above is not None else rule.at_most
    return value <= rule.at_most or (held and value <= leave)


def _why(rule: ModeRule, value: float) -> str:
    where = f" in {rule.unit}" if rule.unit else ""
    shown = f"{value:g}"
    if rule.at_least is not None:
        return f"{rule.measure.value}{where} is {shown} (at least {rule.at_least:g})"
    return f"{rule.measure.value}{where} is {shown} (at most {rule.at_most:g})"


class RuleBook:
    """The configured rules and which of them held at the last decision (see the docstring)."""

    def __init__(self, spec: ModesSpec) -> None:
        self.rules = list(spec.rules)
        self.holding: set[str] = set()

    def resume(self, rule_id: str | None) -> None:
        """After a restart: the rule the store says declared the mode in force holds."""
        if rule_id is not None and any(rule.id == rule_id for rule in self.rules):
            self.holding.add(rule_id)

    def decide(self, projection: Projection, now: float) -> Decision:
        """Evaluate every rule on the views now; the mode they declare."""
        values = {rule.id: measure(projection, rule.measure, rule.unit, now) for rule in self.rules}
        return self.settle(values)

    def settle(self, values: dict[str, float]) -> Decision:
        """The mode the rules declare for these measured values (by rule id)."""
        best: Decision | None = None
        holding: set[str] = set()
        for rule in self.rules:
            value = values[rule.id]
            if not _holds(rule, value, rule.id in self.holding):
                continue
            holding.add(rule.id)
            if best is None or rule.mode.severity > best.mode.severity:
                best = Decision(rule.mode, rule.id, _why(rule, value))
        self.holding = holding
        return best or Decision(OperatingMode.NORMAL, None, "no rule holds")
