"""SQLite's writer: the shared group commit (`thumpflow.store.group`) on one connection.

One thread owns the write connection; each batch of queued operations is one
`BEGIN IMMEDIATE` transaction with one fsync (see `thumpflow.store.group`
for the ordering, isolation and failure guarantees). Ids (`event_seq`,
`delivery_id`) are handed out by this writer in call order.

Every audit entry is appended through the writer's `AuditChain` (hash
chained, in the transaction of the change it records), and every payload
column is sealed by the writer's `Codec` when encryption is configured.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from thumpflow.core.clock import Clock
from thumpflow.core.event import (
    Admission,
)
from thumpflow.core.retention import PurgeCounts
from thumpflow.store.crypt import (
    Codec,
)
from thumpflow.store.group import (
    Deltas,
    GroupWriter,
    Kind,
)
from thumpflow.store.handlers import BackendSql, shared_handlers
from thumpflow.store.ops import WriteContext
from thumpflow.store.ops.flow import admission_rows, known_keys, screen_admissions
from thumpflow.store.sqlite import (
    _rows,
)
from thumpflow.store.sqlite._audit import AuditChain, AuditRow

_log = logging.getLogger("thumpflow.store.sqlite")


_INSERT_DELIVERY = (
    "INSERT INTO deliveries (delivery_id, event_seq, destination_id, channel_id, ordering_key,"
    " lane, sequence, created_at, status, attempts, next_attempt_at, business_key, content_hash,"
    " ledger_version)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, 0, 0.0, ?, ?, ?)"
)
_INSERT_IDEMPOTENCY = (
    "INSERT INTO idempotency (key, event_id, ack_code, received_at, digest) VALUES (?, ?, ?, ?, ?)"
)
# Keys are bound one parameter each, not passed through json_each: SQLite's
# JSON functions end a text at NUL, and a control id may hold one.
_SELECT_KNOWN_KEYS = "SELECT key, event_id, ack_code, digest FROM idempotency WHERE key IN "
_KEYS_PER_SELECT = 500
_UPSERT_VERSION = (
    "INSERT INTO applied_versions (destination_id, ordering_key, version) VALUES (?, ?, ?)"
    " ON CONFLICT (destination_id, ordering_key)"
    " DO UPDATE SET version = max(version, excluded.version)"
)
_UPSERT_CHANNEL = (
    "INSERT INTO channel_counters (channel_id, received, duplicates, rejected, last_received_at)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (channel_id) DO UPDATE SET"
    " received = received + excluded.received,"
    " duplicates = duplicates + excluded.duplicates,"
    " rejected = rejected + excluded.rejected,"
    " last_received_at = coalesce(max(last_received_at, excluded.last_received_at),"
    " last_received_at, excluded.last_received_at)"
)
_UPSERT_OUTBOX = (
    "INSERT INTO outbox_counters (destination_id, channel_id, delivered, pending, dead,"
    " superseded, last_delivered_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (destination_id, channel_id) DO UPDATE SET"
    " delivered = delivered + excluded.delivered,"
    " pending = pending + excluded.pending,"
    " dead = dead + excluded.dead,"
    " superseded = superseded + excluded.superseded,"
    " last_delivered_at = coalesce(max(last_delivered_at, excluded.last_delivered_at),"
    " last_delivered_at, excluded.last_delivered_at)"
)
# What each write transaction starts from, read in one statement: the next event_seq,
# the last delivery_id handed out and the audit chain's committed head (id, hash).
_BEGIN = (
    "SELECT (SELECT coalesce(max(event_seq), 0) + 1 FROM events),"
    " (SELECT seq FROM sqlite_sequence WHERE name = 'deliveries'), h.entry_id, h.hash"
    " FROM (SELECT 1) LEFT JOIN"
    " (SELECT entry_id, hash FROM audit WHERE hash IS NOT NULL ORDER BY entry_id DESC LIMIT 1) h"
)


SQL = BackendSql(
    dialect=_rows.DIALECT,
    dead_filter=_rows.dead_filter,
    replay_lock="",
    newer_delivered=_rows.NEWER_DELIVERED,
    states_lock="",
    upsert_version=_UPSERT_VERSION,
)


class Writer(GroupWriter):
    """Owns the write connection and the thread that uses it; see the module docstring."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        clock: Clock,
        max_batch: int = 2000,
        codec: Codec | None = None,
    ) -> None:
        super().__init__(AuditChain(conn), max_batch, "thumpflow-store-writer")
        self._conn = conn
        self._clock = clock
        self._codec = codec or Codec()
        self._vacuum_after_commit = False
        self._next_event_seq = 0
        self._next_delivery_id = 0
        self._context = WriteContext(conn, self._audit, self._codec)
        shared = shared_handlers(self._context, SQL, clock)
        self._audit_purges = shared[Kind.PURGE_DONE]
        self.handlers = {**shared, Kind.ADMIT: self._admit, Kind.PURGE_DONE: self._purge_done}

    def _begin(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")
        self._vacuum_after_commit = False
        event_seq, delivery_seq, head_id, head_hash = self._conn.execute(_BEGIN).fetchone()
        self._audit.set_head(head_id, head_hash)
        self._next_event_seq = event_seq
        self._next_delivery_id = (delivery_seq or 0) + 1

    def _finish(self, deltas: Deltas) -> None:
        if deltas.channels:
            self._conn.executemany(_UPSERT_CHANNEL, deltas.channel_rows())
        if deltas.outboxes:
            self._conn.executemany(_UPSERT_OUTBOX, deltas.outbox_rows())
        self._commit()

    def _commit(self) -> None:
        self._conn.execute("COMMIT")

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            try:
                self._conn.execute("ROLLBACK")
            except sqlite3.Error:
                _log.exception("rollback after a failed group commit failed")

    def _statement(self, sql: str) -> None:
        self._conn.execute(sql)

    def _after_commit(self) -> None:
        if self._vacuum_after_commit:
            self._vacuum()

    def _vacuum(self) -> None:
        """Give pages freed by a purge back to the file system, then truncate the WAL.

        Runs after the purge committed, in its own transaction; a failure is
        logged (the pages stay free inside the file and are reused).
        """
        try:
            if self._conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2:
                self._conn.executescript("PRAGMA incremental_vacuum;")
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.Error as exc:
            _log.warning("reclaiming space after a purge failed (%s)", type(exc).__name__)

    def _admit(self, admissions: list[Admission], deltas: Deltas) -> list[Any]:
        conn = self._conn
        keys = known_keys(admissions)
        known: dict[str, tuple[str, str, str | None]] = {}
        for start in range(0, len(keys), _KEYS_PER_SELECT):
            chunk = keys[start : start + _KEYS_PER_SELECT]
            marks = "(" + ",".join("?" * len(chunk)) + ")"
            known.update(
                (row[0], (row[1], row[2], row[3]))
                for row in conn.execute(_SELECT_KNOWN_KEYS + marks, chunk)
            )
        audit_rows: list[AuditRow] = []
        answers, accepted = screen_admissions(admissions, known, deltas, audit_rows)
        events = sum(1 + len(admission.derived) for _, admission, _ in accepted)
        deliveries = sum(len(admission.deliveries) for _, admission, _ in accepted)
        ids = (
            iter(range(self._next_event_seq, self._next_event_seq + events)),
            iter(range(self._next_delivery_id, self._next_delivery_id + deliveries)),
        )
        self._next_event_seq += events
        self._next_delivery_id += deliveries
        rows = admission_rows(accepted, answers, deltas, self._codec, ids)
        if rows.events:
            conn.executemany(_rows.INSERT_EVENT, rows.events)
        if rows.deliveries:
            conn.executemany(_INSERT_DELIVERY, rows.deliveries)
        if rows.keys:
            conn.executemany(_INSERT_IDEMPOTENCY, rows.keys)
        self._audit.append(audit_rows)
        return answers

    def _purge_done(self, totals: list[PurgeCounts], deltas: Deltas) -> list[Any]:
        """Audit each finished purge (counts only) and reclaim the space after the commit."""
        self._vacuum_after_commit = True
        answers: list[Any] = self._audit_purges(totals, deltas)
        return answers
