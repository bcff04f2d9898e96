"""PostgreSQL's writer: the shared group commit (`thumpflow.store.group`) on one connection.

One thread owns the write connection; each batch of queued operations is one
transaction, committed once (PostgreSQL flushes the WAL at COMMIT with
`synchronous_commit = on`; with a synchronous standby COMMIT also waits for it).

Every write transaction first locks the audit chain's head row
(`SELECT ... FROM audit_head FOR UPDATE`) and keeps it until COMMIT. So:
- the audit trail stays one chain however many nodes write, with the
  entries of one transaction together;
- ids (`event_seq`, `delivery_id`) are taken from their sequences only
  while the lock is held, so they commit in the order they were taken, on
  every node: `load_pending(after_delivery_id)` never passes over a delivery
  that commits later;
- each delivery also gets `key_seq`, its place among the deliveries of its
  (destination, ordering key), from an upsert `RETURNING seq` in the same
  transaction.
Statements whose results are not read (inserts, audit entries, savepoints,
counters, COMMIT) wait in the connection's pending script (`ScriptDb`) and go
to the server together; so does BEGIN with the head's read, whose row arrives
with the transaction's first round trip (`HeadOnDemand`: ids and audit
entries are taken only once it has), and an operation's own statements go
with the next round trip, not at the end of its segment (a failure among
them has the batch executed again, checked in place: `_recheck`). A batch of
admissions costs two round trips (the key-sequence upsert rides with the
idempotency probe), each one made while every node's writes wait for the lock.
The statements every transaction sends whose plan cannot change (the head's
read and update, the key-sequence upsert, the counters, the pending notice)
are prepared on the connection (`_PREPARED`).
A connection that broke is replaced at the next batch; the batch that met
the break fails with `StoreError` and nothing of it is committed.

The lock is held only while a transaction runs, but a node frozen inside one
(SIGSTOP, a stalled VM) would hold it for as long as it is frozen and stall
every node's writes. The writer's session therefore has
`idle_in_transaction_session_timeout` (`IDLE_IN_TRANSACTION_MS`, below the
default cluster lease): the server ends such a session, its transaction
rolls back (nothing of it was acknowledged), and the frozen node's batch
fails with `StoreError` when it runs again.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from thumpflow.core.clock import Clock
from thumpflow.core.errors import StoreError
from thumpflow.core.event import (
    Admission,
    DeadLetterFilter,
)
from thumpflow.store.chain import AuditChain, AuditRow, ChainedRow
from thumpflow.store.crypt import Codec
from thumpflow.store.group import (
    Deltas,
    GroupWriter,
    Kind,
)
from thumpflow.store.handlers import BackendSql, shared_handlers
from thumpflow.store.ops import Dialect, WriteContext
from thumpflow.store.ops.flow import admission_rows, known_keys, screen_admissions
from thumpflow.store.postgresql._db import as_bytes
from thumpflow.store.postgresql._script import ScriptDb
from thumpflow.store.rows import (
    EVENT_FIELDS,
)

_log = logging.getLogger("thumpflow.store.postgresql")

DIALECT = Dialect(in_ids="= ANY(?)", ids=list, sealed_prefix="substr({column}, 1, ?) = ?")

_HEAD = "SELECT entry_id, hash, event_seq, delivery_id FROM audit_head WHERE one FOR UPDATE"
_SET_HEAD = "UPDATE audit_head SET entry_id = ?, hash = ?, event_seq = ?, delivery_id = ? WHERE one"
_INSERT_AUDIT = (
    "INSERT INTO audit (entry_id, at, actor, action, subject, detail, prev_hash, hash)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_EVENT = (
    f"INSERT INTO events (event_seq, {', '.join(EVENT_FIELDS)})"
    f" VALUES (?{', ?' * len(EVENT_FIELDS)})"
)
_INSERT_DELIVERY = (
    "INSERT INTO deliveries (delivery_id, event_seq, destination_id, channel_id, ordering_key,"
    " key_seq, lane, sequence, created_at, status, attempts, next_attempt_at, business_key,"
    " content_hash, ledger_version)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, 0.0, ?, ?, ?)"
)
_INSERT_IDEMPOTENCY = (
    "INSERT INTO idempotency (key, event_id, ack_code, received_at, digest) VALUES (?, ?, ?, ?, ?)"
)
# Wakes the nodes' partition tail readers (`PostgresStore.follow_pending`): delivered by
# the server at COMMIT, to listeners only, one per destination and transaction.
PENDING_CHANNEL = "thumpflow_pending"
_NOTIFY_PENDING = f"SELECT pg_notify('{PENDING_CHANNEL}', d) FROM unnest(?::text[]) AS d"
_KEY_SEQUENCES = (
    "INSERT INTO key_sequences (destination_id, ordering_key, seq)"
    " SELECT * FROM unnest(?::text[], ?::text[], ?::bigint[])"
    " ON CONFLICT (destination_id, ordering_key)"
    " DO UPDATE SET seq = key_sequences.seq + excluded.seq"
    " RETURNING destination_id, ordering_key, seq"
)
_UPSERT_VERSION = (
    "INSERT INTO applied_versions (destination_id, ordering_key, version) VALUES (?, ?, ?)"
    " ON CONFLICT (destination_id, ordering_key)"
    " DO UPDATE SET version = greatest(applied_versions.version, excluded.version)"
)
_UPSERT_CHANNEL = (
    "INSERT INTO channel_counters (channel_id, received, duplicates, rejected, last_received_at)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (channel_id) DO UPDATE SET"
    " received = channel_counters.received + excluded.received,"
    " duplicates = channel_counters.duplicates + excluded.duplicates,"
    " rejected = channel_counters.rejected + excluded.rejected,"
    " last_received_at = greatest(channel_counters.last_received_at, excluded.last_received_at)"
)
_UPSERT_OUTBOX = (
    "INSERT INTO outbox_counters (destination_id, channel_id, delivered, pending, dead,"
    " superseded, last_delivered_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (destination_id, channel_id) DO UPDATE SET"
    " delivered = outbox_counters.delivered + excluded.delivered,"
    " pending = outbox_counters.pending + excluded.pending,"
    " dead = outbox_counters.dead + excluded.dead,"
    " superseded = outbox_counters.superseded + excluded.superseded,"
    " last_delivered_at = greatest(outbox_counters.last_delivered_at,"
    " excluded.last_delivered_at)"
)


IDLE_IN_TRANSACTION_MS = 3000


def _server_error(failure: BaseException, conn: psycopg.Connection[Any]) -> bool:
    """`failure` (or what caused it) is an error the server reported on a connection
    still open: the statement failed there, so its transaction did not commit."""
    cause: BaseException | None = failure
    while cause is not None and not isinstance(cause, psycopg.Error):
        cause = cause.__cause__
    return (
        isinstance(cause, psycopg.Error)
        and cause.sqlstate is not None
        and not (conn.closed or conn.broken)
    )


def _bounded_idle(conn: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    """The writer's connection: a transaction left idle (a frozen process) is ended."""
    conn.execute(f"SET idle_in_transaction_session_timeout = {IDLE_IN_TRANSACTION_MS}")
    return conn


def dead_filter(flt: DeadLetterFilter, codec: Codec) -> tuple[str, list[Any]]:
    """WHERE clause (over `deliveries d JOIN events e`) for dead deliveries matching `flt`.

    As SQLite's: fields combine with AND, an empty `delivery_ids` matches
    nothing, and with encryption `reason_contains` is left to the caller.
    """
    clauses = ["d.status = 2"]
    params: list[Any] = []
    for column, value in (
        ("d.destination_id", flt.destination_id),
        ("d.channel_id", flt.channel_id),
        ("e.event_type", flt.event_type),
    ):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if flt.reason_contains is not None and not codec.encrypts:
        clauses.append("position(?::bytea in d.reason) > 0")
        params.append(flt.reason_contains.encode("utf-8"))
    if flt.delivery_ids is not None:
        clauses.append("d.delivery_id = ANY(?::bigint[])")
        params.append(list(flt.delivery_ids))
    return " AND ".join(clauses), params


# The latest delivered delivery of a dead one's destination and ordering key, committed
# after it: through the entity's events (`events_patient`, then `deliveries_event`), as
# a delivery's ordering key is its event's `entity_type/entity_id`.
_NEWER_DELIVERED = (
    "SELECT n.delivery_id, n.delivered_at FROM deliveries d"
    " JOIN events e ON e.event_seq = d.event_seq"
    " JOIN events ne ON substr(ne.entity_id, strpos(ne.entity_id, '|') + 1)"
    " = substr(e.entity_id, strpos(e.entity_id, '|') + 1)"
    " AND ne.entity_id = e.entity_id AND ne.entity_type = e.entity_type"
    " AND ne.event_seq >= e.event_seq"
    " JOIN deliveries n ON n.event_seq = ne.event_seq"
    " WHERE d.delivery_id = ? AND n.destination_id = d.destination_id"
    " AND n.ordering_key = d.ordering_key AND n.status = 1 AND n.delivery_id > d.delivery_id"
    " ORDER BY n.delivery_id DESC LIMIT 1"
)

SQL = BackendSql(
    dialect=DIALECT,
    dead_filter=dead_filter,
    replay_lock=" FOR UPDATE OF d",
    newer_delivered=_NEWER_DELIVERED,
    states_lock=" FOR UPDATE",
    upsert_version=_UPSERT_VERSION,
    clock_sql="SELECT extract(epoch FROM clock_timestamp())::float8",
)

# The statements of nearly every write transaction whose plan does not depend on how
# many rows a table holds: prepared once a connection, they are not parsed, analysed
# and planned again in each (`ScriptDb`). Reads that search a growing table (the
# idempotency probe, an outcome record's delivery states) are planned each time: a
# plan the server kept from when the table was small scanned all of it (measured).
_PREPARED = (_HEAD, _KEY_SEQUENCES, _SET_HEAD, _UPSERT_CHANNEL, _UPSERT_OUTBOX, _NOTIFY_PENDING)


# A snapshot of the chain taken before its head was read (see `HeadOnDemand`).
_UNREAD = (-1, "")


class HeadOnDemand(AuditChain):
    """The chain of a transaction whose head row is read with its first round trip
    (the `SELECT ... FOR UPDATE` waits in the pending script, first after BEGIN).

    Appending (or taking ids: `ensure`) before the head is known sends the
    script (`read`) so it is. A snapshot taken before that is `_UNREAD`;
    restoring it puts back the head as read, which is right because the head's
    read came before any savepoint.
    """

    __slots__ = ("_read", "_start", "known")

    def __init__(self, insert: Callable[[list[ChainedRow]], Any], read: Callable[[], None]) -> None:
        super().__init__(insert)
        self._read = read
        self._start = super().snapshot()
        self.known = False

    def forget(self) -> None:
        """A new transaction: its head is not read yet."""
        self.known = False

    def set_head(self, entry_id: int | None, digest: str | None) -> None:
        super().set_head(entry_id, digest)
        self._start = super().snapshot()
        self.known = True

    def snapshot(self) -> tuple[int, str]:
        return super().snapshot() if self.known else _UNREAD

    def restore(self, head: tuple[int, str]) -> None:
        if head != _UNREAD:
            super().restore(head)
        elif self.known:
            super().restore(self._start)

    def ensure(self) -> None:
        """Have the head read, if it is not yet (sends the pending script)."""
        if not self.known:
            self._read()

    def append(self, rows: Sequence[AuditRow]) -> None:
        if rows:
            self.ensure()
        super().append(rows)


class Writer(GroupWriter):
    """Owns the write connection and the thread that uses it; see the module docstring."""

    def __init__(
        self,
        connect: Callable[[], psycopg.Connection[Any]],
        clock: Clock,
        max_batch: int = 2000,
        codec: Codec | None = None,
    ) -> None:
        self._connect: Callable[[], psycopg.Connection[Any]] = lambda: _bounded_idle(connect())
        self._db = ScriptDb(self._connect(), _PREPARED)
        self._chain = HeadOnDemand(lambda rows: self._db.defer(_INSERT_AUDIT, rows), self._db.flush)
        super().__init__(
            self._chain,
            max_batch,
            "thumpflow-store-writer",
        )
        self._clock = clock
        self._codec = codec or Codec()
        self._head: tuple[Any, ...] = ()
        # True while a batch is executed again with each operation checked in place.
        self._checked = False
        self._last_ids = [0, 0]
        self._pending: set[str] = set()
        self._context = WriteContext(self._db, self._audit, self._codec, as_bytes)
        self.handlers = {
            **shared_handlers(self._context, SQL, clock),
            Kind.ADMIT: self._admit,
        }

    def _disconnect(self) -> None:
        self._db.conn.close()

    def _begin(self) -> None:
        if self._db.conn.closed or self._db.conn.broken:
            self._db.conn.close()
            self._db.rebind(self._connect())
        self._db.clear()
        self._chain.forget()
        self._db.defer_statement("BEGIN")
        self._db.defer_read(_HEAD, (), self._on_head)
        self._pending.clear()

    def _on_head(self, rows: list[Any]) -> None:
        """The locked head row, read with the transaction's first round trip."""
        if not rows:
            raise StoreError("the store has no audit_head row; its schema was altered")
        head = rows[0]
        self._audit.set_head(head[0], head[1])
        self._last_ids = [int(head[2]), int(head[3])]
        self._head = self._state()

    def _state(self) -> tuple[Any, ...]:
        return (*self._audit.snapshot(), *self._last_ids)

    def _finish(self, deltas: Deltas) -> None:
        db = self._db
        db.defer(_UPSERT_CHANNEL, deltas.channel_rows())
        db.defer(_UPSERT_OUTBOX, deltas.outbox_rows())
        # A head never read (nothing in the batch read) took no ids and no entries.
        if self._chain.known and (state := self._state()) != self._head:
            db.defer(_SET_HEAD, [state])
        if self._pending:
            db.defer(_NOTIFY_PENDING, [(sorted(self._pending),)])
        # COMMIT in a transaction aborted without an error reaching us would end it
        # as ROLLBACK, silently: checked, so that no caller is told it committed.
        if db.execute("COMMIT").statusmessage != "COMMIT":
            raise StoreError("the server rolled the group commit back at COMMIT")

    def _rollback(self) -> None:
        self._db.clear()
        conn = self._db.conn
        if conn.closed or conn.broken:
            return
        try:
            conn.execute("ROLLBACK")
        except psycopg.Error:
            _log.exception("rollback after a failed group commit failed")

    def _statement(self, sql: str) -> None:
        """Savepoints join the pending script."""
        self._db.defer_statement(sql)

    def _abandon(self, savepoint: str) -> None:
        """A savepoint still in the pending script is dropped with everything after it
        (none of it reached the server); one sent is rolled back to and released."""
        if not self._db.drop_from(f"SAVEPOINT {savepoint}"):
            self._db.conn.execute(
                f"ROLLBACK TO SAVEPOINT {savepoint}; RELEASE SAVEPOINT {savepoint}".encode("ascii")
            )

    def _sync(self) -> None:
        """An operation's statements wait for the next round trip, unless the batch is
        being executed again after a failure among them (`_recheck`)."""
        if self._checked:
            self._db.flush()

    def _recheck(self, failure: BaseException) -> bool:
        """Once per batch, after an error the server reported: the transaction was
        rolled back by it, so nothing is committed, and the connection is usable.
        Not after a broken connection (a COMMIT may or may not have happened)."""
        self._checked = not self._checked and _server_error(failure, self._db.conn)
        return self._checked

    def _after_commit(self) -> None:
        self._checked = False

    def _take(self, which: int, count: int) -> range:
        """`count` new event (0) or delivery (1) ids, ascending (the head lock is held)."""
        self._chain.ensure()
        first = self._last_ids[which] + 1
        self._last_ids[which] += count
        return range(first, first + count)

    @staticmethod
    def _upsert_values(counts: dict[tuple[str, str], int]) -> tuple[list[Any], ...]:
        """The key-sequence upsert's parameters: destinations, ordering keys, counts."""
        return [key[0] for key in counts], [key[1] for key in counts], list(counts.values())

    @staticmethod
    def _seqs(
        keys: list[tuple[str, str]], counts: dict[tuple[str, str], int], rows: list[Any]
    ) -> list[int]:
        """Each key's sequence, in order, from the upsert's rows (the last ones taken)."""
        last = {(row[0], row[1]): int(row[2]) for row in rows}
        taken: dict[tuple[str, str], int] = {}
        result = []
        for key in keys:
            n = taken.get(key, 0)
            taken[key] = n + 1
            result.append(last[key] - counts[key] + 1 + n)
        return result

    def _key_seqs(self, keys: list[tuple[str, str]]) -> list[int]:
        """The next per-(destination, ordering key) sequence of each key, in order."""
        counts = Counter(keys)
        rows = self._db.execute(_KEY_SEQUENCES, self._upsert_values(counts)).fetchall()
        return self._seqs(keys, counts, rows)

    def _admit(self, admissions: list[Admission], deltas: Deltas) -> list[Any]:
        """The key-sequence upsert for every delivery rides with the idempotency probe,
        under a savepoint: kept when every admission is accepted (the usual case), else
        rolled back and made again for the accepted ones (one round trip more)."""
        keys = [(new.destination_id, new.ordering_key) for a in admissions for new in a.deliveries]
        counts = Counter(keys)
        guessed: list[Any] = []
        if keys:
            self._db.defer_statement("SAVEPOINT key_seqs")
            self._db.defer_read(_KEY_SEQUENCES, self._upsert_values(counts), guessed.extend)
        known: dict[str, tuple[str, str, str | None]] = {
            row[0]: (row[1], row[2], row[3])
            for row in self._db.execute(
                "SELECT key, event_id, ack_code, digest FROM idempotency"
                " WHERE key = ANY(?::text[])",
                (known_keys(admissions),),
            )
        }
        audit_rows: list[AuditRow] = []
        answers, accepted = screen_admissions(admissions, known, deltas, audit_rows)
        seqs: list[int] | None = None
        if keys and len(accepted) == len(admissions):
            self._db.defer_statement("RELEASE SAVEPOINT key_seqs")
            seqs = self._seqs(keys, counts, guessed)
        elif keys:
            self._db.defer_statement("ROLLBACK TO SAVEPOINT key_seqs")
            self._db.defer_statement("RELEASE SAVEPOINT key_seqs")
        if accepted:
            self._insert_admissions(accepted, answers, deltas, seqs)
        self._audit.append(audit_rows)
        return answers

    def _insert_admissions(
        self,
        accepted: list[tuple[int, Admission, str | None]],
        answers: list[Any],
        deltas: Deltas,
        seqs: list[int] | None,
    ) -> None:
        event_seqs = iter(self._take(0, sum(1 + len(a.derived) for _, a, _ in accepted)))
        new_deliveries = [new for _, a, _ in accepted for new in a.deliveries]
        self._pending.update(new.destination_id for new in new_deliveries)
        delivery_ids = iter(self._take(1, len(new_deliveries)))
        key_seqs = iter(
            seqs
            if seqs is not None
            else self._key_seqs([(new.destination_id, new.ordering_key) for new in new_deliveries])
        )
        rows = admission_rows(
            accepted, answers, deltas, self._codec, (event_seqs, delivery_ids), key_seqs=key_seqs
        )
        self._db.defer(_INSERT_EVENT, rows.events)
        self._db.defer(_INSERT_DELIVERY, rows.deliveries)
        self._db.defer(_INSERT_IDEMPOTENCY, rows.keys)
