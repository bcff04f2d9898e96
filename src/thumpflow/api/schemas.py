"""Request and response bodies of the HTTP API; the OpenAPI document is built from these."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from thumpflow.api.ingest_schemas import SubscriptionState


class StrictBody(BaseModel):
    """A request body or query that refuses unknown fields."""

    model_config = ConfigDict(extra="forbid")


class Problem(BaseModel):
    """An error: what is wrong, in words a person can act on."""

    detail: str


class Health(BaseModel):
    status: str


class OutboxFigures(BaseModel):
    channel_id: str
    destination_id: str
    delivered: int
    pending: int
    dead: int
    superseded: int
    oldest_pending_at: float | None
    last_delivered_at: float | None


class ChannelFigures(BaseModel):
    channel_id: str
    received: int
    duplicates: int
    rejected: int
    last_received_at: float | None
    outboxes: list[OutboxFigures]


class LiveOutbox(BaseModel):
    pending: int
    in_memory: int
    blocking_ingress: bool
    circuit: str
    in_memory_by_lane: dict[str, int]


class Status(BaseModel):
    channels: list[ChannelFigures]
    outboxes: dict[str, LiveOutbox]
    subscriptions: dict[str, SubscriptionState] = Field(
        default_factory=dict,
        description="Per FHIR Subscription channel: heartbeats (and whether overdue) and gaps.",
    )


class DeadLetterView(BaseModel):
    """A dead delivery. `ordering_key` is patient data: masked for roles that may not see it."""

    delivery_id: int
    event_id: str
    destination_id: str
    channel_id: str
    event_type: str
    ordering_key: str
    lane: str
    attempts: int
    reason: str
    created_at: float
    died_at: float


class DeadLetterQuery(StrictBody):
    """Which dead deliveries to list; every given field must match."""

    destination: str | None = Field(default=None, max_length=200)
    channel: str | None = Field(default=None, max_length=200)
    event_type: str | None = Field(default=None, max_length=200)
    reason_contains: str | None = Field(default=None, max_length=200)
    delivery: int | None = Field(default=None, ge=1, description="Only this delivery id.")
    limit: int = Field(default=100, ge=1, le=1000)


class DeadLetters(BaseModel):
    dead_letters: list[DeadLetterView]


class ReplayRequest(StrictBody):
    """Which dead deliveries to replay, and why (audited under the caller's name)."""

    reason: str = Field(min_length=1, max_length=500, description="Why; lands in the audit.")
    destination: str | None = Field(default=None, max_length=200)
    channel: str | None = Field(default=None, max_length=200)
    event_type: str | None = Field(default=None, max_length=200)
    reason_contains: str | None = Field(default=None, max_length=200)
    delivery_ids: list[int] | None = Field(default=None, max_length=10_000)
    all: bool = Field(default=False, description="Replay every dead delivery.")
    out_of_order: bool = Field(
        default=False,
        description="Also replay dead deliveries whose ordering key has had a newer delivery "
        "delivered to the same destination: they reach the receiver out of order (audited as "
        "`replayed.out_of_order`). Without it they are refused and listed in `refused`.",
    )


class RefusedReplay(BaseModel):
    """A dead delivery left dead: a newer delivery of its ordering key was delivered."""

    delivery_id: int
    destination_id: str
    newer_delivery_id: int = Field(description="The latest delivery of the key delivered since.")
    newer_delivered_at: float
    reason: str = Field(description="Why, in words; names deliveries, never message content.")


class Replayed(BaseModel):
    replayed: list[int] = Field(description="Pending again, in delivery id order.")
    out_of_order: list[int] = Field(
        default_factory=list, description="Replayed although a newer delivery was delivered."
    )
    refused: list[RefusedReplay] = Field(
        default_factory=list, description="Left dead; ask again with `out_of_order: true`."
    )


class RunRequest(StrictBody):
    """Why a job is run by hand now (audited under the caller's name)."""

    reason: str = Field(min_length=1, max_length=500, description="Why; lands in the audit.")


class RunStarted(BaseModel):
    job: str
    run_id: int
