"""Reading received input: an HL7 v2 message or batch, or a FHIR JSON body.

Whatever the bytes, reading either returns what was read or raises a
`MessageError` that names where it failed (by the failure's type and place,
never by content), so ingress can answer with a NAK and keep the input as a
reject; `decode_fhir` never raises at all.
"""

from __future__ import annotations

import json
from typing import Any

from thumpflow.core.errors import MessageError
from thumpflow.flow.pipeline import describe_exception
from thumpflow.hl7v2 import (
    Batch,
    Message,
    ack_mode,
    parse_batch,
)


def read_message(raw: bytes) -> Message:
    """Parse and check one message, its character set and ACK mode resolved.

    Any failure to read it is a `MessageError` naming where; no other
    exception escapes, whatever the bytes (the reason names the failure's
    type and place, never content).
    """
    try:
        message = Message.parse(raw)
        message.validate_structure()
        _resolve_header(message)
    except MessageError:
        raise
    except Exception as err:
        raise _unreadable("message", err) from err
    return message


def _resolve_header(message: Message) -> None:
    """Resolve the character set (MSH-18) and ACK mode (MSH-15/16) now, so a header that
    cannot be read fails here, as a `MessageError`, and never while answering."""
    _ = (message.encoding, ack_mode(message))


def read_batch(raw: bytes) -> Batch:
    """`parse_batch` where any failure is a `MessageError` (see `read_message`)."""
    try:
        return parse_batch(raw)
    except MessageError:
        raise
    except Exception as err:
        raise _unreadable("batch", err) from err


def _unreadable(what: str, err: Exception) -> MessageError:
    return MessageError(f"{what} could not be read ({describe_exception(err)})", code="102")


def decode_fhir(raw: bytes) -> dict[str, Any] | None:
    """The JSON object of a FHIR body, or None when it is not a JSON object with resourceType.

    Never raises: bytes that are not UTF-8 JSON, and JSON nested too deeply to
    decode (`RecursionError`), are None like any other non-resource.
    """
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if isinstance(value, dict) and isinstance(value.get("resourceType"), str):
        return value
    return None
