"""The single writer: one thread, one connection, group commit.

Operations are queued by coroutines on any asyncio loop. The writer thread
takes the first waiting operation plus everything already queued behind it
(up to `max_batch`), executes them in queue order inside one transaction and
commits once, so all of them share one fsync. Each operation is isolated by a
savepoint: consecutive operations of the same kind first share one savepoint
and, should that fail, are executed again one savepoint each, so a bad
operation fails only its own caller. Callers are answered only after COMMIT
returned, in commit order; if COMMIT fails, every caller of the batch gets
`StoreError` and nothing of the batch is committed.

A caller that stops waiting (cancellation) does not withdraw its operation:
once queued it is executed and, if the commit succeeds, durable.

Every audit entry is appended through the writer's `AuditChain` (hash
chained, in the transaction of the change it records), and every payload
column is sealed by the writer's `Codec` when encryption is configured.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from thumpflow.core.clock import Clock
from thumpflow.core.errors import StoreError
from thumpflow.core.event import (
    Admission,
    Admitted,
    DeadLetterFilter,
    Delivery,
    Duplicate,
    Event,
    Reject,
)
from thumpflow.core.outcome import Delivered, Died, Outcome, Retrying
from thumpflow.core.retention import PurgeCounts, RekeyCounts
from thumpflow.store.crypt import (
    ATTEMPT_DETAIL,
    DELIVERY_ERROR,
    DELIVERY_REASON,
    REJECT_RAW,
    Codec,
    PayloadCipher,
)
from thumpflow.store.ops import access as _access
from thumpflow.store.ops import alerts as _alerts
from thumpflow.store.ops import pauses as _pauses
from thumpflow.store.ops import runs as _runs
from thumpflow.store.ops import subscriptions as _subscriptions
from thumpflow.store.sqlite import (
    _rows,
    _search,
    _upkeep,
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
    "INSERT INTO idempotency (key, event_id, ack_code, received_at) VALUES (?, ?, ?, ?)"
)
_SELECT_KNOWN_KEYS = (
    "SELECT key, event_id, ack_code FROM idempotency WHERE key IN (SELECT value FROM json_each(?))"
)
_SELECT_STATES = (
    "SELECT delivery_id, status, channel_id, destination_id, business_key, content_hash,"
    " ledger_version FROM deliveries"
    " WHERE delivery_id IN (SELECT value FROM json_each(?))"
)
_UPDATE_RETRYING = (
    "UPDATE deliveries SET attempts = ?, next_attempt_at = ?, last_error = ?,"
    " first_failed_at = ? WHERE delivery_id = ?"
)
_UPDATE_DELIVERED = (
    "UPDATE deliveries SET status = 1, attempts = ?, delivered_at = ? WHERE delivery_id = ?"
)
_UPDATE_DIED = (
    "UPDATE deliveries SET status = 2, attempts = ?, reason = ?, died_at = ? WHERE delivery_id = ?"
)
_UPDATE_SUPERSEDED = "UPDATE deliveries SET status = 3, reason = ? WHERE delivery_id = ?"
_UPDATE_REPLAYED = (
    "UPDATE deliveries SET status = 0, attempts = 0, next_attempt_at = 0.0,"
    " first_failed_at = NULL, last_error = NULL, died_at = NULL, reason = NULL"
    " WHERE delivery_id = ?"
)
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
_SELECT_PENDING = (
    f"SELECT {_rows.DELIVERY_COLUMNS} FROM deliveries d JOIN events e ON e.event_seq = d.event_seq"
    " WHERE d.destination_id = ? AND d.status = 0 AND d.delivery_id > ?"
    " ORDER BY d.delivery_id LIMIT ?"
)

# Channel counter slots and outbox counter slots.
_RECEIVED, _DUPLICATES, _REJECTED, _LAST_RECEIVED = 0, 1, 2, 3
_DELIVERED, _PENDING, _DEAD, _SUPERSEDED, _LAST_DELIVERED = 0, 1, 2, 3, 4


class Kind(Enum):
    ADMIT = "admit"
    REJECT = "reject"
    RECORD = "record"
    LOAD_PENDING = "load_pending"
    REPLAY = "replay"
    START_RUN = "start_run"
    FINISH_RUN = "finish_run"
    RECOVER_RUNS = "recover_runs"
    JOB_AUDIT = "job_audit"
    ADD_REJECTS = "add_rejects"
    MARK_REPLAYED = "mark_replayed"
    RECORD_LEDGER = "record_ledger"
    ADD_TOKEN = "add_token"
    REVOKE_TOKEN = "revoke_token"
    AUDIT = "audit"
    PURGE = "purge"
    PURGE_DONE = "purge_done"
    REKEY = "rekey"
    REKEY_DONE = "rekey_done"
    SET_PAUSED = "set_paused"
    RAISE_ALERT = "raise_alert"
    CLEAR_ALERT = "clear_alert"
    ACK_ALERT = "ack_alert"
    SAVE_SUBSCRIPTION = "save_subscription"


@dataclass(slots=True, frozen=True)
class LoadPending:
    destination_id: str
    after_delivery_id: int
    limit: int


@dataclass(slots=True, frozen=True)
class Replay:
    flt: DeadLetterFilter
    actor: str
    reason: str


@dataclass(slots=True)
class Op:
    kind: Kind
    arg: Any
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


@dataclass(slots=True, frozen=True)
class WriterStats:
    """Group commit counters since the store was opened."""

    commits: int
    operations: int
    failed_commits: int


class _Deltas:
    """Counter changes of committed-to-be operations, applied once per transaction."""

    __slots__ = ("channels", "outboxes")

    def __init__(self) -> None:
        self.channels: dict[str, list[Any]] = {}
        self.outboxes: dict[tuple[str, str], list[Any]] = {}

    def channel(self, channel_id: str) -> list[Any]:
        slot = self.channels.get(channel_id)
        if slot is None:
            slot = self.channels[channel_id] = [0, 0, 0, None]
        return slot

    def outbox(self, destination_id: str, channel_id: str) -> list[Any]:
        key = (destination_id, channel_id)
        slot = self.outboxes.get(key)
        if slot is None:
            slot = self.outboxes[key] = [0, 0, 0, 0, None]
        return slot

    def merge(self, other: _Deltas) -> None:
        for channel_id, theirs in other.channels.items():
            mine = self.channel(channel_id)
            for i in (_RECEIVED, _DUPLICATES, _REJECTED):
                mine[i] += theirs[i]
            mine[_LAST_RECEIVED] = _latest(mine[_LAST_RECEIVED], theirs[_LAST_RECEIVED])
        for (destination_id, channel_id), theirs in other.outboxes.items():
            mine = self.outbox(destination_id, channel_id)
            for i in (_DELIVERED, _PENDING, _DEAD, _SUPERSEDED):
                mine[i] += theirs[i]
            mine[_LAST_DELIVERED] = _latest(mine[_LAST_DELIVERED], theirs[_LAST_DELIVERED])

    def apply(self, conn: sqlite3.Connection) -> None:
        if self.channels:
            conn.executemany(
                _UPSERT_CHANNEL, [(key, *values) for key, values in self.channels.items()]
            )
        if self.outboxes:
            conn.executemany(
                _UPSERT_OUTBOX, [(*key, *values) for key, values in self.outboxes.items()]
            )


def _latest(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


_Handler = Callable[[list[Any], _Deltas], list[Any]]
_BULK_KINDS = frozenset(
    {Kind.ADMIT, Kind.RECORD, Kind.JOB_AUDIT, Kind.ADD_REJECTS, Kind.RECORD_LEDGER}
)


class Writer:
    """Owns the write connection and the thread that uses it; see the module docstring."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        clock: Clock,
        max_batch: int = 2000,
        codec: Codec | None = None,
    ) -> None:
        self._conn = conn
        self._clock = clock
        self._max_batch = max_batch
        self._codec = codec or Codec()
        self._audit = AuditChain(conn)
        self._context = _runs.WriteContext(conn, self._audit, self._codec)
        self._vacuum_after_commit = False
        self._queue: queue.SimpleQueue[Op | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="thumpflow-store-writer")
        self._next_event_seq = 0
        self._next_delivery_id = 0
        self._commits = 0
        self._operations = 0
        self._failed_commits = 0
        self._handlers: dict[Kind, _Handler] = {
            Kind.ADMIT: self._admit,
            Kind.REJECT: self._reject,
            Kind.RECORD: self._record,
            Kind.LOAD_PENDING: self._load_pending,
            Kind.REPLAY: self._replay,
            Kind.START_RUN: self._on_conn(_runs.start_runs),
            Kind.FINISH_RUN: self._on_conn(_runs.finish_runs),
            Kind.RECOVER_RUNS: self._on_conn(_runs.recover_runs),
            Kind.JOB_AUDIT: self._on_conn(_runs.job_audits),
            Kind.ADD_REJECTS: self._on_conn(_runs.add_rejects),
            Kind.MARK_REPLAYED: self._on_conn(_runs.mark_replayed),
            Kind.RECORD_LEDGER: self._on_conn(_runs.record_ledger),
            Kind.ADD_TOKEN: self._on_conn(_access.add_tokens),
            Kind.REVOKE_TOKEN: self._on_conn(_access.revoke_tokens),
            Kind.AUDIT: self._on_conn(_access.append_audits),
            Kind.PURGE: self._purge,
            Kind.PURGE_DONE: self._purge_done,
            Kind.REKEY: self._rekey,
            Kind.REKEY_DONE: self._rekey_done,
            Kind.SET_PAUSED: self._on_conn(_pauses.set_paused),
            Kind.RAISE_ALERT: self._on_conn(_alerts.raise_alerts),
            Kind.CLEAR_ALERT: self._on_conn(_alerts.clear_alerts),
            Kind.ACK_ALERT: self._on_conn(_alerts.acknowledge_alerts),
            Kind.SAVE_SUBSCRIPTION: self._on_conn(_subscriptions.save_states),
        }

    def _on_conn(self, operation: Callable[[_runs.WriteContext, list[Any]], list[Any]]) -> _Handler:
        """A handler for an operation that touches no counters (runs, rejects, ledger)."""
        context = self._context
        return lambda args, deltas: operation(context, args)

    @property
    def stats(self) -> WriterStats:
        return WriterStats(self._commits, self._operations, self._failed_commits)

    def start(self) -> None:
        self._thread.start()

    def submit(self, op: Op) -> None:
        self._queue.put(op)

    def stop(self) -> None:
        """Execute everything queued so far, then end the thread (blocking)."""
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    op = self._queue.get_nowait()
                except queue.Empty:
                    break
                if op is None:
                    stopping = True
                    break
                batch.append(op)
            _answer(batch, self._execute(batch))

    def _commit(self) -> None:
        self._conn.execute("COMMIT")

    def _execute(self, batch: list[Op]) -> list[Any]:
        conn = self._conn
        results: list[Any] = []
        deltas = _Deltas()
        try:
            conn.execute("BEGIN IMMEDIATE")
            self._vacuum_after_commit = False
            event_seq, delivery_seq, head_id, head_hash = conn.execute(_BEGIN).fetchone()
            self._audit.set_head(head_id, head_hash)
            self._next_event_seq = event_seq
            self._next_delivery_id = (delivery_seq or 0) + 1
            start = 0
            while start < len(batch):
                kind = batch[start].kind
                end = start + 1
                if kind in _BULK_KINDS:
                    while end < len(batch) and batch[end].kind is kind:
                        end += 1
                results.extend(self._segment(kind, batch[start:end], deltas))
                start = end
            deltas.apply(conn)
            self._commit()
        except Exception as exc:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    _log.exception("rollback after a failed group commit failed")
            self._failed_commits += 1
            _log.error(
                "group commit of %d operations failed (%s); none was committed",
                len(batch),
                type(exc).__name__,
            )
            return [
                _store_error("the group commit failed; nothing was committed", exc) for _ in batch
            ]
        self._commits += 1
        self._operations += len(batch)
        if self._vacuum_after_commit:
            self._vacuum()
        return results

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

    def _segment(self, kind: Kind, ops: list[Op], deltas: _Deltas) -> list[Any]:
        """Execute consecutive operations of one kind; return one answer per operation."""
        handler = self._handlers[kind]
        conn = self._conn
        if len(ops) > 1:
            attempt = _Deltas()
            head = self._audit.snapshot()
            conn.execute("SAVEPOINT segment")
            try:
                answers = handler([op.arg for op in ops], attempt)
            except Exception:
                self._audit.restore(head)
                conn.execute("ROLLBACK TO segment")
                conn.execute("RELEASE segment")
            else:
                conn.execute("RELEASE segment")
                deltas.merge(attempt)
                return answers
        answers = []
        for op in ops:
            attempt = _Deltas()
            head = self._audit.snapshot()
            conn.execute("SAVEPOINT op")
            try:
                answer = handler([op.arg], attempt)[0]
            except Exception as exc:
                self._audit.restore(head)
                conn.execute("ROLLBACK TO op")
                conn.execute("RELEASE op")
                _log.warning("store %s failed (%s); rolled back", kind.value, type(exc).__name__)
                answer = _store_error(f"store {kind.value} failed", exc)
            else:
                conn.execute("RELEASE op")
                deltas.merge(attempt)
            answers.append(answer)
        return answers

    def _admit(self, admissions: list[Admission], deltas: _Deltas) -> list[Any]:
        conn = self._conn
        keys = [admission.received.idempotency_key for admission in admissions]
        known: dict[str, tuple[str, str]] = {
            key: (event_id, ack_code)
            for key, event_id, ack_code in conn.execute(_SELECT_KNOWN_KEYS, (json.dumps(keys),))
        }
        answers: list[Any] = []
        event_rows: list[tuple[Any, ...]] = []
        delivery_rows: list[tuple[Any, ...]] = []
        key_rows: list[tuple[Any, ...]] = []
        audit_rows: list[AuditRow] = []
        for admission in admissions:
            received = admission.received
            actor = "source:" + received.channel_id
            original = known.get(received.idempotency_key)
            if original is not None:
                answers.append(Duplicate(original[0], original[1]))
                audit_rows.append(
                    (
                        received.received_at,
                        actor,
                        "duplicate",
                        original[0],
                        "resent as " + received.event_id,
                    )
                )
                deltas.channel(received.channel_id)[_DUPLICATES] += 1
                continue
            events: dict[str, tuple[int, Event]] = {}
            for event in (received, *admission.derived):
                events[event.event_id] = (self._next_event_seq + len(events), event)
            if len(events) != 1 + len(admission.derived):
                answers.append(StoreError("admission repeats an event_id"))
                continue
            if any(new.event_id not in events for new in admission.deliveries):
                answers.append(
                    StoreError("admission has a delivery for an event it does not contain")
                )
                continue
            self._next_event_seq += len(events)
            for event_seq, event in events.values():
                event_rows.append(_rows.event_row(event_seq, event, self._codec))
            created_at = received.received_at
            deliveries: list[Delivery] = []
            for new in admission.deliveries:
                event_seq, event = events[new.event_id]
                delivery_id = self._next_delivery_id
                self._next_delivery_id += 1
                delivery_rows.append(
                    (
                        delivery_id,
                        event_seq,
                        new.destination_id,
                        event.channel_id,
                        new.ordering_key,
                        int(new.lane),
                        new.sequence,
                        created_at,
                        new.business_key,
                        new.content_hash,
                        new.ledger_version,
                    )
                )
                deliveries.append(
                    Delivery(
                        delivery_id=delivery_id,
                        event_id=new.event_id,
                        destination_id=new.destination_id,
                        channel_id=event.channel_id,
                        ordering_key=new.ordering_key,
                        lane=new.lane,
                        sequence=new.sequence,
                        created_at=created_at,
                        body=event.body,
                        content_type=event.content_type,
                        event_type=event.event_type,
                        business_key=new.business_key,
                        content_hash=new.content_hash,
                    )
                )
                deltas.outbox(new.destination_id, event.channel_id)[_PENDING] += 1
            known[received.idempotency_key] = (received.event_id, admission.ack_code)
            key_rows.append(
                (
                    received.idempotency_key,
                    received.event_id,
                    admission.ack_code,
                    received.received_at,
                )
            )
            audit_rows.append(
                (
                    received.received_at,
                    actor,
                    "received",
                    received.event_id,
                    admission.audit_detail or "",
                )
            )
            counters = deltas.channel(received.channel_id)
            counters[_RECEIVED] += 1
            counters[_LAST_RECEIVED] = _latest(counters[_LAST_RECEIVED], received.received_at)
            answers.append(Admitted(received.event_id, tuple(deliveries)))
        if event_rows:
            conn.executemany(_rows.INSERT_EVENT, event_rows)
        if delivery_rows:
            conn.executemany(_INSERT_DELIVERY, delivery_rows)
        if key_rows:
            conn.executemany(_INSERT_IDEMPOTENCY, key_rows)
        self._audit.append(audit_rows)
        return answers

    def _reject(self, rejects: list[Reject], deltas: _Deltas) -> list[Any]:
        answers: list[Any] = []
        for reject in rejects:
            cursor = self._conn.execute(
                "INSERT INTO rejects (channel_id, received_at, peer, reason, raw)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    reject.channel_id,
                    reject.received_at,
                    reject.peer,
                    reject.reason,
                    self._codec.seal(reject.raw, REJECT_RAW),
                ),
            )
            reject_id = cursor.lastrowid
            assert reject_id is not None
            self._audit.append(
                [
                    (
                        reject.received_at,
                        "source:" + reject.channel_id,
                        "rejected",
                        f"reject:{reject_id}",
                        reject.reason,
                    )
                ]
            )
            deltas.channel(reject.channel_id)[_REJECTED] += 1
            answers.append(reject_id)
        return answers

    def _record(self, calls: list[Sequence[Outcome]], deltas: _Deltas) -> list[Any]:
        conn = self._conn
        ids = [outcome.delivery_id for outcomes in calls for outcome in outcomes]
        states: dict[int, list[Any]] = {
            row[0]: [row[1], row[2], row[3], row[4], row[5], row[6]]
            for row in conn.execute(_SELECT_STATES, (json.dumps(ids),))
        }
        retrying: list[tuple[Any, ...]] = []
        delivered: list[tuple[Any, ...]] = []
        died: list[tuple[Any, ...]] = []
        superseded: list[tuple[Any, ...]] = []
        versions: list[tuple[Any, ...]] = []
        ledger: list[tuple[Any, ...]] = []
        audit_rows: list[AuditRow] = []
        codec = self._codec
        attempt_rows: list[tuple[Any, ...]] = []
        ignored = 0
        for outcomes in calls:
            for outcome in outcomes:
                state = states.get(outcome.delivery_id)
                if state is None or state[0] != _rows.PENDING:
                    ignored += 1
                    continue
                subject = f"delivery:{outcome.delivery_id}"
                if isinstance(outcome, Retrying):
                    retrying.append(
                        (
                            outcome.attempts,
                            outcome.next_attempt_at,
                            codec.seal_text(outcome.reason, DELIVERY_ERROR),
                            outcome.first_failed_at,
                            outcome.delivery_id,
                        )
                    )
                    audit_rows.append(
                        (outcome.at, "flow", "retry_scheduled", subject, self._told(outcome.reason))
                    )
                    attempt_rows.append(
                        (
                            outcome.delivery_id,
                            outcome.attempts,
                            outcome.at,
                            "failed",
                            codec.seal_text(outcome.reason, ATTEMPT_DETAIL),
                        )
                    )
                    continue
                counters = deltas.outbox(state[2], state[1])
                counters[_PENDING] -= 1
                if isinstance(outcome, Delivered):
                    state[0] = _rows.DELIVERED
                    counters[_DELIVERED] += 1
                    counters[_LAST_DELIVERED] = _latest(counters[_LAST_DELIVERED], outcome.at)
                    delivered.append((outcome.attempts, outcome.at, outcome.delivery_id))
                    if outcome.sequence is not None:
                        versions.append(
                            (outcome.destination_id, outcome.ordering_key, outcome.sequence)
                        )
                    if state[3] is not None:
                        ledger.append((state[2], state[3], state[4], outcome.at, state[5]))
                    # No attempts row: the success is the delivery row's `delivered_at`
                    # and `attempts` plus this audit entry; the timeline shows it from those.
                    audit_rows.append((outcome.at, "flow", "delivered", subject, outcome.detail))
                elif isinstance(outcome, Died):
                    state[0] = _rows.DEAD
                    counters[_DEAD] += 1
                    died.append(
                        (
                            outcome.attempts,
                            codec.seal_text(outcome.reason, DELIVERY_REASON),
                            outcome.at,
                            outcome.delivery_id,
                        )
                    )
                    audit_rows.append(
                        (outcome.at, "flow", "dead_lettered", subject, self._told(outcome.reason))
                    )
                    attempt_rows.append(
                        (
                            outcome.delivery_id,
                            outcome.attempts,
                            outcome.at,
                            "dead",
                            codec.seal_text(outcome.reason, ATTEMPT_DETAIL),
                        )
                    )
                else:
                    state[0] = _rows.SUPERSEDED
                    counters[_SUPERSEDED] += 1
                    superseded.append(
                        (codec.seal_text(outcome.reason, DELIVERY_REASON), outcome.delivery_id)
                    )
                    audit_rows.append(
                        (outcome.at, "flow", "superseded", subject, self._told(outcome.reason))
                    )
        if retrying:
            conn.executemany(_UPDATE_RETRYING, retrying)
        if delivered:
            conn.executemany(_UPDATE_DELIVERED, delivered)
        if died:
            conn.executemany(_UPDATE_DIED, died)
        if superseded:
            conn.executemany(_UPDATE_SUPERSEDED, superseded)
        if versions:
            conn.executemany(_UPSERT_VERSION, versions)
        if ledger:
            conn.executemany(_runs.UPSERT_LEDGER, ledger)
        self._audit.append(audit_rows)
        if attempt_rows:
            conn.executemany(_search.INSERT_ATTEMPT, attempt_rows)
        if ignored:
            _log.warning("ignored %d outcomes for deliveries that are not pending", ignored)
        return [None] * len(calls)

    def _load_pending(self, loads: list[LoadPending], deltas: _Deltas) -> list[Any]:
        return [
            [
                _rows.delivery_from_row(row, self._codec)
                for row in self._conn.execute(
                    _SELECT_PENDING, (load.destination_id, load.after_delivery_id, load.limit)
                )
            ]
            for load in loads
        ]

    def _replay(self, replays: list[Replay], deltas: _Deltas) -> list[Any]:
        conn = self._conn
        answers: list[Any] = []
        for replay in replays:
            where, params = _rows.dead_filter(replay.flt, self._codec)
            rows = conn.execute(
                f"SELECT {_rows.DELIVERY_COLUMNS}, d.reason FROM deliveries d"
                f" JOIN events e ON e.event_seq = d.event_seq WHERE {where}"
                " ORDER BY d.delivery_id",
                params,
            ).fetchall()
            replayed: list[Delivery] = []
            at = self._clock.now()
            for row in rows:
                if not _rows.reason_matches(
                    replay.flt, self._codec.open_text(row[-1], DELIVERY_REASON)
                ):
                    continue
                delivery = _rows.delivery_from_row(row[:-1], self._codec)
                delivery.attempts = 0
                delivery.next_attempt_at = 0.0
                delivery.first_failed_at = None
                delivery.last_error = None
                replayed.append(delivery)
                counters = deltas.outbox(delivery.destination_id, delivery.channel_id)
                counters[_DEAD] -= 1
                counters[_PENDING] += 1
            conn.executemany(_UPDATE_REPLAYED, [(d.delivery_id,) for d in replayed])
            self._audit.append(
                [
                    (at, replay.actor, "replayed", f"delivery:{d.delivery_id}", replay.reason)
                    for d in replayed
                ]
            )
            answers.append(replayed)
        return answers

    def _told(self, reason: str) -> str:
        """An outcome reason as the audit trail keeps it.

        With encryption the reason itself is sealed in the delivery row, and
        the audit trail (plain, never purged) keeps only its leading part, the
        classification before the first `: ` (e.g. `HTTP 422`), so text a
        receiver echoed from the message never lands there in the clear.
        """
        if not self._codec.encrypts:
            return reason
        return reason.split(": ", 1)[0][:80]

    def _purge(self, steps: list[_upkeep.PurgeBatch], deltas: _Deltas) -> list[Any]:
        return [_upkeep.purge_batch(self._conn, step) for step in steps]

    def _purge_done(self, totals: list[PurgeCounts], deltas: _Deltas) -> list[Any]:
        """Audit each finished purge (counts only) and reclaim the space after the commit."""
        at = self._clock.now()
        self._audit.append(
            [(at, "store", "purged", "retention", counts.summary()) for counts in totals]
        )
        self._vacuum_after_commit = True
        return [None] * len(totals)

    def _rekey(self, steps: list[_upkeep.RekeyBatch], deltas: _Deltas) -> list[Any]:
        cipher = self._cipher()
        return [_upkeep.rekey_batch(self._conn, cipher, step) for step in steps]

    def _rekey_done(self, totals: list[RekeyCounts], deltas: _Deltas) -> list[Any]:
        """Retire keys no value uses any more; audit the rekey (counts and key ids only)."""
        cipher = self._cipher()
        at = self._clock.now()
        answers: list[Any] = []
        for counts in totals:
            retired = _upkeep.retire_keys(self._conn, cipher)
            self._audit.append(
                [
                    (
                        at,
                        "store",
                        "rekeyed",
                        f"key:{cipher.current_id}",
                        f"resealed {counts.total}; retired keys: {', '.join(retired) or 'none'}",
                    )
                ]
            )
            answers.append(retired)
        return answers

    def _cipher(self) -> PayloadCipher:
        if not isinstance(self._codec, PayloadCipher):
            raise StoreError("store.encryption is not configured")
        return self._codec


def _store_error(message: str, cause: BaseException) -> StoreError:
    error = StoreError(f"{message} ({type(cause).__name__})")
    error.__cause__ = cause
    return error


def _answer(batch: list[Op], results: list[Any]) -> None:
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any]]] = {}
    for op, result in zip(batch, results, strict=True):
        by_loop.setdefault(op.loop, []).append((op.future, result))
    for loop, answers in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve, answers)
        except RuntimeError:
            _log.warning("%d store results had no loop left to receive them", len(answers))


def _resolve(answers: list[tuple[asyncio.Future[Any], Any]]) -> None:
    for future, result in answers:
        if future.done():
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)
