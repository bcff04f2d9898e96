"""Reads for the API's searches and timelines, and the writes for pauses.

Every search is one index range read in (time, id) order, newest first, cut
by a keyset position and a limit (see `core.search` and `schema_0008.sql`);
`events_sql` / `deliveries_sql` give the SQL so tests can check the query
plan (`tests/store/test_search_indexes.py`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from thumpflow.core.event import DeliveryStatus
from thumpflow.core.search import (
    DeliveryQuery,
    DeliveryRecord,
    EventQuery,
    EventSummary,
)
from thumpflow.store import reads
from thumpflow.store.crypt import (
    Codec,
)
from thumpflow.store.reads import EVENT_SUMMARY_COLUMNS
from thumpflow.store.rows import (
    RECORD_COLUMNS,
    STATUS_CODES,
    record_from_row,
)
from thumpflow.store.sqlite._rows import DIALECT

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
    if query.converted_in_part:
        clauses.append(reads.CONVERTED_IN_PART_CLAUSE)
    reads.time_range(clauses, params, "e.received_at", "e.event_seq", query)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    sql = (
        f"SELECT {EVENT_SUMMARY_COLUMNS} FROM events e{where}"
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
    reads.time_range(clauses, params, "d.created_at", "d.delivery_id", query)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    sql = (
        f"SELECT {RECORD_COLUMNS} FROM deliveries d"
        f" JOIN events e ON e.event_seq = d.event_seq{where}"
        " ORDER BY d.created_at DESC, d.delivery_id DESC LIMIT ?"
    )
    return sql, [*params, query.limit]


def search_events(conn: sqlite3.Connection, query: EventQuery) -> list[EventSummary]:
    sql, params = events_sql(query)
    rows = conn.execute(sql, params).fetchall()
    return reads.with_statuses(conn, DIALECT, rows)


def search_deliveries(
    conn: sqlite3.Connection, query: DeliveryQuery, codec: Codec
) -> list[DeliveryRecord]:
    sql, params = deliveries_sql(query)
    return [record_from_row(row, codec) for row in conn.execute(sql, params)]
