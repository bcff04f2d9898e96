"""The simulated EHR's resource store: every version kept, in memory, optionally in SQLite.

Memory is the read model. With a database file, every committed transaction
is first written to SQLite (one SQL transaction, WAL mode) and only then
applied to memory, and the file is read back on open, so state and history
survive a restart of the simulator. A `Transaction` stages versions against
the store and either commits all of them or none; nothing here awaits, so
on one event loop a transaction is atomic with respect to every other.

`meta.lastUpdated` instants are strictly increasing from one transaction to
the next (also across restarts with a database); all the versions written
by one transaction share its instant.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    type TEXT NOT NULL,
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    last_updated_us INTEGER NOT NULL,
    body TEXT,
    UNIQUE (type, id, version)
)
"""


def instant_text(micros: int) -> str:
    """A FHIR `instant` (UTC, microseconds) for microseconds since the epoch."""
    return (_EPOCH + timedelta(microseconds=micros)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def instant_datetime(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def new_id() -> str:
    """A fresh server-assigned logical id."""
    return str(uuid.uuid4())


@dataclass(frozen=True, slots=True)
class Version:
    """One version of one resource; `resource` is None for a deletion.

    `resource` carries `id`, `meta.versionId` and `meta.lastUpdated`
    matching the other fields. Treat it as read-only; the store hands out
    copies through its public readers.
    """

    type: str
    id: str
    version: int
    last_updated_us: int
    resource: dict[str, Any] | None

    @property
    def deleted(self) -> bool:
        return self.resource is None

    @property
    def version_id(self) -> str:
        return str(self.version)

    @property
    def last_updated(self) -> str:
        return instant_text(self.last_updated_us)

    @property
    def etag(self) -> str:
        return f'W/"{self.version}"'

    @property
    def location(self) -> str:
        """`Type/id/_history/n`, relative to the FHIR base."""
        return f"{self.type}/{self.id}/_history/{self.version}"


class ResourceStore:
    """Current versions and full history of every resource, by (type, id)."""

    def __init__(self, db: Path | None = None) -> None:
        self._db_path = db
        self._db: sqlite3.Connection | None = None
        self._history: dict[tuple[str, str], list[Version]] = {}
        self._last_instant = 0
        self._last_committed = 0

    def open(self) -> None:
        """Open the database file (if any) and load every version from it."""
        if self._db_path is None or self._db is not None:
            return
        self._db_path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self._db_path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(_SCHEMA)
        rows = db.execute(
            "SELECT type, id, version, last_updated_us, body FROM versions ORDER BY seq"
        )
        for type_, id_, version, last_updated_us, body in rows:
            resource = None if body is None else json.loads(body)
            self._remember(Version(type_, id_, version, last_updated_us, resource))
        self._db = db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def clear(self) -> None:
        """Forget every resource and version (and empty the database file)."""
        if self._db is not None:
            self._db.execute("DELETE FROM versions")
        self._history.clear()

    def begin(self) -> Transaction:
        """A new transaction; its instant is later than every committed one."""
        now = time.time_ns() // 1000
        self._last_instant = max(now, self._last_instant + 1)
        return Transaction(self, self._last_instant)

    def latest(self, type_: str, id_: str) -> Version | None:
        """The latest version (a deletion included), or None if never written."""
        versions = self._history.get((type_, id_))
        return versions[-1] if versions else None

    def versions(self, type_: str, id_: str) -> list[Version]:
        """Every version of one resource, oldest first."""
        return list(self._history.get((type_, id_), ()))

    def live(self, type_: str | None = None) -> Iterator[Version]:
        """Current, not deleted versions (of one type, or all)."""
        for (t, _), versions in self._history.items():
            if (type_ is None or t == type_) and versions[-1].resource is not None:
                yield versions[-1]

    def counts(self) -> dict[str, int]:
        """Current, not deleted resources per type."""
        counts: dict[str, int] = {}
        for version in self.live():
            counts[version.type] = counts.get(version.type, 0) + 1
        return dict(sorted(counts.items()))

    def duplicates(self) -> dict[str, dict[str, list[str]]]:
        """Business identifiers on more than one current resource of the same type
        (`{type: {"system|value": [ids...]}}`; see `SimulatedEhr.duplicates`)."""
        seen: dict[str, dict[str, set[str]]] = {}
        for version in self.live():
            assert version.resource is not None
            identifiers = version.resource.get("identifier")
            if isinstance(identifiers, dict):
                identifiers = [identifiers]
            if not isinstance(identifiers, list):
                continue
            for identifier in identifiers:
                if not isinstance(identifier, dict) or not identifier.get("value"):
                    continue
                key = f"{identifier.get('system', '')}|{identifier['value']}"
                seen.setdefault(version.type, {}).setdefault(key, set()).add(version.id)
        found: dict[str, dict[str, list[str]]] = {}
        for type_, keys in sorted(seen.items()):
            for key, ids in sorted(keys.items()):
                if len(ids) > 1:
                    found.setdefault(type_, {})[key] = sorted(ids)
        return found

    def last_instant(self) -> int:
        """The latest `lastUpdated` committed (microseconds since the epoch); 0 when none."""
        return self._last_committed

    def version_count(self) -> int:
        return sum(len(versions) for versions in self._history.values())

    def _commit(self, staged: list[Version]) -> None:
        if not staged:
            return
        if self._db is not None:
            rows = [
                (
                    v.type,
                    v.id,
                    v.version,
                    v.last_updated_us,
                    None if v.resource is None else json.dumps(v.resource, separators=(",", ":")),
                )
                for v in staged
            ]
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT INTO versions (type, id, version, last_updated_us, body)"
                    " VALUES (?, ?, ?, ?, ?)",
                    rows,
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        for version in staged:
            self._remember(version)

    def _remember(self, version: Version) -> None:
        self._history.setdefault((version.type, version.id), []).append(version)
        self._last_instant = max(self._last_instant, version.last_updated_us)
        self._last_committed = max(self._last_committed, version.last_updated_us)


class Transaction:
    """Versions staged against a store: reads see them, `commit` applies all at once.

    A resource may be written at most once per transaction. Abandoning a
    transaction (not calling `commit`) leaves the store untouched.
    """

    def __init__(self, store: ResourceStore, instant: int) -> None:
        self._store = store
        self.instant = instant
        self._staged: dict[tuple[str, str], Version] = {}

    def latest(self, type_: str, id_: str) -> Version | None:
        staged = self._staged.get((type_, id_))
        return staged if staged is not None else self._store.latest(type_, id_)

    def versions(self, type_: str, id_: str) -> list[Version]:
        versions = self._store.versions(type_, id_)
        staged = self._staged.get((type_, id_))
        return [*versions, staged] if staged is not None else versions

    def live(self, type_: str) -> Iterator[Version]:
        for version in self._store.live(type_):
            if (version.type, version.id) not in self._staged:
                yield version
        for version in self._staged.values():
            if version.type == type_ and version.resource is not None:
                yield version

    def is_staged(self, type_: str, id_: str) -> bool:
        return (type_, id_) in self._staged

    def stage(self, type_: str, id_: str, resource: dict[str, Any] | None) -> Version:
        """Stage the next version of `type_/id_`: a copy of `resource` with its id and meta
        stamped (resourceType, id, meta first), or a deletion (None)."""
        previous = self.latest(type_, id_)
        number = 1 if previous is None else previous.version + 1
        stamped = None
        if resource is not None:
            meta = resource.get("meta")
            meta = dict(meta) if isinstance(meta, dict) else {}
            meta["versionId"] = str(number)
            meta["lastUpdated"] = instant_text(self.instant)
            rest = {k: v for k, v in resource.items() if k not in ("resourceType", "id", "meta")}
            stamped = {"resourceType": type_, "id": id_, "meta": meta, **rest}
        version = Version(type_, id_, number, self.instant, stamped)
        self._staged[(type_, id_)] = version
        return version

    def commit(self) -> None:
        staged = list(self._staged.values())
        self._staged = {}
        self._store._commit(staged)
