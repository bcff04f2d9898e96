"""The raw lines of an HL7 v2 message, before any parsing: splitting segments (CR, LF or
CRLF, mixed), reading MSH-18 from bytes (ASCII by definition), and the error for input
that does not begin with MSH (which names the problem, never the text found)."""

from __future__ import annotations

import re

from thumpflow.core.errors import MessageError

_SEP = re.compile("(\r\n|\r|\n)")
_SEP_BYTES = re.compile(b"(\r\n|\r|\n)")
SEGMENT_ID = re.compile(r"[A-Z][A-Z0-9]{2}")


def not_msh(head: str) -> MessageError:
    if not head:
        return MessageError("message is empty", code="100")
    sid = head[:3]
    if SEGMENT_ID.fullmatch(sid) and (len(head) == 3 or not head[3].isalnum()):
        reason = "message must begin with MSH; its first segment is another one"
    else:
        reason = "message does not begin with an MSH segment"
    return MessageError(reason, segment_index=1, code="100")


def split_lines(body: str) -> tuple[list[str], str | list[str]]:
    if "\n" in body:
        if "\r" in body:
            pieces = _SEP.split(body)
            return pieces[0::2], pieces[1::2]
        return body.split("\n"), "\n"
    return body.split("\r"), "\r"


def split_lines_bytes(body: bytes) -> list[bytes]:
    if b"\n" in body:
        if b"\r" in body:
            return _SEP_BYTES.split(body)[0::2]
        return body.split(b"\n")
    return body.split(b"\r")


def declared_charset(raw: bytes, start: int) -> str:
    """MSH-18 (first repetition) read from the bytes: it is ASCII by definition."""
    end = len(raw)
    for sep in (b"\r", b"\n"):
        k = raw.find(sep, start, end)
        if k >= 0:
            end = k
    line = raw[start:end]
    fields = line.split(line[3:4]) if len(line) > 3 else []
    if len(fields) <= 17:
        return ""
    value = fields[17].split(line[5:6])[0] if len(line) > 5 else fields[17]
    return value.decode("ascii", "replace").strip()
