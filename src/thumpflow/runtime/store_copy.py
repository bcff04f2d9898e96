"""Moving an installation from the embedded SQLite store to PostgreSQL (`thumpflow store copy`)."""

from __future__ import annotations

from pathlib import Path

from thumpflow.store.crypt import PayloadCipher
from thumpflow.store.postgresql import CopyCounts, PostgresStore
from thumpflow.store.sqlite import SqliteStore


async def copy_store(
    source: Path, dsn: str, password: str | None, cipher: PayloadCipher | None = None
) -> CopyCounts:
    """Copy the SQLite store file `source` into the empty PostgreSQL database `dsn`.

    The source is first opened read-write once (brought to this schema
    version, its audit chain completed; `cipher` holds its keys when it
    encrypts), so stop the engine using it. Sealed values are copied sealed. The
    copy is one transaction (see `thumpflow.store.postgresql._copy`); raises
    `StoreError` naming the reason, the target then left as it was.
    """
    sqlite = SqliteStore(source, cipher=cipher)
    await sqlite.open()
    await sqlite.close()
    target = PostgresStore(dsn, password=password, cipher=cipher)
    await target.open()
    try:
        return await target.import_sqlite(source)
    finally:
        await target.close()
