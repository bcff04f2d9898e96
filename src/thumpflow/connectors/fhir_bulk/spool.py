"""The spool of a FHIR Bulk export: each file downloaded to local disk, counted and hashed
as it streams, then read back a block of lines at a time.

A download rewrites its file from the start, so a download tried again
after a dropped connection never appends to a partial one. Line count and
SHA-256 are of the bytes written (a last line without a line end counts),
so the source can refuse a file whose count differs from the manifest's
before any record is read. Blocking file work runs on worker threads.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import aiohttp

from thumpflow.connectors.fhir_bulk.manifest import ExportFile

_WRITE_BYTES = 1 << 20
_READ_LINES = 2000


@dataclass(slots=True, frozen=True)
class Spooled:
    """A file on disk: what the manifest said of it, where it is, its lines and SHA-256."""

    file: ExportFile
    path: Path
    lines: int
    sha256: str


async def spool_response(response: aiohttp.ClientResponse, file: ExportFile, path: Path) -> Spooled:
    """Stream a response body to `path`, counting lines and hashing; the file is rewritten."""
    digest = hashlib.sha256()
    lines = 0
    last = b"\n"
    fh: IO[bytes] = await asyncio.to_thread(path.open, "wb")
    try:
        pending = bytearray()
        async for chunk in response.content.iter_chunked(_WRITE_BYTES):
            if not chunk:
                continue
            digest.update(chunk)
            lines += chunk.count(b"\n")
            last = chunk[-1:]
            pending += chunk
            if len(pending) >= _WRITE_BYTES:
                await asyncio.to_thread(fh.write, bytes(pending))
                pending.clear()
        if pending:
            await asyncio.to_thread(fh.write, bytes(pending))
    finally:
        await asyncio.to_thread(fh.close)
    if last != b"\n":
        lines += 1
    return Spooled(file, path, lines, digest.hexdigest())


def next_lines(fh: IO[bytes]) -> list[bytes]:
    """The next block of lines of `fh` (blocking; [] at the end)."""
    return list(itertools.islice(fh, _READ_LINES))
