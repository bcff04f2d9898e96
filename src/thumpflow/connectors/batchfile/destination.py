"""The batch file destination: one file per run, written atomically, with a manifest.

`begin` renders the file name from the template and opens a hidden temporary
file, `.<name>.<pid>-<random>.tmp`, in the target directory (after removing
temporaries of this name left by a crashed run). `write` appends records to
it; `finish` makes it visible; `abort` deletes it.

Guarantees:

- No partial file is ever visible under the final name: data is only
  written to the temporary, which is fsynced before it is renamed. The
  temporary is hidden and ends in `.tmp`, so drop-directory patterns do not
  match it.
- Order of `finish`: (1) the data temporary is completed (trailer), fsynced
  and closed, its SHA-256 and record count known; (2) the manifest is
  written to its own temporary, fsynced and renamed to `<name>.manifest.json`,
  and the directory fsynced; (3) the data temporary is renamed to `<name>` and
  the directory fsynced. The data file is renamed last, so whenever a data
  file is visible its manifest is there too. A crash between (2) and (3)
  leaves the new manifest beside nothing (first run: a manifest without data
  is never taken as data) or beside the previous run's file of the same name
  (a re-run), which then fails its checksum and count check instead of being
  imported as if it were new; re-running the window completes the pair.
- Re-running a window converges: without `{run}` in the template the name is
  the same, the file is replaced atomically, and the same records give the
  same bytes (nothing in the file depends on the time of the run; only the
  manifest's `created_at` does).
- A run never replaces another window's output: when the name is taken,
  `finish` reads the existing file's manifest, and unless it names this run's
  window (a re-run) it raises `OutputConflictError` and changes nothing (a
  file without a readable manifest is never replaced either). A run with no
  records leaves an existing file as it is and returns no manifest.
- Within one run, a business key is written once, last wins: an item whose
  key was already written with the same bytes is skipped (counted in
  `write`'s second number); with different bytes, it is written and the
  earlier one is dropped when `finish` compacts the file. Keys are kept as
  16-byte BLAKE2b digests mapped to their record's ordinal, plus 8 bytes per
  record for its offset: about 130 bytes per distinct key, so 1,000,000 keys
  take roughly 130 MB. An earlier record is re-read from the temporary only
  when its key comes again.
- The manifest's `record_count` is the number of records in the final file
  (distinct keys); `sha256` is that of the final file's bytes (computed as
  they are written, batch by batch; a file compacted at `finish` is read
  back and hashed instead).
- A run with no records writes the format's empty file when the name is
  free: an HL7 batch with zero counts, an empty NDJSON file, a CSV header row
  when `columns` is set (without `columns`, an empty file).
- Failure (disk full, permission denied, a record the format cannot encode)
  raises from `write` or `finish`; the temporary stays until `abort` or the
  next `begin` of the same name removes it. Nothing visible changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from thumpflow.batch import Encoder, fsync_directory, manifest_path, write_manifest
from thumpflow.batch.files import FILE_MODE
from thumpflow.connectors.batch_destination import (
    KeyLog,
    encoder_for,
    read_ranges,
    render_name,
    replaced_output,
)
from thumpflow.connectors.batchfile.spec import BatchFileDestinationSpec
from thumpflow.core.batch import BatchItem, Manifest, Window, WriteResult
from thumpflow.core.clock import Clock, SystemClock
from thumpflow.core.errors import OutputConflictError

_BUFFER = 1 << 20


@dataclass(slots=True)
class _Run:
    """The state of one run's file between `begin` and `finish`/`abort`."""

    name: str
    path: Path
    temporary: Path
    window: Window
    out: BinaryIO | None = None
    encoder: Encoder | None = None
    log: KeyLog = field(default_factory=lambda: KeyLog(0))
    digest: Any = field(default_factory=hashlib.sha256)  # of every byte written, in order

    def put(self, data: bytes) -> None:
        """Append `data` to the temporary and to its running SHA-256."""
        assert self.out is not None
        self.out.write(data)
        self.digest.update(data)


class BatchFileDestination:
    """A `BatchDestination` writing one file per run; see the module docstring."""

    def __init__(
        self, destination_id: str, spec: BatchFileDestinationSpec, *, clock: Clock | None = None
    ) -> None:
        self.destination_id = destination_id
        self.spec = spec
        self._clock = clock or SystemClock()
        self._directory = Path(spec.directory)
        self._run: _Run | None = None
        self._lock = asyncio.Lock()

    def file_name(self, job_id: str, run_id: int, window: Window) -> str:
        """The file name for this run, from the template."""
        return render_name(self.spec.template, job_id, run_id, window, self._clock.now())

    async def begin(self, job_id: str, run_id: int, window: Window) -> None:
        """Open a fresh temporary for this run's file (any unfinished run is aborted)."""
        name = self.file_name(job_id, run_id, window)
        async with self._lock:
            if self._run is not None:
                await asyncio.to_thread(self._discard, self._run)
                self._run = None
            self._run = await asyncio.to_thread(self._open, name, window)

    async def write(self, items: Sequence[BatchItem]) -> WriteResult:
        """Written and skipped for these items; see the module docstring for duplicates."""
        async with self._lock:
            run = self._require()
            return WriteResult(*await asyncio.to_thread(self._append, run, list(items)))

    async def finish(self) -> list[Manifest]:
        """Make the file and its manifest visible; returns the manifest written (none when a
        run without records left an existing file as it was).

        Raises `OutputConflictError` when the name holds another window's output."""
        async with self._lock:
            run = self._require()
            manifest = await asyncio.to_thread(self._complete, run)
            self._run = None
            return [] if manifest is None else [manifest]

    async def abort(self) -> None:
        """Remove the temporary; the visible file (if any) is unchanged. Idempotent."""
        async with self._lock:
            if self._run is not None:
                await asyncio.to_thread(self._discard, self._run)
                self._run = None

    # ------------------------------------------------------------ blocking work

    def _require(self) -> _Run:
        if self._run is None:
            raise RuntimeError(f"batch file destination {self.destination_id}: no run begun")
        return self._run

    def _open(self, name: str, window: Window) -> _Run:
        directory = self._directory
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob(f".{_glob_escape(name)}.*.tmp"):
            stale.unlink(missing_ok=True)
        token = f"{os.getpid()}-{secrets.token_hex(4)}"
        temporary = directory / f".{name}.{token}.tmp"
        fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_EXCL, FILE_MODE)
        out = open(fd, "wb", buffering=_BUFFER)  # noqa: SIM115 - closed by finish or abort
        return _Run(name, directory / name, temporary, window, out)

    def _encoder(self, run: _Run, items: list[BatchItem]) -> Encoder:
        encoder = encoder_for(self.spec, run.name, list(items[0].data) if items else [])
        header = encoder.header()
        if header:
            run.put(header)
        run.log = KeyLog(len(header))
        run.encoder = encoder
        return encoder

    def _append(self, run: _Run, items: list[BatchItem]) -> tuple[int, int]:
        if not items:
            return 0, 0
        encoder = run.encoder or self._encoder(run, items)
        out = run.out
        assert out is not None

        def read(start: int, length: int) -> bytes:
            out.flush()
            return os.pread(out.fileno(), length, start)

        chunks, skipped = run.log.append(items, encoder, read)
        run.put(b"".join(chunks))
        return len(chunks), skipped

    def _complete(self, run: _Run) -> Manifest | None:
        out = run.out
        assert out is not None
        if run.path.exists():
            if not run.log.count:
                self._discard(run)
                return None
            try:
                manifest_text: bytes | None = manifest_path(run.path).read_bytes()
            except FileNotFoundError:
                manifest_text = None
            reason = replaced_output(run.name, manifest_text, run.window)
            if reason is not None:
                raise OutputConflictError(f"batch file destination {self.destination_id}: {reason}")
        if run.encoder is None and (self.spec.format != "csv" or self.spec.columns):
            self._encoder(run, [])
        count = run.log.count
        if run.log.superseded:
            out.flush()
            temporary = self._compact(run)
            out.close()
            run.temporary.unlink()
            run.temporary = temporary
            out = run.out = open(temporary, "ab", buffering=_BUFFER)  # noqa: SIM115
            run.digest = None  # the compacted file is hashed as written, below
        if run.encoder is not None:
            out.write(trailer := run.encoder.trailer(count))
            if run.digest is not None:
                run.digest.update(trailer)
        out.flush()
        os.fsync(out.fileno())
        out.close()
        run.out = None
        manifest = Manifest(
            name=run.name,
            record_count=count,
            sha256=_sha256(run.temporary) if run.digest is None else run.digest.hexdigest(),
            created_at=self._clock.now(),
            source=self.spec.source_system,
            window=run.window,
        )
        write_manifest(manifest_path(run.path), manifest)
        run.temporary.replace(run.path)
        fsync_directory(run.path.parent)
        return manifest

    def _compact(self, run: _Run) -> Path:
        """A new temporary without the superseded records, in order."""
        token = f"{os.getpid()}-{secrets.token_hex(4)}"
        temporary = run.temporary.with_name(f".{run.name}.{token}.tmp")
        with open(run.temporary, "rb") as source, open(temporary, "xb") as target:
            ranges = [(0, run.log.start), *run.log.kept()]
            for piece in read_ranges(source, ranges, _BUFFER):
                target.write(piece)
        return temporary

    def _discard(self, run: _Run) -> None:
        if run.out is not None:
            with contextlib.suppress(OSError):
                run.out.close()
            run.out = None
        run.temporary.unlink(missing_ok=True)


def _glob_escape(name: str) -> str:
    """`name` with glob metacharacters escaped."""
    return re.sub(r"([*?\[])", r"[\1]", name)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as data:
        while block := data.read(_BUFFER):
            digest.update(block)
    return digest.hexdigest()
