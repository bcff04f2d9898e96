"""The content digest of a message: what tells a resend from a reused control id.

Two copies of one message sent at different times must digest the same, and
two different messages must not. The digest therefore covers every segment's
bytes except MSH-7 (date/time of message, which a resend may restamp), with
segment separators normalised (CR, LF and CRLF alike; blank lines and the
framing and whitespace around the message ignored). Pure; never raises.
"""

from __future__ import annotations

import hashlib
import re

from thumpflow.hl7v2.segment import WHITESPACE_BYTES

_SEGMENT_END = re.compile(rb"[\r\n]+")
_MSH_TIME = 6  # index of MSH-7 in the MSH line split on its field separator


def content_digest(raw: bytes) -> str:
    """Hex SHA-256 (first 128 bits) of `raw` without MSH-7; see the module docstring."""
    segments = _SEGMENT_END.split(raw.strip(WHITESPACE_BYTES))
    header = segments[0]
    if header.startswith(b"MSH") and len(header) > 3:
        fields = header.split(header[3:4])
        if len(fields) > _MSH_TIME:
            fields[_MSH_TIME] = b""
            segments[0] = header[3:4].join(fields)
    digest = hashlib.sha256()
    for segment in segments:
        digest.update(segment)
        digest.update(b"\r")
    return digest.hexdigest()[:32]
