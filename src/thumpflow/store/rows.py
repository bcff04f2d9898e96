"""Mapping between stored rows and core records, shared by every backend.

Each record is read from a named column list (`*_FIELDS`): a backend selects
exactly those columns (both schemas use the same column names) and the
mapper pairs names with values (`zip(..., strict=True)`), so a column added
to or moved in a list cannot shift the others. Payload columns go through
the store's `Codec`: sealed when written, opened when read. A sealed text
column may come back as `bytes` (PostgreSQL keeps it as `bytea`, SQLite as a
BLOB or TEXT); `Codec.open_text` reads either.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from thumpflow.core.access import ApiToken, Role
from thumpflow.core.alerts import Alert, AlertKind, Severity
from thumpflow.core.batch import (
    Manifest,
    RowReject,
    RunCounts,
    RunRecord,
    RunStatus,
    RunTrigger,
    Window,
)
from thumpflow.core.event import (
    AuditEntry,
    DeadLetter,
    DeadLetterFilter,
    Delivery,
    DeliveryStatus,
    Event,
)
from thumpflow.core.lanes import Lane
from thumpflow.core.search import Attempt, DeliveryRecord
from thumpflow.store.crypt import (
    DELIVERY_ERROR,
    DELIVERY_REASON,
    EVENT_BODY,
    ROW_REJECT_RECORD,
    Codec,
)

# deliveries.status
PENDING = 0
DELIVERED = 1
DEAD = 2
SUPERSEDED = 3

STATUS_CODES: dict[DeliveryStatus, int] = {
    DeliveryStatus.PENDING: PENDING,
    DeliveryStatus.DELIVERED: DELIVERED,
    DeliveryStatus.DEAD: DEAD,
    DeliveryStatus.SUPERSEDED: SUPERSEDED,
}
STATUS_OF = {code: status for status, code in STATUS_CODES.items()}

EVENT_FIELDS = (
    "event_id",
    "idempotency_key",
    "source_system",
    "channel_id",
    "event_type",
    "entity_type",
    "entity_id",
    "occurred_at",
    "received_at",
    "content_type",
    "sequence",
    "lane",
    "location",
    "actor",
    "correlation_id",
    "causation_id",
    "body",
)
SELECT_EVENT = f"SELECT {', '.join(EVENT_FIELDS)} FROM events"

# A Delivery from `deliveries d JOIN events e`.
DELIVERY_FIELDS = (
    "d.delivery_id",
    "e.event_id",
    "d.destination_id",
    "d.channel_id",
    "d.ordering_key",
    "d.lane",
    "d.sequence",
    "d.created_at",
    "e.body",
    "e.content_type",
    "e.event_type",
    "d.attempts",
    "d.next_attempt_at",
    "d.first_failed_at",
    "d.last_error",
    "d.business_key",
    "d.content_hash",
)
DELIVERY_COLUMNS = ", ".join(DELIVERY_FIELDS)

DEAD_LETTER_FIELDS = (
    "d.delivery_id",
    "e.event_id",
    "d.destination_id",
    "d.channel_id",
    "e.event_type",
    "d.ordering_key",
    "d.lane",
    "d.attempts",
    "d.reason",
    "d.created_at",
    "d.died_at",
)
DEAD_LETTER_COLUMNS = ", ".join(DEAD_LETTER_FIELDS)

# A DeliveryRecord (searches and timelines) from `deliveries d JOIN events e`.
RECORD_FIELDS = (
    "d.delivery_id",
    "e.event_id",
    "d.destination_id",
    "d.channel_id",
    "d.ordering_key",
    "d.lane",
    "d.status",
    "d.attempts",
    "d.created_at",
    "d.next_attempt_at",
    "d.delivered_at",
    "d.died_at",
    "d.last_error",
    "d.reason",
)
RECORD_COLUMNS = ", ".join(RECORD_FIELDS)

RUN_FIELDS = (
    "run_id",
    "job_id",
    "trigger",
    "window_start",
    "window_end",
    "status",
    "scheduled_for",
    "started_at",
    "finished_at",
    "read_count",
    "valid_count",
    "rejected_count",
    "written_count",
    "skipped_count",
    "manifests_checked",
    "manifests_written",
    "error",
    "next_watermark",
    "findings",
)
RUN_COLUMNS = ", ".join(RUN_FIELDS)
REJECT_FIELDS = (
    "reject_id",
    "job_id",
    "run_id",
    "origin",
    "record",
    "rule",
    "remedy",
    "at",
    "replayed_at",
)
REJECT_COLUMNS = ", ".join(REJECT_FIELDS)
TOKEN_FIELDS = (
    "token_id",
    "name",
    "role",
    "token_hash",
    "created_at",
    "created_by",
    "revoked_at",
)
TOKEN_COLUMNS = ", ".join(TOKEN_FIELDS)
ALERT_FIELDS = (
    "alert_id",
    "kind",
    "subject",
    "severity",
    "message",
    "raised_at",
    "cleared_at",
    "acknowledged_by",
    "acknowledged_at",
    "ack_reason",
)
ALERT_COLUMNS = ", ".join(ALERT_FIELDS)
AUDIT_FIELDS = ("entry_id", "at", "actor", "action", "subject", "detail")
AUDIT_COLUMNS = ", ".join(AUDIT_FIELDS)


def _named(fields: Sequence[str], row: Sequence[Any]) -> dict[str, Any]:
    """Column name (without its table alias) -> value."""
    return {name.rpartition(".")[2]: value for name, value in zip(fields, row, strict=True)}


def event_row(event: Event, codec: Codec) -> tuple[Any, ...]:
    """The values of `EVENT_FIELDS`, in order, for an insert (the body sealed)."""
    return (
        event.event_id,
        event.idempotency_key,
        event.source_system,
        event.channel_id,
        event.event_type,
        event.entity_type,
        event.entity_id,
        event.occurred_at,
        event.received_at,
        event.content_type,
        event.sequence,
        int(event.lane),
        event.location,
        event.actor,
        event.correlation_id,
        event.causation_id,
        codec.seal(event.body, EVENT_BODY),
    )


_EVENT_NAMES = tuple(name.rpartition(".")[2] for name in EVENT_FIELDS)
_LANES = {int(lane): lane for lane in Lane}


def event_from_row(row: Sequence[Any], codec: Codec) -> Event:
    """An `Event` from a row of `EVENT_FIELDS` (a rebuild reads a million: kept lean)."""
    values = dict(zip(_EVENT_NAMES, row, strict=True))
    values["lane"] = _LANES[values["lane"]]
    values["body"] = codec.open(bytes(values["body"]), EVENT_BODY)
    return Event(**values)


def delivery_from_row(row: Sequence[Any], codec: Codec) -> Delivery:
    values = _named(DELIVERY_FIELDS, row)
    values["lane"] = Lane(values["lane"])
    values["body"] = codec.open(bytes(values["body"]), EVENT_BODY)
    values["last_error"] = codec.open_text(values["last_error"], DELIVERY_ERROR)
    return Delivery(**values)


def dead_letter_from_row(row: Sequence[Any], codec: Codec) -> DeadLetter:
    values = _named(DEAD_LETTER_FIELDS, row)
    values["lane"] = Lane(values["lane"])
    values["reason"] = codec.open_text(values["reason"], DELIVERY_REASON) or ""
    return DeadLetter(**values)


def record_from_row(
    row: Sequence[Any], codec: Codec, attempts: tuple[Attempt, ...] = ()
) -> DeliveryRecord:
    values = _named(RECORD_FIELDS, row)
    values["lane"] = Lane(values["lane"])
    values["status"] = STATUS_OF[values["status"]]
    values["last_error"] = codec.open_text(values["last_error"], DELIVERY_ERROR)
    values["reason"] = codec.open_text(values["reason"], DELIVERY_REASON)
    return DeliveryRecord(**values, attempt_log=attempts)


def reason_matches(flt: DeadLetterFilter, reason: str | None) -> bool:
    """Whether an opened dead-letter reason passes `flt.reason_contains`."""
    return flt.reason_contains is None or flt.reason_contains in (reason or "")


def manifests_json(manifests: Sequence[Manifest]) -> str:
    return json.dumps(
        [
            {
                "name": m.name,
                "record_count": m.record_count,
                "sha256": m.sha256,
                "created_at": m.created_at,
                "source": m.source,
                "window_start": m.window.start,
                "window_end": m.window.end,
            }
            for m in manifests
        ]
    )


def _manifests(text: str) -> tuple[Manifest, ...]:
    return tuple(
        Manifest(
            name=item["name"],
            record_count=item["record_count"],
            sha256=item["sha256"],
            created_at=item["created_at"],
            source=item["source"],
            window=Window(item.get("window_start"), item.get("window_end")),
        )
        for item in json.loads(text)
    )


def run_from_row(row: Sequence[Any]) -> RunRecord:
    v = _named(RUN_FIELDS, row)
    return RunRecord(
        run_id=v["run_id"],
        job_id=v["job_id"],
        trigger=RunTrigger(v["trigger"]),
        window=Window(v["window_start"], v["window_end"]),
        status=RunStatus(v["status"]),
        scheduled_for=v["scheduled_for"],
        started_at=v["started_at"],
        finished_at=v["finished_at"],
        counts=RunCounts(
            v["read_count"],
            v["valid_count"],
            v["rejected_count"],
            v["written_count"],
            v["skipped_count"],
        ),
        manifests_checked=_manifests(v["manifests_checked"]),
        manifests_written=_manifests(v["manifests_written"]),
        error=v["error"],
        next_watermark=v["next_watermark"],
        findings=json.loads(v["findings"]) if v["findings"] else None,
    )


def reject_from_row(row: Sequence[Any], codec: Codec) -> RowReject:
    values = _named(REJECT_FIELDS, row)
    values["record"] = codec.open_text(values["record"], ROW_REJECT_RECORD) or ""
    return RowReject(**values)


def token_from_row(row: Sequence[Any]) -> ApiToken:
    values = _named(TOKEN_FIELDS, row)
    values["role"] = Role(values["role"])
    return ApiToken(**values)


def alert_from_row(row: Sequence[Any]) -> Alert:
    values = _named(ALERT_FIELDS, row)
    values["kind"] = AlertKind(values["kind"])
    values["severity"] = Severity(values["severity"])
    return Alert(**values)


def audit_from_row(row: Sequence[Any]) -> AuditEntry:
    return AuditEntry(**_named(AUDIT_FIELDS, row))
