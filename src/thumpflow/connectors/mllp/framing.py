"""MLLP framing (HL7 v2 Minimal Lower Layer Protocol, release 2).

A frame is a start block (0x0B), the message bytes, and an end block
(0x1C 0x0D). `MllpDecoder` turns a byte stream cut into arbitrary chunks into
frames and framing errors; the result never depends on where the stream was
cut. Nothing the peer sends is silently dropped: bytes that cannot be framed
are reported as a `FramingError` carrying them (up to `max_message_bytes`),
except whitespace alone between frames, which some senders add as a line break.
Memory per connection stays bounded by `max_message_bytes` plus one read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

START_BLOCK = 0x0B
END_BLOCK = 0x1C
CARRIAGE_RETURN = 0x0D
_START = b"\x0b"
_END = b"\x1c\x0d"

FramingErrorKind = Literal["garbage", "oversized", "truncated"]

_OUTSIDE = 0
_INSIDE = 1
_DISCARD = 2


def frame(message: bytes) -> bytes:
    """`message` wrapped in MLLP start and end blocks."""
    return _START + message + _END


@dataclass(slots=True, frozen=True)
class FramingError:
    """Input that could not be framed cleanly.

    `kind` is `garbage` (bytes outside a frame, before a start block or at the
    end of the stream), `oversized` (a frame longer than the limit; `data` is
    its first `limit` bytes, the rest was discarded) or `truncated` (a frame
    cut short by a new start block or the end of the stream). `size` is the
    byte count of the whole offending input, `data` what was kept of it.
    """

    kind: FramingErrorKind
    data: bytes
    size: int

    def describe(self) -> str:
        """A one-line reason naming sizes only, never message content."""
        if self.kind == "oversized":
            return (
                f"oversized frame: {self.size} bytes, more than the limit; "
                f"first {len(self.data)} bytes kept"
            )
        if self.kind == "truncated":
            return f"truncated frame: {self.size} bytes without an end block"
        kept = "" if len(self.data) == self.size else f", first {len(self.data)} kept"
        return f"bytes outside a frame: {self.size} bytes before a start block{kept}"


class MllpDecoder:
    """Incremental MLLP decoder for one connection.

    `feed` accepts any chunk and returns the frames (as `bytes`, without the
    blocks) and `FramingError`s completed by it, in stream order; `finish`
    reports what was left unfinished when the stream ended. Frames longer than
    `max_message_bytes` are not buffered beyond the limit: the decoder keeps
    the first `max_message_bytes` and counts the rest until the frame ends or
    a new start block resynchronises it.
    """

    __slots__ = (
        "_buf",
        "_count",
        "_fs_tail",
        "_garbage",
        "_garbage_size",
        "_garbage_solid",
        "_limit",
        "_state",
    )

    def __init__(self, max_message_bytes: int) -> None:
        if max_message_bytes < 1:
            raise ValueError("max_message_bytes must be positive")
        self._limit = max_message_bytes
        self._state = _OUTSIDE
        self._buf = bytearray()
        self._count = 0
        self._fs_tail = False
        self._garbage = bytearray()
        self._garbage_size = 0
        self._garbage_solid = False

    @property
    def buffered(self) -> int:
        """Bytes held for an unfinished frame or pending garbage."""
        return len(self._buf) + len(self._garbage)

    @property
    def pending(self) -> bool:
        """True while input is unfinished: a frame started (or being discarded as
        oversized), or bytes outside a frame that `finish` would report. Whitespace
        alone between frames is not pending."""
        return self._state != _OUTSIDE or self._garbage_solid

    def feed(self, data: bytes) -> list[bytes | FramingError]:
        out: list[bytes | FramingError] = []
        n = len(data)
        pos = 0
        while pos < n:
            state = self._state
            if state == _OUTSIDE:
                start = data.find(_START, pos)
                if start < 0:
                    self._add_garbage(data, pos, n)
                    return out
                if start > pos:
                    self._add_garbage(data, pos, start)
                self._flush_garbage(out)
                self._state = _INSIDE
                pos = start + 1
                if not self._buf and (end := data.find(_END, pos)) >= 0:
                    nxt = data.find(_START, pos, end)
                    if nxt < 0 and end - pos <= self._limit:
                        out.append(data[pos:end])
                        self._state = _OUTSIDE
                        pos = end + 2
            elif state == _INSIDE:
                buf = self._buf
                if buf and buf[-1] == END_BLOCK and data[pos] == CARRIAGE_RETURN:
                    del buf[-1]
                    self._end_frame(out)
                    pos += 1
                    continue
                end = data.find(_END, pos)
                start = data.find(_START, pos, end if end >= 0 else n)
                stop = start if start >= 0 else (end if end >= 0 else n)
                buf += data[pos:stop]
                if len(buf) > self._limit + 1:
                    self._count = len(buf)
                    del buf[self._limit :]
                    self._state = _DISCARD
                    self._fs_tail = data[stop - 1] == END_BLOCK
                    pos = stop
                    continue
                if start >= 0:
                    out.append(FramingError("truncated", bytes(buf), len(buf)))
                    buf.clear()
                    pos = start + 1
                elif end >= 0:
                    self._end_frame(out)
                    pos = end + 2
                else:
                    return out
            else:
                if self._fs_tail and data[pos] == CARRIAGE_RETURN:
                    self._count -= 1
                    self._end_discard(out, _OUTSIDE)
                    pos += 1
                    continue
                end = data.find(_END, pos)
                start = data.find(_START, pos, end if end >= 0 else n)
                if start >= 0:
                    self._count += start - pos
                    self._end_discard(out, _INSIDE)
                    pos = start + 1
                elif end >= 0:
                    self._count += end - pos
                    self._end_discard(out, _OUTSIDE)
                    pos = end + 2
                else:
                    self._count += n - pos
                    self._fs_tail = data[n - 1] == END_BLOCK
                    return out
        return out

    def finish(self) -> list[FramingError]:
        """Report what the stream left unfinished, and reset the decoder."""
        out: list[bytes | FramingError] = []
        if self._state == _INSIDE:
            out.append(FramingError("truncated", bytes(self._buf), len(self._buf)))
            self._buf.clear()
        elif self._state == _DISCARD:
            self._end_discard(out, _OUTSIDE)
        self._state = _OUTSIDE
        self._flush_garbage(out)
        return [item for item in out if isinstance(item, FramingError)]

    def _end_frame(self, out: list[bytes | FramingError]) -> None:
        buf = self._buf
        if len(buf) > self._limit:
            out.append(FramingError("oversized", bytes(buf[: self._limit]), len(buf)))
        else:
            out.append(bytes(buf))
        buf.clear()
        self._state = _OUTSIDE

    def _end_discard(self, out: list[bytes | FramingError], next_state: int) -> None:
        out.append(FramingError("oversized", bytes(self._buf), self._count))
        self._buf.clear()
        self._count = 0
        self._fs_tail = False
        self._state = next_state

    def _add_garbage(self, data: bytes, begin: int, end: int) -> None:
        room = self._limit - len(self._garbage)
        kept = data[begin : min(end, begin + room)] if room > 0 else b""
        self._garbage += kept
        self._garbage_size += end - begin
        if not self._garbage_solid:
            self._garbage_solid = self._garbage_size > len(self._garbage) or bool(kept.strip())

    def _flush_garbage(self, out: list[bytes | FramingError]) -> None:
        if not self._garbage_size:
            return
        kept = bytes(self._garbage)
        size = self._garbage_size
        self._garbage.clear()
        self._garbage_size = 0
        self._garbage_solid = False
        if size == len(kept) and not kept.strip():
            return
        out.append(FramingError("garbage", kept, size))
