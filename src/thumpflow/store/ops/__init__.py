"""Write operations every backend runs the same way: runs, tokens, alerts, pauses, subscriptions.

Each operation runs inside its backend writer's transaction (one savepoint
per call) through `WriteContext`: a `Db` (statements written with `?`
placeholders; a backend whose driver wants others translates them), the
audit chain of that transaction and the payload codec. Ids of inserted rows
come from `INSERT ... RETURNING`, which SQLite and PostgreSQL both have.
Every audited change writes its audit entry in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from thumpflow.store.chain import AuditChain
from thumpflow.store.crypt import Codec


class Cursor(Protocol):
    """What an executed statement gives back (both drivers' cursors have it)."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Db(Protocol):
    """One connection inside the writer's open transaction, `?` placeholders."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> object:
        """Run `sql` once per row; nothing of it is read back (no rows, no rowcount).

        A backend may hold the statements back and send them, in order, before
        the next `execute` or when the writer ends the operation's segment
        (`GroupWriter._sync`), so a failure may be raised there instead of here,
        still inside the operation's savepoint.
        """
        ...


@dataclass(slots=True, frozen=True)
class Dialect:
    """How a backend writes the few things the statements here say differently.

    `in_ids` follows a column to test membership in one list parameter, made
    by `ids`; `sealed_prefix` is the condition that `{column}` holds bytes
    starting with the prefix given as two parameters (its length, its bytes).
    """

    in_ids: str
    ids: Callable[[list[Any]], Any]
    sealed_prefix: str


def _same(value: str | bytes | None) -> str | bytes | None:
    return value


@dataclass(slots=True, frozen=True)
class WriteContext:
    """What a writer operation writes with: the connection, the audit chain, the codec.

    `payload` turns a value from `Codec.seal_text` into what the backend's
    payload column takes (PostgreSQL's `bytea` wants bytes; SQLite keeps
    plain text as TEXT).
    """

    conn: Db
    audit: AuditChain
    codec: Codec
    payload: Callable[[str | bytes | None], Any] = field(default=_same)
