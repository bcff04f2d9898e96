"""The text of an operating system error, for a delivery's reason. Pure."""

from __future__ import annotations

__all__ = ["os_error_text"]


def os_error_text(exc: OSError) -> str:
    """The error's message (`strerror`), else its class name; never a traceback or record data."""
    return exc.strerror or type(exc).__name__
