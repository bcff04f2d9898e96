"""Reads for the API's searches and timelines, and the writes for pauses.

Every search is one index range read in (time, id) order, newest first, cut
by a keyset position and a limit (see `core.search` and `schema_0008.sql`);
`events_sql` / `deliveries_sql` give the SQL so tests can check the query
plan (`tests/store/test_search_indexes.py`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from thumpflow.core.event import AuditEntry, DeliveryStatus
from thumpflow.core.lanes import Lane
from thumpflow.core.search import (
    Attempt,
    DeliveryQuery,
    DeliveryRecord,
    EventQuery,
    EventSummary,
    Pause,
    PauseKind,
    Timeline,
)
from thumpflow.store.crypt import (
    ATTEMPT_DETAIL,
    Codec,
)
from thumpflow.store.rows import (
    AUDIT_COLUMNS,
    RECORD_COLUMNS,
    STATUS_CODES,
    STATUS_OF,
    audit_from_row,
    record_from_row,
)
from thumpflow.store.sqlite import _rows

_EVENT_COLUMNS = (
    "e.event_seq, e.event_id, e.channel_id, e.event_type, e.entity_type, e.entity_id,"
    " e.source_system, e.correlation_id, e.received_at, e.occurred_at, e.lane, e.causation_id"
)
__all__ = ["AUDIT_COLUMNS", "STATUS_CODES", "audit_from_row"]

INSERT_ATTEMPT = (
    "INSERT INTO attempts (delivery_id, attempt, at, outcome, detail) VALUES (?, ?, ?, ?, ?)"
)


# The entity id without its assigning authority: the expression `events_patient` indexes.
PATIENT_ID = "substr(e.entity_id, instr(e.entity_id, '|') + 1)"

# Statuses few deliveries hold: searches by them start from their partial indexes;
# for `delivered` they walk newest first and check each row.
_RARE = frozenset({DeliveryStatus.PENDING, DeliveryStatus.DEAD, DeliveryStatus.SUPERSEDED})


def _equalities(
    pairs: Sequence[tuple[str, object | None]], clauses: list[str], params: list[Any]
) -> None:
    """Equality filters in order of selectivity: only the first given one may use its index.

    The others are written `+column` (no index), so the planner never walks a broad
    index (a channel's) when a narrow one (a patient's) fits the same query.
    """
    indexed = False
    for column, value in pairs:
        if value is None:
            continue
        unindexed = column if column.startswith("+") else "+" + column
        clauses.append(f"{unindexed if indexed else column} = ?")
        params.append(value)
        indexed = True


def events_sql(query: EventQuery) -> tuple[str, list[Any]]:
    """The SQL and parameters of an event search (exposed for query-plan tests).

    A patient id is searched without its assigning authority through
    `events_patient` (`MRN123` finds it under any authority); one given with
    its authority (`GEN|MRN123`) is also compared whole.
    """
    clauses: list[str] = []
    params: list[Any] = []
    bare = None if query.entity_id is None else query.entity_id.partition("|")[2]
    if query.entity_id is not None and "|" in query.entity_id:
        clauses.append("+e.entity_id = ?")
        params.append(query.entity_id)
    elif query.entity_id is not None:
        bare = query.entity_id
    _equalities(
        (
            ("e.correlation_id", query.control_id),
            (PATIENT_ID, bare),
            ("e.event_type", query.event_type),
            ("e.channel_id", query.channel_id),
        ),
        clauses,
        params,
    )
    if query.status is not None:
        # A literal code, not a parameter, so the planner may use the index on status.
        code = STATUS_CODES[query.status]
        if query.status in _RARE:
            clauses.append(
                f"e.event_seq IN (SELECT d.event_seq FROM deliveries d WHERE d.status = {code})"
            )
        else:
            clauses.append(
                "EXISTS (SELECT 1 FROM deliveries d WHERE d.event_seq = e.event_seq"
                f" AND d.status = {code})"
            )
    _time_range(clauses, params, "e.received_at", "e.event_seq", query)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    sql = (
        f"SELECT {_EVENT_COLUMNS} FROM events e{where}"
        " ORDER BY e.received_at DESC, e.event_seq DESC LIMIT ?"
    )
    return sql, [*params, query.limit]


def deliveries_sql(query: DeliveryQuery) -> tuple[str, list[Any]]:
    """The SQL and parameters of a delivery search (exposed for query-plan tests).

    Index choice: an event's deliveries by `deliveries_event`; a pending, dead
    or superseded status by its partial index (few rows, newest first); else a
    destination, else a channel, else time. The status is a literal, not a
    parameter, so the planner can match the partial indexes.
    """
    clauses: list[str] = []
    params: list[Any] = []
    status = query.status
    if query.event_id is not None:
        clauses.append("d.event_seq = (SELECT event_seq FROM events WHERE event_id = ?)")
        params.append(query.event_id)
    rare = status in _RARE and query.event_id is None
    if status is not None:
        clauses.append(f"{'d' if rare else '+d'}.status = {STATUS_CODES[status]}")
    prefix = "+d" if rare or query.event_id is not None else "d"
    _equalities(
        (
            (f"{prefix}.destination_id", query.destination_id),
            (f"{prefix}.channel_id", query.channel_id),
        ),
        clauses,
        params,
    )
    _time_range(clauses, params, "d.created_at", "d.delivery_id", query)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    sql = (
        f"SELECT {RECORD_COLUMNS} FROM deliveries d"
        f" JOIN events e ON e.event_seq = d.event_seq{where}"
        " ORDER BY d.created_at DESC, d.delivery_id DESC LIMIT ?"
    )
    return sql, [*params, query.limit]


def _time_range(
    clauses: list[str],
    params: list[Any],
    time: str,
    row_id: str,
    query: EventQuery | DeliveryQuery,
) -> None:
    if query.since is not None:
        clauses.append(f"{time} >= ?")
        params.append(query.since)
    if query.until is not None:
        clauses.append(f"{time} < ?")
        params.append(query.until)
    if query.after is not None:
        clauses.append(f"({time}, {row_id}) < (?, ?)")
        params.extend(query.after)


def search_events(conn: sqlite3.Connection, query: EventQuery) -> list[EventSummary]:
    sql, params = events_sql(query)
    rows = conn.execute(sql, params).fetchall()
    return _with_statuses(conn, rows)


def search_deliveries(
    conn: sqlite3.Connection, query: DeliveryQuery, codec: Codec
) -> list[DeliveryRecord]:
    sql, params = deliveries_sql(query)
    return [record_from_row(row, codec) for row in conn.execute(sql, params)]


def _with_statuses(conn: sqlite3.Connection, rows: Sequence[Any]) -> list[EventSummary]:
    """Event summaries with their deliveries counted by status (one indexed query)."""
    counts: dict[int, dict[DeliveryStatus, int]] = {}
    if rows:
        seqs = json.dumps([row[0] for row in rows])
        for event_seq, status, count in conn.execute(
            "SELECT event_seq, status, count(*) FROM deliveries"
            " WHERE event_seq IN (SELECT value FROM json_each(?)) GROUP BY event_seq, status",
            (seqs,),
        ):
            counts.setdefault(event_seq, {})[STATUS_OF[status]] = count
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


def timeline(conn: sqlite3.Connection, event_id: str, codec: Codec) -> Timeline | None:
    """Everything the store knows of one event; None when no event has that id."""
    found = conn.execute(
        f"SELECT {_EVENT_COLUMNS} FROM events e WHERE e.event_id = ?", (event_id,)
    ).fetchall()
    if not found:
        return None
    derived_rows = conn.execute(
        f"SELECT {_EVENT_COLUMNS} FROM events e WHERE e.causation_id = ? ORDER BY e.event_seq",
        (event_id,),
    ).fetchall()
    summaries = _with_statuses(conn, [*found, *derived_rows])
    seqs = json.dumps([summary.event_seq for summary in summaries])
    delivery_rows = conn.execute(
        f"SELECT {RECORD_COLUMNS} FROM deliveries d JOIN events e ON e.event_seq = d.event_seq"
        " WHERE d.event_seq IN (SELECT value FROM json_each(?)) ORDER BY d.delivery_id",
        (seqs,),
    ).fetchall()
    ids = json.dumps([row[0] for row in delivery_rows])
    attempts: dict[int, list[Attempt]] = {}
    for delivery_id, attempt, at, outcome, detail in conn.execute(
        "SELECT delivery_id, attempt, at, outcome, detail FROM attempts"
        " WHERE delivery_id IN (SELECT value FROM json_each(?)) ORDER BY attempt_id",
        (ids,),
    ):
        text = codec.open_text(detail, ATTEMPT_DETAIL) or ""
        attempts.setdefault(delivery_id, []).append(Attempt(attempt, at, outcome, text))
    subjects = [summary.event_id for summary in summaries]
    subjects += [f"delivery:{row[0]}" for row in delivery_rows]
    audit = [
        audit_from_row(row)
        for row in conn.execute(
            f"SELECT {AUDIT_COLUMNS} FROM audit"
            " WHERE subject IN (SELECT value FROM json_each(?)) ORDER BY entry_id",
            (json.dumps(subjects),),
        )
    ]
    delivered_detail = {
        entry.subject: entry.detail for entry in audit if entry.action == "delivered"
    }
    for row in delivery_rows:
        _add_success(row, attempts, delivered_detail)
    return Timeline(
        event=summaries[0],
        derived=tuple(summaries[1:]),
        deliveries=tuple(
            record_from_row(row, codec, tuple(attempts.get(row[0], ()))) for row in delivery_rows
        ),
        audit=tuple(audit),
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
    if status != _rows.DELIVERED or delivered_at is None:
        return
    log = attempts.setdefault(delivery_id, [])
    if any(attempt.outcome == "delivered" for attempt in log):
        return
    detail = details.get(f"delivery:{delivery_id}", "")
    log.append(Attempt(count, delivered_at, "delivered", detail))


def audit_page(conn: sqlite3.Connection, before: int | None, limit: int) -> list[AuditEntry]:
    """Audit entries newest first, with entry id below `before` when given."""
    if before is None:
        sql, params = f"SELECT {AUDIT_COLUMNS} FROM audit ORDER BY entry_id DESC LIMIT ?", [limit]
    else:
        sql = f"SELECT {AUDIT_COLUMNS} FROM audit WHERE entry_id < ? ORDER BY entry_id DESC LIMIT ?"
        params = [before, limit]
    return [audit_from_row(row) for row in conn.execute(sql, params)]


def pauses(conn: sqlite3.Connection) -> list[Pause]:
    return [
        Pause(PauseKind(row[0]), row[1], row[2], row[3], row[4])
        for row in conn.execute(
            "SELECT kind, target_id, paused_at, actor, reason FROM pauses ORDER BY kind, target_id"
        )
    ]
