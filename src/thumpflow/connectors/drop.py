"""What the drop-directory sources and the batch file writers share, wherever the files live.

Two halves, used by the local (`batchfile`) and the SFTP connectors alike:

- Configuration: `DropSourceFields` (which files a drop source takes and how
  it checks them) and `BatchFileFields` (how a batch writer names and encodes
  its file). Each connector's spec inherits one and adds its own `type`,
  location fields and example. Pure data.
- Behaviour: which names a drop source takes (`takes`), when a file is still
  being written (`unsettled`), the checks of a file against its manifest
  (`check_file`), the run's watermark (`latest_watermark`), refusal texts
  (`describe_refused`, `refusal_reasons`), record streaming (`stream`), the
  file name of a run (`render_name`), its encoder (`encoder_for`), and the
  last-wins bookkeeping of business keys (`KeyLog`).

Nothing here knows where a file lives: paths given are local (a drop file
itself or a downloaded copy). No record content reaches a problem or reason
text: only file names, counts, digests, times and system ids.
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import re
import string
from array import array
from collections.abc import (
    AsyncIterator,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from datetime import UTC, datetime
from itertools import accumulate, islice
from pathlib import Path
from typing import BinaryIO, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from thumpflow.batch import (
    MANIFEST_SUFFIX,
    CsvEncoder,
    CsvOptions,
    Encoder,
    FormatError,
    Hl7BatchEncoder,
    ManifestError,
    NdjsonEncoder,
    Problem,
    compare_watermarks,
    count_and_hash,
    format_time,
    manifest_name,
    parse_manifest,
    parse_time,
    read_manifest,
    verify,
)
from thumpflow.connectors.csv import CsvSpec
from thumpflow.connectors.fields import Duration
from thumpflow.core.batch import BatchItem, Manifest, SourceRecord, Window

__all__ = [
    "NAME_FIELDS",
    "REASON_SUFFIX",
    "BatchFileFields",
    "DropSourceFields",
    "KeyLog",
    "Reader",
    "check_file",
    "describe_refused",
    "encoder_for",
    "latest_watermark",
    "missing_manifest",
    "name_fields",
    "read_ranges",
    "refusal_reasons",
    "render_name",
    "replaced_output",
    "stream",
    "takes",
    "unsettled",
]

NAME_FIELDS = frozenset({"job", "run", "window_end", "date"})
REASON_SUFFIX = ".reason"

_CHUNK = 4096
_EXTENSIONS = {"csv": "csv", "ndjson": "ndjson", "hl7_batch": "hl7"}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_Key = TypeVar("_Key")

Reader = Callable[[int, int], bytes]
"""`read(start, length)`: bytes a writer already wrote to its file."""


class DropSourceFields(BaseModel):
    """The fields of a drop-directory source that do not depend on where the directory is."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pattern: str = Field(
        default="*",
        description="Glob matched against file names (e.g. `census-*.csv`). Hidden files, "
        "manifests (`*.manifest.json`) and reason files are never taken.",
    )
    format: Literal["csv", "ndjson", "hl7_batch"] = Field(
        description="Record format: CSV with a header row, NDJSON (one JSON object per line), "
        "or an HL7 v2 batch file (FHS/BHS..BTS/FTS, one record per message)."
    )
    csv: CsvSpec = Field(default_factory=CsvSpec, description="CSV dialect (format `csv`).")
    manifest: Literal["required", "optional", "none"] = Field(
        default="required",
        description="`required`: a file without `<file>.manifest.json` is not imported. "
        "`optional`: a manifest is checked when present. `none`: manifests are ignored.",
    )
    source_system: str | None = Field(
        default=None,
        description="The source system id a manifest must name; unset, any is accepted.",
    )
    max_age: Duration | None = Field(
        default=None,
        gt=0,
        description="Seconds: a file whose window ended longer ago than this (or, when its "
        "window end is not a timestamp, that was created longer ago) is late and not imported.",
    )
    processed_dir: str | None = Field(
        default=None,
        description="Where imported files and their manifests are moved; default "
        "`<directory>/processed`; created if absent. Moves are renames: a local directory "
        "must be on the same file system as the drop directory.",
    )
    failed_dir: str | None = Field(
        default=None,
        description="Where refused files are moved, with a `<file>.reason` text beside them; "
        "default `<directory>/failed`; created if absent. Same rule as `processed_dir`.",
    )
    settle_seconds: Duration = Field(
        default=5.0,
        ge=0,
        description="A file (or its manifest) modified less than this many seconds ago (for a "
        "remote directory, by the server's clock as seen from here) is still being written: "
        "it is reported as partial and left where it is.",
    )


class BatchFileFields(BaseModel):
    """The fields of a batch file writer that do not depend on where the file is written."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(
        default=None,
        description="File name template with `{job}`, `{run}`, `{window_end}` (characters other "
        "than letters, digits, `.`, `_` and `-` become `-`; `unbounded` when open, as it is for "
        "every run but a re-run of a past window) and `{date}` (the window end's UTC date, else "
        "the date the run began). Default `{job}-{run}.<csv|ndjson|hl7>`. A name must tell "
        "windows apart: it needs `{run}` or `{date}` (with `{date}` alone, a schedule of at most "
        "one run a day); a run never replaces a file another window wrote (it fails with an "
        "alert, its input left for a later run), while a re-run of the same window replaces "
        "its own file. A run that read no records leaves an existing file as it is.",
    )
    format: Literal["csv", "ndjson", "hl7_batch"] = Field(
        description="`csv` (header row, then `columns`), `ndjson` (one JSON object per line: "
        "the record's canonical JSON, keys sorted, so a line's SHA-256 is the record's content "
        "hash), or `hl7_batch` (each record's `message` text inside FHS/BHS..BTS/FTS with "
        "counts)."
    )
    csv: CsvSpec = Field(default_factory=CsvSpec, description="CSV dialect (format `csv`).")
    columns: list[str] | None = Field(
        default=None,
        min_length=1,
        description="CSV column order; unset, the keys of the run's first record. "
        "Keys not listed are not written; missing ones are empty.",
    )
    source_system: str = Field(
        description="The source system id written into each manifest (and FHS-3/BHS-3)."
    )

    @property
    def template(self) -> str:
        """The file name template: `name`, else `{job}-{run}.<extension of the format>`."""
        return self.name or f"{{job}}-{{run}}.{_EXTENSIONS[self.format]}"

    @field_validator("name")
    @classmethod
    def _known_fields(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            parsed = list(string.Formatter().parse(value))
        except ValueError as exc:
            raise ValueError(f"not a valid name template: {exc}") from None
        for _, field, spec, conversion in parsed:
            if field is None:
                continue
            if field not in NAME_FIELDS or spec or conversion:
                known = ", ".join(f"{{{n}}}" for n in sorted(NAME_FIELDS))
                raise ValueError(f"unknown placeholder {{{field}}}; use {known}")
        if "/" in value or "\\" in value or value.startswith("."):
            raise ValueError("must be a plain file name (no directories, not hidden)")
        return value


def name_fields(template: str) -> set[str]:
    """The placeholders a (valid) name template uses."""
    return {field for _, field, _, _ in string.Formatter().parse(template) if field}


# ------------------------------------------------------------------ drop sources


def takes(name: str, pattern: str) -> bool:
    """Whether a drop source takes the file `name`: it matches and is not hidden, a manifest
    or a reason file (so an orphaned manifest is never taken as data)."""
    return (
        not name.startswith(".")
        and not name.endswith((MANIFEST_SUFFIX, REASON_SUFFIX))
        and fnmatch.fnmatchcase(name, pattern)
    )


def unsettled(now: float, settle: float, *mtimes: float) -> list[Problem]:
    """A `partial` problem when any of `mtimes` is less than `settle` seconds before `now`."""
    if any(now - mtime < settle for mtime in mtimes):
        return [Problem("partial", f"modified less than {settle:g} s ago; still being written")]
    return []


def missing_manifest(name: str) -> list[Problem]:
    """The `missing` problem of the data file `name`, which has no manifest."""
    return [Problem("missing", f"no manifest {manifest_name(name)}")]


def check_file(
    spec: DropSourceFields,
    data: Path,
    sidecar: Path | None,
    *,
    window: Window,
    now: float,
    csv_options: CsvOptions,
    count: Callable[[Path], int | None] | None = None,
) -> tuple[Manifest | None, list[Problem]]:
    """The manifest read (if any) and the problems of the local file `data`.

    `sidecar` is its manifest's local copy, or None when it has none (or
    manifests are ignored). Without a manifest: `missing` when one is
    required, else `format` for an HL7 v2 batch file whose structure or
    counts are wrong. With one: `manifest` when it is not valid, else what
    `thumpflow.batch.verify` finds (with `count` counting the records when it
    answers a number). Blocking: call it from a worker thread.
    """
    if sidecar is None:
        if spec.manifest == "required":
            return None, missing_manifest(data.name)
        if spec.format == "hl7_batch":
            try:
                count_and_hash(data, "hl7_batch")
            except FormatError as exc:
                return None, [Problem("format", str(exc))]
        return None, []
    try:
        manifest = read_manifest(sidecar)
    except ManifestError as exc:
        return None, [Problem("manifest", "; ".join(exc.problems))]
    problems = verify(
        manifest,
        data,
        window,
        spec.max_age,
        spec.source_system,
        now=now,
        fmt=spec.format,
        csv_options=csv_options,
        count=count,
    )
    return manifest, problems


def latest_watermark(
    start: str | None, taken: Iterable[tuple[Manifest | None, float]]
) -> str | None:
    """The latest of `start` and, per (manifest, mtime) taken, its window end, else its mtime."""
    latest = start
    for manifest, mtime in taken:
        end = manifest.window.end if manifest is not None else None
        mark = end if end is not None else format_time(mtime)
        if latest is None or compare_watermarks(mark, latest) > 0:
            latest = mark
    return latest


def describe_refused(refused: Mapping[str, Sequence[Problem]], directory: str = "") -> str:
    """The error text of a refused run: each file name with its problems."""
    where = f" in {directory}" if directory else ""
    lines = [f"{len(refused)} batch file(s){where} not imported:"]
    for name, problems in refused.items():
        lines.extend(f"  {name}: {problem}" for problem in problems)
    return "\n".join(lines)


def refusal_reasons(
    refused: Mapping[_Key, Sequence[Problem]], reason: str
) -> list[tuple[_Key, str]]:
    """(file, reason text) for each refused file to move to failed/; partial files stay."""
    return [
        (key, "\n".join([reason, *(str(p) for p in problems)]))
        for key, problems in refused.items()
        if not any(p.kind == "partial" for p in problems)
    ]


async def stream(
    records: Generator[SourceRecord, None, None],
) -> AsyncIterator[list[SourceRecord]]:
    """`records` in chunks, each read on a worker thread; the generator is closed when done."""
    try:
        while chunk := await asyncio.to_thread(_take, records):
            yield chunk
    finally:
        records.close()


def _take(records: Generator[SourceRecord, None, None]) -> list[SourceRecord]:
    return list(islice(records, _CHUNK))


# ------------------------------------------------------------------ batch writers


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
