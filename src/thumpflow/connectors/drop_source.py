"""What the drop-directory sources share, wherever the directory is (local or SFTP).

Which names a drop source takes (`takes`: never hidden files, manifests or
reason files, so an orphaned manifest is never taken as data), when a file
is still being written (`unsettled`: reported `partial` and left where it
is, to be taken by a later run), the checks of a file against its manifest
(`check_file`), the run's watermark (`latest_watermark`), refusal texts
(`describe_refused`, `refusal_reasons`: a refused file is moved to failed/
with its reason beside it, a partial one never) and record streaming
(`stream`, a chunk at a time on a worker thread; the reader is closed when
the stream ends, however it ends).

Nothing here knows where a file lives: paths given are local (a drop file
itself or a downloaded copy). No record content reaches a problem or reason
text: only file names, counts, digests, times and system ids.
"""

from __future__ import annotations

import asyncio
import fnmatch
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Mapping, Sequence
from itertools import islice
from pathlib import Path
from typing import TypeVar

from thumpflow.batch import (
    MANIFEST_SUFFIX,
    CsvOptions,
    FormatError,
    ManifestError,
    Problem,
    compare_watermarks,
    count_and_hash,
    format_time,
    manifest_name,
    read_manifest,
    verify,
)
from thumpflow.connectors.drop import DropSourceFields
from thumpflow.core.batch import Manifest, SourceRecord, Window

REASON_SUFFIX = ".reason"

_CHUNK = 4096
_Key = TypeVar("_Key")


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
