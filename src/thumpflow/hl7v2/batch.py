"""Files of messages: splitting captures, and HL7 batch files (FHS/BHS..BTS/FTS)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from thumpflow.core.errors import MessageError
from thumpflow.hl7v2.charset import decode
from thumpflow.hl7v2.delimiters import DEFAULT_DELIMITERS, Delimiters
from thumpflow.hl7v2.message import Message
from thumpflow.hl7v2.segment import WHITESPACE, WHITESPACE_BYTES, Segment

_LINE = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)?")
_WRAPPERS = frozenset({b"FHS", b"BHS", b"BTS", b"FTS"})


def _lines(data: bytes) -> list[tuple[bytes, int, int]]:
    """(segment id, start, end incl. separator) of every non-blank line of `data`
    (framing bytes already removed)."""
    out = []
    for m in _LINE.finditer(data):
        line = m.group()
        content = line.strip(WHITESPACE_BYTES)
        if content:
            sid = content[:3] if len(content) == 3 or not content[3:4].isalnum() else b""
            out.append((sid, m.start(), m.end()))
    return out


def split_messages(data: bytes) -> list[bytes]:
    """The individual messages in a file or capture, each starting at its MSH.

    Any segment separators are accepted; MLLP framing bytes (0x0B, 0x1C) are
    removed, batch wrapper lines (FHS, BHS, BTS, FTS) and blank lines between
    messages dropped, and each message keeps its own bytes and separators.
    A non-blank line before the first MSH that is not a wrapper raises
    `MessageError` (code 100, `segment_index` = its 1-based non-blank line
    number; the reason names its line number in the file), so nothing is
    silently skipped.
    """
    clean = data.translate(None, b"\x0b\x1c")
    messages: list[bytes] = []
    start = end = -1
    for n, (sid, a, b) in enumerate(_lines(clean), start=1):
        if sid == b"MSH" or sid in _WRAPPERS:
            if start >= 0:
                messages.append(clean[start:end])
            start = a if sid == b"MSH" else -1
        elif start < 0:
            raise MessageError(
                f"line {_line_number(clean, a)} is outside any message (a message starts"
                " with its MSH segment)",
                segment_index=n,
                code="100",
            )
        end = b
    if start >= 0:
        messages.append(clean[start:end])
    return messages


def _line_number(data: bytes, offset: int) -> int:
    """The 1-based line number, counting blank lines, of the line starting at `offset`."""
    return sum(1 for line in _LINE.findall(data, 0, offset) if line) + 1


@dataclass(slots=True)
class MessageBatch:
    """One batch: its BHS `header` and BTS `trailer` (None when absent, e.g. the
    implicit batch of messages placed directly in a file) and its messages."""

    header: Segment | None
    messages: list[Message] = field(default_factory=list)
    trailer: Segment | None = None


@dataclass(slots=True)
class Batch:
    """A parsed batch file: optional FHS `file_header` and FTS `file_trailer`
    around one or more batches."""

    file_header: Segment | None
    batches: list[MessageBatch]
    file_trailer: Segment | None

    @property
    def messages(self) -> list[Message]:
        """Every message of every batch, in file order."""
        return [m for b in self.batches for m in b.messages]


def _wrapper(line: bytes, delims: Delimiters) -> Segment:
    text = decode(line, "")[0].strip(WHITESPACE)
    return Segment(text, delims)


def _header_delims(line: bytes) -> Delimiters:
    text = decode(line, "")[0].strip(WHITESPACE)
    fs = text[3:4]
    if not fs:
        return DEFAULT_DELIMITERS
    enc = text[4:].split(fs, 1)[0]
    try:
        return Delimiters.from_msh(fs, enc)
    except MessageError as e:
        raise MessageError(e.reason, segment=text[:3], segment_index=1, field=2, code="102") from e


def _count(seg: Segment, n: int, counted: int, what: str) -> None:
    value = seg.get("1").strip()
    if not value:
        return
    if not value.isdigit():
        raise MessageError(
            f"{seg.id}-1 is not a number", segment=seg.id, segment_index=n, field=1, code="102"
        )
    if int(value) != counted:
        raise MessageError(
            f"{seg.id}-1 declares {int(value)} {what}, counted {counted}",
            segment=seg.id,
            segment_index=n,
            field=1,
            code="100",
        )


def parse_batch(data: bytes) -> Batch:
    """Parse a batch file: `[FHS] {[BHS] {MSH...} [BTS]} [FTS]`.

    A lone BHS..BTS without FHS and an FHS with messages but no BHS are both
    accepted (messages outside any BHS form an implicit batch, which counts as
    one batch for FTS-1). Each message is parsed with its own MSH (delimiters,
    charset). Raises `MessageError` with the segment and its 1-based line
    position: code 100 when BTS-1 (messages in its batch) or FTS-1 (batches in
    the file) disagree with what was counted, for BTS without BHS, a second FHS
    or anything after FTS, or a line outside any message; code 102 for a
    non-numeric count; and whatever `Message.parse` raises for a message.
    """
    clean = data.translate(None, b"\x0b\x1c")
    delims = DEFAULT_DELIMITERS
    file_header: Segment | None = None
    file_trailer: Segment | None = None
    batches: list[MessageBatch] = []
    current: MessageBatch | None = None
    msg_start = msg_end = -1

    def flush() -> None:
        nonlocal msg_start, current
        if msg_start >= 0:
            if current is None:
                current = MessageBatch(None)
                batches.append(current)
            current.messages.append(Message.parse(clean[msg_start:msg_end]))
            msg_start = -1

    for n, (sid, a, b) in enumerate(_lines(clean), start=1):
        line = clean[a:b]
        if file_trailer is not None:
            raise MessageError("segment after FTS", segment_index=n, code="100")
        if sid == b"MSH":
            flush()
            msg_start, msg_end = a, b
        elif sid in _WRAPPERS:
            flush()
            name = sid.decode("ascii")
            if sid in (b"FHS", b"BHS"):
                delims = _header_delims(line)
            seg = _wrapper(line, delims)
            if sid == b"FHS":
                if n != 1:
                    raise MessageError(
                        "FHS must be the first segment", segment=name, segment_index=n, code="100"
                    )
                file_header = seg
            elif sid == b"BHS":
                current = MessageBatch(seg)
                batches.append(current)
            elif sid == b"BTS":
                if current is None or current.header is None or current.trailer is not None:
                    raise MessageError("BTS without BHS", segment=name, segment_index=n, code="100")
                current.trailer = seg
                _count(seg, n, len(current.messages), "messages")
                current = None
            else:
                file_trailer = seg
                _count(seg, n, len(batches), "batches")
        elif msg_start < 0:
            raise MessageError("segment outside any message", segment_index=n, code="100")
        else:
            msg_end = b
    flush()
    return Batch(file_header, batches, file_trailer)
