"""Bodies of the search, timeline, payload, listing and pause endpoints.

Fields marked patient data are masked (`api.masking`) for roles without
`read_patient_data`; everything else is ids, codes, counts and times.
Times are seconds since the Unix epoch, UTC.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from thumpflow.api.schemas import StrictBody

Status = Literal["pending", "delivered", "dead", "superseded"]

_ID = Field(default=None, min_length=1, max_length=200)
_TIME = Field(default=None, ge=0, le=1e11, description="Seconds since the Unix epoch, UTC.")
_CURSOR = Field(
    default=None,
    min_length=1,
    max_length=200,
    description="`next_cursor` of the previous page; omit for the first page.",
)


class EventSearch(StrictBody):
    """Which events to list, newest first; every given filter must match.

    Searching by `patient` needs the `read_patient_data` permission (403 otherwise).
    """

    patient: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Patient identifier: the ordering key's id alone (`MRN123`, under any "
        "assigning authority) or with its authority (`GEN|MRN123`).",
    )
    control_id: str | None = Field(
        default=None, min_length=1, max_length=200, description="HL7 v2 MSH-10."
    )
    event_type: str | None = _ID
    channel: str | None = _ID
    status: Status | None = Field(
        default=None, description="Events with at least one delivery in this status."
    )
    converted_in_part: bool = Field(
        default=False,
        description="Only messages whose conversion to FHIR left something out (their "
        "timeline's `converted_in_part` step says what).",
    )
    since: float | None = _TIME
    until: float | None = _TIME
    cursor: str | None = _CURSOR
    limit: int = Field(default=100, ge=1, le=500)


class DeliverySearch(StrictBody):
    """Which deliveries to list, newest first; every given filter must match."""

    destination: str | None = _ID
    channel: str | None = _ID
    status: Status | None = None
    event_id: str | None = _ID
    since: float | None = _TIME
    until: float | None = _TIME
    cursor: str | None = _CURSOR
    limit: int = Field(default=100, ge=1, le=500)


class EventView(BaseModel):
    """A stored event without its body. `ordering_key` is patient data (masked)."""

    event_id: str
    channel_id: str
    event_type: str
    ordering_key: str
    source_system: str
    control_id: str | None
    received_at: float
    occurred_at: float
    lane: str
    causation_id: str | None
    deliveries: dict[str, int] = Field(description="Its deliveries counted by status.")


class EventPage(BaseModel):
    events: list[EventView]
    next_cursor: str | None


class AttemptView(BaseModel):
    """One send attempt; `detail` (the receiver's answer or error) is masked for viewers."""

    attempt: int
    at: float
    outcome: str = Field(description="failed, delivered or dead.")
    detail: str


class DeliveryView(BaseModel):
    """A delivery. `ordering_key`, `last_error` and `reason` are masked for viewers."""

    delivery_id: int
    event_id: str
    destination_id: str
    channel_id: str
    ordering_key: str
    lane: str
    status: Status
    attempts: int
    created_at: float
    next_attempt_at: float
    delivered_at: float | None
    died_at: float | None
    last_error: str | None
    reason: str | None


class DeliveryPage(BaseModel):
    deliveries: list[DeliveryView]
    next_cursor: str | None


class DeliveryTimeline(DeliveryView):
    attempt_log: list[AttemptView]


class Step(BaseModel):
    """One thing that happened to the event or its deliveries, from the audit trail.

    `step` is received, converted_in_part (the conversion to FHIR left
    something out: `detail` lists its warnings), filtered, duplicate, mapped,
    queued, attempt_failed, delivered, dead, superseded, replayed,
    replayed_out_of_order (replayed although a newer delivery of its ordering
    key was already delivered, at the operator's explicit request) or
    payload_viewed (others by their audit action). `actor` says who:
    `source:<channel>`, `flow`, or a person's token name for replays and
    payload views. Receiver text in `detail` is masked for viewers.
    """

    at: float
    step: str
    subject: str
    actor: str
    detail: str


class TimelineView(BaseModel):
    event: EventView
    derived: list[EventView] = Field(description="Events a transform mapped this one to.")
    deliveries: list[DeliveryTimeline]
    steps: list[Step] = Field(description="Oldest first.")


class PayloadView(BaseModel):
    """The raw message as received: text when it is UTF-8, else base64."""

    event_id: str
    content_type: str
    encoding: Literal["utf-8", "base64"]
    body: str


class ActRequest(StrictBody):
    """An act's reason: why, in words; lands in the audit trail under the caller's name."""

    reason: str = Field(min_length=1, max_length=500, pattern=r"\S")


class PauseState(BaseModel):
    """After a pause or resume: `changed` is false when it already was in that state."""

    kind: Literal["destination", "channel"]
    id: str
    paused: bool
    changed: bool


class PauseInfo(BaseModel):
    paused_at: float
    paused_by: str
    reason: str


class DestinationView(BaseModel):
    """One destination's outbox, live: counts from the store, state from the running outbox."""

    destination_id: str
    channel_id: str
    type: str
    delivered: int
    pending: int
    dead: int
    superseded: int
    oldest_pending_at: float | None
    oldest_pending_age: float | None = Field(description="Seconds; null when nothing is pending.")
    last_delivered_at: float | None
    circuit: str
    blocking_ingress: bool
    paused: bool
    pause: PauseInfo | None


class Destinations(BaseModel):
    destinations: list[DestinationView]


class ChannelView(BaseModel):
    """One configured channel and its live figures."""

    channel_id: str
    enabled: bool
    running: bool
    accepting: bool = Field(description="False while paused or held by backpressure.")
    paused: bool
    pause: PauseInfo | None
    received: int
    duplicates: int
    rejected: int
    last_received_at: float | None
    pending: int
    dead: int
    destinations: list[str]
    conversion_warnings: dict[str, int] = Field(
        default_factory=dict,
        description="Warnings of the channel's HL7 v2 to FHIR conversion since this engine "
        "started, by code (no_message_map, missing_segment, no_reference_target, "
        "no_message_time, charset_fallback, group_not_converted, repeated_identifier, "
        "segment_not_converted): messages converted only in part. Also "
        "`thumpflow_conversion_warnings_total` on /metrics.",
    )


class Channels(BaseModel):
    channels: list[ChannelView]


class ManifestView(BaseModel):
    name: str
    record_count: int
    sha256: str
    created_at: float
    source: str
    window_start: str | None
    window_end: str | None


class RunCountsView(BaseModel):
    read: int
    valid: int
    rejected: int
    written: int
    skipped: int


class RunView(BaseModel):
    """One run of a job. `error` may quote source data: masked for viewers."""

    run_id: int
    job_id: str
    trigger: str
    status: str
    window_start: str | None
    window_end: str | None
    scheduled_for: float | None
    started_at: float
    finished_at: float | None
    counts: RunCountsView
    rejects: int = Field(description="Records kept as rejects by this run.")
    manifests_checked: list[ManifestView]
    manifests_written: list[ManifestView]
    error: str | None
    findings: dict[str, Any] | None = Field(
        default=None,
        description="What the run found beyond its counts: for a `census_reconcile` job the "
        "snapshot, its time, beds compared, changed after the snapshot, drifted and repaired, "
        "and the drifted beds' names (no patient data).",
    )


class Runs(BaseModel):
    runs: list[RunView]


class JobView(BaseModel):
    job_id: str
    kind: str
    enabled: bool
    schedule: str = Field(description="`cron <expression> (<zone>)` or `every <seconds> s`.")
    missed_runs: str
    running: bool
    last_run: RunView | None
    next_due: float | None = Field(description="Next scheduled start; null when not scheduled.")


class Jobs(BaseModel):
    jobs: list[JobView]


class AuditView(BaseModel):
    """An audit entry; receiver and parser text in `detail` is masked for viewers."""

    entry_id: int
    at: float
    actor: str
    action: str
    subject: str
    detail: str


class AuditSearch(StrictBody):
    before: int | None = Field(
        default=None, ge=1, le=2**62, description="`next_before` of the previous page."
    )
    limit: int = Field(default=100, ge=1, le=500)
    action: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=r"^[a-z][a-z_.]*$",
        description="Only entries of this action, such as `converted_in_part` (messages "
        "whose conversion to FHIR left something out) or `dead_lettered`.",
    )


class AuditPage(BaseModel):
    entries: list[AuditView]
    next_before: int | None
