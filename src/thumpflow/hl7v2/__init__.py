"""HL7 v2 codec: lazy parsing, byte-exact re-serialisation, paths, escapes,
charsets, batch files and acknowledgments.

Pure: no I/O, no asyncio; imports only the standard library and
`thumpflow.core`. Every parse problem is a `thumpflow.core.errors.MessageError`
whose text names locations and structure, never field values.
"""

from thumpflow.hl7v2.ack import (
    AckInfo,
    accept_ack_wanted,
    ack_mode,
    build_ack,
    build_ack_for_raw,
    parse_ack,
)
from thumpflow.hl7v2.batch import Batch, MessageBatch, parse_batch, split_messages
from thumpflow.hl7v2.charset import codec_for
from thumpflow.hl7v2.delimiters import DEFAULT_DELIMITERS, Delimiters
from thumpflow.hl7v2.digest import content_digest
from thumpflow.hl7v2.escape import escape, unescape
from thumpflow.hl7v2.message import Message
from thumpflow.hl7v2.path import compile_path
from thumpflow.hl7v2.segment import Segment

__all__ = [
    "DEFAULT_DELIMITERS",
    "AckInfo",
    "Batch",
    "Delimiters",
    "Message",
    "MessageBatch",
    "Segment",
    "accept_ack_wanted",
    "ack_mode",
    "build_ack",
    "build_ack_for_raw",
    "codec_for",
    "compile_path",
    "content_digest",
    "escape",
    "parse_ack",
    "parse_batch",
    "split_messages",
    "unescape",
]
