"""HL7 v2 batch files (FHS/BHS ... BTS/FTS): a checked reader, counting and the encoder.

A batch file is parsed whole by `thumpflow.hl7v2.parse_batch` and its
structure and BTS/FTS counts are checked before any message is released:
a file that fails raises `FormatError` naming the line (or the file), never
its content, and yields no record at all, so a wrong file is never half
loaded. The encoder writes the header and a trailer with the true counts;
the same records give the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from thumpflow.batch.reading import FormatError
from thumpflow.core.batch import BatchItem, SourceRecord
from thumpflow.core.errors import MessageError
from thumpflow.hl7v2 import parse_batch
from thumpflow.hl7v2.segment import WHITESPACE_BYTES


def _parse_hl7(data: bytes, name: str) -> list[tuple[int, Any]]:
    """(line of its MSH, message) for every message; FormatError for a bad file."""
    try:
        batch = parse_batch(data)
    except MessageError as exc:
        where = f"line {exc.segment_index}" if exc.segment_index is not None else "file"
        raise FormatError(f"{name}: {where}: {exc.reason}") from exc
    clean = data.translate(None, b"\x0b\x1c").replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    lines = []
    for number, line in enumerate(clean.split(b"\n"), start=1):
        content = line.strip(WHITESPACE_BYTES)
        if content[:3] == b"MSH" and (len(content) == 3 or not content[3:4].isalnum()):
            lines.append(number)
    return list(zip(lines, batch.messages, strict=True))


def read_hl7_batch(data: bytes, name: str) -> Iterator[SourceRecord]:
    """Records of an HL7 v2 batch file, one per message, after its counts are checked.

    Raises FormatError at once (before any record) when `parse_batch` refuses
    the file. Each record's data: `message` (the message text, segments
    separated by CR), `message_type` (MSH-9.1^MSH-9.2), `control_id`
    (MSH-10), `sending_application` (MSH-3), `sending_facility` (MSH-4) and
    `version` (MSH-12); its origin is the line of its MSH.
    """
    messages = _parse_hl7(data, name)
    return _hl7_records(messages, name)


def count_hl7_batch(data: bytes) -> int:
    """How many records `read_hl7_batch` yields for `data` (FormatError as it would)."""
    return len(_parse_hl7(data, "batch file"))


def _hl7_records(messages: list[tuple[int, Any]], name: str) -> Iterator[SourceRecord]:
    for line, message in messages:
        text = message.to_str()
        yield SourceRecord(
            {
                "message": text,
                "message_type": f"{message.message_type}^{message.trigger_event}",
                "control_id": message.control_id,
                "sending_application": message.sending_application,
                "sending_facility": message.sending_facility,
                "version": message.version,
            },
            f"{name}:line {line}",
            text,
        )


def _hl7_escape(text: str) -> str:
    return (
        text.replace("\\", "\\E\\")
        .replace("|", "\\F\\")
        .replace("^", "\\S\\")
        .replace("&", "\\T\\")
        .replace("~", "\\R\\")
    )


class Hl7BatchEncoder:
    """Encodes records (their `message` text) as an HL7 v2 batch file in UTF-8.

    The file is `FHS BHS {MSH...} BTS FTS`; segments are separated by CR.
    FHS-3/BHS-3 name the sending system and FHS-9 the file, so the same
    records give the same bytes. `trailer(count)` writes BTS-1 = count and
    FTS-1 = 1. A record without a `message` text raises ValueError.
    """

    __slots__ = ("_file_name", "_sender")

    def __init__(self, sender: str, file_name: str) -> None:
        self._sender = _hl7_escape(sender)
        self._file_name = _hl7_escape(file_name)

    def header(self) -> bytes:
        """FHS and BHS segments."""
        sender, name = self._sender, self._file_name
        return f"FHS|^~\\&|{sender}||||||{name}\rBHS|^~\\&|{sender}\r".encode()

    def encode(self, data: Mapping[str, Any]) -> bytes:
        """One message, each segment ending in CR, blank lines dropped."""
        message = data.get("message")
        if not isinstance(message, str) or not message.strip():
            raise ValueError("an HL7 v2 batch record needs its `message` text")
        segments = [s for s in message.replace("\r\n", "\r").replace("\n", "\r").split("\r") if s]
        return ("\r".join(segments) + "\r").encode("utf-8")

    def encode_item(self, item: BatchItem) -> bytes:
        """`encode` of the item's record."""
        return self.encode(item.data)

    def trailer(self, count: int) -> bytes:
        """BTS (messages in the batch) and FTS (batches in the file)."""
        return f"BTS|{count}\rFTS|1\r".encode()
