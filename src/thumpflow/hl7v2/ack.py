"""Acknowledgments: building ACK/NAK responses and reading them back.

Every text an ACK carries is ours (codes, error reasons and locations), never
a value from the acknowledged message other than its MSH routing fields and
control id.
"""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass
from typing import Literal

from thumpflow.core.errors import MessageError
from thumpflow.hl7v2.delimiters import DEFAULT_DELIMITERS, Delimiters
from thumpflow.hl7v2.escape import escape
from thumpflow.hl7v2.message import Message
from thumpflow.hl7v2.segment import WHITESPACE_BYTES

ACK_CODES = frozenset({"AA", "AE", "AR", "CA", "CE", "CR"})

ERROR_TEXT = {
    "0": "Message accepted",
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "103": "Table value not found",
    "104": "Value too long",
    "200": "Unsupported message type",
    "201": "Unsupported event code",
    "202": "Unsupported processing id",
    "203": "Unsupported version id",
    "204": "Unknown key identifier",
    "205": "Duplicate key identifier",
    "206": "Application record locked",
    "207": "Application internal error",
}

_MSA_TEXT_MAX = 80
_SALVAGE_MAX = 199
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _base32(value: int, length: int) -> str:
    return "".join(_CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(length)))


# Control ids: 9 chars of process start time (ms), 4 random chars, then a counter:
# unique across processes and restarts, at most 20 characters (MSH-10 in v2.5)
# for the first 32**7 ids of a process.
_ID_PREFIX = _base32(time.time_ns() // 1_000_000, 9) + _base32(
    int.from_bytes(os.urandom(3), "big"), 4
)
_ids = itertools.count(1)


def new_control_id() -> str:
    """A fresh message control id, unique across processes and restarts."""
    n = next(_ids)
    digits = ""
    while n:
        digits = _CROCKFORD[n & 31] + digits
        n >>= 5
    return _ID_PREFIX + digits


_stamp_second = -1
_stamp_prefix = ""
_stamp_zone = ""


def hl7_timestamp(now: float | None = None) -> str:
    """`now` (default: the current time) as `YYYYMMDDHHMMSS.ffff+ZZZZ`, local time."""
    global _stamp_second, _stamp_prefix, _stamp_zone
    t = time.time() if now is None else now
    second = int(t // 1)
    if second != _stamp_second:
        local = time.localtime(second)
        _stamp_prefix = time.strftime("%Y%m%d%H%M%S", local)
        offset = local.tm_gmtoff // 60
        sign = "-" if offset < 0 else "+"
        _stamp_zone = f"{sign}{abs(offset) // 60:02d}{abs(offset) % 60:02d}"
        _stamp_second = second
    return f"{_stamp_prefix}.{int((t - second) * 10000):04d}{_stamp_zone}"


def _tail(d: Delimiters, code: str, acked_id: str, text: str, error: MessageError | None) -> str:
    fs, cs = d.field, d.component
    msa = fs.join(("MSA", code, acked_id, escape(text[:_MSA_TEXT_MAX], d))).rstrip(fs)
    if error is None:
        return msa + "\r"
    location = cs.join(
        (
            escape(error.segment or "", d),
            "" if error.segment_index is None else str(error.segment_index),
            "" if error.field is None else str(error.field),
        )
    ).rstrip(cs)
    condition = cs.join(
        (escape(error.code, d), escape(ERROR_TEXT.get(error.code, ""), d), "HL70357")
    )
    err = fs.join(("ERR", "", location, condition, "E", "", "", "", escape(error.describe(), d)))
    return f"{msa}\r{err}\r"


def _check_code(code: str) -> None:
    if code not in ACK_CODES:
        raise ValueError(f"acknowledgment code must be one of {sorted(ACK_CODES)}")


def build_ack(
    msg: Message,
    code: str,
    *,
    error: MessageError | None = None,
    text: str | None = None,
    control_id: str | None = None,
    timestamp: str | None = None,
) -> bytes:
    """The ACK for `msg`, encoded like `msg`, segments ended by CR.

    MSH uses `msg`'s delimiters, swaps sender and receiver (MSH-3/4 <-> 5/6),
    copies MSH-11, MSH-12 and MSH-18, sets MSH-9 `ACK^<trigger>^ACK`, MSH-7
    `timestamp` (default now) and MSH-10 `control_id` (default a fresh one).
    MSA-2 is `msg`'s MSH-10; MSA-3 is `text`, else the error description, cut to
    80 characters. With `error`, an ERR segment (v2.5 layout) gives its location
    (ERR-2), table 0357 condition (ERR-3), severity E (ERR-4) and description
    (ERR-8). ValueError when `code` is not AA, AE, AR, CA, CE or CR.
    """
    _check_code(code)
    d = msg.delimiters
    at = msg.header_field
    fs, cs = d.field, d.component
    fields = [
        "MSH",
        d.encoding_characters,
        at(5),
        at(6),
        at(3),
        at(4),
        escape(timestamp, d) if timestamp is not None else hl7_timestamp(),
        "",
        f"ACK{cs}{at(9, 2)}{cs}ACK",
        escape(control_id, d) if control_id is not None else new_control_id(),
        at(11),
        at(12),
    ]
    charset = at(18)
    if charset:
        fields += ["", "", "", "", "", charset]
    if text is None:
        text = "" if error is None else error.describe()
    tail = _tail(d, code, at(10), text, error)
    return f"{fs.join(fields)}\r{tail}".encode(msg.encoding, "replace")


def _salvage(raw: bytes) -> tuple[Delimiters, list[bytes]] | None:
    """MSH-1.. of the first line when it declares usable delimiters, as bytes,
    without framing bytes and cut to a sane length; else None."""
    data = raw.lstrip(WHITESPACE_BYTES)
    end = len(data)
    for sep in (b"\r", b"\n"):
        k = data.find(sep, 0, end)
        if k >= 0:
            end = k
    line = data[:end]
    if not line.startswith(b"MSH") or len(line) < 8:
        return None
    fs = line[3:4]
    enc = line[4:].split(fs, 1)[0]
    if not (fs + enc).isascii():
        return None
    try:
        delims = Delimiters.from_msh(fs.decode("ascii"), enc.decode("ascii"))
    except MessageError:
        return None
    fields = [b"MSH", fs, *line.split(fs)[1:]]
    return delims, [f.translate(None, b"\x00\x0b\x1c")[:_SALVAGE_MAX] for f in fields]


def build_ack_for_raw(raw: bytes, code: str, error: MessageError | None = None) -> bytes:
    """A best-effort ACK for bytes that did not parse, or whose own header cannot
    build one (`build_ack` failed). Never raises for any `raw` (ValueError only
    for an invalid `code`).

    When the first line is an MSH with usable delimiters its routing fields,
    trigger, control id (MSA-2), processing id, version and charset are copied
    byte for byte as in `build_ack` (without framing bytes and NULs, each cut
    to 199 bytes); otherwise the ACK uses `|^~\\&`, version 2.5, processing id
    P and an empty MSA-2. With `error`, an ERR segment says what is wrong.
    """
    _check_code(code)
    salvaged = _salvage(raw)
    fields: list[bytes] = []
    if salvaged is None:
        d = DEFAULT_DELIMITERS
    else:
        d, fields = salvaged

    def field(n: int) -> bytes:
        return fields[n] if n < len(fields) else b""

    fs, cs, rs = (c.encode("ascii") for c in (d.field, d.component, d.repetition))
    trigger = field(9).split(rs)[0].split(cs)[1:2]
    header = [
        b"MSH",
        d.encoding_characters.encode("ascii"),
        field(5),
        field(6),
        field(3),
        field(4),
        hl7_timestamp().encode("ascii"),
        b"",
        b"ACK" + cs + (trigger[0] if trigger else b"") + cs + b"ACK",
        new_control_id().encode("ascii"),
        field(11) or b"P",
        field(12) or b"2.5",
    ]
    if field(18):
        header += [b"", b"", b"", b"", b"", field(18)]
    acked_id = field(10).decode("latin-1")
    text = "" if error is None else error.describe()
    tail = _tail(d, code, acked_id, text, error).encode("latin-1", "replace")
    return fs.join(header) + b"\r" + tail


def ack_mode(msg: Message) -> Literal["original", "enhanced"]:
    """`enhanced` when MSH-15 or MSH-16 is valued, else `original`."""
    return "enhanced" if msg.accept_ack_type or msg.application_ack_type else "original"


def accept_ack_wanted(msg: Message, success: bool) -> bool:
    """Whether the sender asked for an (accept) ACK for this outcome.

    Original mode: always. Enhanced mode per MSH-15: AL always, NE never, ER
    only on failure, SU only on success; empty or unknown values mean always,
    so an ACK is never withheld by mistake.
    """
    wanted = msg.accept_ack_type
    if wanted == "NE":
        return False
    if wanted == "ER":
        return not success
    if wanted == "SU":
        return success
    return True


@dataclass(frozen=True, slots=True)
class AckInfo:
    """What an ACK says: MSA-1 `code`, MSA-2 `control_id` (the acknowledged
    message's MSH-10), MSA-3 `text` and `error_text` (first ERR: ERR-8, else
    ERR-3.2, else the v2.3 ERR-1.4.2; "" without ERR)."""

    code: str
    control_id: str
    text: str
    error_text: str

    @property
    def accepted(self) -> bool:
        """True for AA and CA."""
        return self.code in ("AA", "CA")


def parse_ack(raw: bytes) -> AckInfo:
    """Read an acknowledgment. MessageError when `raw` does not parse, has no
    MSA segment (code 100) or MSA-1 is not an acknowledgment code (code 103)."""
    msg = Message.parse(raw)
    msa = msg.segment("MSA")
    if msa is None:
        raise MessageError("acknowledgment has no MSA segment", segment="MSA", code="100")
    code = msa.get("1").strip()
    if code not in ACK_CODES:
        raise MessageError(
            "MSA-1 is not an acknowledgment code",
            segment="MSA",
            segment_index=msg.segment_index(msa),
            field=1,
            code="103",
        )
    err = msg.segment("ERR")
    error_text = ""
    if err is not None:
        error_text = err.get("8") or err.get("3.2") or err.get("1.4.2")
    return AckInfo(code, msa.get("2"), msa.get("3"), error_text)
