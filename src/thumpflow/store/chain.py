"""Appending to the audit trail's hash chain, shared by every backend.

The hashing is `thumpflow.core.audit.entry_hash`; this class keeps the chain
head (last entry id and hash) of the transaction being written and hands the
chained rows to the backend's insert. The backend reads the committed head
at the start of each write transaction (`set_head`; PostgreSQL under a row
lock on the head, so nodes append one after another) and puts the head back
when a savepoint rolls back (`restore`), so an entry that was not committed
never becomes anyone's predecessor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from thumpflow.core.audit import GENESIS, entry_hash

# One new entry: at, actor, action, subject, detail.
AuditRow = tuple[float, str, str, str, str]

# One chained entry: entry_id, at, actor, action, subject, detail, prev_hash, hash.
ChainedRow = tuple[int, float, str, str, str, str, str, str]


class AuditChain:
    """Chains entries after the head and inserts them through `insert` (one call per append)."""

    __slots__ = ("_insert", "_last_hash", "_last_id")

    def __init__(self, insert: Callable[[list[ChainedRow]], Any]) -> None:
        self._insert = insert
        self._last_id = 0
        self._last_hash = GENESIS

    def set_head(self, entry_id: int | None, digest: str | None) -> None:
        """Take the committed head (newest chained entry) read at the transaction's start."""
        self._last_id, self._last_hash = (
            (0, GENESIS) if entry_id is None or digest is None else (entry_id, digest)
        )

    def snapshot(self) -> tuple[int, str]:
        return self._last_id, self._last_hash

    def restore(self, head: tuple[int, str]) -> None:
        """Put back the head taken before a savepoint that was rolled back."""
        self._last_id, self._last_hash = head

    def append(self, rows: Sequence[AuditRow]) -> None:
        """Insert entries after the head, chained, in order."""
        if not rows:
            return
        chained: list[ChainedRow] = []
        entry_id, prev = self._last_id, self._last_hash
        for at, actor, action, subject, detail in rows:
            entry_id += 1
            digest = entry_hash(prev, (entry_id, at, actor, action, subject, detail))
            chained.append((entry_id, float(at), actor, action, subject, detail, prev, digest))
            prev = digest
        self._insert(chained)
        self._last_id, self._last_hash = entry_id, prev
