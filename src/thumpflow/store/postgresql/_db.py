"""Connections to the PostgreSQL store: opening them with clear errors, and `?` placeholders.

`connect` opens one connection in autocommit mode (transactions are begun
explicitly) and turns every failure into a `StoreError` that says where
(host, port, database, user; never the password) and what: the server is
unreachable, the password or user is refused, the database does not exist.
`PgDb` runs statements written with `?` placeholders (the form the shared
operations in `thumpflow.store.ops` use) by translating them once each.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

import psycopg
from psycopg import conninfo

from thumpflow.core.errors import StoreError

CONNECT_TIMEOUT = 10


def describe(dsn: str) -> str:
    """Where a DSN points, for messages: `user@host:port/dbname` (no password, ever)."""
    try:
        parts = conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "(an unreadable DSN)"
    host = str(parts.get("host") or parts.get("hostaddr") or "localhost")
    port = str(parts.get("port") or "5432")
    user = str(parts.get("user") or "(default user)")
    return f"{user}@{host}:{port}/{parts.get('dbname') or '(default database)'}"


def _reason(error: psycopg.Error) -> str:
    text = str(error).strip()
    lowered = text.lower()
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        return "the server refused the user or password (check password_env / the DSN)"
    if "does not exist" in lowered and "database" in lowered:
        return "the database does not exist (create it first: createdb)"
    if any(
        words in lowered
        for words in ("connection refused", "could not connect", "timeout expired", "no route")
    ):
        return "the server is unreachable (is PostgreSQL running and listening there?)"
    first = text.splitlines()[0] if text else type(error).__name__
    return first.replace("\n", " ")[:200]


def connect(dsn: str, password: str | None) -> psycopg.Connection[Any]:
    """An autocommit connection; raises `StoreError` naming where and why it failed."""
    extra: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT, "autocommit": True}
    if password is not None:
        extra["password"] = password
    try:
        return psycopg.connect(dsn, **extra)
    except psycopg.Error as error:
        raise StoreError(
            f"cannot connect to the PostgreSQL store at {describe(dsn)}: {_reason(error)}"
        ) from None


@lru_cache(maxsize=512)
def translate(sql: str) -> bytes:
    """A statement with `?` placeholders in psycopg's form (`%s`, literal `%` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s").encode("utf-8")


class PgDb:
    """`thumpflow.store.ops.Db` over one psycopg connection."""

    __slots__ = ("conn",)

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> psycopg.Cursor[Any]:
        return self.conn.execute(translate(sql), parameters)

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> psycopg.Cursor[Any]:
        cursor = self.conn.cursor()
        cursor.executemany(translate(sql), parameters)
        return cursor


def as_bytes(value: str | bytes | None) -> bytes | None:
    """A payload column's value as `bytea` takes it (plain text as UTF-8)."""
    return value.encode("utf-8") if isinstance(value, str) else value
