"""Batch files on disk: manifests beside data files, and verifying one against the other.

The only module of `thumpflow.batch` that opens files. Everything here is
blocking; asyncio callers run it in a thread.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO

from thumpflow.batch.csv_format import CsvOptions
from thumpflow.batch.formats import Format, count_records
from thumpflow.batch.manifest import (
    Problem,
    check,
    manifest_name,
    manifest_to_json,
    parse_manifest,
)
from thumpflow.batch.reading import FormatError
from thumpflow.core.batch import Manifest, Window

_BLOCK = 1 << 20

FILE_MODE = 0o640
"""Mode of every file the engine writes beside data (extracts, manifests,
reports, reasons): owner read-write, group read, nothing for others, whatever
the process umask (a umask can only narrow it)."""


def manifest_path(data_path: Path) -> Path:
    """Where the manifest of `data_path` lives: `<file>.manifest.json` beside it."""
    return data_path.with_name(manifest_name(data_path.name))


def read_manifest(path: Path) -> Manifest:
    """The manifest at `path`; OSError when unreadable, ManifestError (located) when invalid."""
    return parse_manifest(path.read_bytes(), path.name)


def write_manifest(path: Path, manifest: Manifest) -> None:
    """Write a manifest atomically (see `write_atomically`)."""
    write_atomically(path, manifest_to_json(manifest))


def write_atomically(path: Path, data: bytes) -> None:
    """Write a file atomically: a temporary file in the same directory, fsynced, renamed.

    A reader sees the previous file or the new one, never a torn one; the
    directory is fsynced so the rename survives a power loss. The file has
    `FILE_MODE`.
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with open(fd, "wb") as out:
        os.fchmod(fd, FILE_MODE)
        out.write(data)
        out.flush()
        os.fsync(fd)
    temporary.replace(path)
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    """Make renames and creations in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class HashingReader:
    """A binary stream over a file that computes the SHA-256 of every byte read.

    `finish` reads whatever the consumer left and returns the hex digest, so
    a count and the checksum come from one pass over the file.
    """

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._hash = hashlib.sha256()

    def __iter__(self) -> Iterator[bytes]:
        update = self._hash.update
        for line in self._raw:
            update(line)
            yield line

    def read(self, size: int = -1, /) -> bytes:
        data = self._raw.read(size)
        self._hash.update(data)
        return data

    def finish(self) -> str:
        """Hex SHA-256 of the whole stream."""
        while block := self._raw.read(_BLOCK):
            self._hash.update(block)
        return self._hash.hexdigest()


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as data:
        while block := data.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def count_and_hash(
    data_path: Path, fmt: Format, csv_options: CsvOptions | None = None
) -> tuple[int, str]:
    """(records as the reader would yield them, hex SHA-256) in one pass.

    FormatError when the file cannot be read at all (see `formats`).
    """
    with open(data_path, "rb", buffering=_BLOCK) as raw:
        stream = HashingReader(raw)
        count = count_records(fmt, stream, csv_options)
        return count, stream.finish()


def verify(
    manifest: Manifest,
    data_path: Path,
    expected_window: Window | None,
    max_age: float | None,
    source: str | None,
    *,
    now: float,
    fmt: Format,
    csv_options: CsvOptions | None = None,
    count: Callable[[Path], int | None] | None = None,
) -> list[Problem]:
    """Every mismatch between a data file and its manifest (empty: import it).

    Counts the file's records in `fmt` and hashes its bytes in one pass (or
    hashes them, and has `count` count them when it answers a number), then
    applies `manifest.check` (name, count, checksum, source, window,
    lateness). A file the format cannot read at all is one `format` problem.
    OSError propagates.
    """
    try:
        if count is None:
            counted, digest = count_and_hash(data_path, fmt, csv_options)
        else:
            with ThreadPoolExecutor(1) as hashing:
                digest_of = hashing.submit(sha256_of, data_path)  # while `count` counts
                answer = count(data_path)
                digest = digest_of.result()
            counted = (
                answer if answer is not None else count_and_hash(data_path, fmt, csv_options)[0]
            )
    except FormatError as exc:
        return [Problem("format", str(exc))]
    return check(
        manifest,
        name=data_path.name,
        record_count=counted,
        sha256=digest,
        expected_window=expected_window,
        max_age=max_age,
        source=source,
        now=now,
    )
