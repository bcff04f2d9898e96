"""A CSV file in parts that can be read at once, each as `read_csv` would read it.

`plan_csv` cuts a file after its header into parts of about `part_bytes`,
each starting at the beginning of a line. A part is read from its first line
up to the first record that starts on the next part's first line or later
(`read_part_rows`, `count_part`), and reports the line that record starts on. A
cut can fall inside a record (a quoted field holding a line end): the part
before it then reports a later line than the next part's first, and that
part, read from the wrong place, must be discarded and the cut moved there
(`moved`). So a part is taken only after the part before it reported its
first line: parts read that way give exactly the records, origins and counts
of one reading of the whole file, because `csv.reader` starts afresh at every
record boundary.

A file is planned only when its lines end with LF or CRLF (a lone CR also
ends a line for the csv module, which the cut, made at LF, would not see),
its encoding is one whose line ends are single bytes that no other character
contains (UTF-8, ASCII, Latin-1, ISO 8859, Windows code pages), its header is
readable, and it is big enough for two parts; otherwise `plan_csv` answers
None and the file is read the usual way. This module opens the files it
plans and reads; it does no other I/O.
"""

from __future__ import annotations

import codecs
import mmap
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from thumpflow.batch.csv_format import (
    CsvOptions,
    CsvStop,
    count_csv_lines,
    csv_header,
    read_csv_rows,
)
from thumpflow.batch.reading import FormatError, UnreadableRecord

_SPLITTABLE = ("utf-8", "ascii", "latin-1", "iso8859-", "cp125")


@dataclass(slots=True, frozen=True)
class CsvPart:
    """Lines of a CSV file from byte `start` (line `first_line`) up to the record starting on
    `stop_line` or later (None: to the end)."""

    start: int
    first_line: int
    stop_line: int | None


@dataclass(slots=True, frozen=True)
class CsvPlan:
    """A CSV file cut into parts after its header (`header`: its column names)."""

    header: tuple[str, ...]
    parts: tuple[CsvPart, ...]
    options: CsvOptions


def _part_options(options: CsvOptions) -> CsvOptions | None:
    """The options a part is decoded with (a BOM is only at the start, which no part holds);
    None for an encoding whose line ends cannot be found byte-wise."""
    name = codecs.lookup(options.encoding).name
    if name == "utf-8-sig":
        return replace(options, encoding="utf-8")
    if name.startswith(_SPLITTABLE):
        return options
    return None


def plan_csv(path: Path, options: CsvOptions, part_bytes: int) -> CsvPlan | None:
    """`path` cut into parts of about `part_bytes` (see the module docstring); None when it
    cannot be cut, or would make one part only."""
    part_options = _part_options(options)
    if part_options is None:
        return None
    with open(path, "rb") as data:
        try:
            header, header_lines = csv_header(data, path.name, options)
        except FormatError:
            return None
        data.seek(0)
        start = sum(len(data.readline()) for _ in range(header_lines))
        size = data.seek(0, 2)
        if size - start < 2 * part_bytes:
            return None
        with mmap.mmap(data.fileno(), 0, access=mmap.ACCESS_READ) as view:
            if _lone_cr(view[:start]):
                return None
            parts: list[CsvPart] = []
            line = header_lines + 1
            while start < size:
                cut = view.find(b"\n", min(start + part_bytes, size) - 1) + 1 or size
                text = view[start:cut]
                if _lone_cr(text):
                    return None
                parts.append(CsvPart(start, line, None))
                line += text.count(b"\n")
                start = cut
    stops = [part.first_line for part in parts[1:]] + [None]
    return CsvPlan(
        tuple(header),
        tuple(replace(part, stop_line=stop) for part, stop in zip(parts, stops, strict=True)),
        part_options,
    )


def _lone_cr(text: bytes) -> bool:
    return text.count(b"\r") != text.count(b"\r\n")


def moved(path: Path, plan: CsvPlan, index: int, line: int | None) -> CsvPlan:
    """The plan once part `index` reported that the next record starts on `line` (None: no
    record follows), not on the next part's first line: the next part starts there instead,
    and parts that start before it are dropped."""
    parts = list(plan.parts)
    if line is None:
        last = replace(parts[index], stop_line=None)
        return replace(plan, parts=(*parts[:index], last))
    following = parts[index + 1]
    with open(path, "rb") as data:
        data.seek(following.start)
        start = following.start + sum(
            len(data.readline()) for _ in range(line - following.first_line)
        )
    later = [part for part in parts[index + 1 :] if part.first_line > line]
    stop = later[0].first_line if later else None
    return replace(plan, parts=(*parts[: index + 1], CsvPart(start, line, stop), *later))


def read_part_rows(
    path: Path, name: str, plan: CsvPlan, part: CsvPart
) -> tuple[Iterator[tuple[list[str], int] | UnreadableRecord], CsvStop]:
    """The records of one part as `read_csv` reads them, a readable one given as (its fields
    in header order, the line it starts on), and, once they are all read, where the part
    stopped. The file is closed when the records end or are closed."""
    stop = CsvStop()
    return _rows(path, name, plan, part, stop), stop


def _rows(
    path: Path, name: str, plan: CsvPlan, part: CsvPart, stop: CsvStop
) -> Iterator[tuple[list[str], int] | UnreadableRecord]:
    with open(path, "rb", buffering=1 << 20) as data:
        data.seek(part.start)
        yield from read_csv_rows(
            data,
            name,
            plan.options,
            plan.header,
            first_line=part.first_line,
            stop_line=part.stop_line,
            stop=stop,
        )


def count_part(path: Path, plan: CsvPlan, part: CsvPart) -> tuple[int, int | None]:
    """(records of one part, as `count_csv` counts them; the line the next record starts on)."""
    stop = CsvStop()
    with open(path, "rb", buffering=1 << 20) as data:
        data.seek(part.start)
        count = count_csv_lines(data, plan.options, part.first_line, part.stop_line, stop)
    return count, stop.line
