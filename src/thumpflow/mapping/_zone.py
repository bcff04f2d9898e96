"""The sender's time zone, for HL7 times that state no offset.

HL7 v2 reads a time without an offset in "the local time zone of the
sender". A conversion takes it, in this order: the time's own offset; MSH-7's
offset (the sender's zone at the message's time); the IANA zone of the
channel the message came in on (`channels: - timezone:`), set around a
conversion by `using_timezone`, with each time's offset looked up for its own
date, so a result taken in January and one in July get their own daylight
saving offsets; else UTC (`Z`), as before a zone was configured.

A local time a daylight-saving change skips (02:30 on a spring-forward day)
takes the offset in force before the change, and one it repeats (01:30 on a
fall-back day) the first of its two offsets, as Python's `zoneinfo` reads a
wall time with `fold=0`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_ZONE: ContextVar[str] = ContextVar("thumpflow_conversion_zone", default="")


@lru_cache(maxsize=64)
def _zone_info(zone: str) -> ZoneInfo:
    return ZoneInfo(zone)


def checked_zone(zone: str) -> str:
    """`zone` when it names an IANA time zone; raises ValueError (naming it) otherwise."""
    try:
        _zone_info(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {zone!r} (an IANA name, e.g. America/New_York)"
        ) from None
    return zone


@contextmanager
def using_timezone(zone: str | None) -> Iterator[None]:
    """Conversions inside read a time without an offset, in a message whose MSH-7
    has none either, as local time in IANA zone `zone` (None or "UTC": as UTC,
    the default); restored after. Raises ValueError for an unknown zone."""
    name = "" if zone in (None, "UTC") else checked_zone(str(zone))
    token = _ZONE.set(name)
    try:
        yield
    finally:
        _ZONE.reset(token)


def default_zone() -> str:
    """The zone `using_timezone` set for this conversion ("" for UTC)."""
    return _ZONE.get()


def offset_at(zone: str, wall: datetime) -> str:
    """The FHIR offset (`+hh:mm`, `Z` for none) of naive wall time `wall` in `zone`
    (see above)."""
    offset = wall.replace(tzinfo=_zone_info(zone)).utcoffset()
    if not offset:
        return "Z"
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes > 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
