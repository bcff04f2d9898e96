"""The PostgreSQL store: every storage protocol on one PostgreSQL database."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import psycopg

from thumpflow.core.clock import Clock, SystemClock
from thumpflow.core.errors import StoreError
from thumpflow.core.health import DeliverySample
from thumpflow.core.search import DeliveryQuery, DeliveryRecord, EventQuery, EventSummary
from thumpflow.store import reads
from thumpflow.store.base import GroupStore
from thumpflow.store.crypt import Codec, PayloadCipher, check_keys
from thumpflow.store.ops import Db
from thumpflow.store.ops import upkeep as _upkeep
from thumpflow.store.postgresql import _schema, _search
from thumpflow.store.postgresql._copy import CopyCounts, copy_sqlite
from thumpflow.store.postgresql._db import PgDb, connect, describe
from thumpflow.store.postgresql._writer import (
    DIALECT,
    PENDING_CHANNEL,
    SQL,
    Writer,
    dead_filter,
)

_T = TypeVar("_T")

_log = logging.getLogger("thumpflow.store.postgresql")


class PostgresStore(GroupStore):
    """`core.ports.StateStore` on PostgreSQL, with the SQLite store's guarantees.

    Durability: a write coroutine returns only after its transaction's COMMIT
    returned, which with `synchronous_commit = on` (the default; see
    docs/deployment.md for the settings) means the WAL is flushed, and with a
    synchronous standby that the standby has it too. Writes of one store are
    group committed in call order (`thumpflow.store.group`); several stores
    (nodes) on one database append to one audit chain and hand out ids in
    commit order (see `_writer`). Reads use their own connection and see the
    last committed state, one snapshot per call.

    `open` creates or migrates the schema (one node at a time), checks the
    encryption keys as SQLite's store does, and raises `StoreError` naming
    where and why when the database is unreachable, refuses the login, or
    holds a schema from a newer thumpflow. With `read_only=True` nothing is
    created or migrated and write methods raise `StoreError`.
    """

    _clock_sql = SQL.clock_sql

    def __init__(
        self,
        dsn: str,
        *,
        password: str | None = None,
        clock: Clock | None = None,
        read_only: bool = False,
        max_batch: int = 2000,
        cipher: PayloadCipher | None = None,
    ) -> None:
        self._dsn = dsn
        self._password = password
        self._codec: Codec = cipher or Codec()
        self._clock: Clock = clock or SystemClock()
        self._read_only = read_only
        self._max_batch = max_batch
        self._writer: Writer | None = None
        self._reader: PgDb | None = None
        self._read_lock = threading.Lock()
        self._closed = False
        self._dialect = DIALECT
        self._dead_filter = dead_filter

    @property
    def where(self) -> str:
        """Where the store is, for messages: `user@host:port/dbname` (never the password)."""
        return describe(self._dsn)

    @property
    def read_only(self) -> bool:
        return self._read_only

    def _connect(self) -> psycopg.Connection[Any]:
        return connect(self._dsn, self._password)

    async def open(self) -> None:
        """Create or migrate the schema and start the writer; idempotent (see the class)."""
        if self._reader is not None:
            return
        if self._closed:
            raise StoreError("the store was closed; create a new one")
        await asyncio.to_thread(self._open_sync)

    def _open_sync(self) -> None:
        conn = self._connect()
        try:
            if self._read_only:
                _schema.check_version(conn, self.where)
                check_keys(_upkeep.stored_keys(PgDb(conn)), self._codec)
            else:
                _schema.migrate(conn, self.where)
                self._register_keys(conn)
                self._writer = Writer(self._connect, self._clock, self._max_batch, self._codec)
                self._writer.start()
        except BaseException:
            conn.close()
            raise
        self._reader = PgDb(conn)

    def _register_keys(self, conn: psycopg.Connection[Any]) -> None:
        """Check the configured keys against the store; record the sealing key if new."""
        with conn.transaction():
            conn.execute("LOCK TABLE cipher_keys IN EXCLUSIVE MODE")
            _upkeep.register_keys(PgDb(conn), self._codec, self._clock.now())

    def _release(self) -> None:
        with self._read_lock:
            reader, self._reader = self._reader, None
        if reader is not None:
            reader.conn.close()

    async def _read(self, query: Callable[[Db], _T]) -> _T:
        return await asyncio.to_thread(self._read_sync, query)

    def _read_sync(self, query: Callable[[Db], _T]) -> _T:
        with self._read_lock:
            reader = self._reader
            if reader is None:
                raise StoreError("the store is not open")
            if reader.conn.closed or reader.conn.broken:
                reader.conn.close()
                reader.conn = self._connect()
            try:
                reader.conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                try:
                    return query(reader)
                finally:
                    if not reader.conn.broken:
                        reader.conn.execute("COMMIT")
            except psycopg.Error as error:
                raise StoreError(
                    f"reading the PostgreSQL store at {self.where} failed ({type(error).__name__})"
                ) from error

    # --- what PostgreSQL does its own way -----------------------------------------

    async def follow_pending(self, wake: Callable[[str], None]) -> None:
        """`ClusterStore.follow_pending`: LISTEN on its own connection, in a thread.

        Every node's writer notifies `PENDING_CHANNEL` with each destination that got
        new deliveries, at COMMIT. A lost connection is logged by its reason and opened
        again after a second (notifications meanwhile are lost: polling finds those
        deliveries). Cancelling stops the listener within a second.
        """
        loop = asyncio.get_running_loop()
        stop = threading.Event()

        def hand_over(destination_id: str) -> None:
            loop.call_soon_threadsafe(wake, destination_id)

        listening = asyncio.ensure_future(asyncio.to_thread(self._listen, hand_over, stop))
        try:
            await asyncio.shield(listening)
        finally:
            stop.set()
            await asyncio.wait({listening})

    def _listen(self, wake: Callable[[str], None], stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                conn = self._connect()
            except StoreError as err:
                _log.warning("listening for pending deliveries: %s", err)
                stop.wait(1.0)
                continue
            try:
                conn.autocommit = True
                conn.execute(f"LISTEN {PENDING_CHANNEL}")
                while not stop.is_set():
                    for note in conn.notifies(timeout=1.0):
                        wake(note.payload)
            except psycopg.Error as err:
                _log.warning("listening for pending deliveries: %s", type(err).__name__)
                stop.wait(1.0)
            finally:
                conn.close()

    async def search_events(self, query: EventQuery) -> list[EventSummary]:
        """Events matching `query`, newest first, keyset paged."""
        return await self._read(lambda db: _search.search_events(db, DIALECT, query))

    async def search_deliveries(self, query: DeliveryQuery) -> list[DeliveryRecord]:
        """Deliveries matching `query`, newest first, keyset paged."""
        return await self._read(lambda db: _search.search_deliveries(db, query, self._codec))

    async def delivery_sample(
        self, destination_id: str, since: float, limit: int
    ) -> DeliverySample:
        """Deliveries of one destination finished since `since`: counts and newest lags."""
        return await self._read(
            lambda db: reads.delivery_sample(db, _search.FRESHNESS, destination_id, since, limit)
        )

    async def import_sqlite(self, source: Path) -> CopyCounts:
        """Copy an embedded SQLite store file into this (empty) store; see `_copy`."""
        if self._read_only or self._writer is None:
            raise StoreError("the store is not open for writing")
        return await asyncio.to_thread(self._import_sync, source)

    def _import_sync(self, source: Path) -> CopyCounts:
        conn = self._connect()
        try:
            return copy_sqlite(source, conn)
        finally:
            conn.close()

    async def vacuum(self) -> tuple[int, int]:
        """`VACUUM FULL` of the store's tables; (database bytes before, after).

        Takes exclusive locks table by table: stop the engines first. Raises
        `StoreError` when the store is read-only or the vacuum fails.
        """
        if self._read_only:
            raise StoreError("the store is open read-only")
        return await asyncio.to_thread(self._vacuum_sync)

    def _vacuum_sync(self) -> tuple[int, int]:
        conn = self._connect()
        try:
            size = "SELECT pg_database_size(current_database())"
            before = int(conn.execute(size).fetchone()[0])  # type: ignore[index]
            conn.execute("VACUUM (FULL, ANALYZE)")
            after = int(conn.execute(size).fetchone()[0])  # type: ignore[index]
        except psycopg.Error as error:
            raise StoreError(
                f"vacuum failed: {type(error).__name__} (are engines running?)"
            ) from None
        finally:
            conn.close()
        return before, after
