"""Operating modes: `normal`, `surge`, `diversion`, and who or what declared the one in force.

A mode is declared by an operator's act (it holds until an operator declares
another or hands the choice back to the rules) or by a configured rule
evaluated on the views (it holds while the rule does). What each mode does
to the flow (lane weights, deferred lanes, paced and held destinations) is
configuration (`config.modes`); this module only names the modes and
records the state the store keeps.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class OperatingMode(StrEnum):
    """How hard the hospital is pressed; a later member is more severe."""

    NORMAL = "normal"
    SURGE = "surge"
    DIVERSION = "diversion"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {OperatingMode.NORMAL: 0, OperatingMode.SURGE: 1, OperatingMode.DIVERSION: 2}


class ModeOrigin(StrEnum):
    """Who decided the mode in force."""

    ACT = "act"
    """An operator declared it; rules do not change it until an operator hands back."""
    RULE = "rule"
    """The configured rules decide it (`normal` when none holds)."""


ENGINE_ACTOR = "thumpflow"
"""The actor of a change the rules make (as in every audit entry the engine writes itself)."""


@dataclass(slots=True, frozen=True)
class ModeState:
    """The mode in force: since when, declared how, by whom, why (and by which rule).

    `rule` is the id of the rule that holds when `origin` is `rule` and the
    mode is not `normal`. `reason` never quotes message content: an
    operator's words, or the rule's measure and threshold.
    """

    mode: OperatingMode
    since: float
    origin: ModeOrigin
    actor: str
    reason: str
    rule: str | None = None


def initial_state(at: float) -> ModeState:
    """The state of a store where no mode was ever declared: normal, decided by the rules."""
    return ModeState(OperatingMode.NORMAL, at, ModeOrigin.RULE, ENGINE_ACTOR, "no mode declared")
