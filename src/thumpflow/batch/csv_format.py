"""CSV batch files: the dialect, a streaming reader, exact counting and the encoder.

Reading is streamed a block of lines at a time in constant memory, whatever
the file's size; a record's `origin` is `NAME:line N` (the line it starts
on). A row with the wrong number of fields, broken quoting or bytes invalid
in the encoding is yielded as an `UnreadableRecord` (its original lines as
`raw`, the problem located, never quoted) and reading goes on; a file
without a usable header row raises `FormatError`. `count_csv` counts exactly
the records `read_csv` yields, unreadable ones included (blank lines not),
so a manifest's `record_count` can be checked without parsing every row.

Part readings (`read_csv_rows`, `count_csv_lines`) start at a record
boundary and stop before the first record starting on `stop_line` or later;
`CsvStop` says where they stopped, so a caller can prove its parts met
exactly where a whole-file reading would have passed (a mismatch is the
caller's signal to read the file whole instead). The encoder writes CRLF
line ends; the same records give the same bytes.
"""

from __future__ import annotations

import csv
import io
import re
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from itertools import chain
from typing import Any, Literal

from thumpflow.batch.reading import ByteStream, FormatError, UnreadableRecord
from thumpflow.core.batch import BatchItem, SourceRecord

Quoting = Literal["minimal", "all", "nonnumeric", "none"]

_QUOTING = {
    "minimal": csv.QUOTE_MINIMAL,
    "all": csv.QUOTE_ALL,
    "nonnumeric": csv.QUOTE_NONNUMERIC,
    "none": csv.QUOTE_NONE,
}
_BOM = "\ufeff"
_SURROGATE = re.compile("[\udc80-\udcff]")


@dataclass(slots=True, frozen=True)
class CsvOptions:
    """CSV dialect: RFC 4180 with a header row by default.

    `encoding` must be ASCII-compatible (UTF-8, Latin-1, Windows-1252, ...);
    a UTF-8 byte order mark at the start is tolerated. With `quoting` "none"
    quote characters are ordinary data. Writers end lines with CRLF.
    """

    delimiter: str = ","
    quotechar: str = '"'
    quoting: Quoting = "minimal"
    encoding: str = "utf-8"

    def dialect(self) -> dict[str, Any]:
        """Keyword arguments for `csv.reader`/`csv.writer`."""
        quoting = _QUOTING[self.quoting]
        return {
            "delimiter": self.delimiter,
            "quotechar": self.quotechar if quoting != csv.QUOTE_NONE else None,
            "quoting": csv.QUOTE_MINIMAL if quoting == csv.QUOTE_NONNUMERIC else quoting,
            "doublequote": True,
            "strict": True,
            "lineterminator": "\r\n",
            "escapechar": None,
        }


def _is_ascii_compatible(encoding: str) -> bool:
    sample = "\r\n,;|\t\"'azAZ09"
    try:
        return sample.encode(encoding) == sample.encode("ascii")
    except (LookupError, UnicodeError):
        return False


def check_encoding(encoding: str) -> str:
    """`encoding` if it is a known ASCII-compatible codec; ValueError otherwise."""
    if not _is_ascii_compatible(encoding):
        raise ValueError(f"encoding {encoding!r} is unknown or not ASCII-compatible")
    return encoding


def _text_lines(stream: ByteStream, encoding: str, errors: str) -> io.TextIOWrapper:
    """Lines as the csv module wants them (`newline=""`: CR, LF and CRLF all end a line)."""
    return io.TextIOWrapper(_RawReader(stream), encoding, errors, newline="")  # type: ignore[arg-type]


class _Lines:
    """The decoded lines of a stream, a block at a time, for `csv.reader`; kept until passed.

    Decoding uses `surrogateescape`, so bytes invalid in the encoding survive
    as lone surrogates; each line holding one is noted in `bad` by number.
    Blocks are kept from the one holding line `keep_from()` on (the first
    line of the record being read), so `text` can give that record's
    original lines, however many blocks it spans.
    """

    _HINT = 1 << 18  # characters per block read

    def __init__(self, stream: ByteStream, encoding: str, base: int = 0) -> None:
        """Lines of `stream`, numbered from `base + 1`."""
        self._text = _text_lines(stream, encoding, "surrogateescape")
        self._blocks: deque[tuple[int, list[str]]] = deque()
        self._read = base
        self.bad: set[int] = set()

    def blocks(self, keep_from: Callable[[], int]) -> Iterator[list[str]]:
        """Each block of lines in turn (`itertools.chain.from_iterable` makes lines of them)."""
        blocks = self._blocks
        while block := self._text.readlines(self._HINT):
            keep = keep_from()
            while blocks and blocks[0][0] + len(blocks[0][1]) <= keep:
                blocks.popleft()
            first = self._read + 1
            self._read += len(block)
            blocks.append((first, block))
            joined = "".join(block)
            if not joined.isascii() and _SURROGATE.search(joined):
                self.bad.update(
                    number
                    for number, line in enumerate(block, start=first)
                    if _SURROGATE.search(line)
                )
            yield block

    def any_bad(self, first: int, last: int) -> bool:
        """Whether a line from `first` to `last` (inclusive) held bytes invalid in the encoding."""
        return any(number in self.bad for number in range(first, last + 1))

    def text(self, first: int, last: int) -> str:
        """Lines `first` to `last` (inclusive) as read, joined."""
        parts: list[str] = []
        for start, block in self._blocks:
            if start + len(block) <= first or start > last:
                continue
            parts.extend(block[max(first - start, 0) : last - start + 1])
        return "".join(parts)


def csv_header(stream: ByteStream, name: str, options: CsvOptions) -> tuple[list[str], int]:
    """(the header row, the number of lines it and any blank lines before it take)."""
    reader = csv.reader(_text_lines(stream, options.encoding, "replace"), **options.dialect())
    return _header(reader, name), reader.line_num


def _header(reader: Any, name: str) -> list[str]:
    """The header row: first non-blank row; BOM removed; names unique and non-empty."""
    try:
        for row in reader:
            if row:
                break
        else:
            raise FormatError(f"{name}: no header row")
    except csv.Error as exc:
        raise FormatError(f"{name}: line {reader.line_num}: header row unreadable: {exc}") from exc
    row = list(row)
    if row[0].startswith(_BOM):
        row[0] = row[0][1:]
    seen: set[str] = set()
    for index, column in enumerate(row, start=1):
        if not column:
            raise FormatError(f"{name}: line {reader.line_num}: header column {index} is empty")
        if column in seen:
            raise FormatError(
                f"{name}: line {reader.line_num}: header column {index} repeats an earlier name"
            )
        seen.add(column)
    return row


def read_csv(stream: ByteStream, name: str, options: CsvOptions) -> Iterator[SourceRecord]:
    """Records of a CSV file with a header row; each `data` maps column to text.

    The file is decoded a block of lines at a time and parsed by `csv.reader`
    over them (no Python step per line); a record's original lines are
    looked up only when it cannot be read.
    """
    return _csv_records(_Lines(stream, options.encoding), name, options, None)


@dataclass(slots=True)
class CsvStop:
    """Where a reading of part of a CSV file stopped: the line the next record starts on
    (None: the end of the data)."""

    line: int | None = None


def read_csv_rows(
    stream: ByteStream,
    name: str,
    options: CsvOptions,
    header: Sequence[str],
    *,
    first_line: int,
    stop_line: int | None,
    stop: CsvStop,
) -> Iterator[tuple[list[str], int] | UnreadableRecord]:
    """The records `read_csv` yields from line `first_line` (where `stream` starts, at a
    record boundary) up to, not including, the first record starting on `stop_line` or
    later, a readable one given as (its fields in header order, the line it starts on).

    `stop.line` is then set to the line that record starts on (None at the
    end of the data): the reading matched a whole-file reading exactly when
    it is `stop_line`. The header is given, not read. Unreadable records are
    `UnreadableRecord`s, as `read_csv` yields them.
    """
    base = first_line - 1
    lines = _Lines(stream, options.encoding, base)
    return _csv_records(
        lines, name, options, list(header), base=base, stop_line=stop_line, stop=stop, rows=True
    )


def _csv_records(
    lines: _Lines,
    name: str,
    options: CsvOptions,
    header: list[str] | None,
    *,
    base: int = 0,
    stop_line: int | None = None,
    stop: CsvStop | None = None,
    rows: bool = False,
) -> Iterator[Any]:
    """The records of `lines` (`base`: the number of the line before the first one);
    the header is read first when not given. With `rows`, a readable record is yielded
    as (its fields in header order, the line it starts on) instead."""
    last = base
    reader = csv.reader(chain.from_iterable(lines.blocks(lambda: last + 1)), **options.dialect())
    if header is None:
        header = _header(reader, name)
        last = reader.line_num
    width = len(header)
    bad = lines.bad
    encoding = options.encoding
    while True:
        try:
            for row in reader:
                first = last + 1
                last = base + reader.line_num
                if stop_line is not None and first >= stop_line:
                    if stop is not None:
                        stop.line = first
                    return
                if len(row) == width and not (bad and lines.any_bad(first, last)):
                    if rows:
                        yield row, first
                    else:
                        yield SourceRecord(
                            dict(zip(header, row, strict=False)), f"{name}:line {first}"
                        )
                    continue
                raw = lines.text(first, last).rstrip("\r\n")
                if bad and lines.any_bad(first, last):
                    text = raw.encode(encoding, "surrogateescape").decode(encoding, "replace")
                    yield UnreadableRecord(
                        {}, f"{name}:line {first}", text, f"not valid {encoding}"
                    )
                elif row:
                    yield UnreadableRecord(
                        {},
                        f"{name}:line {first}",
                        raw,
                        f"{len(row)} fields, the header has {width}",
                    )
            return
        except csv.Error as exc:
            first = last + 1
            last = base + reader.line_num
            if stop_line is not None and first >= stop_line:
                if stop is not None:
                    stop.line = first
                return
            raw = lines.text(first, last).rstrip("\r\n")
            yield UnreadableRecord({}, f"{name}:line {first}", raw, f"CSV: {exc}")


def count_csv(stream: ByteStream, options: CsvOptions) -> int:
    """The number of records `read_csv` yields (header and blank lines not counted).

    A row with bytes invalid in the encoding is still one record (the reader
    yields it as unreadable).
    """
    text = _text_lines(stream, options.encoding, "replace")
    reader = csv.reader(text, **options.dialect())
    _header(reader, "CSV file")
    return _count_rows(_line_blocks(text), options, reader.line_num, None, CsvStop())


def count_csv_lines(
    stream: ByteStream, options: CsvOptions, first_line: int, stop_line: int | None, stop: CsvStop
) -> int:
    """What `read_csv_rows` would yield, counted (`count_csv` of part of a file)."""
    text = _text_lines(stream, options.encoding, "replace")
    return _count_rows(_line_blocks(text), options, first_line - 1, stop_line, stop)


def _line_blocks(text: io.TextIOWrapper) -> Iterator[str]:
    return chain.from_iterable(iter(lambda: text.readlines(_Lines._HINT), []))


def _count_rows(
    lines: Iterator[str], options: CsvOptions, line: int, stop_line: int | None, stop: CsvStop
) -> int:
    """Records counted as `_csv_records` yields them (blank rows not), from the line after
    `line` on, up to the first record starting on `stop_line` or later.

    A record starting on a line without the quote character is that line
    alone (a line end outside quotes ends it), so it is counted without
    parsing: a record unless blank. Only a record starting on a line with a
    quote character is parsed, by `csv.reader`, over as many lines as it
    takes; one that cannot be parsed counts as one, as it is yielded.
    """
    dialect = options.dialect()
    quote = dialect["quotechar"]
    limit = stop_line if stop_line is not None else -1
    count = 0
    for text in lines:
        line += 1
        if line == limit or 0 < limit < line:
            stop.line = line
            return count
        if quote is None or quote not in text:
            if text.strip("\r\n"):
                count += 1
            continue
        reader = csv.reader(chain((text,), lines), **dialect)
        try:
            if next(reader):
                count += 1
        except csv.Error:
            count += 1
        line += reader.line_num - 1
    return count


class _RawReader(io.RawIOBase):
    """A raw binary stream over a `ByteStream`, for `io.TextIOWrapper`."""

    def __init__(self, stream: ByteStream) -> None:
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._stream.read(len(view))
        view[: len(data)] = data
        return len(data)


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


class CsvEncoder:
    """Encodes records as CSV rows in the order of `columns` (absent or None → empty).

    Keys of a record that are not columns are not written.
    """

    __slots__ = ("_buffer", "_columns", "_encoding", "_writer")

    def __init__(self, columns: Sequence[str], options: CsvOptions) -> None:
        if not columns:
            raise ValueError("a CSV file needs at least one column")
        self._columns = tuple(columns)
        self._encoding = options.encoding
        self._buffer = io.StringIO()
        dialect = options.dialect()
        if options.quoting == "nonnumeric":
            dialect["quoting"] = csv.QUOTE_NONNUMERIC
        self._writer = csv.writer(self._buffer, **dialect)

    def _row(self, values: Sequence[Any]) -> bytes:
        buffer = self._buffer
        buffer.seek(0)
        buffer.truncate()
        self._writer.writerow(values)
        return buffer.getvalue().encode(self._encoding)

    def header(self) -> bytes:
        """The header row."""
        return self._row(self._columns)

    def encode(self, data: Mapping[str, Any]) -> bytes:
        """One record as a CSV row ending in CRLF."""
        get = data.get
        return self._row([_cell(get(column)) for column in self._columns])

    def encode_item(self, item: BatchItem) -> bytes:
        """`encode` of the item's record."""
        return self.encode(item.data)

    def trailer(self, count: int) -> bytes:
        """Nothing: CSV has no trailer."""
        return b""
