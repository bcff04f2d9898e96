"""Connections to the PostgreSQL store: opening them with clear errors, and `?` placeholders.

`connect` opens one connection in autocommit mode (transactions are begun
explicitly) and turns every failure into a `StoreError` that says where
(host, port, database, user; never the password) and what: the server is
unreachable, the password or user is refused, the database does not exist.
`PgDb` runs statements written with `?` placeholders (the form the shared
operations in `thumpflow.store.ops` use) by translating them once each.
Text that holds NUL, which PostgreSQL's `text` refuses, is stored escaped
and read back restored (`escape_text`), so any value an HL7 v2 field can
carry is stored, matched and read as SQLite stores it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

import psycopg
from psycopg import conninfo
from psycopg.abc import Buffer
from psycopg.adapt import Dumper, Loader

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
    """An autocommit connection, NUL-safe for text; raises `StoreError` naming where and why
    it failed."""
    extra: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT, "autocommit": True}
    if password is not None:
        extra["password"] = password
    try:
        conn = psycopg.connect(dsn, **extra)
    except psycopg.Error as error:
        raise StoreError(
            f"cannot connect to the PostgreSQL store at {describe(dsn)}: {_reason(error)}"
        ) from None
    conn.adapters.register_dumper(str, NulSafeTextDumper)
    for name in ("text", "varchar"):
        conn.adapters.register_loader(name, NulSafeTextLoader)
    return conn


# PostgreSQL's `text` cannot hold NUL, which an HL7 v2 field may carry (its keys and ids
# become columns). Text goes in with NUL written as ESCAPE + "0" and ESCAPE itself doubled,
# and comes out restored; ESCAPE is U+FFFF, a noncharacter, so text without NUL or U+FFFF
# (all real text) is stored unchanged, and equal values stay equal once escaped.
_ESCAPE = "\uffff"
_ESCAPED = re.compile(f"{_ESCAPE}(.)", re.DOTALL)
_ESCAPE_UTF8 = _ESCAPE.encode("utf-8")


def escape_text(text: str) -> str:
    """`text` as stored: NUL as U+FFFF "0", U+FFFF doubled; unchanged without either."""
    if "\x00" not in text and _ESCAPE not in text:
        return text
    return text.replace(_ESCAPE, _ESCAPE * 2).replace("\x00", _ESCAPE + "0")


def unescape_text(text: str) -> str:
    """The inverse of `escape_text`."""
    if _ESCAPE not in text:
        return text
    return _ESCAPED.sub(lambda found: "\x00" if found.group(1) == "0" else found.group(1), text)


class NulSafeTextDumper(Dumper):
    """`str` parameters in text format, of unknown type (as psycopg's default), escaped."""

    def dump(self, obj: str) -> bytes:
        return escape_text(obj).encode("utf-8")


class NulSafeTextLoader(Loader):
    """`text` and `varchar` results, unescaped."""

    def load(self, data: Buffer) -> str:
        raw = bytes(data)
        text = raw.decode("utf-8")
        return unescape_text(text) if _ESCAPE_UTF8 in raw else text


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

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> None:
        self.conn.cursor().executemany(translate(sql), parameters)


def as_bytes(value: str | bytes | None) -> bytes | None:
    """A payload column's value as `bytea` takes it (plain text as UTF-8)."""
    return value.encode("utf-8") if isinstance(value, str) else value
