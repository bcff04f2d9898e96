"""Helpers for batch tests: drop a data file with its manifest."""

from __future__ import annotations

import os
from pathlib import Path

from thumpflow.batch import sha256_of, write_manifest
from thumpflow.batch.files import manifest_path
from thumpflow.core.batch import Manifest, Window

WINDOW = Window("2024-03-01T00:00:00Z", "2024-03-02T00:00:00Z")
NOW = 1709344800.0  # 2024-03-02T02:00:00Z


class Clock:
    """A clock that stands still at `t`."""

    def __init__(self, t: float = NOW) -> None:
        self.t = t

    def now(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += seconds


def drop(
    directory: Path,
    file_name: str,
    data: bytes,
    *,
    count: int,
    manifest: bool = True,
    mtime: float = NOW - 60,
    **overrides: object,
) -> Path:
    """Write `data` as `directory/file_name` with a manifest (fields overridable), mtime set."""
    path = directory / file_name
    path.write_bytes(data)
    if manifest:
        fields: dict[str, object] = {
            "name": file_name,
            "record_count": count,
            "sha256": sha256_of(path),
            "created_at": NOW - 120,
            "source": "lab",
            "window": WINDOW,
        }
        fields.update(overrides)
        write_manifest(manifest_path(path), Manifest(**fields))  # type: ignore[arg-type]
        os.utime(manifest_path(path), (mtime, mtime))
    os.utime(path, (mtime, mtime))
    return path
