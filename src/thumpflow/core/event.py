"""The canonical event and the records the durable store keeps about it.

Every source turns what it receives into an `Event` before anything else
happens. The raw bytes are kept beside the parsed meaning; transforms emit new
events (with `causation_id` pointing at their cause) and never rewrite one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from thumpflow.core.lanes import Lane

HL7V2_CONTENT_TYPE = "x-application/hl7-v2+er7"


@dataclass(slots=True, frozen=True)
class Event:
    """One clinical fact in motion.

    `idempotency_key` identifies the fact at its source (for HL7 v2:
    sending application and facility plus MSH-10); a second event with the
    same key is a duplicate and is never processed twice. `entity_type` and
    `entity_id` form the ordering key; `sequence` is the entity version when
    the source has one (a lower version never overwrites a higher).
    Timestamps are seconds since the Unix epoch, UTC.
    """

    event_id: str
    idempotency_key: str
    source_system: str
    channel_id: str
    event_type: str
    entity_type: str
    entity_id: str
    occurred_at: float
    received_at: float
    body: bytes
    content_type: str = HL7V2_CONTENT_TYPE
    sequence: int | None = None
    lane: Lane = Lane.ROUTINE
    location: str | None = None
    actor: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None

    @property
    def ordering_key(self) -> str:
        return f"{self.entity_type}/{self.entity_id}"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"
    SUPERSEDED = "superseded"


@dataclass(slots=True, frozen=True)
class NewDelivery:
    """A delivery to create: `event_id`'s body goes to `destination_id`.

    `business_key` and `content_hash` are set (both or neither) for a channel
    with a delivery ledger: once delivered, they are written to the ledger,
    with `ledger_version` (the partner job's `version_field`, if any).
    """

    event_id: str
    destination_id: str
    ordering_key: str
    lane: Lane
    sequence: int | None = None
    business_key: str | None = None
    content_hash: str | None = None
    ledger_version: int | None = None


@dataclass(slots=True)
class Delivery:
    """One (event, destination) pair in an outbox, as the flow core works on it.

    `delivery_id` increases with commit order within the whole store, so
    sorting by it reproduces ingest order per ordering key. `business_key`
    and `content_hash` (both or neither) are what the store writes to the
    delivery ledger when it records this delivery delivered.
    """

    delivery_id: int
    event_id: str
    destination_id: str
    channel_id: str
    ordering_key: str
    lane: Lane
    sequence: int | None
    created_at: float
    body: bytes
    content_type: str
    event_type: str
    attempts: int = 0
    next_attempt_at: float = 0.0
    first_failed_at: float | None = None
    last_error: str | None = None
    business_key: str | None = None
    content_hash: str | None = None

    @property
    def key(self) -> str:
        """Egress idempotency key, stable across retries, restarts and replays."""
        return f"{self.event_id}.{self.destination_id}"


@dataclass(slots=True, frozen=True)
class Admission:
    """Everything one received message commits atomically.

    `received` is the source event (its body is the raw input); `derived`
    holds events emitted by transforms; `deliveries` the outbox entries to
    create. `ack_code` is the acknowledgment code given to the sender, kept so
    a resend of the same idempotency key is answered the same way.

    `content_digest` (HL7 v2 keyed by sender and MSH-10) is a digest of the
    message without its send time (MSH-7). With it, a committed key is a
    duplicate only when its digest is the same (or unknown: committed before
    digests were kept). Different content under a committed key is a reused
    control id: the message is admitted as a new event under the key
    `<key>#<digest>` (so its own resends are duplicates of it), flagged
    `control_id_reused` in the audit trail, never dropped.

    `conversion_warnings` (what a transform's conversion to FHIR converted
    only in part; texts that name message type and segment, never a value)
    are recorded in the same commit as one `converted_in_part` audit entry
    for the received event, after its `received` entry.
    """

    received: Event
    derived: tuple[Event, ...] = ()
    deliveries: tuple[NewDelivery, ...] = ()
    ack_code: str = "AA"
    audit_detail: str | None = None
    content_digest: str | None = None
    conversion_warnings: tuple[str, ...] = ()


# The audit action of an admission's conversion warnings (see `Admission`).
CONVERTED_IN_PART = "converted_in_part"


def control_id_reused(admission: Admission, committed_digest: str | None) -> bool:
    """Whether `admission`, whose key was committed with `committed_digest`,
    reuses that control id for different content (see `Admission`)."""
    digest = admission.content_digest
    return digest is not None and committed_digest is not None and digest != committed_digest


def reused_key(admission: Admission) -> str:
    """The idempotency key under which a reused control id's message is admitted."""
    return f"{admission.received.idempotency_key}#{admission.content_digest}"


@dataclass(slots=True, frozen=True)
class Admitted:
    """The admission committed; `deliveries` are now durable outbox entries.

    `reused_control_id_of` is the event that first used the message's control
    id for different content, when this admission reused it (see `Admission`).
    """

    event_id: str
    deliveries: tuple[Delivery, ...]
    reused_control_id_of: str | None = None


@dataclass(slots=True, frozen=True)
class Duplicate:
    """The idempotency key was seen before; nothing new was committed."""

    original_event_id: str
    ack_code: str


@dataclass(slots=True, frozen=True)
class Reject:
    """Input that could not become an event, kept raw for inspection and replay."""

    channel_id: str
    received_at: float
    peer: str
    raw: bytes
    reason: str


@dataclass(slots=True, frozen=True)
class AuditEntry:
    """One line of the audit trail: who or what did what to which subject, and why."""

    at: float
    actor: str
    action: str
    subject: str
    detail: str = ""
    entry_id: int = 0


@dataclass(slots=True, frozen=True)
class DeadLetter:
    """A dead delivery as operators see it."""

    delivery_id: int
    event_id: str
    destination_id: str
    channel_id: str
    event_type: str
    ordering_key: str
    lane: Lane
    attempts: int
    reason: str
    created_at: float
    died_at: float


@dataclass(slots=True, frozen=True)
class DeadLetterFilter:
    """Which dead deliveries an operation applies to; None means any."""

    destination_id: str | None = None
    channel_id: str | None = None
    event_type: str | None = None
    reason_contains: str | None = None
    delivery_ids: tuple[int, ...] | None = None


@dataclass(slots=True, frozen=True)
class OrderConflict:
    """A dead delivery whose ordering key has had a newer delivery to the same destination.

    `newer_delivery_id` is the latest delivery of the same ordering key to
    `destination_id`, committed after the dead one and already delivered (at
    `newer_delivered_at`): sending the dead one now would reach the receiver
    after it, out of order, and could overwrite newer state. Names deliveries
    only, never the ordering key or anything from the message.
    """

    delivery_id: int
    destination_id: str
    newer_delivery_id: int
    newer_delivered_at: float

    def explain(self) -> str:
        """Why a replay was refused, in words an operator can act on."""
        return (
            f"delivery {self.delivery_id} was not replayed: delivery {self.newer_delivery_id} "
            f"of the same ordering key was delivered to {self.destination_id} after it, so "
            "replaying it now would deliver it out of order"
        )


@dataclass(slots=True, frozen=True)
class ReplayResult:
    """What a replay did: `replayed` are pending again (in delivery id order); `refused`
    stay dead (their ordering key has had a newer delivery, see `OrderConflict`);
    `out_of_order` are the replayed ones that had such a conflict and were
    replayed because the operator asked for it explicitly."""

    replayed: tuple[Delivery, ...] = ()
    refused: tuple[OrderConflict, ...] = ()
    out_of_order: tuple[OrderConflict, ...] = ()


@dataclass(slots=True, frozen=True)
class OutboxStats:
    """Counts for one (channel, destination) outbox, for `status`."""

    channel_id: str
    destination_id: str
    delivered: int
    pending: int
    dead: int
    superseded: int
    oldest_pending_at: float | None
    last_delivered_at: float | None


@dataclass(slots=True, frozen=True)
class ChannelStats:
    channel_id: str
    received: int
    duplicates: int
    rejected: int
    last_received_at: float | None
    outboxes: tuple[OutboxStats, ...] = field(default=())
