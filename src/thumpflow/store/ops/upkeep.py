"""Retention purges and re-encryption, one bounded batch per writer operation, every backend.

Each function runs on the writer thread inside its transaction and touches
at most `limit` rows of each table, so a purge or a rekey of a large store
never holds the write lock for long: the store calls them again until they
report nothing left. Rows are walked in id order, which is the order they
were written: a walk stops at the first row younger than the cut-off.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from thumpflow.core.errors import StoreError
from thumpflow.core.retention import DAY, PurgeCounts, RekeyCounts, RetentionPolicy
from thumpflow.store.crypt import (
    ATTEMPT_DETAIL,
    DELIVERY_ERROR,
    DELIVERY_REASON,
    EVENT_BODY,
    REJECT_RAW,
    ROW_REJECT_RECORD,
    Codec,
    PayloadCipher,
    check_keys,
    key_of,
)
from thumpflow.store.ops import Db, Dialect, WriteContext
from thumpflow.store.rows import DEAD, PENDING


@dataclass(slots=True, frozen=True)
class PurgeBatch:
    """One purge step: the policy, the time it is measured from, and where the event walk is."""

    policy: RetentionPolicy
    now: float
    after_event_seq: int
    limit: int


@dataclass(slots=True, frozen=True)
class PurgeStep:
    counts: PurgeCounts
    after_event_seq: int
    done: bool


def purge_batch(conn: Db, dialect: Dialect, step: PurgeBatch) -> PurgeStep:
    """Delete up to `limit` purgeable rows of each kind; `done` when none is left."""
    policy, counts = step.policy, PurgeCounts()
    after = step.after_event_seq
    events_done = True
    if policy.events_days is not None:
        after, events_done = _purge_events(
            conn,
            dialect,
            step.now - policy.events_days * DAY,
            after,
            limit=step.limit,
            counts=counts,
        )
    if policy.rejects_days is not None:
        counts.rejects = _purge_prefix(
            conn,
            dialect,
            "rejects",
            "reject_id",
            "received_at",
            cutoff=step.now - policy.rejects_days * DAY,
            limit=step.limit,
        )
    if policy.runs_days is not None:
        cutoff = step.now - policy.runs_days * DAY
        counts.row_rejects = _purge_prefix(
            conn, dialect, "row_rejects", "reject_id", "at", cutoff=cutoff, limit=step.limit
        )
        counts.runs = _purge_runs(conn, cutoff, step.limit)
    done = events_done and counts.rejects < step.limit and counts.row_rejects < step.limit
    done = done and counts.runs < step.limit
    return PurgeStep(counts, after, done)


def _purge_events(
    conn: Db, dialect: Dialect, cutoff: float, after: int, *, limit: int, counts: PurgeCounts
) -> tuple[int, bool]:
    rows = conn.execute(
        "SELECT event_seq, event_id, idempotency_key, received_at FROM events"
        " WHERE event_seq > ? ORDER BY event_seq LIMIT ?",
        (after, limit),
    ).fetchall()
    old = []
    for row in rows:
        if row[3] >= cutoff:
            break
        old.append(row)
    if not old:
        return after, True
    seqs = dialect.ids([row[0] for row in old])
    kept = {
        seq
        for (seq,) in conn.execute(
            "SELECT DISTINCT event_seq FROM deliveries"
            f" WHERE event_seq {dialect.in_ids}"
            f" AND status IN ({PENDING}, {DEAD})",
            (seqs,),
        )
    }
    gone = [row for row in old if row[0] not in kept]
    if gone:
        gone_seqs = dialect.ids([row[0] for row in gone])
        conn.execute(
            "DELETE FROM attempts WHERE delivery_id IN (SELECT delivery_id FROM deliveries"
            f" WHERE event_seq {dialect.in_ids})",
            (gone_seqs,),
        )
        counts.deliveries += conn.execute(
            f"DELETE FROM deliveries WHERE event_seq {dialect.in_ids}",
            (gone_seqs,),
        ).rowcount
        counts.events += conn.execute(
            f"DELETE FROM events WHERE event_seq {dialect.in_ids}",
            (gone_seqs,),
        ).rowcount
        # A key is the primary key: it goes only while it still names a purged event.
        counts.idempotency += conn.execute(
            f"DELETE FROM idempotency WHERE key {dialect.in_ids} AND event_id {dialect.in_ids}",
            (dialect.ids([row[2] for row in gone]), dialect.ids([row[1] for row in gone])),
        ).rowcount
    finished = len(old) < len(rows) or len(rows) < limit
    return old[-1][0], finished


def _purge_prefix(
    conn: Db, dialect: Dialect, table: str, key: str, stamp: str, *, cutoff: float, limit: int
) -> int:
    rows = conn.execute(
        f"SELECT {key}, {stamp} FROM {table} ORDER BY {key} LIMIT ?", (limit,)
    ).fetchall()
    ids = []
    for row_id, at in rows:
        if at >= cutoff:
            break
        ids.append(row_id)
    if not ids:
        return 0
    return int(
        conn.execute(
            f"DELETE FROM {table} WHERE {key} {dialect.in_ids}",
            (dialect.ids(ids),),
        ).rowcount
    )


def _purge_runs(conn: Db, cutoff: float, limit: int) -> int:
    """Finished runs older than the cut-off, except each job's newest run."""
    return int(
        conn.execute(
            "DELETE FROM runs WHERE run_id IN (SELECT r.run_id FROM runs r"
            " WHERE r.status != 'running' AND r.finished_at IS NOT NULL AND r.finished_at < ?"
            " AND r.run_id < (SELECT max(n.run_id) FROM runs n WHERE n.job_id = r.job_id)"
            " ORDER BY r.run_id LIMIT ?)",
            (cutoff, limit),
        ).rowcount
    )


# table, id column, payload column, column name for the associated data.
_SEALED_COLUMNS = (
    ("events", "event_seq", "body", EVENT_BODY, "event_bodies"),
    ("rejects", "reject_id", "raw", REJECT_RAW, "rejects"),
    ("row_rejects", "reject_id", "record", ROW_REJECT_RECORD, "row_rejects"),
    ("deliveries", "delivery_id", "last_error", DELIVERY_ERROR, "delivery_texts"),
    ("deliveries", "delivery_id", "reason", DELIVERY_REASON, "delivery_texts"),
    ("attempts", "attempt_id", "detail", ATTEMPT_DETAIL, "delivery_texts"),
)

SEALED_COLUMN_COUNT = len(_SEALED_COLUMNS)


@dataclass(slots=True, frozen=True)
class RekeyBatch:
    """One rekey step: which sealed column (index into the column list), after which row id."""

    column: int
    after: int
    limit: int


def rekey_batch(conn: Db, cipher: PayloadCipher, step: RekeyBatch) -> tuple[RekeyCounts, int, int]:
    """Re-seal up to `limit` rows of one column under the current key.

    Returns the counts and where to continue (column index, row id); a
    column index past the last column means every column has been walked.
    """
    counts = RekeyCounts()
    if step.column >= len(_SEALED_COLUMNS):
        return counts, step.column, 0
    table, key, column, label, slot = _SEALED_COLUMNS[step.column]
    rows = conn.execute(
        f"SELECT {key}, {column} FROM {table} WHERE {key} > ? AND {column} IS NOT NULL"
        f" ORDER BY {key} LIMIT ?",
        (step.after, step.limit),
    ).fetchall()
    changed = []
    for row_id, value in rows:
        if key_of(value) == cipher.current_id:
            continue
        if isinstance(value, str):
            plain = value.encode("utf-8")
        else:
            plain = cipher.open(bytes(value), label)
        changed.append((cipher.seal(plain, label), row_id))
    if changed:
        conn.executemany(f"UPDATE {table} SET {column} = ? WHERE {key} = ?", changed)
        setattr(counts, slot, len(changed))
    if len(rows) < step.limit:
        return counts, step.column + 1, 0
    return counts, step.column, rows[-1][0]


def retire_keys(conn: Db, dialect: Dialect, cipher: PayloadCipher) -> tuple[str, ...]:
    """Forget every key id other than the current one that no stored value uses any more.

    Checks each sealed column for the key's prefix within this transaction
    (the write lock is held), so a value sealed by another process under an
    old key keeps that key registered.
    """
    retired = []
    for (key_id,) in conn.execute("SELECT key_id FROM cipher_keys").fetchall():
        if key_id == cipher.current_id:
            continue
        prefix = cipher.prefix(key_id) if key_id in cipher.key_ids else None
        if prefix is None or _uses(conn, dialect, prefix):
            continue
        conn.execute("DELETE FROM cipher_keys WHERE key_id = ?", (key_id,))
        retired.append(key_id)
    return tuple(retired)


def _uses(conn: Db, dialect: Dialect, prefix: bytes) -> bool:
    for table, _key, column, _label, _slot in _SEALED_COLUMNS:
        found = conn.execute(
            f"SELECT 1 FROM {table} WHERE {dialect.sealed_prefix.format(column=column)} LIMIT 1",
            (len(prefix), prefix),
        ).fetchone()
        if found is not None:
            return True
    return False


def audit_purges(context: WriteContext, totals: list[PurgeCounts], at: float) -> list[Any]:
    """One `purged` audit entry per finished purge (counts only)."""
    context.audit.append(
        [(at, "store", "purged", "retention", counts.summary()) for counts in totals]
    )
    return [None] * len(totals)


def finish_rekeys(
    context: WriteContext, dialect: Dialect, totals: list[RekeyCounts], at: float
) -> list[Any]:
    """Retire keys no value uses any more; one `rekeyed` entry each (counts and key ids only)."""
    cipher = cipher_of(context.codec)
    answers: list[Any] = []
    for counts in totals:
        retired = retire_keys(context.conn, dialect, cipher)
        resealed = f"resealed {counts.total}; retired keys: {', '.join(retired) or 'none'}"
        context.audit.append([(at, "store", "rekeyed", f"key:{cipher.current_id}", resealed)])
        answers.append(retired)
    return answers


def cipher_of(codec: object) -> PayloadCipher:
    """The store's cipher; `StoreError` when encryption is not configured."""
    if not isinstance(codec, PayloadCipher):
        raise StoreError("store.encryption is not configured")
    return codec


def stored_keys(conn: Db) -> dict[str, bytes]:
    """The key ids the store has used, with their check values."""
    return {
        row[0]: bytes(row[1]) for row in conn.execute("SELECT key_id, check_value FROM cipher_keys")
    }


def register_keys(conn: Db, codec: object, at: float) -> None:
    """Check the configured keys against the store (`crypt.check_keys` raises on a misfit);
    record the sealing key if the store does not know it yet. Run it in a transaction
    that holds the store's write lock."""
    cipher = codec if isinstance(codec, PayloadCipher) else None
    unknown = check_keys(stored_keys(conn), cipher or Codec())
    if cipher is not None and cipher.current_id in unknown:
        current = cipher.current_id
        assert current is not None
        conn.execute(
            "INSERT INTO cipher_keys (key_id, check_value, added_at) VALUES (?, ?, ?)",
            (current, cipher.check_value(current), at),
        )
