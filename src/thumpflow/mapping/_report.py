"""Conversion warnings: their text and a fixed code, and who is told of them.

Every warning `convert` gives is a `ConversionWarning`: a `str` (the text,
naming message type and segment, never a value) with a `code` that is one
of `WARNING_CODES`, fit for a metric label. Inside
`reporting_warnings(listener)`, `convert` calls `listener(code)` once for each
warning of each message it converts (the runtime counts them per channel);
the scope is a context variable, so other threads and tasks are not told.
A listener that raises makes the conversion raise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

NO_MESSAGE_MAP = "no_message_map"
MISSING_SEGMENT = "missing_segment"
NO_REFERENCE_TARGET = "no_reference_target"
WARNING_CODES = (NO_MESSAGE_MAP, MISSING_SEGMENT, NO_REFERENCE_TARGET)

WarningListener = Callable[[str], None]

_LISTENER: ContextVar[WarningListener | None] = ContextVar(
    "thumpflow_conversion_warning_listener", default=None
)


class ConversionWarning(str):
    """A warning's text (a `str`) with its `code` (one of `WARNING_CODES`)."""

    code: str

    def __new__(cls, text: str, code: str) -> ConversionWarning:
        made = super().__new__(cls, text)
        made.code = code
        return made


@contextmanager
def reporting_warnings(listener: WarningListener | None) -> Iterator[None]:
    """Conversions inside tell `listener` the code of each warning (None: nobody)."""
    token = _LISTENER.set(listener)
    try:
        yield
    finally:
        _LISTENER.reset(token)


def report(warnings: Iterable[str]) -> None:
    """Tell the listener in scope, if any, the code of each `ConversionWarning` of `warnings`."""
    listener = _LISTENER.get()
    if listener is not None:
        for warning in warnings:
            if isinstance(warning, ConversionWarning):
                listener(warning.code)
