"""Conversion warnings: their text and a fixed code, and who is told of them.

Every warning `convert` gives is a `ConversionWarning`: a `str` (the text,
naming message type and segment, never a value) with a `code` that is one
of `WARNING_CODES`, fit for a metric label. Inside
`reporting_warnings(listener)`, `convert` calls `listener(warning)` once for
each warning of each message it converts (the runtime counts them per channel
by code; a channel's pipeline keeps each message's for its audit trail).
Scopes nest: every listener of the enclosing scopes is told, innermost last.
The scope is a context variable, so other threads and tasks are not told.
A listener that raises makes the conversion raise.
`shown_event` is how warnings and errors name a message's event, and
`outcome_entry` the OperationOutcome a collection Bundle lists its warnings in.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from thumpflow.fhir import deterministic_id

NO_MESSAGE_MAP = "no_message_map"
MISSING_SEGMENT = "missing_segment"
NO_REFERENCE_TARGET = "no_reference_target"
NO_MESSAGE_TIME = "no_message_time"
CHARSET_FALLBACK = "charset_fallback"
GROUP_NOT_CONVERTED = "group_not_converted"
REPEATED_IDENTIFIER = "repeated_identifier"
SEGMENT_NOT_CONVERTED = "segment_not_converted"
WARNING_CODES = (
    NO_MESSAGE_MAP,
    MISSING_SEGMENT,
    NO_REFERENCE_TARGET,
    NO_MESSAGE_TIME,
    CHARSET_FALLBACK,
    GROUP_NOT_CONVERTED,
    REPEATED_IDENTIFIER,
    SEGMENT_NOT_CONVERTED,
)


_EVENT = re.compile(r"[A-Z0-9]{2,3}\^[A-Z0-9]{2,3}")


class ConversionWarning(str):
    """A warning's text (a `str`) with its `code` (one of `WARNING_CODES`)."""

    code: str

    def __new__(cls, text: str, code: str) -> ConversionWarning:
        made = super().__new__(cls, text)
        made.code = code
        return made


WarningListener = Callable[[ConversionWarning], None]

_LISTENERS: ContextVar[tuple[WarningListener, ...]] = ContextVar(
    "thumpflow_conversion_warning_listeners", default=()
)


@contextmanager
def reporting_warnings(listener: WarningListener | None) -> Iterator[None]:
    """Conversions inside tell `listener` each warning, besides the listeners of
    the scopes around this one (None: none more)."""
    if listener is None:
        yield
        return
    token = _LISTENERS.set((*_LISTENERS.get(), listener))
    try:
        yield
    finally:
        _LISTENERS.reset(token)


def report(warnings: Iterable[str]) -> None:
    """Tell every listener in scope each `ConversionWarning` of `warnings`."""
    listeners = _LISTENERS.get()
    if listeners:
        for warning in warnings:
            if isinstance(warning, ConversionWarning):
                for listener in listeners:
                    listener(warning)


def outcome_entry(warnings: list[str], sender: str, control_id: str) -> dict[str, Any]:
    """A Bundle entry of an OperationOutcome holding `warnings` (severity
    warning, code incomplete), for collection Bundles, whose entries are not
    written; its id is derived from the message's sender, control id and the
    warnings."""
    rid = deterministic_id("OperationOutcome", sender, control_id, *warnings)
    issues = [
        {"severity": "warning", "code": "incomplete", "diagnostics": str(text)} for text in warnings
    ]
    return {
        "fullUrl": f"urn:uuid:{rid}",
        "resource": {"resourceType": "OperationOutcome", "id": rid, "issue": issues},
    }


def shown_event(message_type: str, trigger_event: str) -> str:
    """`ADT^A01` for warnings and errors, or `(invalid)` when MSH-9 is not a message type
    and trigger event of 2-3 letters or digits each, so nothing else a sender put there
    reaches a reason, a NAK or the log."""
    event = f"{message_type}^{trigger_event}"
    return event if _EVENT.fullmatch(event) else "(invalid)"
