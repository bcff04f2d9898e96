"""Opening connections and describing driver errors without the data in them."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sqlite3
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

from thumpflow.connectors.sql.spec import SqlConnection
from thumpflow.core.errors import ThumpflowError

# SQLSTATE classes whose primary message names only objects and the query
# (connection, authorization, catalog, syntax/access, resources, operator
# intervention, transaction state). Others (data exceptions 22, integrity
# 23, raised by functions P0, ...) can quote row values and are described by
# condition name, table, column and constraint only.
_SAFE_CLASSES = frozenset({"08", "25", "28", "3D", "42", "53", "57"})


class SqlError(ThumpflowError):
    """A SQL source or destination failed; the message never quotes row values."""


def describe(exc: BaseException) -> str:
    """What went wrong, naming objects and the SQLSTATE but no data values."""
    if isinstance(exc, psycopg.Error) and exc.sqlstate:
        diag = exc.diag
        text = f"{type(exc).__name__} (SQLSTATE {exc.sqlstate})"
        if exc.sqlstate[:2] in _SAFE_CLASSES and diag.message_primary:
            text += f": {diag.message_primary}"
        for label, value in (
            ("table", diag.table_name),
            ("column", diag.column_name),
            ("constraint", diag.constraint_name),
        ):
            if value:
                text += f", {label} {value}"
        return text
    # Client-side psycopg errors (connection failures) and SQLite messages name
    # files, hosts, tables, columns and constraints, never values.
    return f"{type(exc).__name__}: {exc}"


def password(spec: SqlConnection) -> str | None:
    """The PostgreSQL password from the environment or its file, None when neither is named."""
    if spec.password_env is not None:
        value = os.environ.get(spec.password_env)
        if not value:
            raise SqlError(f"environment variable {spec.password_env} is not set")
        return value
    if spec.password_file is not None:
        try:
            return Path(spec.password_file).read_text("utf-8").rstrip("\r\n")
        except OSError as exc:
            raise SqlError(
                f"cannot read password file {spec.password_file}: {exc.strerror}"
            ) from None
    return None


async def connect_postgresql(
    spec: SqlConnection, *, read_only: bool = False
) -> psycopg.AsyncConnection[Any]:
    """An open connection (not autocommit); raises SqlError naming the server on failure."""
    assert spec.dsn is not None
    secret = await asyncio.to_thread(password, spec)
    extra: dict[str, Any] = {} if secret is None else {"password": secret}
    try:
        conn = await psycopg.AsyncConnection.connect(
            spec.dsn, connect_timeout=max(1, round(spec.timeout_seconds)), **extra
        )
    except psycopg.Error as exc:
        raise SqlError(f"cannot connect to PostgreSQL: {describe(exc)}") from None
    if read_only:
        await conn.set_read_only(True)
    return conn


def connect_sqlite(spec: SqlConnection, *, read_only: bool = False) -> sqlite3.Connection:
    """An open connection in autocommit mode (transactions are explicit); blocking."""
    assert spec.database is not None
    path = Path(spec.database)
    try:
        if read_only:
            target = path.resolve().as_uri() + "?mode=ro"
            conn = sqlite3.connect(
                target, uri=True, timeout=spec.timeout_seconds, check_same_thread=False
            )
        else:
            conn = sqlite3.connect(path, timeout=spec.timeout_seconds, check_same_thread=False)
    except sqlite3.Error as exc:
        raise SqlError(f"cannot open SQLite database {path}: {exc}") from None
    conn.isolation_level = None
    return conn


_SQLITE_TEXT: dict[type, Callable[[Any], str]] = {
    dt.date: dt.date.isoformat,
    dt.datetime: dt.datetime.isoformat,
    dt.time: dt.time.isoformat,
    Decimal: Decimal.__str__,
}


def sqlite_value(value: Any) -> Any:
    """A value sqlite3 binds: dates and times as ISO text, containers as JSON, others as text."""
    text = _SQLITE_TEXT.get(value.__class__)  # the common types, without the chain below
    if text is not None:
        return text(value)
    if value is None or isinstance(value, int | float | str | bytes):
        return value
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)
    return str(value)


def postgresql_value(value: Any) -> Any:
    """A value psycopg binds: containers become JSON text, the rest is adapted natively."""
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)
    return value
