"""The embedded durable store: one SQLite file in WAL mode, one writer with group commit."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from thumpflow.core.clock import Clock, SystemClock
from thumpflow.core.errors import StoreError
from thumpflow.core.health import DeliverySample
from thumpflow.core.search import (
    DeliveryQuery,
    DeliveryRecord,
    EventQuery,
    EventSummary,
)
from thumpflow.store import crypt as _crypt
from thumpflow.store import reads
from thumpflow.store.base import GroupStore
from thumpflow.store.crypt import Codec, PayloadCipher
from thumpflow.store.ops import upkeep as _upkeep
from thumpflow.store.sqlite import (
    _audit,
    _freshness,
    _rows,
    _schema,
    _search,
)
from thumpflow.store.sqlite._rows import DIALECT
from thumpflow.store.sqlite._writer import Writer

_T = TypeVar("_T")


class SqliteStore(GroupStore):
    """The `Store` and the `RunStore` on one SQLite database file.

    Durability: WAL journaling with `synchronous=FULL`; a write coroutine
    returns only after its transaction's WAL frames are fsync'd, so whatever
    it committed survives a process kill or an OS crash. Concurrent writers
    share one commit (group commit, see `_writer`); writes are applied in
    call order; a failed commit fails every caller of that commit with
    `StoreError` and commits nothing of theirs. `load_pending` is executed by
    the writer in the same order, so it sees exactly the writes called before
    it. Other reads use their own connection and see the last committed state.

    With `read_only=True` the file is opened read-only, nothing is created or
    migrated, write methods raise `StoreError`, and reads work while another
    process (the engine) is writing the same database. `max_batch` caps how
    many queued operations one group commit takes.

    With `cipher`, every payload column (event bodies, rejected input,
    batch row rejects, delivery errors and reasons) is sealed with
    AES-256-GCM; `open` refuses a wrong key, a missing key the store still
    uses, and a store with encrypted values opened without a cipher
    (`StoreError` naming the key id). The audit trail is hash chained and
    append-only (see `thumpflow.core.audit`); entries written before the
    chain existed are chained by the first read-write `open`.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Clock | None = None,
        read_only: bool = False,
        max_batch: int = 2000,
        cipher: PayloadCipher | None = None,
    ) -> None:
        self._path = Path(path)
        self._codec: Codec = cipher or Codec()
        self._clock: Clock = clock or SystemClock()
        self._read_only = read_only
        self._max_batch = max_batch
        self._writer: Writer | None = None
        self._write_conn: sqlite3.Connection | None = None
        self._read_conn: sqlite3.Connection | None = None
        self._read_lock = threading.Lock()
        self._closed = False
        self._dialect = DIALECT
        self._dead_filter = _rows.dead_filter

    @property
    def path(self) -> Path:
        return self._path

    @property
    def read_only(self) -> bool:
        return self._read_only

    async def open(self) -> None:
        """Create or migrate the schema and start the writer; idempotent.

        Read-only: check that the database exists at this schema version.
        Raises `StoreError` if the database is missing (read-only), newer than
        this code, or cannot use WAL.
        """
        if self._read_conn is not None:
            return
        if self._closed:
            raise StoreError("the store was closed; create a new one")
        await asyncio.to_thread(self._open_sync)

    def _open_sync(self) -> None:
        if self._read_only:
            conn = _schema.connect_reader(self._path, read_only_file=True)
            try:
                _schema.check_version(conn, self._path)
                _crypt.check_keys(_upkeep.stored_keys(conn), self._codec)
            except BaseException:
                conn.close()
                raise
            self._read_conn = conn
            return
        write_conn = _schema.connect_writer(self._path)
        try:
            _schema.migrate(write_conn, self._path)
            self._register_keys(write_conn)
            _audit.chain_unchained(write_conn)
            read_conn = _schema.connect_reader(self._path, read_only_file=False)
        except BaseException:
            write_conn.close()
            raise
        self._write_conn = write_conn
        self._read_conn = read_conn
        self._writer = Writer(write_conn, self._clock, self._max_batch, self._codec)
        self._writer.start()

    def _register_keys(self, conn: sqlite3.Connection) -> None:
        """Check the configured keys against the store; record the sealing key if new."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            _upkeep.register_keys(conn, self._codec, self._clock.now())
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _release(self) -> None:
        with self._read_lock:
            for conn in (self._read_conn, self._write_conn):
                if conn is not None:
                    conn.close()
            self._read_conn = self._write_conn = None

    async def _read(self, query: Callable[[sqlite3.Connection], _T]) -> _T:
        return await asyncio.to_thread(self._read_sync, query)

    def _read_sync(self, query: Callable[[sqlite3.Connection], _T]) -> _T:
        with self._read_lock:
            conn = self._read_conn
            if conn is None:
                raise StoreError("the store is not open")
            conn.execute("BEGIN")
            try:
                return query(conn)
            finally:
                conn.execute("COMMIT")

    # --- AccessStore ------------------------------------------------------------

    # --- OperationsStore --------------------------------------------------------

    async def search_events(self, query: EventQuery) -> list[EventSummary]:
        """Events matching `query`, newest first (one index range read; see `_search`)."""
        return await self._read(lambda conn: _search.search_events(conn, query))

    async def search_deliveries(self, query: DeliveryQuery) -> list[DeliveryRecord]:
        """Deliveries matching `query`, newest first (one index range read)."""
        return await self._read(lambda conn: _search.search_deliveries(conn, query, self._codec))

    # --- AlertStore -------------------------------------------------------------

    # --- SubscriptionStateStore ------------------------------------------------

    # --- RunStore ---------------------------------------------------------------

    # --- FreshnessStore -----------------------------------------------------------

    async def delivery_sample(
        self, destination_id: str, since: float, limit: int
    ) -> DeliverySample:
        """Deliveries of one destination finished since `since`: counts and newest lags.

        Bounded: at most `limit` rows of each kind are read, counts stop at
        a million; both walk indexes over the time range (see `_freshness` and
        `tests/store/test_freshness.py`).
        """

        return await self._read(
            lambda conn: reads.delivery_sample(
                conn, _freshness.STATEMENTS, destination_id, since, limit
            )
        )

    # --- Upkeep: the audit chain, retention, keys ---------------------------------

    async def vacuum(self) -> tuple[int, int]:
        """Rebuild the file (full VACUUM) with incremental auto-vacuum; (bytes before, after).

        Needs exclusive use of the database: stop the engine first. Raises
        `StoreError` when the store is read-only or busy.
        """
        if self._read_only:
            raise StoreError("the store is open read-only")
        return await asyncio.to_thread(self._vacuum_sync)

    def _vacuum_sync(self) -> tuple[int, int]:
        before = _file_bytes(self._path)
        conn = sqlite3.connect(self._path, isolation_level=None, timeout=5.0)
        try:
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            conn.execute("VACUUM")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.OperationalError as err:
            raise StoreError(f"vacuum failed: {err} (is the engine running?)") from None
        finally:
            conn.close()
        return before, _file_bytes(self._path)


def _file_bytes(path: Path) -> int:
    """The database file plus its WAL, in bytes."""
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
