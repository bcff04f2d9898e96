"""The file drop source: batch files from a local directory, checked before import.

A run (`read`) takes the files present in the drop directory that match the
pattern, in name order, and checks every one of them before yielding any
record:

- partial: the file or its manifest was modified less than `settle_seconds`
  ago (still being written);
- missing: `manifest: required` and there is no `<file>.manifest.json`;
- manifest: the manifest is not valid (every problem located);
- name, count, checksum, source, window, late: the file disagrees with its
  manifest (`thumpflow.batch.verify`);
- format: the file cannot be read at all (a CSV without a usable header, an
  HL7 v2 batch file whose BTS/FTS counts or structure are wrong; HL7 batch
  files are checked even without a manifest).

If any file has a problem, `read` raises `BatchSourceError` naming each such
file and problem, and yields nothing: the run imports nothing. `fail` then
moves each refused file (and its manifest) to failed/ with a
`<file>.reason` text, except partial files, which stay where they are for a
later run; files without problems also stay, and the next run imports them.

Otherwise `read` yields the records of every file, file by file, and
`manifests` returns the manifests checked. `commit` moves the files read (data
first, then its manifest) to processed/; `fail(reason)` moves them to failed/
with the reason. Moves are `os.replace` within one file system, with the
directories fsynced; an existing name in the target gets a `.1`, `.2`, …
suffix. Both are idempotent: a file already moved is not moved again. A crash
between moving a data file and its manifest leaves an orphaned manifest in
the drop directory, which is never taken as data; the data is not imported
twice.

With a `DataFileReader` (a job's `read_processes`), CSV files are counted
for their manifest check and read through it, in other processes, with the
same records and counts.

`next_watermark` is the latest window end of the manifests read, or, for a
file without one, its modification time (ISO 8601 UTC); with no files, the
run's window start.

No record content reaches an error or reason text: only file names, counts,
digests, times and system ids.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass
from pathlib import Path

from thumpflow.batch import Problem, fsync_directory, manifest_path, read_records
from thumpflow.batch.files import write_atomically
from thumpflow.connectors.batchfile.spec import FileDropSourceSpec
from thumpflow.connectors.drop_source import (
    REASON_SUFFIX,
    check_file,
    describe_refused,
    latest_watermark,
    refusal_reasons,
    stream,
    takes,
    unsettled,
)
from thumpflow.core.batch import Manifest, SourceRecord, Window
from thumpflow.core.clock import Clock, SystemClock
from thumpflow.core.errors import BatchSourceError
from thumpflow.core.ports import DataFileReader


@dataclass(slots=True)
class _Candidate:
    path: Path
    mtime: float
    manifest: Manifest | None = None


class FileDropSource:
    """A `BatchSource` over a local drop directory; see the module docstring."""

    def __init__(
        self,
        source_id: str,
        spec: FileDropSourceSpec,
        *,
        clock: Clock | None = None,
        reader: DataFileReader | None = None,
    ) -> None:
        self.source_id = source_id
        self._reader = reader
        self.spec = spec
        self._clock = clock or SystemClock()
        self._directory = Path(spec.directory)
        self._processed = Path(spec.processed_dir or self._directory / "processed")
        self._failed = Path(spec.failed_dir or self._directory / "failed")
        self._csv = spec.csv.options()
        self._taken: list[_Candidate] = []
        self._refused: dict[Path, list[Problem]] = {}
        self._watermark: str | None = None
        self._moved: dict[Path, Path] = {}

    async def read(self, window: Window) -> AsyncIterator[list[SourceRecord]]:
        """Records of every file present (in chunks), after all of them passed their checks."""
        self._taken = []
        self._refused = {}
        self._moved = {}
        self._watermark = window.start
        taken, refused = await asyncio.to_thread(self._survey, window)
        if refused:
            self._refused = refused
            raise BatchSourceError(describe_refused({p.name: v for p, v in refused.items()}))
        self._taken = taken
        self._watermark = latest_watermark(window.start, [(c.manifest, c.mtime) for c in taken])
        for candidate in taken:
            async for chunk in stream(self._records(candidate.path)):
                yield chunk

    def manifests(self) -> list[Manifest]:
        return [c.manifest for c in self._taken if c.manifest is not None]

    def next_watermark(self) -> str | None:
        return self._watermark

    async def commit(self) -> None:
        """Move the files read to processed/ (idempotent)."""
        taken = [c.path for c in self._taken]
        await asyncio.to_thread(self._move_all, taken, self._processed, None)

    async def fail(self, reason: str) -> None:
        """Move the files read, or the refused ones, to failed/ with a reason (idempotent)."""
        if self._refused:
            refused = self._refused
            await asyncio.to_thread(self._fail_refused, refused, reason)
        else:
            taken = [c.path for c in self._taken]
            await asyncio.to_thread(self._move_all, taken, self._failed, reason)

    # ------------------------------------------------------------ blocking work

    def _candidates(self) -> list[tuple[Path, float]]:
        found = []
        with os.scandir(self._directory) as entries:
            for entry in entries:
                if not takes(entry.name, self.spec.pattern) or not entry.is_file(
                    follow_symlinks=False
                ):
                    continue
                found.append((Path(entry.path), entry.stat(follow_symlinks=False).st_mtime))
        found.sort(key=lambda item: item[0].name)
        return found

    def _survey(self, window: Window) -> tuple[list[_Candidate], dict[Path, list[Problem]]]:
        now = self._clock.now()
        taken: list[_Candidate] = []
        refused: dict[Path, list[Problem]] = {}
        for path, mtime in self._candidates():
            candidate = _Candidate(path, mtime)
            problems = self._check(candidate, window, now)
            if problems:
                refused[path] = problems
            else:
                taken.append(candidate)
        return taken, refused

    def _check(self, candidate: _Candidate, window: Window, now: float) -> list[Problem]:
        spec = self.spec
        path = candidate.path
        sidecar = manifest_path(path)
        has_manifest = spec.manifest != "none" and sidecar.exists()
        mtimes = [candidate.mtime, sidecar.stat().st_mtime] if has_manifest else [candidate.mtime]
        partial = unsettled(now, spec.settle_seconds, *mtimes)
        if partial:
            return partial
        candidate.manifest, problems = check_file(
            spec,
            path,
            sidecar if has_manifest else None,
            window=window,
            now=now,
            csv_options=self._csv,
            count=self._reader.count if self._reader is not None else None,
        )
        return problems

    def _records(self, path: Path) -> Generator[SourceRecord, None, None]:
        if self._reader is not None:
            records = self._reader.records(path, path.name)
            if records is not None:
                yield from records
                return
        with open(path, "rb", buffering=1 << 20) as data:
            yield from read_records(self.spec.format, data, path.name, self._csv)

    def _move_all(self, paths: list[Path], target: Path, reason: str | None) -> None:
        for path in paths:
            self._move(path, target, reason)

    def _fail_refused(self, refused: dict[Path, list[Problem]], reason: str) -> None:
        for path, text in refusal_reasons(refused, reason):
            self._move(path, self._failed, text)

    def _move(self, path: Path, target: Path, reason: str | None) -> None:
        """Move a data file, then its manifest, into `target`; what is already moved stays."""
        sidecar = manifest_path(path)
        destination = self._moved.get(path)
        if destination is None:
            if not path.exists():
                return
            target.mkdir(parents=True, exist_ok=True)
            destination = _free_name(target, path.name)
            if reason is not None:
                reason_path = destination.with_name(destination.name + REASON_SUFFIX)
                write_atomically(reason_path, (reason.rstrip("\n") + "\n").encode())
            path.replace(destination)
            self._moved[path] = destination
        if sidecar.exists():
            sidecar.replace(manifest_path(destination))
        fsync_directory(destination.parent)
        fsync_directory(path.parent)


def _free_name(directory: Path, name: str) -> Path:
    """`directory/name`, or with `.1`, `.2`, … appended when that name is taken."""
    candidate = directory / name
    suffix = 0
    while (
        candidate.exists()
        or manifest_path(candidate).exists()
        or candidate.with_name(candidate.name + REASON_SUFFIX).exists()
    ):
        suffix += 1
        candidate = directory / f"{name}.{suffix}"
    return candidate
