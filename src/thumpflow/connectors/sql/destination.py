"""The SQL upsert destination: items into a table by business key, idempotently.

Each item becomes one `INSERT … ON CONFLICT (key columns) DO UPDATE SET …
WHERE <some non-key column differs>` (null-safe comparison: `IS NOT` on
SQLite, `IS DISTINCT FROM` on PostgreSQL). The database reports one changed
row per insert or real update and none when the stored row already holds the
same values, which gives the counts without reading the table first.

Guarantees:

- `write` returns (written, skipped): written = inserted or changed rows,
  skipped = items whose row was already identical (an item repeated in one
  write is applied in order, each counted).
- Each `write` is one transaction: all of its items are applied or none
  (`SqlError`, naming the table and SQLSTATE but no values). Writes are
  committed as they go, not at `finish`: upserts are idempotent, so a run
  that crashes or is aborted midway leaves some items applied, and re-running
  the window converges on exactly the state one complete run gives, without
  duplicates. `abort` therefore only closes the connection.
- An item without a field for a key column is refused (`SqlError` naming the
  item's origin and the column); a missing non-key field is written as NULL.
  Mappings and lists are written as JSON text; on SQLite dates and times as
  ISO 8601 text.
- `finish` writes no manifest (a table is not a file) and returns none.

On SQLite, a batch whose items all carry their canonical JSON (records the
runner validated without a transform) goes as one statement: the items'
JSON as one array, read by `json_each`, each column by `json_extract`, so
SQLite does the whole batch in C without the interpreter's lock while the
run validates the next batch. The values stored, the counts and the
one-transaction rule are those of binding row by row (`tests/sqlsftp`
compares both paths); NUL characters and field names SQLite's JSON paths
cannot hold keep the row-by-row path.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from thumpflow.connectors.sql._connect import (
    SqlError,
    connect_postgresql,
    connect_sqlite,
    describe,
    postgresql_value,
    sqlite_value,
)
from thumpflow.connectors.sql._query import quote
from thumpflow.connectors.sql.spec import SqlUpsertDestinationSpec
from thumpflow.core.batch import BatchItem, Manifest, Window, WriteResult


def upsert_statement(spec: SqlUpsertDestinationSpec) -> str:
    """The parameterised upsert of one row, columns in `spec.columns` order."""
    placeholder = "?" if spec.dialect == "sqlite" else "%s"
    rows = f"VALUES ({', '.join(placeholder for _ in spec.columns)}) "
    return _upsert(spec, rows)


# A field name SQLite's JSON path can hold between double quotes.
_JSON_KEY = re.compile(r'[^"\\\x00-\x1f]+')


def _json_path(field: str) -> str:
    return f'$."{field}"'


def json_upsert_statement(spec: SqlUpsertDestinationSpec) -> str | None:
    """The upsert of a batch given as one JSON array of records (SQLite): parameter 1 is the
    array, parameters 2… the JSON paths of the columns' fields, in `spec.columns` order.

    None when a field name cannot be a JSON path key (then rows are bound one by one).
    """
    if not all(_JSON_KEY.fullmatch(field) for field in spec.columns.values()):
        return None
    values = ", ".join(f"json_extract(value, ?{n})" for n in range(2, len(spec.columns) + 2))
    # `WHERE true` keeps SQLite from reading ON CONFLICT as part of the SELECT's join.
    return _upsert(spec, f"SELECT {values} FROM json_each(?1) WHERE true ")


def _upsert(spec: SqlUpsertDestinationSpec, rows: str) -> str:
    columns = list(spec.columns)
    others = [column for column in columns if column not in spec.key_columns]
    head = (
        f"INSERT INTO {quote(spec.table)} AS target "
        f"({', '.join(quote(c) for c in columns)}) "
        f"{rows}"
        f"ON CONFLICT ({', '.join(quote(c) for c in spec.key_columns)}) "
    )
    if not others:
        return head + "DO NOTHING"
    differs = " IS NOT " if spec.dialect == "sqlite" else " IS DISTINCT FROM "
    assignments = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in others)
    changed = " OR ".join(f"target.{quote(c)}{differs}excluded.{quote(c)}" for c in others)
    return f"{head}DO UPDATE SET {assignments} WHERE {changed}"


def create_statement(spec: SqlUpsertDestinationSpec) -> str:
    """`CREATE TABLE IF NOT EXISTS` with text columns and the key as (non-NULL) primary key."""
    columns = ", ".join(
        f"{quote(c)} TEXT NOT NULL" if c in spec.key_columns else f"{quote(c)} TEXT"
        for c in spec.columns
    )
    keys = ", ".join(quote(c) for c in spec.key_columns)
    return f"CREATE TABLE IF NOT EXISTS {quote(spec.table)} ({columns}, PRIMARY KEY ({keys}))"


class SqlUpsertDestination:
    """Upserts items by business key; see the module docstring for its guarantees."""

    def __init__(self, destination_id: str, spec: SqlUpsertDestinationSpec) -> None:
        self.destination_id = destination_id
        self.spec = spec
        self._statement = upsert_statement(spec)
        self._fields = list(spec.columns.items())
        self._keys = set(spec.key_columns)
        self._field_names = tuple(spec.columns.values())
        self._key_fields = tuple(
            (column, field) for column, field in self._fields if column in self._keys
        )
        self._convert: Callable[[Any], Any] = (
            sqlite_value if spec.dialect == "sqlite" else postgresql_value
        )
        self._sqlite: sqlite3.Connection | None = None
        self._postgresql: psycopg.AsyncConnection[Any] | None = None
        self._json_upsert = json_upsert_statement(spec) if spec.dialect == "sqlite" else None
        self._json_paths = [_json_path(field) for field in self._field_names]

    async def begin(self, job_id: str, run_id: int, window: Window) -> None:
        """Connect (and create the table when configured to)."""
        await self.abort()
        create = create_statement(self.spec) if self.spec.create_table else None
        if self.spec.dialect == "sqlite":
            self._sqlite = conn = await asyncio.to_thread(connect_sqlite, self.spec)
            if create is not None:
                try:
                    await asyncio.to_thread(conn.execute, create)
                except sqlite3.Error as exc:
                    raise self._failed(exc) from None
        else:
            self._postgresql = pg = await connect_postgresql(self.spec)
            await pg.set_autocommit(True)
            if create is not None:
                try:
                    await pg.execute(create)
                except psycopg.Error as exc:
                    raise self._failed(exc) from None

    async def write(self, items: Sequence[BatchItem]) -> WriteResult:
        """Upsert `items` in one transaction; written and skipped (never rejects one by one)."""
        if not items:
            return WriteResult(0, 0)
        if self._sqlite is not None and self._as_json(items):
            written = await self._sqlite_json_upsert(items)
            return WriteResult(written, len(items) - written)
        rows = [self._row(item) for item in items]
        if self._sqlite is not None:
            written = await self._sqlite_upsert(rows)
        elif self._postgresql is not None:
            written = await self._postgresql_upsert(rows)
        else:
            raise RuntimeError("write before begin")
        return WriteResult(written, len(items) - written)

    def _row(self, item: BatchItem) -> tuple[Any, ...]:
        data = item.data
        for column, field in self._key_fields:
            if field not in data:
                raise SqlError(
                    f"sql_upsert {self.destination_id}: item from {item.origin} has no field "
                    f"{field!r} for key column {column!r}"
                )
        convert = self._convert
        # Text and None (nearly every value of a batch) bind as they are in both dialects.
        return tuple(
            [
                value if value.__class__ is str or value is None else convert(value)
                for value in map(data.get, self._field_names)
            ]
        )

    def _as_json(self, items: Sequence[BatchItem]) -> bool:
        """Whether the batch can go to SQLite as one JSON array: every field name can be a
        JSON path key, and every item carries its canonical JSON, without NUL (`json_extract`
        would cut the text there), and every key field."""
        if self._json_upsert is None:
            return False
        keys = [field for _, field in self._key_fields]
        for item in items:
            canonical = item.canonical
            if canonical is None or b"\\u0000" in canonical:
                return False
            data = item.data
            for field in keys:
                if field not in data:
                    return False
        return True

    async def _sqlite_json_upsert(self, items: Sequence[BatchItem]) -> int:
        """The batch as one statement over a JSON array of the items' canonical JSON.

        SQLite reads each column from the JSON (`json_extract` gives the text,
        integer, 1/0 or NULL that binding the item's value would) and does the
        whole batch inside one step, without the interpreter's lock, in one
        transaction (a single statement in autocommit).
        """
        conn = self._sqlite
        statement = self._json_upsert
        assert conn is not None and statement is not None
        array = b"[" + b",".join([item.canonical or b"" for item in items]) + b"]"
        parameters = [array.decode("utf-8"), *self._json_paths]

        def apply() -> int:
            return max(conn.execute(statement, parameters).rowcount, 0)

        try:
            return await asyncio.to_thread(apply)
        except sqlite3.Error as exc:
            raise self._failed(exc) from None

    async def _sqlite_upsert(self, rows: Sequence[tuple[Any, ...]]) -> int:
        conn = self._sqlite
        assert conn is not None

        def apply() -> int:
            conn.execute("BEGIN IMMEDIATE")
            try:
                cursor = conn.executemany(self._statement, rows)
                changed = cursor.rowcount
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return max(changed, 0)

        try:
            return await asyncio.to_thread(apply)
        except sqlite3.Error as exc:
            raise self._failed(exc) from None

    async def _postgresql_upsert(self, rows: Sequence[tuple[Any, ...]]) -> int:
        conn = self._postgresql
        assert conn is not None
        try:
            async with conn.transaction(), conn.cursor() as cursor:
                await cursor.executemany(self._statement, rows)
                return max(cursor.rowcount, 0)
        except psycopg.Error as exc:
            raise self._failed(exc) from None

    def _failed(self, exc: Exception) -> SqlError:
        return SqlError(
            f"sql_upsert {self.destination_id}: write to {self.spec.table} failed: {describe(exc)}"
        )

    async def finish(self) -> list[Manifest]:
        """Close the connection (every write is already committed); no manifests."""
        await self.abort()
        return []

    async def abort(self) -> None:
        """Close the connection; committed writes stay (re-running converges). Idempotent."""
        if self._sqlite is not None:
            conn, self._sqlite = self._sqlite, None
            await asyncio.to_thread(conn.close)
        if self._postgresql is not None:
            pg, self._postgresql = self._postgresql, None
            await pg.close()
