"""The PostgreSQL store's schema: forward migrations under an advisory lock, version checks.

Migrations are `schema_NNNN.sql` beside this module (`thumpflow.store.migrations`).
Several nodes may start at once: `migrate` takes a transaction-scoped
advisory lock first, so exactly one applies each migration and the others
find it done. A database at a newer version than this code is refused.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg

from thumpflow.core.errors import StoreError
from thumpflow.store.migrations import newer_schema, packaged_migrations

# pg_advisory_xact_lock key for migrations: "thumpflo" as a 64-bit number.
_MIGRATION_LOCK = 0x7468756D70666C6F


def migrations() -> list[tuple[int, str]]:
    """The packaged migrations as (version, sql), in order."""
    return packaged_migrations(__package__)


LATEST_VERSION = len(migrations())


def schema_version(conn: psycopg.Connection[Any]) -> int:
    """The version a database records, 0 when it has no thumpflow schema."""
    found = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
    if found is None or not found[0]:
        return 0
    row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
    return int(row[0]) if row else 0


def check_version(conn: psycopg.Connection[Any], where: str) -> None:
    """Fail unless the database is at exactly the version this code writes."""
    version = schema_version(conn)
    if version > LATEST_VERSION:
        raise newer_schema(where, version, LATEST_VERSION)
    if version != LATEST_VERSION:
        raise StoreError(
            f"database {where} has schema version {version}; this thumpflow reads version "
            f"{LATEST_VERSION} (start the engine once to migrate it)"
        )


def migrate(conn: psycopg.Connection[Any], where: str) -> int:
    """Bring the schema up to `LATEST_VERSION`; return the version found before."""
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version ("
                "version integer PRIMARY KEY, applied_at double precision NOT NULL)"
            )
            found = schema_version(conn)
            if found > LATEST_VERSION:
                raise newer_schema(where, found, LATEST_VERSION)
            for version, script in migrations():
                if version <= found:
                    continue
                conn.execute(script.encode("utf-8"))
                conn.execute("INSERT INTO schema_version VALUES (%s, %s)", (version, time.time()))
    except psycopg.Error as error:
        raise StoreError(f"migrating the PostgreSQL store at {where} failed: {error}") from None
    return found
