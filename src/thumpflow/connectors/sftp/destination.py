"""The SFTP destination: one file per run, uploaded atomically, with a manifest beside it.

`begin` renders the file name from the template; `write` encodes records
into a local staging file; `finish` uploads. Nothing remote changes before
`finish`, so `abort` (or a crash) before it leaves the server untouched.

Guarantees:

- No partial file is ever visible under the final name. `finish` (1)
  removes hidden temporaries of this name left by a crashed upload, (2)
  uploads the file to a hidden temporary `.<name>.<random>.tmp` in the
  target directory, computing its SHA-256 and record count as it goes,
  (3) uploads the manifest the same way and renames it to
  `<name>.manifest.json`, (4) renames the data temporary to `<name>`.
  Renames use the `posix-rename@openssh.com` extension (OpenSSH), which
  replaces an existing file atomically; on servers without it the old file
  is removed first (a moment with no file, never a partial one). The data
  file is renamed last, so whenever it is visible its manifest is there too;
  a crash between (3) and (4) leaves the new manifest beside the previous
  file of that name, which then fails its checksum check instead of being
  taken as new, and re-running the window completes the pair.
- Re-running a window converges: without `{run}` in the template the name is
  the same, the file is replaced atomically, and the same records give the
  same bytes (only the manifest's `created_at` differs).
- A run never replaces another window's output: when the name is taken,
  `finish` reads the remote manifest, and unless it names this run's window
  (a re-run) raises `OutputConflictError` with nothing uploaded. A run with
  no records leaves an existing remote file as it is and returns no manifest.
- Within one run a business key is written once, last wins: an item whose
  key was already written with the same bytes is skipped (counted in
  `write`'s second number); with different bytes it is written and the
  earlier record is left out of the upload.
- A run with no records, when the name is free, uploads the format's empty file (an HL7 batch with
  zero counts, an empty NDJSON file, a CSV header row when `columns` is set,
  else an empty file).
- Failures raise: `SftpError` for the server (naming it), `OSError` for the
  local staging directory, ValueError/TypeError for a record the format
  cannot encode. A failed upload removes its temporary when it still can.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import asyncssh

from thumpflow.batch import Encoder, manifest_name, manifest_to_json, parse_manifest
from thumpflow.connectors.batch_destination import (
    KeyLog,
    encoder_for,
    read_ranges,
    render_name,
    replaced_output,
)
from thumpflow.connectors.sftp._client import join, replace, session
from thumpflow.connectors.sftp.spec import SftpDestinationSpec
from thumpflow.core.batch import BatchItem, Manifest, Window, WriteResult
from thumpflow.core.clock import Clock, SystemClock
from thumpflow.core.errors import OutputConflictError

_BLOCK = 1 << 20


@dataclass(slots=True)
class _Run:
    """One run's staged file between `begin` and `finish`/`abort`."""

    name: str
    window: Window
    staging: Path
    out: BinaryIO
    encoder: Encoder | None = None
    log: KeyLog = field(default_factory=lambda: KeyLog(0))


class SftpDestination:
    """A `BatchDestination` uploading one file per run; see the module docstring."""

    def __init__(
        self, destination_id: str, spec: SftpDestinationSpec, *, clock: Clock | None = None
    ) -> None:
        self.destination_id = destination_id
        self.spec = spec
        self._clock = clock or SystemClock()
        self._run: _Run | None = None

    def file_name(self, job_id: str, run_id: int, window: Window) -> str:
        """The file name for this run, from the template."""
        return render_name(self.spec.template, job_id, run_id, window, self._clock.now())

    async def begin(self, job_id: str, run_id: int, window: Window) -> None:
        """Start a run's file (staged locally; nothing remote changes yet)."""
        await self.abort()
        name = self.file_name(job_id, run_id, window)
        staging = Path(
            await asyncio.to_thread(
                tempfile.mkdtemp, prefix="thumpflow-sftp-", dir=self.spec.staging_dir
            )
        )
        out = await asyncio.to_thread(open, staging / "records", "w+b")
        self._run = _Run(name=name, window=window, staging=staging, out=out)

    async def write(self, items: Sequence[BatchItem]) -> WriteResult:
        """Stage `items`; skipped are items repeating a key with the same bytes."""
        run = self._running()
        return WriteResult(*await asyncio.to_thread(self._stage, run, items))

    def _stage(self, run: _Run, items: Sequence[BatchItem]) -> tuple[int, int]:
        if not items:
            return 0, 0
        if run.encoder is None:
            run.encoder = encoder_for(self.spec, run.name, list(items[0].data))
        out = run.out

        def read(start: int, length: int) -> bytes:
            out.flush()
            return os.pread(out.fileno(), length, start)

        chunks, skipped = run.log.append(items, run.encoder, read)
        out.write(b"".join(chunks))
        return len(chunks), skipped

    async def finish(self) -> list[Manifest]:
        """Upload the file and its manifest (see the module docstring); the manifest as written,
        none when a run without records left an existing file. Raises `OutputConflictError`
        when the name holds another window's output."""
        run = self._running()
        header, trailer, count = self._frame(run)
        await asyncio.to_thread(run.out.flush)
        directory = self.spec.directory
        token = secrets.token_hex(6)
        temporary = join(directory, f".{run.name}.{token}.tmp")
        manifest_temporary = join(directory, f".{manifest_name(run.name)}.{token}.tmp")
        async with session(self.spec) as sftp:
            await sftp.makedirs(directory, exist_ok=True)
            if await sftp.exists(join(directory, run.name)):
                if not count:
                    await self.abort()
                    return []
                reason = replaced_output(
                    run.name,
                    await _read(sftp, join(directory, manifest_name(run.name))),
                    run.window,
                )
                if reason is not None:
                    raise OutputConflictError(f"sftp destination {self.destination_id}: {reason}")
            await _remove_stale(sftp, directory, run.name)
            try:
                digest = await self._upload(sftp, temporary, run, header, trailer)
                document = manifest_to_json(
                    Manifest(
                        name=run.name,
                        record_count=count,
                        sha256=digest,
                        created_at=self._clock.now(),
                        source=self.spec.source_system,
                        window=run.window,
                    )
                )
                manifest = parse_manifest(document, manifest_name(run.name))
                async with sftp.open(manifest_temporary, "wb") as out:
                    await out.write(document)
                await replace(sftp, manifest_temporary, join(directory, manifest_name(run.name)))
                await replace(sftp, temporary, join(directory, run.name))
            except BaseException:
                for leftover in (temporary, manifest_temporary):
                    with contextlib.suppress(asyncssh.Error, OSError):
                        await sftp.remove(leftover)
                raise
        await self.abort()
        return [manifest]

    def _frame(self, run: _Run) -> tuple[bytes, bytes, int]:
        """(header, trailer, record count) of the file to upload."""
        count = run.log.count
        encoder = run.encoder
        if encoder is None:
            if self.spec.format == "csv" and self.spec.columns is None:
                return b"", b"", 0
            encoder = encoder_for(self.spec, run.name, [])
        return encoder.header(), encoder.trailer(count), count

    async def _upload(
        self, sftp: asyncssh.SFTPClient, target: str, run: _Run, header: bytes, trailer: bytes
    ) -> str:
        """Upload header, kept records and trailer to `target`; their SHA-256."""
        sha = hashlib.sha256(header)
        blocks = _blocks(run)
        async with sftp.open(target, "wb") as remote:
            await remote.write(header)
            while block := await asyncio.to_thread(next, blocks, b""):
                sha.update(block)
                await remote.write(block)
            sha.update(trailer)
            await remote.write(trailer)
        return sha.hexdigest()

    def _running(self) -> _Run:
        if self._run is None:
            raise RuntimeError(f"sftp destination {self.destination_id}: no run begun")
        return self._run

    async def abort(self) -> None:
        """Drop the staged file; nothing remote was changed. Idempotent."""
        if self._run is not None:
            run, self._run = self._run, None
            await asyncio.to_thread(run.out.close)
            await asyncio.to_thread(shutil.rmtree, run.staging, True)


def _blocks(run: _Run) -> Iterator[bytes]:
    """The staged records to upload, without the superseded ones, in blocks of about 1 MiB."""
    pending = bytearray()
    for piece in read_ranges(run.out, run.log.kept(), _BLOCK):
        pending += piece
        if len(pending) >= _BLOCK:
            yield bytes(pending)
            pending.clear()
    if pending:
        yield bytes(pending)


async def _read(sftp: asyncssh.SFTPClient, path: str) -> bytes | None:
    """The bytes of the remote file `path`, None when there is none."""
    try:
        async with sftp.open(path, "rb") as remote:
            data: bytes = await remote.read()
    except asyncssh.SFTPNoSuchFile:
        return None
    return data


async def _remove_stale(sftp: asyncssh.SFTPClient, directory: str, name: str) -> None:
    """Remove hidden temporaries of `name` (and its manifest) left by a crashed upload."""
    prefixes = (f".{name}.", f".{manifest_name(name)}.")
    for entry in await sftp.readdir(directory):
        found = str(entry.filename)
        if found.startswith(prefixes) and found.endswith(".tmp"):
            with contextlib.suppress(asyncssh.SFTPNoSuchFile):
                await sftp.remove(join(directory, found))
