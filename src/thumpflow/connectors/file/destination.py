"""The file destination: append records to a local file, exactly once in effect.

Each data file has a sidecar journal, `<file>.journal`, with one line per
record: `<delivery key> <end offset>`. A batch is appended to the data file
and flushed, then its journal lines are appended and flushed; a record is
committed when its journal line is complete, and only then is it answered
`Sent`.

Guarantees:

- Crash at any instant: on reopening, data past the last committed end offset
  (and a torn journal line) is cut off. Nothing answered `Sent` is lost; what
  was cut was never answered `Sent` and will be resent by the flow core.
- Resend: the keys of the most recent `remembered_keys` records (across
  rotated files) are recognised, and a resend of one is answered `Sent`
  without writing it again; a key repeated within a batch is written once.
- Failure (disk full, permission denied, ...): every record not yet committed
  is answered `Transient` with the operating system's error text, and the
  partial write is cut off before the next attempt.
- Rotation starts a new data file and journal pair; only the newest pair is
  ever appended to, so only it can need repair.
- A non-empty data file without a journal was not written by this destination;
  it is never truncated or appended to (`start` raises OSError).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from thumpflow.connectors._body import body_fields
from thumpflow.connectors._oserror import os_error_text
from thumpflow.connectors.file.spec import FileDestinationSpec
from thumpflow.core.event import Delivery
from thumpflow.core.outcome import SendResult, Sent, Transient

_TAIL_BLOCK = 1 << 20


@dataclass(slots=True)
class _Pair:
    """An open data file and its journal, with their committed sizes."""

    name: str
    data_path: Path
    journal_path: Path
    data_fd: int
    journal_fd: int
    data_end: int
    journal_end: int


class FileDestination:
    """Appends deliveries to a file; see the module docstring for its guarantees."""

    def __init__(self, destination_id: str, spec: FileDestinationSpec) -> None:
        self.destination_id = destination_id
        self.spec = spec
        self.max_batch = spec.max_batch
        self._base = Path(spec.path)
        self._pattern = _name_pattern(self._base, spec.rotate)
        self._lock = asyncio.Lock()
        self._keys: set[str] = set()
        self._order: deque[str] = deque()
        self._pair: _Pair | None = None
        self._sequence = 1

    @property
    def current_path(self) -> Path | None:
        """The data file being appended to, once one is open."""
        return self._pair.data_path if self._pair is not None else None

    async def start(self) -> None:
        """Create the directory, repair the newest file pair, load recent keys.

        Raises OSError when the directory or files cannot be read or repaired.
        """
        async with self._lock:
            await asyncio.to_thread(self._recover)

    async def send(self, batch: Sequence[Delivery]) -> list[SendResult]:
        async with self._lock:
            return await asyncio.to_thread(self._write, list(batch))

    async def close(self) -> None:
        async with self._lock:
            self._close_pair()

    def _recover(self) -> None:
        directory = self._base.parent
        directory.mkdir(parents=True, exist_ok=True)
        names = self._existing_names()
        if names:
            newest = names[-1]
            if self.spec.rotate == "size":
                self._sequence = int(self._sequence_of(newest))
            pair = self._open_pair(newest)
            self._close_fds(pair)
        self._load_keys(names)

    def _existing_names(self) -> list[str]:
        """Data file names of existing pairs, oldest first."""
        if self.spec.rotate == "none":
            journal = self._journal_of(self._base)
            return [self._base.name] if self._base.exists() or journal.exists() else []
        found: dict[str, str] = {}
        for entry in os.scandir(self._base.parent):
            name = entry.name.removesuffix(".journal")
            match = self._pattern.fullmatch(name)
            if match is not None:
                found[name] = match.group(1)
        if self.spec.rotate == "size":
            return sorted(found, key=lambda n: int(found[n]))
        return sorted(found, key=lambda n: found[n])

    def _sequence_of(self, name: str) -> str:
        match = self._pattern.fullmatch(name)
        assert match is not None
        return match.group(1)

    def _load_keys(self, names: list[str]) -> None:
        want = self.spec.remembered_keys
        batches: list[list[str]] = []
        total = 0
        for name in reversed(names):
            journal = self._journal_of(self._base.with_name(name))
            if not journal.exists():
                continue
            keys = _tail_keys(journal, want - total)
            batches.append(keys)
            total += len(keys)
            if total >= want:
                break
        for keys in reversed(batches):
            for key in keys:
                self._remember(key)

    def _remember(self, key: str) -> None:
        self._keys.add(key)
        self._order.append(key)
        if len(self._order) > self.spec.remembered_keys:
            self._keys.discard(self._order.popleft())

    def _target_name(self) -> str:
        base = self._base
        if self.spec.rotate == "none":
            return base.name
        if self.spec.rotate == "daily":
            day = datetime.now(UTC).strftime("%Y-%m-%d")
            return f"{base.stem}-{day}{base.suffix}"
        return f"{base.stem}.{self._sequence:06d}{base.suffix}"

    def _write(self, batch: list[Delivery]) -> list[SendResult]:
        results: list[SendResult] = [Sent()] * len(batch)
        records: list[tuple[int, str, bytes]] = []
        fresh: set[str] = set()
        for index, delivery in enumerate(batch):
            key = delivery.key
            if key in self._keys or key in fresh:
                results[index] = Sent("already written")
                continue
            fresh.add(key)
            records.append((index, key, self._encode(delivery)))
        if records:
            incoming = sum(len(record) for _, _, record in records)
            try:
                self._append(records, incoming)
            except OSError as exc:
                self._close_pair()
                reason = f"file destination {self.destination_id}: {_os_error(exc)}"
                for index, _, _ in records:
                    results[index] = Transient(reason)
            else:
                for _, key, _ in records:
                    self._remember(key)
        return results

    def _append(self, records: list[tuple[int, str, bytes]], incoming: int) -> None:
        name = self._target_name()
        pair = self._pair
        if pair is None or pair.name != name:
            self._close_pair()
            pair = self._pair = self._open_pair(name)
        if (
            self.spec.rotate == "size"
            and pair.data_end > 0
            and (pair.data_end + incoming > self.spec.max_bytes)
        ):
            self._close_pair()
            self._sequence += 1
            pair = self._pair = self._open_pair(self._target_name())
        end = pair.data_end
        lines = []
        for _, key, record in records:
            end += len(record)
            lines.append(f"{key} {end}\n")
        journal = "".join(lines).encode()
        _pwrite_all(pair.data_fd, b"".join(record for _, _, record in records), pair.data_end)
        if self.spec.fsync:
            os.fsync(pair.data_fd)
        _pwrite_all(pair.journal_fd, journal, pair.journal_end)
        if self.spec.fsync:
            os.fsync(pair.journal_fd)
        pair.data_end = end
        pair.journal_end += len(journal)

    def _open_pair(self, name: str) -> _Pair:
        """Open (creating) a pair and cut both files back to their last committed record."""
        data_path = self._base.with_name(name)
        journal_path = self._journal_of(data_path)
        created = not data_path.exists() or not journal_path.exists()
        if not journal_path.exists() and data_path.is_file() and data_path.stat().st_size > 0:
            raise OSError(
                errno.EEXIST,
                "data file exists without its journal; not appending to a file it did not write",
                str(data_path),
            )
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        data_fd = os.open(data_path, flags, 0o640)
        try:
            journal_fd = os.open(journal_path, flags, 0o640)
        except OSError:
            os.close(data_fd)
            raise
        pair = _Pair(name, data_path, journal_path, data_fd, journal_fd, 0, 0)
        try:
            journal_end, data_end = _committed(journal_fd)
            if os.fstat(journal_fd).st_size != journal_end:
                os.ftruncate(journal_fd, journal_end)
                os.fsync(journal_fd)
            if os.fstat(data_fd).st_size != data_end:
                os.ftruncate(data_fd, data_end)
                os.fsync(data_fd)
            if created and self.spec.fsync:
                _fsync_directory(data_path.parent)
        except OSError:
            self._close_fds(pair)
            raise
        pair.data_end = data_end
        pair.journal_end = journal_end
        return pair

    def _close_pair(self) -> None:
        if self._pair is not None:
            self._close_fds(self._pair)
            self._pair = None

    @staticmethod
    def _close_fds(pair: _Pair) -> None:
        for fd in (pair.data_fd, pair.journal_fd):
            with contextlib.suppress(OSError):
                os.close(fd)

    @staticmethod
    def _journal_of(data_path: Path) -> Path:
        return data_path.with_name(data_path.name + ".journal")

    def _encode(self, delivery: Delivery) -> bytes:
        if self.spec.format == "hl7":
            body = delivery.body.replace(b"\r\n", b"\r").replace(b"\n", b"\r").strip(b"\r")
            return body + b"\n"
        return encode_jsonl(delivery)


def encode_jsonl(delivery: Delivery) -> bytes:
    """One JSON line for a delivery; the body as text, or base64 if it is not UTF-8."""
    record: dict[str, object] = {
        "delivery_key": delivery.key,
        "event_id": delivery.event_id,
        "event_type": delivery.event_type,
        "ordering_key": delivery.ordering_key,
        "delivery_id": delivery.delivery_id,
        "content_type": delivery.content_type,
    }
    record.update(body_fields(delivery.body))
    return (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


def _name_pattern(base: Path, rotate: str) -> re.Pattern[str]:
    stem, suffix = re.escape(base.stem), re.escape(base.suffix)
    if rotate == "daily":
        return re.compile(rf"{stem}-(\d{{4}}-\d{{2}}-\d{{2}}){suffix}")
    if rotate == "size":
        return re.compile(rf"{stem}\.(\d{{6,}}){suffix}")
    return re.compile(re.escape(base.name))


def _committed(journal_fd: int) -> tuple[int, int]:
    """(journal size, data end offset) as of the last complete journal line."""
    size = os.fstat(journal_fd).st_size
    pos = size
    tail = b""
    while pos > 0:
        step = min(4096, pos)
        pos -= step
        tail = os.pread(journal_fd, step, pos) + tail
        last_newline = tail.rfind(b"\n")
        if last_newline < 0:
            continue
        previous = tail.rfind(b"\n", 0, last_newline)
        if previous < 0 and pos > 0:
            continue
        line = tail[previous + 1 : last_newline]
        offset = line.rsplit(b" ", 1)[-1]
        if not offset.isdigit():
            raise OSError(errno.EIO, "journal's last line has no end offset")
        return pos + last_newline + 1, int(offset)
    return 0, 0


def _tail_keys(journal: Path, want: int) -> list[str]:
    """The keys of the last `want` complete lines of a journal."""
    if want <= 0:
        return []
    with journal.open("rb") as f:
        pos = f.seek(0, os.SEEK_END)
        chunks: list[bytes] = []
        newlines = 0
        while pos > 0 and newlines <= want:
            step = min(_TAIL_BLOCK, pos)
            pos -= step
            f.seek(pos)
            chunk = f.read(step)
            chunks.append(chunk)
            newlines += chunk.count(b"\n")
    lines = b"".join(reversed(chunks)).split(b"\n")[:-1]
    if pos > 0:
        lines = lines[1:]
    return [line.rsplit(b" ", 1)[0].decode() for line in lines[-want:] if line]


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _os_error(exc: OSError) -> str:
    where = f" ({exc.filename})" if exc.filename else ""
    return f"cannot write{where}: {os_error_text(exc)}"
