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

`next_watermark` is the latest window end of the manifests read, or, for a
file without one, its modification time (ISO 8601 UTC); with no files, the
run's window start.

No record content reaches an error or reason text: only file names, counts,
digests, times and system ids.
"""

from __future__ import annotations

import asyncio
import fnmatch
import os
from collections.abc import AsyncIterator, Generator, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from thumpflow.batch import (
    MANIFEST_SUFFIX,
    ManifestError,
    Problem,
    compare_watermarks,
    count_and_hash,
    format_time,
    fsync_directory,
    manifest_path,
    read_manifest,
    read_records,
    verify,
)
from thumpflow.batch.formats import FormatError
from thumpflow.connectors.batchfile.spec import FileDropSourceSpec
from thumpflow.core.batch import Manifest, SourceRecord, Window
from thumpflow.core.clock import Clock, SystemClock
from thumpflow.core.errors import BatchSourceError

_CHUNK = 4096
_REASON_SUFFIX = ".reason"


@dataclass(slots=True)
class _Candidate:
    path: Path
    mtime: float
    manifest: Manifest | None = None


class FileDropSource:
    """A `BatchSource` over a local drop directory; see the module docstring."""

    def __init__(
        self, source_id: str, spec: FileDropSourceSpec, *, clock: Clock | None = None
    ) -> None:
        self.source_id = source_id
        self.spec = spec
        self._clock = clock or SystemClock()
        self._directory = Path(spec.directory)
        self._processed = Path(spec.processed_dir or self._directory / "processed")
        self._failed = Path(spec.failed_dir or self._directory / "failed")
        self._csv = spec.csv.options()
        self._taken: list[_Candidate] = []
        self._refused: dict[Path, list[Problem]] = {}
        self._manifests: list[Manifest] = []
        self._watermark: str | None = None
        self._moved: dict[Path, Path] = {}

    async def read(self, window: Window) -> AsyncIterator[SourceRecord]:
        """Records of every file present, after all of them passed their checks."""
        self._taken = []
        self._refused = {}
        self._manifests = []
        self._moved = {}
        self._watermark = window.start
        taken, refused = await asyncio.to_thread(self._survey, window)
        if refused:
            self._refused = refused
            raise BatchSourceError(_describe(refused))
        self._taken = taken
        self._manifests = [c.manifest for c in taken if c.manifest is not None]
        self._watermark = _latest(window.start, taken)
        for candidate in taken:
            records = self._records(candidate.path)
            try:
                while chunk := await asyncio.to_thread(_take, records):
                    for record in chunk:
                        yield record
            finally:
                records.close()

    def manifests(self) -> list[Manifest]:
        return list(self._manifests)

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
                name = entry.name
                if (
                    name.startswith(".")
                    or name.endswith((MANIFEST_SUFFIX, _REASON_SUFFIX))
                    or not fnmatch.fnmatchcase(name, self.spec.pattern)
                    or not entry.is_file(follow_symlinks=False)
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
        settle = spec.settle_seconds
        if now - candidate.mtime < settle or (
            has_manifest and now - sidecar.stat().st_mtime < settle
        ):
            return [Problem("partial", f"modified less than {settle:g} s ago; still being written")]
        if not has_manifest:
            if spec.manifest == "required":
                return [Problem("missing", f"no manifest {sidecar.name}")]
            if spec.format == "hl7_batch":
                try:
                    count_and_hash(path, "hl7_batch")
                except FormatError as exc:
                    return [Problem("format", str(exc))]
            return []
        try:
            manifest = read_manifest(sidecar)
        except ManifestError as exc:
            return [Problem("manifest", "; ".join(exc.problems))]
        candidate.manifest = manifest
        return verify(
            manifest,
            path,
            window,
            spec.max_age,
            spec.source_system,
            now=now,
            fmt=spec.format,
            csv_options=self._csv,
        )

    def _records(self, path: Path) -> Generator[SourceRecord, None, None]:
        with open(path, "rb", buffering=1 << 20) as stream:
            yield from read_records(self.spec.format, stream, path.name, self._csv)

    def _move_all(self, paths: list[Path], target: Path, reason: str | None) -> None:
        for path in paths:
            self._move(path, target, reason)

    def _fail_refused(self, refused: dict[Path, list[Problem]], reason: str) -> None:
        for path, problems in refused.items():
            if any(p.kind == "partial" for p in problems):
                continue
            lines = [str(p) for p in problems]
            self._move(path, self._failed, "\n".join([reason, *lines]))

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
                reason_path = destination.with_name(destination.name + _REASON_SUFFIX)
                reason_path.write_text(reason.rstrip("\n") + "\n", encoding="utf-8")
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
        or candidate.with_name(candidate.name + _REASON_SUFFIX).exists()
    ):
        suffix += 1
        candidate = directory / f"{name}.{suffix}"
    return candidate


def _take(records: Iterator[SourceRecord]) -> list[SourceRecord]:
    return list(islice(records, _CHUNK))


def _latest(start: str | None, taken: list[_Candidate]) -> str | None:
    latest = start
    for candidate in taken:
        manifest = candidate.manifest
        end = manifest.window.end if manifest is not None else None
        mark = end if end is not None else format_time(candidate.mtime)
        if latest is None or compare_watermarks(mark, latest) > 0:
            latest = mark
    return latest


def _describe(refused: dict[Path, list[Problem]]) -> str:
    lines = [f"{len(refused)} batch file(s) not imported:"]
    for path, problems in refused.items():
        lines.extend(f"  {path.name}: {problem}" for problem in problems)
    return "\n".join(lines)
