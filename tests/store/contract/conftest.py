"""Backends the storage contract suite runs against.

Each backend is one factory: `StoreFactory.make()` returns a new, unopened
store over the same (per-test, initially empty) database, so tests can close
and reopen it. Every test of this directory runs once per backend in
`BACKENDS`; the PostgreSQL backend uses the session's throwaway cluster
(`tests/postgres.py`) with a new database per test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import pytest

from tests.postgres import PgCluster
from thumpflow.core.clock import Clock
from thumpflow.core.ports import StateStore
from thumpflow.store.crypt import PayloadCipher
from thumpflow.store.postgresql import PostgresStore
from thumpflow.store.sqlite import SqliteStore


class StoreFactory(Protocol):
    backend: str

    def make(self, clock: Clock | None = None, cipher: PayloadCipher | None = None) -> StateStore:
        """A new, unopened store over this test's database."""
        ...


class SqliteFactory:
    backend = "sqlite"

    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "db" / "thumpflow.db"

    def make(self, clock: Clock | None = None, cipher: PayloadCipher | None = None) -> StateStore:
        return SqliteStore(self.path, clock=clock, cipher=cipher)


class PostgresFactory:
    backend = "postgresql"

    def __init__(self, cluster: PgCluster) -> None:
        self.dsn = cluster.new_database()

    def make(self, clock: Clock | None = None, cipher: PayloadCipher | None = None) -> StateStore:
        return PostgresStore(self.dsn, clock=clock, cipher=cipher)


BACKENDS = ("postgresql", "sqlite")


@pytest.fixture(params=BACKENDS)
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    if request.param == "sqlite":
        return SqliteFactory(tmp_path)
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    return PostgresFactory(cluster)
