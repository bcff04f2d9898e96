"""Forward-only schema migrations, shared by every backend.

A backend's schema lives in `schema_NNNN.sql` files beside its modules,
numbered from 0001 without gaps; version N is the database after applying
files 1..N, recorded in the database's `schema_version` table. Opening a
database whose version is newer than the code fails (`newer_schema`) rather
than guessing.
"""

from __future__ import annotations

import re
from importlib import resources

from thumpflow.core.errors import StoreError

_MIGRATION_NAME = re.compile(r"schema_(\d{4})\.sql")


def packaged_migrations(package: str | None) -> list[tuple[int, str]]:
    """The migrations packaged in `package` as (version, sql), in order."""
    if package is None:
        raise StoreError("schema migrations need a package")
    found: list[tuple[int, str]] = []
    for entry in resources.files(package).iterdir():
        match = _MIGRATION_NAME.fullmatch(entry.name)
        if match:
            found.append((int(match.group(1)), entry.read_text(encoding="utf-8")))
    found.sort()
    if [version for version, _ in found] != list(range(1, len(found) + 1)):
        raise StoreError("packaged schema migrations are not numbered 1..N without gaps")
    return found


def newer_schema(database: str, found: int, latest: int) -> StoreError:
    """The error for a database written by a newer thumpflow."""
    return StoreError(
        f"database {database} has schema version {found}, newer than "
        f"this thumpflow supports ({latest}); use the thumpflow that wrote it"
    )
