"""The audit trail's hash chain in SQLite: the one way entries are written, and verification.

Every audit entry is inserted by `AuditChain.append` (`thumpflow.store.chain`),
on the writer thread, inside the transaction that makes the change it records;
the chain head is read at the start of each transaction (under SQLite's write
lock) and put back when a savepoint rolls back. Entries are append-only:
triggers (schema 0005) refuse DELETE and any UPDATE of a chained entry.
"""

from __future__ import annotations

import sqlite3

from thumpflow.core.audit import GENESIS, entry_hash
from thumpflow.store.chain import AuditChain as SharedChain
from thumpflow.store.chain import AuditRow

_INSERT = (
    "INSERT INTO audit (entry_id, at, actor, action, subject, detail, prev_hash, hash)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_HEAD = "SELECT entry_id, hash FROM audit WHERE hash IS NOT NULL ORDER BY entry_id DESC LIMIT 1"
_CHAIN_BATCH = 5000

__all__ = ["AuditChain", "AuditRow", "chain_unchained"]


class AuditChain(SharedChain):
    """The shared chain appending through the writer's connection (one thread)."""

    __slots__ = ()

    def __init__(self, conn: sqlite3.Connection) -> None:
        super().__init__(lambda rows: conn.executemany(_INSERT, rows))


def chain_unchained(conn: sqlite3.Connection) -> int:
    """Chain entries written before the chain existed, in id order; return how many.

    Runs once, on the write connection before the writer starts, in
    transactions of at most 5000 entries (each resumes after the last chained
    entry, so an interruption is harmless). The triggers allow setting the
    hash of an entry that has none, and nothing else.
    """
    total = 0
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            rows = conn.execute(
                "SELECT entry_id, at, actor, action, subject, detail FROM audit"
                " WHERE hash IS NULL ORDER BY entry_id LIMIT ?",
                (_CHAIN_BATCH,),
            ).fetchall()
            if not rows:
                conn.execute("COMMIT")
                return total
            before = conn.execute(
                "SELECT hash FROM audit WHERE entry_id < ? AND hash IS NOT NULL"
                " ORDER BY entry_id DESC LIMIT 1",
                (rows[0][0],),
            ).fetchone()
            prev = GENESIS if before is None else before[0]
            updates = []
            for entry_id, at, actor, action, subject, detail in rows:
                digest = entry_hash(prev, (entry_id, at, actor, action, subject, detail))
                updates.append((prev, digest, entry_id))
                prev = digest
            conn.executemany("UPDATE audit SET prev_hash = ?, hash = ? WHERE entry_id = ?", updates)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        total += len(rows)
