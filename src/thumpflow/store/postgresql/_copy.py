"""Copying an embedded SQLite store into an empty PostgreSQL store, row for row.

Every table is copied as stored: events and their bodies, idempotency keys,
deliveries in every status (pending ones keep their ids, attempts and
times), dead letters with their reasons, rejects, runs, watermarks, row
rejects, the delivery ledger, applied versions, tokens, alerts, pauses, the mode,
Subscription state, the counters, the encryption key checks, and the audit
trail with its hashes, so the chain verifies on the copy and anchors taken
before the copy still match. Sealed values are copied sealed (the same keys
open them); plain text in a payload column becomes UTF-8 `bytea`. Each
delivery gets its `key_seq` (its place among its destination and ordering
key's deliveries, by id), and the sequences and the chain head continue
after the copied rows.

The copy is one transaction: on any failure nothing is left in the target.
It refuses a target that already holds events, audit entries or runs. The
source is opened read-only; stop the engine before copying.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from thumpflow.core.errors import StoreError

# Tables in copy order, each with the columns whose text values go to bytea.
_TABLES: tuple[tuple[str, frozenset[str]], ...] = (
    ("events", frozenset()),
    ("idempotency", frozenset()),
    ("deliveries", frozenset({"last_error", "reason"})),
    ("applied_versions", frozenset()),
    ("rejects", frozenset()),
    ("audit", frozenset()),
    ("channel_counters", frozenset()),
    ("outbox_counters", frozenset()),
    ("runs", frozenset()),
    ("watermarks", frozenset()),
    ("row_rejects", frozenset({"record"})),
    ("delivery_ledger", frozenset()),
    ("api_tokens", frozenset()),
    ("cipher_keys", frozenset()),
    ("attempts", frozenset({"detail"})),
    ("pauses", frozenset()),
    ("alerts", frozenset()),
    ("subscription_state", frozenset()),
    ("operating_mode", frozenset()),
)

# Sequences to continue after the copied rows: (sequence, table, id column).
_SEQUENCES = (
    ("rejects_reject_id_seq", "rejects", "reject_id"),
    ("runs_run_id_seq", "runs", "run_id"),
    ("row_rejects_reject_id_seq", "row_rejects", "reject_id"),
    ("api_tokens_token_id_seq", "api_tokens", "token_id"),
    ("attempts_attempt_id_seq", "attempts", "attempt_id"),
    ("alerts_alert_id_seq", "alerts", "alert_id"),
)


@dataclass(slots=True)
class CopyCounts:
    """Rows copied per table."""

    rows: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        return ", ".join(f"{table} {count}" for table, count in self.rows.items())


def copy_sqlite(source: Path, target: psycopg.Connection[Any]) -> CopyCounts:
    """Copy the SQLite store file `source` into the migrated, empty store on `target`.

    `source` must be at the schema version this thumpflow writes, with its
    audit chain complete (open it read-write once first). Raises `StoreError`
    naming the reason; the target is then left as it was.
    """
    if not source.exists():
        raise StoreError(f"database {source} does not exist")
    conn = sqlite3.connect(source.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        with target.transaction():
            _refuse_non_empty(target)
            # The source's key checks replace those the target's `open` registered.
            target.execute("DELETE FROM cipher_keys")
            counts = CopyCounts()
            for table, texts in _TABLES:
                counts.rows[table] = _copy_table(conn, target, table, texts)
            _number_key_sequences(target)
            _continue_sequences(target)
            target.execute(
                "UPDATE audit_head SET (entry_id, hash) = (SELECT entry_id, hash FROM audit"
                " ORDER BY entry_id DESC LIMIT 1) WHERE one AND EXISTS (SELECT 1 FROM audit)"
            )
            target.execute(
                "UPDATE audit_head SET"
                " event_seq = (SELECT coalesce(max(event_seq), 0) FROM events),"
                " delivery_id = (SELECT coalesce(max(delivery_id), 0) FROM deliveries)"
                " WHERE one"
            )
        return counts
    except psycopg.Error as error:
        raise StoreError(f"copying into PostgreSQL failed: {error}") from None
    except sqlite3.Error as error:
        raise StoreError(f"reading {source.name} failed: {error}") from None
    finally:
        conn.close()


def _refuse_non_empty(target: psycopg.Connection[Any]) -> None:
    for table in ("events", "audit", "runs"):
        found = target.execute(
            sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(table))
        ).fetchone()
        if found is not None and found[0]:
            raise StoreError(
                f"the target store already holds data ({table}); copy into an empty database"
            )


def _copy_table(
    conn: sqlite3.Connection, target: psycopg.Connection[Any], table: str, texts: frozenset[str]
) -> int:
    source_columns = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
    target_columns = {
        row[0]
        for row in target.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = %s",
            (table,),
        )
    }
    columns = [column for column in source_columns if column in target_columns]
    if table == "deliveries":
        columns.append("key_seq")
    binary = [column in texts for column in columns]
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    selected = ", ".join("0" if column == "key_seq" else column for column in columns)
    count = 0
    with target.cursor() as cursor, cursor.copy(statement) as copy:
        for row in conn.execute(f"SELECT {selected} FROM {table}"):
            copy.write_row(
                [
                    value.encode("utf-8") if as_bytes and isinstance(value, str) else value
                    for value, as_bytes in zip(row, binary, strict=True)
                ]
            )
            count += 1
    return count


def _number_key_sequences(target: psycopg.Connection[Any]) -> None:
    """Give each delivery its place among its (destination, ordering key), by id."""
    target.execute(
        "UPDATE deliveries d SET key_seq = n.seq FROM (SELECT delivery_id, row_number()"
        " OVER (PARTITION BY destination_id, ordering_key ORDER BY delivery_id) AS seq"
        " FROM deliveries) n WHERE d.delivery_id = n.delivery_id"
    )
    target.execute(
        "INSERT INTO key_sequences (destination_id, ordering_key, seq)"
        " SELECT destination_id, ordering_key, count(*) FROM deliveries"
        " GROUP BY destination_id, ordering_key"
    )


def _continue_sequences(target: psycopg.Connection[Any]) -> None:
    for sequence, table, column in _SEQUENCES:
        target.execute(
            sql.SQL("SELECT setval({}, coalesce((SELECT max({}) FROM {}), 0) + 1, false)").format(
                sql.Literal(sequence), sql.Identifier(column), sql.Identifier(table)
            )
        )
