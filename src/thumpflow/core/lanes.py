"""Lanes: the priority classes of deliveries.

A delivery's lane decides how soon it is served relative to other ordering keys
bound for the same destination. Lanes never reorder deliveries of one ordering
key: order per entity always wins over priority (a key waiting behind its own
routine delivery is promoted instead, see `flow.scheduler`).
"""

from __future__ import annotations

from enum import IntEnum


class Lane(IntEnum):
    """Priority class; a lower value is served first."""

    STAT = 0
    URGENT = 1
    ROUTINE = 2
    BULK = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Lane:
        """Parse a lane name (`stat`, `urgent`, `routine`, `bulk`); raise ValueError otherwise."""
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(lane.label for lane in cls)
            raise ValueError(f"unknown lane {text!r}; expected one of {names}") from None


# Default weights for weighted priority service: out of every 15 picks when all
# lanes have work, stat gets 8, urgent 4, routine 2, bulk 1.
DEFAULT_LANE_WEIGHTS: dict[Lane, int] = {
    Lane.STAT: 8,
    Lane.URGENT: 4,
    Lane.ROUTINE: 2,
    Lane.BULK: 1,
}
