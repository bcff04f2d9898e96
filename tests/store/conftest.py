"""Backends the storage contract suite runs against.

Each backend is one factory: `StoreFactory.make()` returns a new, unopened
store over the same (per-test, initially empty) database, so tests can close
and reopen it. Adding a backend (PostgreSQL) means adding one factory to
`BACKENDS`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import pytest

from thumpflow.core.clock import Clock
from thumpflow.core.ports import Store
from thumpflow.store.sqlite import SqliteStore


class StoreFactory(Protocol):
    def make(self, clock: Clock | None = None) -> Store: ...


class SqliteFactory:
    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "db" / "thumpflow.db"

    def make(self, clock: Clock | None = None) -> Store:
        return SqliteStore(self.path, clock=clock)


BACKENDS: dict[str, Callable[[Path], StoreFactory]] = {
    "sqlite": SqliteFactory,
}


@pytest.fixture(params=sorted(BACKENDS))
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    return BACKENDS[request.param](tmp_path)
