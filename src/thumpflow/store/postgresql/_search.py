"""PostgreSQL's searches and freshness reads: keyset pages over its indexes.

Searches list newest first by (time, id) and page by keyset, like SQLite's
(`core.search`); the planner picks among the indexes of `schema_0001.sql`
(one per filter, each ending in time and id). A patient id is searched
without its assigning authority through the `events_patient` expression
index (`MRN123` finds `GEN|MRN123`); one given with its authority is also
compared whole.
"""

from __future__ import annotations

from typing import Any

from thumpflow.core.search import (
    DeliveryQuery,
    DeliveryRecord,
    EventQuery,
    EventSummary,
)
from thumpflow.store import reads
from thumpflow.store.crypt import Codec
from thumpflow.store.ops import Db, Dialect
from thumpflow.store.reads import EVENT_SUMMARY_COLUMNS
from thumpflow.store.rows import RECORD_COLUMNS, STATUS_CODES, record_from_row

PATIENT_ID = "substr(e.entity_id, strpos(e.entity_id, '|') + 1)"


def _where(clauses: list[str]) -> str:
    return f" WHERE {' AND '.join(clauses)}" if clauses else ""


def search_events(db: Db, dialect: Dialect, query: EventQuery) -> list[EventSummary]:
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (
        ("e.correlation_id", query.control_id),
        ("e.event_type", query.event_type),
        ("e.channel_id", query.channel_id),
    ):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if query.entity_id is not None:
        clauses.append(f"{PATIENT_ID} = ?")
        params.append(query.entity_id.partition("|")[2] or query.entity_id)
        if "|" in query.entity_id:
            clauses.append("e.entity_id = ?")
            params.append(query.entity_id)
    if query.status is not None:
        clauses.append(
            "EXISTS (SELECT 1 FROM deliveries d WHERE d.event_seq = e.event_seq"
            f" AND d.status = {STATUS_CODES[query.status]})"
        )
    if query.converted_in_part:
        clauses.append(reads.CONVERTED_IN_PART_CLAUSE)
    reads.time_range(clauses, params, "e.received_at", "e.event_seq", query)
    sql = (
        f"SELECT {EVENT_SUMMARY_COLUMNS} FROM events e{_where(clauses)}"
        " ORDER BY e.received_at DESC, e.event_seq DESC LIMIT ?"
    )
    rows = db.execute(sql, (*params, query.limit)).fetchall()
    return reads.with_statuses(db, dialect, rows)


def search_deliveries(db: Db, query: DeliveryQuery, codec: Codec) -> list[DeliveryRecord]:
    clauses: list[str] = []
    params: list[Any] = []
    if query.event_id is not None:
        clauses.append("d.event_seq = (SELECT event_seq FROM events WHERE event_id = ?)")
        params.append(query.event_id)
    if query.status is not None:
        clauses.append(f"d.status = {STATUS_CODES[query.status]}")
    for column, value in (
        ("d.destination_id", query.destination_id),
        ("d.channel_id", query.channel_id),
    ):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    reads.time_range(clauses, params, "d.created_at", "d.delivery_id", query)
    sql = (
        f"SELECT {RECORD_COLUMNS} FROM deliveries d"
        f" JOIN events e ON e.event_seq = d.event_seq{_where(clauses)}"
        " ORDER BY d.created_at DESC, d.delivery_id DESC LIMIT ?"
    )
    return [record_from_row(row, codec) for row in db.execute(sql, (*params, query.limit))]


# delivery_sample's statements (`thumpflow.store.reads.delivery_sample`).
FRESHNESS = (
    "SELECT count(*) FROM (SELECT 1 FROM deliveries WHERE destination_id = ?"
    " AND status = 1 AND delivered_at >= ? LIMIT ?) AS capped",
    "SELECT count(*) FROM (SELECT 1 FROM deliveries WHERE status = 2 AND died_at >= ?"
    " AND destination_id = ? LIMIT ?) AS capped",
    "SELECT delivered_at, delivered_at - created_at FROM deliveries"
    " WHERE destination_id = ? AND status = 1 AND delivered_at >= ?"
    " ORDER BY delivered_at DESC LIMIT ?",
    "SELECT died_at FROM deliveries WHERE status = 2 AND died_at >= ?"
    " AND destination_id = ? ORDER BY died_at DESC LIMIT ?",
)
