"""What the batch file destinations share, wherever the file is written (local or SFTP).

The file name of a run (`render_name`), whether a run may replace an
existing file (`replaced_output`: only a re-run of the same window replaces
its own output; a file of another window, or one whose manifest is missing
or unreadable, is never replaced), the encoder of a file (`encoder_for`),
and the last-wins bookkeeping of business keys (`KeyLog`): a duplicate
record (same key, same bytes) is skipped, a changed one supersedes the
earlier, so a retried or re-run batch leaves one record per key. After a
crash the destination rebuilds the file from the `kept` ranges it already
wrote (`read_ranges`, which fails with OSError when the file is shorter
than what was written, never returning short data).

Nothing here knows where a file lives. No record content reaches an error
text: only file names and windows.
"""

from __future__ import annotations

import hashlib
import re
from array import array
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from itertools import accumulate
from typing import BinaryIO

from thumpflow.batch import (
    CsvEncoder,
    Encoder,
    Hl7BatchEncoder,
    ManifestError,
    NdjsonEncoder,
    manifest_name,
    parse_manifest,
    parse_time,
)
from thumpflow.connectors.drop import BatchFileFields
from thumpflow.core.batch import BatchItem, Window

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")

Reader = Callable[[int, int], bytes]
"""`read(start, length)`: bytes a writer already wrote to its file."""


def render_name(template: str, job_id: str, run_id: int, window: Window, now: float) -> str:
    """The file name of a run from `template` (see `BatchFileFields.name`); `now` for `{date}`
    when the window has no timestamp end."""
    end = window.end
    moment = parse_time(end) if end is not None else None
    if moment is None:
        moment = datetime.fromtimestamp(now, UTC)
    return template.format(
        job=_UNSAFE.sub("-", job_id),
        run=run_id,
        window_end=_UNSAFE.sub("-", end) if end is not None else "unbounded",
        date=moment.astimezone(UTC).strftime("%Y-%m-%d"),
    )


def replaced_output(name: str, manifest: bytes | None, window: Window) -> str | None:
    """Why a run of `window` must not replace the existing file `name`, or None when the file
    is this window's own output (a re-run replaces it). `manifest` is the text of the file's
    manifest, None when it has none: a file that does not say its window is never replaced."""
    if manifest is None:
        return f"{name} exists without a manifest, so it is not known to be this window's output"
    try:
        existing = parse_manifest(manifest, manifest_name(name)).window
    except ManifestError:
        return f"{name} has a manifest that cannot be read, so its window is not known"
    if existing == window:
        return None
    return (
        f"{name} holds the output of another window ({_window_text(existing)}; this run: "
        f"{_window_text(window)}); a run never replaces it: give the destination a name "
        "template with `{run}`, or with `{date}` and at most one run a day"
    )


def _window_text(window: Window) -> str:
    return f"({window.start or 'unbounded'}, {window.end or 'unbounded'}]"


def encoder_for(spec: BatchFileFields, name: str, first_keys: list[str]) -> Encoder:
    """The encoder of the file `name`; CSV columns are `spec.columns`, else `first_keys`."""
    if spec.format == "csv":
        return CsvEncoder(spec.columns or first_keys, spec.csv.options())
    if spec.format == "ndjson":
        return NdjsonEncoder()
    return Hl7BatchEncoder(spec.source_system, name)


class KeyLog:
    """Last-wins bookkeeping of the records appended to one file, by business key.

    A record whose key was already appended with the same bytes is skipped;
    with different bytes it is appended and the earlier record is marked
    superseded. Keys of up to 32 characters are kept as they are, longer
    ones as 16-byte BLAKE2b digests (text never equals bytes, so the two
    cannot be confused), mapped to their record's ordinal, plus 8 bytes per
    record for its offset (about 150 bytes per distinct key). An earlier
    record's bytes are re-read, through `read`, only when its key comes again.
    """

    def __init__(self, start: int) -> None:
        """A log of records written from byte `start` of the file on."""
        self.start = start
        self.keys: dict[str | bytes, int] = {}
        self.starts: array[int] = array("Q")
        self.superseded: set[int] = set()
        self.end = start

    def append(
        self, items: Sequence[BatchItem], encoder: Encoder, read: Reader
    ) -> tuple[list[bytes], int]:
        """(the encoded records to write after `end` as it was, skipped count) for `items`.

        `end` advances past the records returned; the caller must write them
        in order, there, before the next `append`. A batch whose keys are all
        short, distinct and new to the log (the usual case) is taken in one go.
        """
        fresh = self._all_new(items, encoder)
        if fresh is not None:
            return fresh, 0
        encode = encoder.encode_item
        keys = self.keys
        starts = self.starts
        blake = hashlib.blake2b
        chunks: list[bytes] = []
        first_pending = len(starts)
        end = self.end
        skipped = 0
        for item in items:
            line = encode(item)
            key = item.business_key
            digest: str | bytes = (
                key if len(key) <= 32 else blake(key.encode(), digest_size=16).digest()
            )
            earlier = keys.get(digest)
            if earlier is not None:
                if earlier >= first_pending:
                    same = chunks[earlier - first_pending] == line
                else:
                    same = self._bytes(earlier, len(line), read) == line
                if same:
                    skipped += 1
                    continue
                self.superseded.add(earlier)
            keys[digest] = len(starts)
            starts.append(end)
            chunks.append(line)
            end += len(line)
        self.end = end
        return chunks, skipped

    def _all_new(self, items: Sequence[BatchItem], encoder: Encoder) -> list[bytes] | None:
        """`append` of `items` when no key is longer than 32 characters, repeated within
        them, or already in the log (None otherwise; nothing is changed then)."""
        keys = [item.business_key for item in items]
        if not keys or max(map(len, keys)) > 32:
            return None
        if len(set(keys)) != len(keys) or not self.keys.keys().isdisjoint(keys):
            return None
        encode = encoder.encode_item
        lines = [encode(item) for item in items]
        first = len(self.starts)
        ends = list(accumulate(map(len, lines), initial=self.end))
        self.end = ends.pop()
        self.starts.extend(ends)
        self.keys.update(zip(keys, range(first, first + len(keys)), strict=True))
        return lines

    @property
    def count(self) -> int:
        """The number of records kept (distinct keys)."""
        return len(self.keys)

    def kept(self) -> Generator[tuple[int, int], None, None]:
        """(start, stop) byte ranges of the records kept, in order, adjacent ones merged."""
        keep_from = self.start
        for ordinal in sorted(self.superseded):
            start, stop = self._span(ordinal)
            if start > keep_from:
                yield keep_from, start
            keep_from = stop
        if self.end > keep_from:
            yield keep_from, self.end

    def _span(self, ordinal: int) -> tuple[int, int]:
        starts = self.starts
        stop = starts[ordinal + 1] if ordinal + 1 < len(starts) else self.end
        return starts[ordinal], stop

    def _bytes(self, ordinal: int, length: int, read: Reader) -> bytes | None:
        start, stop = self._span(ordinal)
        if stop - start != length:
            return None
        return read(start, length)


def read_ranges(
    source: BinaryIO, ranges: Iterable[tuple[int, int]], block: int = 1 << 20
) -> Iterator[bytes]:
    """The bytes of `source` in each (start, stop) range, in pieces of at most `block` bytes.

    Raises OSError when the file ends before a range does.
    """
    for start, stop in ranges:
        source.seek(start)
        remaining = stop - start
        while remaining > 0:
            piece = source.read(min(remaining, block))
            if not piece:
                raise OSError("file shorter than written")
            yield piece
            remaining -= len(piece)
