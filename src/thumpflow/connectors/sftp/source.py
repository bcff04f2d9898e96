"""The SFTP drop source: batch files from a remote directory, checked before import.

The same semantics as the local file drop, over SFTP. A run (`read`) lists
the remote drop directory, takes the files that match the pattern (never
hidden files, `*.manifest.json` or `*.reason`), in name order, downloads
each into a local staging directory and checks every one of them before
yielding any record:

- partial: the file or its manifest was modified less than `settle_seconds`
  ago by the server's clock (still being uploaded); not downloaded;
- missing: `manifest: required` and there is no `<file>.manifest.json`;
- manifest: the manifest is not valid (every problem located);
- name, count, checksum, source, window, late: the file disagrees with its
  manifest (`thumpflow.batch.verify` on the downloaded bytes, so what is
  checked is exactly what is read);
- format: the file cannot be read at all (HL7 v2 batch files are checked
  even without a manifest).

If any file has a problem, `read` raises `BatchSourceError` naming each such
file and problem, and yields nothing: the run imports nothing. `fail` then
renames each refused file (and its manifest) on the server into the failed
directory, with a `<file>.reason` text uploaded beside it first, except
partial files, which stay for a later run; files without problems stay too
and the next run imports them.

Otherwise `read` yields the records of every file, file by file, from the
staged copies, and `manifests` returns the manifests checked. `commit`
renames the files read (data first, then its manifest) into the processed
directory; `fail(reason)` renames them into the failed directory with the
reason. Renames happen on the server (SFTP rename, which never overwrites:
an existing name gets a `.1`, `.2`, … suffix). Both are idempotent: a file
already moved is not moved again. A crash between renaming a data file and
its manifest leaves an orphaned manifest, which is never taken as data.

`next_watermark` is the latest window end of the manifests read, or, for a
file without one, its modification time (ISO 8601 UTC); with no files, the
run's window start.

Every operation opens its own SSH connection (`read`, `commit`, `fail`), so
nothing stays open between the calls of a run. Downloaded copies live in a
local staging directory only while `read` runs (each is removed once read).
No record content reaches an error or reason text: only file names, counts,
digests, times and system ids.
"""

from __future__ import annotations

import asyncio
import posixpath
import shutil
import tempfile
from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from thumpflow.batch import MANIFEST_SUFFIX, Problem, manifest_name, read_records
from thumpflow.connectors.drop_source import (
    REASON_SUFFIX,
    check_file,
    describe_refused,
    latest_watermark,
    missing_manifest,
    refusal_reasons,
    stream,
    takes,
    unsettled,
)
from thumpflow.connectors.sftp._client import SftpError, join, session, where
from thumpflow.connectors.sftp.spec import SftpDropSourceSpec
from thumpflow.core.batch import Manifest, SourceRecord, Window
from thumpflow.core.clock import Clock, SystemClock
from thumpflow.core.errors import BatchSourceError


@dataclass(slots=True)
class _Candidate:
    name: str
    mtime: float
    has_manifest: bool
    staged: Path | None = None
    manifest: Manifest | None = None


class SftpDropSource:
    """A `BatchSource` over a remote SFTP drop directory; see the module docstring."""

    def __init__(
        self, source_id: str, spec: SftpDropSourceSpec, *, clock: Clock | None = None
    ) -> None:
        self.source_id = source_id
        self.spec = spec
        self._clock = clock or SystemClock()
        self._directory = spec.directory
        self._processed = spec.processed_dir or posixpath.join(spec.directory, "processed")
        self._failed = spec.failed_dir or posixpath.join(spec.directory, "failed")
        self._csv = spec.csv.options()
        self._staging: Path | None = None
        self._taken: list[_Candidate] = []
        self._refused: dict[str, list[Problem]] = {}
        self._watermark: str | None = None
        self._moved: dict[str, str] = {}

    async def read(self, window: Window) -> AsyncIterator[list[SourceRecord]]:
        """Records of every remote file present (in chunks), after all passed their checks."""
        await self._clear_staging()
        self._taken = []
        self._refused = {}
        self._moved = {}
        self._watermark = window.start
        self._staging = Path(
            await asyncio.to_thread(
                tempfile.mkdtemp, prefix="thumpflow-sftp-", dir=self.spec.staging_dir
            )
        )
        try:
            async with session(self.spec) as sftp:
                taken, refused = await self._survey(sftp, window, self._staging)
            if refused:
                self._refused = refused
                raise BatchSourceError(describe_refused(refused, self.spec.directory))
            self._taken = taken
            self._watermark = latest_watermark(window.start, [(c.manifest, c.mtime) for c in taken])
            for candidate in taken:
                assert candidate.staged is not None
                async for chunk in stream(self._records(candidate.staged, candidate.name)):
                    yield chunk
        finally:
            await self._clear_staging()

    def manifests(self) -> list[Manifest]:
        return [c.manifest for c in self._taken if c.manifest is not None]

    def next_watermark(self) -> str | None:
        return self._watermark

    async def commit(self) -> None:
        """Rename the files read into the processed directory (idempotent)."""
        names = [c.name for c in self._taken]
        if names:
            async with session(self.spec) as sftp:
                for name in names:
                    await self._move(sftp, name, self._processed, None)

    async def fail(self, reason: str) -> None:
        """Rename the refused files, or the files read, into failed/ with a reason (idempotent)."""
        if self._refused:
            moves = refusal_reasons(self._refused, reason)
        else:
            moves = [(c.name, reason) for c in self._taken]
        if moves:
            async with session(self.spec) as sftp:
                for name, text in moves:
                    await self._move(sftp, name, self._failed, text)

    # ------------------------------------------------------------ remote work

    async def _survey(
        self, sftp: asyncssh.SFTPClient, window: Window, staging: Path
    ) -> tuple[list[_Candidate], dict[str, list[Problem]]]:
        now = self._clock.now()
        try:
            listing = await sftp.readdir(self._directory)
        except asyncssh.SFTPNoSuchFile:
            raise SftpError(
                f"{where(self.spec)}: drop directory {self._directory} does not exist"
            ) from None
        entries = {str(e.filename): e.attrs for e in listing}
        taken: list[_Candidate] = []
        refused: dict[str, list[Problem]] = {}
        for name in sorted(entries):
            attrs = entries[name]
            if not takes(name, self.spec.pattern) or attrs.type != asyncssh.FILEXFER_TYPE_REGULAR:
                continue
            sidecar = entries.get(manifest_name(name)) if self.spec.manifest != "none" else None
            candidate = _Candidate(name, float(attrs.mtime or 0), sidecar is not None)
            mtimes = [candidate.mtime]
            if sidecar is not None:
                mtimes.append(float(sidecar.mtime or 0))
            partial = unsettled(now, self.spec.settle_seconds, *mtimes)
            if partial:
                refused[name] = partial
                continue
            problems = await self._check(sftp, candidate, window, staging, now)
            if problems:
                refused[name] = problems
            else:
                taken.append(candidate)
        return taken, refused

    async def _check(
        self,
        sftp: asyncssh.SFTPClient,
        candidate: _Candidate,
        window: Window,
        staging: Path,
        now: float,
    ) -> list[Problem]:
        if not candidate.has_manifest and self.spec.manifest == "required":
            return missing_manifest(candidate.name)
        staged = staging / candidate.name
        await sftp.get(join(self._directory, candidate.name), staged)
        candidate.staged = staged
        sidecar = None
        if candidate.has_manifest:
            sidecar = staging / manifest_name(candidate.name)
            await sftp.get(join(self._directory, sidecar.name), sidecar)
        candidate.manifest, problems = await asyncio.to_thread(
            check_file, self.spec, staged, sidecar, window=window, now=now, csv_options=self._csv
        )
        return problems

    async def _move(
        self, sftp: asyncssh.SFTPClient, name: str, target: str, reason: str | None
    ) -> None:
        """Rename a data file, then its manifest, into `target`; what is already moved stays."""
        source = join(self._directory, name)
        destination = self._moved.get(name)
        if destination is None:
            if not await sftp.exists(source):
                return
            await sftp.makedirs(target, exist_ok=True)
            destination = await _free_name(sftp, target, name)
            if reason is not None:
                async with sftp.open(destination + REASON_SUFFIX, "wb") as out:
                    await out.write(reason.rstrip("\n").encode("utf-8") + b"\n")
            await sftp.rename(source, destination)
            self._moved[name] = destination
        sidecar = join(self._directory, manifest_name(name))
        if await sftp.exists(sidecar):
            await sftp.rename(sidecar, destination + MANIFEST_SUFFIX)

    # ------------------------------------------------------------ local work

    def _records(self, staged: Path, name: str) -> Generator[SourceRecord, None, None]:
        try:
            with open(staged, "rb", buffering=1 << 20) as stream:
                yield from read_records(self.spec.format, stream, name, self._csv)
        finally:
            staged.unlink(missing_ok=True)

    async def _clear_staging(self) -> None:
        if self._staging is not None:
            staging, self._staging = self._staging, None
            await asyncio.to_thread(shutil.rmtree, staging, True)


async def _free_name(sftp: asyncssh.SFTPClient, directory: str, name: str) -> str:
    """`directory/name`, or with `.1`, `.2`, … appended when that name is taken."""
    candidate = join(directory, name)
    suffix = 0
    while (
        await sftp.exists(candidate)
        or await sftp.exists(candidate + MANIFEST_SUFFIX)
        or await sftp.exists(candidate + REASON_SUFFIX)
    ):
        suffix += 1
        candidate = join(directory, f"{name}.{suffix}")
    return candidate
