"""Reads every backend runs the same way, over one connection inside a read transaction.

Statements use `?` placeholders and SQL both SQLite and PostgreSQL accept;
list membership goes through the backend's `Dialect`. The backend runs each
function in one transaction, so a read that takes several statements (stats,
a timeline) sees one snapshot. Searches with their query plans stay in the
backends (`store/sqlite/_search.py`, `store/postgresql/_search.py`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from thumpflow.core.access import ApiToken
from thumpflow.core.alerts import Alert
from thumpflow.core.audit import Anchor, AuditVerdict, ChainRow, check_chain
from thumpflow.core.batch import LedgerEntry, RowReject, RunRecord
from thumpflow.core.event import (
    CONVERTED_IN_PART,
    AuditEntry,
    ChannelStats,
    DeliveryStatus,
    Event,
    OutboxStats,
    Reject,
)
from thumpflow.core.health import DeliverySample
from thumpflow.core.lanes import Lane
from thumpflow.core.search import (
    Attempt,
    DeliveryQuery,
    EventQuery,
    EventSummary,
    Pause,
    PauseKind,
    Timeline,
)
from thumpflow.store.crypt import ATTEMPT_DETAIL, REJECT_RAW, Codec
from thumpflow.store.ops import Db, Dialect
from thumpflow.store.rows import (
    ALERT_COLUMNS,
    AUDIT_COLUMNS,
    DELIVERED,
    RECORD_COLUMNS,
    REJECT_COLUMNS,
    RUN_COLUMNS,
    SELECT_EVENT,
    STATUS_OF,
    TOKEN_COLUMNS,
    alert_from_row,
    audit_from_row,
    event_from_row,
    record_from_row,
    reject_from_row,
    run_from_row,
    token_from_row,
)

EVENT_SUMMARY_COLUMNS = (
    "e.event_seq, e.event_id, e.channel_id, e.event_type, e.entity_type, e.entity_id,"
    " e.source_system, e.correlation_id, e.received_at, e.occurred_at, e.lane, e.causation_id"
)


# Events whose conversion to FHIR left something out: each event the search's
# own index walks (newest first) is probed through `audit_subject`.
CONVERTED_IN_PART_CLAUSE = (
    "EXISTS (SELECT 1 FROM audit a WHERE a.subject = e.event_id"
    f" AND a.action = '{CONVERTED_IN_PART}')"
)


def equal(**columns: object) -> tuple[str, tuple[object, ...]]:
    """` WHERE a = ? AND b = ?` over the columns given a value (None leaves one out)."""
    given = {column: value for column, value in columns.items() if value is not None}
    where = " AND ".join(f"{column} = ?" for column in given)
    return (f" WHERE {where}" if where else ""), tuple(given.values())


def _one(db: Db, sql: str, parameters: Sequence[Any]) -> Any:
    row = db.execute(sql, parameters).fetchone()
    return None if row is None else row[0]


def pending_count(db: Db, destination_id: str) -> int:
    return int(
        _one(
            db,
            "SELECT coalesce(sum(pending), 0) FROM outbox_counters WHERE destination_id = ?",
            (destination_id,),
        )
    )


def applied_version(db: Db, destination_id: str, ordering_key: str) -> int | None:
    version = _one(
        db,
        "SELECT version FROM applied_versions WHERE destination_id = ? AND ordering_key = ?",
        (destination_id, ordering_key),
    )
    return None if version is None else int(version)


def event(db: Db, event_id: str, codec: Codec) -> Event | None:
    row = db.execute(f"{SELECT_EVENT} WHERE event_id = ?", (event_id,)).fetchone()
    return None if row is None else event_from_row(row, codec)


def rejects(db: Db, channel_id: str | None, limit: int, codec: Codec) -> list[tuple[int, Reject]]:
    where, params = equal(channel_id=channel_id)
    sql = (
        "SELECT reject_id, channel_id, received_at, peer, raw, reason FROM rejects"
        f"{where} ORDER BY reject_id DESC LIMIT ?"
    )
    return [
        (row[0], Reject(row[1], row[2], row[3], codec.open(bytes(row[4]), REJECT_RAW), row[5]))
        for row in db.execute(sql, (*params, limit))
    ]


def reject_by_id(db: Db, reject_id: int, codec: Codec) -> Reject | None:
    sql = "SELECT channel_id, received_at, peer, raw, reason FROM rejects WHERE reject_id = ?"
    row = db.execute(sql, (reject_id,)).fetchone()
    if row is None:
        return None
    return Reject(row[0], row[1], row[2], codec.open(bytes(row[3]), REJECT_RAW), row[4])


def audit(db: Db, subject: str | None, limit: int, action: str | None) -> list[AuditEntry]:
    where, params = equal(subject=subject, action=action)
    sql = f"SELECT {AUDIT_COLUMNS} FROM audit{where} ORDER BY entry_id DESC LIMIT ?"
    return [audit_from_row(row) for row in db.execute(sql, (*params, limit))]


def audit_page(
    db: Db, before: int | None, limit: int, action: str | None = None
) -> list[AuditEntry]:
    """Audit entries newest first, with entry id below `before` and of `action` when given."""
    clauses = [] if before is None else ["entry_id < ?"]
    params: list[Any] = [] if before is None else [before]
    if action is not None:
        clauses.append("action = ?")
        params.append(action)
    where = " WHERE " + " AND ".join(clauses) if clauses else ""
    sql = f"SELECT {AUDIT_COLUMNS} FROM audit{where} ORDER BY entry_id DESC LIMIT ?"
    return [audit_from_row(row) for row in db.execute(sql, (*params, limit))]


def pauses(db: Db) -> list[Pause]:
    return [
        Pause(PauseKind(row[0]), row[1], row[2], row[3], row[4])
        for row in db.execute(
            "SELECT kind, target_id, paused_at, actor, reason FROM pauses ORDER BY kind, target_id"
        )
    ]


def token_by_hash(db: Db, token_hash: str) -> ApiToken | None:
    row = db.execute(
        f"SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = ? AND revoked_at IS NULL",
        (token_hash,),
    ).fetchone()
    return None if row is None else token_from_row(row)


def tokens(db: Db) -> list[ApiToken]:
    rows = db.execute(f"SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY token_id")
    return [token_from_row(row) for row in rows]


def alerts(db: Db, active_only: bool, limit: int) -> list[Alert]:
    where = " WHERE cleared_at IS NULL" if active_only else ""
    rows = db.execute(
        f"SELECT {ALERT_COLUMNS} FROM alerts{where}"
        " ORDER BY cleared_at IS NOT NULL, raised_at DESC, alert_id DESC LIMIT ?",
        (limit,),
    )
    return [alert_from_row(row) for row in rows]


def runs(db: Db, job_id: str | None, limit: int) -> list[RunRecord]:
    where, params = equal(job_id=job_id)
    sql = f"SELECT {RUN_COLUMNS} FROM runs{where} ORDER BY run_id DESC LIMIT ?"
    return [run_from_row(row) for row in db.execute(sql, (*params, limit))]


def run(db: Db, run_id: int) -> RunRecord | None:
    row = db.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    return None if row is None else run_from_row(row)


def watermark(db: Db, job_id: str) -> str | None:
    found = _one(db, "SELECT watermark FROM watermarks WHERE job_id = ?", (job_id,))
    return None if found is None else str(found)


def last_scheduled(db: Db, job_id: str) -> float | None:
    found = _one(
        db,
        "SELECT max(scheduled_for) FROM runs WHERE job_id = ? AND scheduled_for IS NOT NULL",
        (job_id,),
    )
    return None if found is None else float(found)


def row_rejects(
    db: Db, job_id: str | None, run_id: int | None, limit: int, codec: Codec
) -> list[RowReject]:
    where, params = equal(job_id=job_id, run_id=run_id)
    sql = f"SELECT {REJECT_COLUMNS} FROM row_rejects{where} ORDER BY reject_id DESC LIMIT ?"
    return [reject_from_row(row, codec) for row in db.execute(sql, (*params, limit))]


def row_reject(db: Db, reject_id: int, codec: Codec) -> RowReject | None:
    row = db.execute(
        f"SELECT {REJECT_COLUMNS} FROM row_rejects WHERE reject_id = ?", (reject_id,)
    ).fetchone()
    return None if row is None else reject_from_row(row, codec)


_LEDGER = "SELECT business_key, content_hash, at, version FROM delivery_ledger"


def ledger_entries(
    db: Db, dialect: Dialect, destination_id: str, business_keys: Sequence[str]
) -> list[LedgerEntry]:
    """The entries of those keys at that destination (absent keys left out), by key."""
    sql = (
        f"{_LEDGER} WHERE destination_id = ? AND business_key {dialect.in_ids}"
        " ORDER BY business_key"
    )
    rows = db.execute(sql, (destination_id, dialect.ids(list(business_keys))))
    return [LedgerEntry(destination_id, *row) for row in rows]


def ledger_page(db: Db, destination_id: str, after: str | None, limit: int) -> list[LedgerEntry]:
    """Up to `limit` entries with a key greater than `after`, in key (code point) order."""
    if after is None:
        sql = f"{_LEDGER} WHERE destination_id = ? ORDER BY business_key LIMIT ?"
        params: tuple[Any, ...] = (destination_id, limit)
    else:
        sql = (
            f"{_LEDGER} WHERE destination_id = ? AND business_key > ? ORDER BY business_key LIMIT ?"
        )
        params = (destination_id, after, limit)
    return [LedgerEntry(destination_id, *row) for row in db.execute(sql, params)]


def stats(db: Db) -> list[ChannelStats]:
    """Per channel and outbox counts, by channel id; the oldest pending by delivery id."""
    channels: dict[str, tuple[int, int, int, float | None]] = {
        row[0]: (int(row[1]), int(row[2]), int(row[3]), row[4])
        for row in db.execute(
            "SELECT channel_id, received, duplicates, rejected, last_received_at"
            " FROM channel_counters"
        )
    }
    outboxes: dict[str, list[OutboxStats]] = {}
    rows = db.execute(
        "SELECT channel_id, destination_id, delivered, pending, dead, superseded,"
        " last_delivered_at FROM outbox_counters ORDER BY channel_id, destination_id"
    ).fetchall()
    for channel_id, destination_id, delivered, pending, dead, superseded, last in rows:
        oldest = None
        if pending > 0:
            oldest = _one(
                db,
                "SELECT created_at FROM deliveries"
                " WHERE channel_id = ? AND destination_id = ? AND status = 0"
                " ORDER BY delivery_id LIMIT 1",
                (channel_id, destination_id),
            )
        outboxes.setdefault(channel_id, []).append(
            OutboxStats(
                channel_id=channel_id,
                destination_id=destination_id,
                delivered=int(delivered),
                pending=int(pending),
                dead=int(dead),
                superseded=int(superseded),
                oldest_pending_at=oldest,
                last_delivered_at=last,
            )
        )
    result: list[ChannelStats] = []
    for channel_id in sorted(channels.keys() | outboxes.keys()):
        received, duplicates, rejected, last_received = channels.get(channel_id, (0, 0, 0, None))
        result.append(
            ChannelStats(
                channel_id=channel_id,
                received=received,
                duplicates=duplicates,
                rejected=rejected,
                last_received_at=last_received,
                outboxes=tuple(outboxes.get(channel_id, ())),
            )
        )
    return result


def with_statuses(db: Db, dialect: Dialect, rows: Sequence[Any]) -> list[EventSummary]:
    """Event summaries (`EVENT_SUMMARY_COLUMNS` rows) with their deliveries counted by status."""
    counts: dict[int, dict[DeliveryStatus, int]] = {}
    if rows:
        for event_seq, status, count in db.execute(
            f"SELECT event_seq, status, count(*) FROM deliveries"
            f" WHERE event_seq {dialect.in_ids} GROUP BY event_seq, status",
            (dialect.ids([row[0] for row in rows]),),
        ):
            counts.setdefault(event_seq, {})[STATUS_OF[status]] = int(count)
    return [
        EventSummary(
            event_seq=row[0],
            event_id=row[1],
            channel_id=row[2],
            event_type=row[3],
            entity_type=row[4],
            entity_id=row[5],
            source_system=row[6],
            control_id=row[7],
            received_at=row[8],
            occurred_at=row[9],
            lane=Lane(row[10]),
            causation_id=row[11],
            statuses=counts.get(row[0], {}),
        )
        for row in rows
    ]


def timeline(db: Db, dialect: Dialect, event_id: str, codec: Codec) -> Timeline | None:
    """Everything the store knows of one event; None when no event has that id."""
    found = db.execute(
        f"SELECT {EVENT_SUMMARY_COLUMNS} FROM events e WHERE e.event_id = ?", (event_id,)
    ).fetchall()
    if not found:
        return None
    derived_rows = db.execute(
        f"SELECT {EVENT_SUMMARY_COLUMNS} FROM events e WHERE e.causation_id = ?"
        " ORDER BY e.event_seq",
        (event_id,),
    ).fetchall()
    summaries = with_statuses(db, dialect, [*found, *derived_rows])
    delivery_rows = db.execute(
        f"SELECT {RECORD_COLUMNS} FROM deliveries d JOIN events e ON e.event_seq = d.event_seq"
        f" WHERE d.event_seq {dialect.in_ids} ORDER BY d.delivery_id",
        (dialect.ids([summary.event_seq for summary in summaries]),),
    ).fetchall()
    attempts: dict[int, list[Attempt]] = {}
    if delivery_rows:
        for delivery_id, attempt, at, outcome, detail in db.execute(
            "SELECT delivery_id, attempt, at, outcome, detail FROM attempts"
            f" WHERE delivery_id {dialect.in_ids} ORDER BY attempt_id",
            (dialect.ids([row[0] for row in delivery_rows]),),
        ):
            text = codec.open_text(detail, ATTEMPT_DETAIL) or ""
            attempts.setdefault(delivery_id, []).append(Attempt(attempt, at, outcome, text))
    subjects = [summary.event_id for summary in summaries]
    subjects += [f"delivery:{row[0]}" for row in delivery_rows]
    entries = [
        audit_from_row(row)
        for row in db.execute(
            f"SELECT {AUDIT_COLUMNS} FROM audit WHERE subject {dialect.in_ids} ORDER BY entry_id",
            (dialect.ids(subjects),),
        )
    ]
    delivered_detail = {
        entry.subject: entry.detail for entry in entries if entry.action == "delivered"
    }
    for row in delivery_rows:
        _add_success(row, attempts, delivered_detail)
    return Timeline(
        event=summaries[0],
        derived=tuple(summaries[1:]),
        deliveries=tuple(
            record_from_row(row, codec, tuple(attempts.get(row[0], ()))) for row in delivery_rows
        ),
        audit=tuple(entries),
    )


def _add_success(
    row: Sequence[Any], attempts: dict[int, list[Attempt]], details: dict[str, str]
) -> None:
    """Append a delivered delivery's successful attempt, which has no `attempts` row.

    The writer records only failed and dead attempts as rows; the one success
    a delivery can have is its `delivered_at` and `attempts` (the attempt that
    succeeded) with the receiver's text in the `delivered` audit entry. Stores
    written before that still hold a `delivered` row, which is kept as it is.
    """
    delivery_id, status, count, delivered_at = row[0], row[6], row[7], row[10]
    if status != DELIVERED or delivered_at is None:
        return
    log = attempts.setdefault(delivery_id, [])
    if any(attempt.outcome == "delivered" for attempt in log):
        return
    detail = details.get(f"delivery:{delivery_id}", "")
    log.append(Attempt(count, delivered_at, "delivered", detail))


def audit_head(db: Db) -> Anchor | None:
    """The newest chained entry's anchor, None for an empty trail."""
    row = db.execute(
        "SELECT entry_id, hash FROM audit WHERE hash IS NOT NULL ORDER BY entry_id DESC LIMIT 1"
    ).fetchone()
    return None if row is None else Anchor(int(row[0]), row[1])


def verify_audit(db: Db, expect: Anchor | None) -> AuditVerdict:
    """Check the whole chain (see `thumpflow.core.audit.check_chain`), streaming in id order."""

    def rows() -> Iterator[ChainRow]:
        yield from db.execute(
            "SELECT entry_id, at, actor, action, subject, detail, prev_hash, hash"
            " FROM audit ORDER BY entry_id"
        )

    def holder_of(digest: str) -> int | None:
        found = _one(db, "SELECT entry_id FROM audit WHERE hash = ? LIMIT 1", (digest,))
        return None if found is None else int(found)

    return check_chain(rows(), holder_of, expect)


def time_range(
    clauses: list[str],
    params: list[Any],
    time: str,
    row_id: str,
    query: EventQuery | DeliveryQuery,
) -> None:
    """Add a search's time range and keyset position (`core.search`) to its WHERE clauses."""
    if query.since is not None:
        clauses.append(f"{time} >= ?")
        params.append(query.since)
    if query.until is not None:
        clauses.append(f"{time} < ?")
        params.append(query.until)
    if query.after is not None:
        clauses.append(f"({time}, {row_id}) < (?, ?)")
        params.extend(query.after)


# delivery_sample's statements: delivered count, dead count (each capped by a third
# parameter), newest delivered (at, lag), newest dead (at); see `FreshnessStore`.
FreshnessSql = tuple[str, str, str, str]
COUNT_CAP = 1_000_000


def delivery_sample(
    db: Db, statements: FreshnessSql, destination_id: str, since: float, limit: int
) -> DeliverySample:
    """See `core.ports.FreshnessStore.delivery_sample`; run in one read transaction."""
    delivered_count, dead_count, delivered_rows, dead_rows = statements
    delivered = int(_one(db, delivered_count, (destination_id, since, COUNT_CAP)))
    dead = int(_one(db, dead_count, (since, destination_id, COUNT_CAP)))
    recent = tuple(
        (float(at), float(lag))
        for at, lag in db.execute(delivered_rows, (destination_id, since, limit))
    )
    died = tuple(float(row[0]) for row in db.execute(dead_rows, (since, destination_id, limit)))
    return DeliverySample(
        destination_id=destination_id,
        since=since,
        delivered=delivered,
        dead=dead,
        recent=recent,
        died=died,
        complete=len(recent) == delivered and len(died) == dead,
    )
