"""What the store keeps and for how long, and what a purge or a rekey did. Pure data.

Retention never touches the audit trail: it is the tamper-evident record
and is kept for ever (deleting from it is refused, and would break the
chain). Dead letters are never purged by age: they wait for an operator to
replay them (a replayed delivery that is then delivered becomes purgeable
like any other).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

DAY = 86_400.0


@dataclass(slots=True, frozen=True)
class RetentionPolicy:
    """Ages in days after which finished records are purged; None keeps them for ever.

    `events_days`: an event received longer ago whose every delivery is
    delivered or superseded goes, with its deliveries and its idempotency
    key (a resend after that is accepted as new). An event with a pending or
    dead delivery stays. `rejects_days`: kept rejected input. `runs_days`:
    batch row rejects, and finished runs (each job's newest run is kept).
    """

    events_days: float | None = None
    rejects_days: float | None = None
    runs_days: float | None = None

    @property
    def purges(self) -> bool:
        return any(
            days is not None for days in (self.events_days, self.rejects_days, self.runs_days)
        )


@dataclass(slots=True)
class PurgeCounts:
    """Rows one purge removed, per kind (counts only, never content)."""

    events: int = 0
    deliveries: int = 0
    idempotency: int = 0
    rejects: int = 0
    row_rejects: int = 0
    runs: int = 0

    @property
    def total(self) -> int:
        return sum(getattr(self, f.name) for f in fields(self))

    def add(self, other: PurgeCounts) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def summary(self) -> str:
        return ", ".join(f"{f.name} {getattr(self, f.name)}" for f in fields(self))


@dataclass(slots=True)
class RekeyCounts:
    """Values re-sealed under the current key, per column, and the key ids retired."""

    event_bodies: int = 0
    rejects: int = 0
    row_rejects: int = 0
    delivery_texts: int = 0
    retired: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        return self.event_bodies + self.rejects + self.row_rejects + self.delivery_texts

    def add(self, other: RekeyCounts) -> None:
        self.event_bodies += other.event_bodies
        self.rejects += other.rejects
        self.row_rejects += other.row_rejects
        self.delivery_texts += other.delivery_texts
