"""Connections, pragmas and forward migrations of the SQLite store.

The schema lives in `schema_NNNN.sql` files beside this module, numbered from
0001 without gaps; version N is the database after applying files 1..N. A
database records what it has in `schema_version`. Migrations only go forward:
opening a database whose version is newer than this code knows fails rather
than guessing.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from thumpflow.core.errors import StoreError
from thumpflow.store.migrations import newer_schema, packaged_migrations

# Writer connection tuning. `synchronous=FULL` in WAL mode fsyncs the WAL on
# every commit: a commit that returned survives a process kill and an OS crash.
# The checkpoint threshold trades WAL size for fewer, larger checkpoints. The
# page caches are bounded (16 MB writer, 8 MB reader) and the file is not
# memory-mapped, so the engine's memory does not grow with the database: the
# hot pages (outbox tails, indexes) fit, and the OS page cache holds the rest.
_WRITER_PRAGMAS = (
    "PRAGMA busy_timeout = 10000",
    "PRAGMA synchronous = FULL",
    "PRAGMA wal_autocheckpoint = 4096",
    "PRAGMA journal_size_limit = 67108864",
    "PRAGMA cache_size = -16384",
    "PRAGMA temp_store = MEMORY",
    "PRAGMA foreign_keys = OFF",
)

# The page size of new databases (see `connect_writer`).
PAGE_SIZE = 2048

_READER_PRAGMAS = (
    "PRAGMA busy_timeout = 10000",
    "PRAGMA cache_size = -8192",
    "PRAGMA temp_store = MEMORY",
    "PRAGMA query_only = ON",
)


def migrations() -> list[tuple[int, str]]:
    """The packaged migrations as (version, sql), in order."""
    return packaged_migrations(__package__)


LATEST_VERSION = len(migrations())


def _statements(script: str) -> list[str]:
    statements: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    leftover = [
        line for line in pending.splitlines() if line.strip() and not line.strip().startswith("--")
    ]
    if leftover:
        raise StoreError("schema migration ends with an incomplete SQL statement")
    return statements


def connect_writer(path: Path) -> sqlite3.Connection:
    """Open the read-write connection, creating the file and its directory if missing.

    A new database is created with `auto_vacuum = INCREMENTAL`, so pages freed
    by a retention purge can be handed back to the file system, and with
    2048-byte pages (`PAGE_SIZE`): a commit writes every page it changed to
    the WAL and fsyncs it, and an admission changes one leaf page in each of
    about twenty B-trees (the events, deliveries and audit tables and their
    indexes), so smaller pages mean fewer bytes to fsync per commit (measured
    in docs/benchmarks.md). A database created earlier keeps its page size.

    The database and its WAL and shared-memory files are readable by their
    owner only (0600) whatever the umask: the file is created with that mode
    before SQLite opens it (SQLite gives its WAL and shm files the database's
    mode), and files left looser by an older version are tightened.

    Raises `StoreError` if the database cannot be put in WAL mode.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    _make_private(path)
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, cached_statements=256
    )
    try:
        if conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0:
            # Only an empty database can take these; older ones get auto_vacuum from
            # `store vacuum` and keep their page size (WAL mode cannot change it).
            conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"database {path.name} cannot use WAL journaling (got {mode})")
        for pragma in _WRITER_PRAGMAS:
            conn.execute(pragma)
    except BaseException:
        conn.close()
        raise
    return conn


DATABASE_MODE = 0o600


def _make_private(path: Path) -> None:
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, DATABASE_MODE))
    for suffix in ("", "-wal", "-shm", "-journal"):
        companion = path.with_name(path.name + suffix)
        try:
            if companion.stat().st_mode & 0o777 != DATABASE_MODE:
                companion.chmod(DATABASE_MODE)
        except FileNotFoundError:
            continue


def connect_reader(path: Path, *, read_only_file: bool) -> sqlite3.Connection:
    """Open a query-only connection; with `read_only_file` the file is opened read-only too.

    Raises `StoreError` if the database does not exist.
    """
    if not path.exists():
        raise StoreError(f"database {path} does not exist")
    uri = path.resolve().as_uri() + ("?mode=ro" if read_only_file else "?mode=rw")
    conn = sqlite3.connect(
        uri, uri=True, isolation_level=None, check_same_thread=False, cached_statements=64
    )
    try:
        for pragma in _READER_PRAGMAS:
            conn.execute(pragma)
    except BaseException:
        conn.close()
        raise
    return conn


def schema_version(conn: sqlite3.Connection) -> int:
    """The schema version a database records, 0 for an empty database."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    if exists is None:
        return 0
    row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
    return int(row[0])


def check_version(conn: sqlite3.Connection, path: Path) -> None:
    """Fail unless the database is at exactly the version this code writes."""
    version = schema_version(conn)
    if version != LATEST_VERSION:
        raise StoreError(
            f"database {path.name} has schema version {version}; "
            f"this thumpflow reads version {LATEST_VERSION}"
        )


def migrate(conn: sqlite3.Connection, path: Path) -> int:
    """Bring the schema up to `LATEST_VERSION`; return the version found before.

    Each migration commits atomically with its `schema_version` row, under the
    write lock, so concurrent openers apply it once. Raises `StoreError` if
    the database is newer than this code.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            "version INTEGER NOT NULL PRIMARY KEY, applied_at REAL NOT NULL)"
        )
        found = schema_version(conn)
        if found > LATEST_VERSION:
            raise newer_schema(path.name, found, LATEST_VERSION)
        for version, script in migrations():
            if version <= found:
                continue
            for statement in _statements(script):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version VALUES (?, ?)", (version, time.time()))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return found
