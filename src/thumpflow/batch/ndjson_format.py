"""NDJSON batch files: a streaming reader, counting and the canonical-JSON encoder.

One JSON object per non-blank line, read one line at a time in constant
memory. A line that is not a JSON object (or not UTF-8) is yielded as an
`UnreadableRecord` naming the problem and its column, never its content,
and reading goes on. `count_ndjson` counts exactly the records
`read_ndjson` yields. The encoder writes each record's canonical JSON, so
the same record always gives the same line and the line's SHA-256 is the
record's content hash.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from thumpflow.batch.reading import ByteStream, UnreadableRecord
from thumpflow.core.batch import BatchItem, SourceRecord
from thumpflow.core.records import canonical_json


def _ndjson_problem(line: bytes) -> str:
    """Why a line is not a record: located, without its content."""
    try:
        value = json.loads(line)
    except UnicodeDecodeError:
        return "not valid UTF-8"
    except json.JSONDecodeError as exc:
        return f"not JSON: {exc.msg} at column {exc.colno}"
    return f"a JSON {type(value).__name__}, not an object"


def read_ndjson(stream: ByteStream, name: str) -> Iterator[SourceRecord]:
    """Records of an NDJSON file: one JSON object per non-blank line."""
    loads = json.loads
    for number, line in enumerate(stream, start=1):
        if line.isspace():
            continue
        raw = line.decode("utf-8", "replace").rstrip("\r\n")
        try:
            value = loads(line)
        except ValueError:
            value = None
        if isinstance(value, dict):
            yield SourceRecord(value, f"{name}:line {number}", raw)
        else:
            yield UnreadableRecord({}, f"{name}:line {number}", raw, _ndjson_problem(line))


def count_ndjson(stream: ByteStream) -> int:
    """The number of records `read_ndjson` yields (non-blank lines)."""
    return sum(1 for line in stream if not line.isspace())


class NdjsonEncoder:
    """Encodes each record as its canonical JSON on a line of its own.

    A line is `thumpflow.core.records.canonical_json` of the record (keys
    sorted, compact, UTF-8; dates ISO 8601 text, decimals as text), so the
    SHA-256 of a line without its LF is the record's content hash; an item
    that carries its canonical JSON is not encoded again. A value JSON cannot
    represent raises TypeError naming its type.
    """

    __slots__ = ()

    def header(self) -> bytes:
        """Nothing: NDJSON has no header."""
        return b""

    def encode(self, data: Mapping[str, Any]) -> bytes:
        """One record as a JSON line."""
        return canonical_json(data) + b"\n"

    def encode_item(self, item: BatchItem) -> bytes:
        """An item's record as a JSON line (its canonical JSON when it carries it)."""
        canonical = item.canonical
        return canonical + b"\n" if canonical is not None else canonical_json(item.data) + b"\n"

    def trailer(self, count: int) -> bytes:
        """Nothing: NDJSON has no trailer."""
        return b""
