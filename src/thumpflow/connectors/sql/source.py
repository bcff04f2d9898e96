"""The SQL batch source: the rows of one query per window, streamed.

Guarantees:

- Rows are yielded in the order the query returns them, as `SourceRecord`s
  with origin `query row N` (1-based), `data` the row by column name with the
  driver's values (dates stay dates), and `raw` the row as JSON text.
- Memory is bounded by `fetch_size`: PostgreSQL rows come through a
  server-side cursor in a read-only transaction, SQLite rows by `fetchmany`
  on a read-only connection (its blocking calls run in worker threads).
  The source never writes to the database. A SQLite file that a destination
  writes during the same run must be in WAL mode: otherwise the open read
  blocks the writer's commit until `timeout_seconds` pass.
- `next_watermark` is the greatest non-NULL value of `watermark_column` over
  the rows read (dates as ISO 8601 text, numbers as digits); when no row had
  one it is the window's start, so an empty run does not move the watermark.
  It is complete only once `read` is exhausted.
- Failures raise `SqlError` naming the database, object or SQLSTATE, never
  row values; the connection is closed in every case.
- There are no manifests, and nothing to move: `commit` and `fail` do nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from psycopg.rows import dict_row

from thumpflow.connectors.sql._connect import (
    SqlError,
    connect_postgresql,
    connect_sqlite,
    describe,
)
from thumpflow.connectors.sql._query import for_psycopg
from thumpflow.connectors.sql.spec import SqlSourceSpec
from thumpflow.core.batch import Manifest, SourceRecord, Window

_CURSOR_NAME = "thumpflow_sql_source"


def _watermark_text(value: Any) -> str:
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)


class SqlSource:
    """Reads a query's rows for a window; see the module docstring for its guarantees."""

    def __init__(self, source_id: str, spec: SqlSourceSpec) -> None:
        self.source_id = source_id
        self.spec = spec
        self._start: str | None = None
        self._greatest: Any = None

    async def read(self, window: Window) -> AsyncIterator[list[SourceRecord]]:
        """Yield the rows of `window` as fetched, binding its start and end to the query."""
        self._start = window.start
        self._greatest = None
        column = self.spec.watermark_column
        params = {"window_start": window.start, "window_end": window.end}
        number = 0
        async for rows in self._batches(params):
            chunk: list[SourceRecord] = []
            for row in rows:
                number += 1
                if column is not None:
                    self._track(row, column)
                chunk.append(
                    SourceRecord(
                        data=row,
                        origin=f"query row {number}",
                        raw=json.dumps(row, default=str, ensure_ascii=False),
                    )
                )
            if chunk:
                yield chunk

    def _track(self, row: dict[str, Any], column: str) -> None:
        try:
            value = row[column]
        except KeyError:
            raise SqlError(
                f"sql source {self.source_id}: the query returns no column {column!r} "
                "(watermark_column)"
            ) from None
        if value is None:
            return
        try:
            if self._greatest is None or value > self._greatest:
                self._greatest = value
        except TypeError:
            raise SqlError(
                f"sql source {self.source_id}: watermark column {column!r} mixes "
                f"{type(self._greatest).__name__} and {type(value).__name__} values"
            ) from None

    def _batches(self, params: dict[str, str | None]) -> AsyncIterator[list[dict[str, Any]]]:
        if self.spec.dialect == "postgresql":
            return self._postgresql(params)
        return self._sqlite(params)

    async def _postgresql(
        self, params: dict[str, str | None]
    ) -> AsyncIterator[list[dict[str, Any]]]:
        conn = await connect_postgresql(self.spec, read_only=True)
        try:
            cursor = conn.cursor(_CURSOR_NAME, row_factory=dict_row)
            cursor.itersize = self.spec.fetch_size
            try:
                await cursor.execute(for_psycopg(self.spec.query), params)
            except psycopg.Error as exc:
                raise self._failed(exc) from None
            while True:
                try:
                    rows = await cursor.fetchmany(self.spec.fetch_size)
                except psycopg.Error as exc:
                    raise self._failed(exc) from None
                if not rows:
                    return
                yield rows
        finally:
            await conn.close()

    async def _sqlite(self, params: dict[str, str | None]) -> AsyncIterator[list[dict[str, Any]]]:
        conn = await asyncio.to_thread(connect_sqlite, self.spec, read_only=True)
        try:
            try:
                cursor = await asyncio.to_thread(conn.execute, self.spec.query, params)
            except sqlite3.Error as exc:
                raise self._failed(exc) from None
            if cursor.description is None:
                raise SqlError(f"sql source {self.source_id}: the query returns no rows")
            columns = [entry[0] for entry in cursor.description]
            while True:
                try:
                    rows = await asyncio.to_thread(cursor.fetchmany, self.spec.fetch_size)
                except sqlite3.Error as exc:
                    raise self._failed(exc) from None
                if not rows:
                    return
                yield [dict(zip(columns, row, strict=True)) for row in rows]
        finally:
            await asyncio.to_thread(conn.close)

    def _failed(self, exc: Exception) -> SqlError:
        return SqlError(f"sql source {self.source_id}: query failed: {describe(exc)}")

    def manifests(self) -> list[Manifest]:
        """None: a query has no manifest."""
        return []

    def next_watermark(self) -> str | None:
        """The greatest watermark read, or the window's start when none was read."""
        if self._greatest is None:
            return self._start
        return _watermark_text(self._greatest)

    async def commit(self) -> None:
        """Nothing to do: reading consumed nothing."""

    async def fail(self, reason: str) -> None:
        """Nothing to do: there is nothing to set aside."""
