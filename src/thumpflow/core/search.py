"""Searching stored events and deliveries, their timelines, and paused targets.

Searches list newest first, ordered by (time, id): events by `received_at`
then `event_seq`, deliveries by `created_at` then `delivery_id`. Pages are
keyset pages: `after` is the (time, id) of the last row of the previous page,
so a page costs the same however deep it is and rows committed meanwhile
never shift a page. Every given filter must match; time ranges are
`since <= time < until`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from thumpflow.core.event import AuditEntry, DeliveryStatus
from thumpflow.core.lanes import Lane

Position = tuple[float, int]


@dataclass(slots=True, frozen=True)
class EventQuery:
    """Which events to list. `entity_id` is patient data: only some roles may search by it.

    `converted_in_part`: only messages whose conversion to FHIR left something
    out (those with a `converted_in_part` audit entry).
    """

    entity_id: str | None = None
    control_id: str | None = None
    event_type: str | None = None
    channel_id: str | None = None
    status: DeliveryStatus | None = None
    converted_in_part: bool = False
    since: float | None = None
    until: float | None = None
    after: Position | None = None
    limit: int = 100


@dataclass(slots=True, frozen=True)
class DeliveryQuery:
    """Which deliveries to list."""

    destination_id: str | None = None
    channel_id: str | None = None
    status: DeliveryStatus | None = None
    event_id: str | None = None
    since: float | None = None
    until: float | None = None
    after: Position | None = None
    limit: int = 100


@dataclass(slots=True, frozen=True)
class EventSummary:
    """A stored event without its body; `statuses` counts its deliveries by status."""

    event_seq: int
    event_id: str
    channel_id: str
    event_type: str
    entity_type: str
    entity_id: str
    source_system: str
    control_id: str | None
    received_at: float
    occurred_at: float
    lane: Lane
    causation_id: str | None
    statuses: dict[DeliveryStatus, int] = field(default_factory=dict)

    @property
    def position(self) -> Position:
        return (self.received_at, self.event_seq)


@dataclass(slots=True, frozen=True)
class Attempt:
    """One send attempt: `outcome` is failed, delivered or dead.

    Failed and dead attempts are stored one row each; the one successful
    attempt a delivery can have is its `delivered_at` and attempt count, with
    the receiver's text from the `delivered` audit entry.
    """

    attempt: int
    at: float
    outcome: str
    detail: str


@dataclass(slots=True, frozen=True)
class DeliveryRecord:
    """A delivery as stored, without the body. `last_error` and `reason` are receiver text."""

    delivery_id: int
    event_id: str
    destination_id: str
    channel_id: str
    ordering_key: str
    lane: Lane
    status: DeliveryStatus
    attempts: int
    created_at: float
    next_attempt_at: float
    delivered_at: float | None
    died_at: float | None
    last_error: str | None
    reason: str | None
    attempt_log: tuple[Attempt, ...] = ()

    @property
    def position(self) -> Position:
        return (self.created_at, self.delivery_id)


class PauseKind(StrEnum):
    DESTINATION = "destination"
    CHANNEL = "channel"


@dataclass(slots=True, frozen=True)
class Pause:
    """A destination or channel an operator paused: by whom, when, why."""

    kind: PauseKind
    target_id: str
    paused_at: float
    actor: str
    reason: str


@dataclass(slots=True, frozen=True)
class Timeline:
    """What the store knows of one event: itself, the events derived from it (mapped),
    the deliveries of both with their attempts, and the audit entries about any of them
    (received, filtered, duplicate, retry, delivered, dead, superseded, replayed, viewed),
    oldest first."""

    event: EventSummary
    derived: tuple[EventSummary, ...]
    deliveries: tuple[DeliveryRecord, ...]
    audit: tuple[AuditEntry, ...]
