"""Primitive value conversions from HL7 v2 text to FHIR R4 primitives.

Every converter takes unescaped text and returns the FHIR JSON value, or None
when the text is not a valid instance of the source type (the caller then
omits the element: invalid input never produces an invalid FHIR primitive).
Decimals with a fraction are `FhirDecimal` values, so the sender's precision
survives to the JSON (`1.50` stays `1.50`).
"""

from __future__ import annotations

import base64
import binascii
import html
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from thumpflow.fhir import FhirDecimal
from thumpflow.mapping._naming import naming_system, uri, url
from thumpflow.mapping._zone import offset_at

_DTM = re.compile(
    r"(\d{4})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:\.(\d{1,4}))?)?)?)?)?)?"
    r"\s*(?:([+-])(\d{2}):?(\d{2}))?"
)
_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_INT = re.compile(r"[+-]?\d+")
_B64 = re.compile(r"[A-Za-z0-9+/=\s]+")
_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def timezone_of(text: str) -> str:
    """The FHIR offset (`+hh:mm`) of an HL7 DTM, or "" when it carries none or is not
    a valid DTM (an offset past 14 hours, a month 13 ...)."""
    m = _parts(text)
    if m is None or m.group(8) is None:
        return ""
    return f"{m.group(8)}{m.group(9)}:{m.group(10)}"


# `_parts` results by text: a message repeats its timestamps (MSH-7, EVN-2,
# PV1-44, OBX-14 ...), and senders their dates; a pure function, so memoised
# (bounded: cleared when full).
_PARSED: dict[str, re.Match[str] | None] = {}
_PARSED_MAX = 4096


def _parts(text: str) -> re.Match[str] | None:
    """The DTM's regex match when `text` is a valid DTM (ranges checked), else None."""
    try:
        return _PARSED[text]
    except KeyError:
        pass
    m = _checked_dtm(text)
    if len(_PARSED) >= _PARSED_MAX:
        _PARSED.clear()
    _PARSED[text] = m
    return m


def _checked_dtm(text: str) -> re.Match[str] | None:
    m = _DTM.fullmatch(text.strip())
    if m is None:
        return None
    year, month, day, hour, minute, second, _, sign, tzh, tzm = m.groups()
    if year == "0000":  # no year 0 in FHIR's date types (or the calendar)
        return None
    if month is not None and not 1 <= int(month) <= 12:
        return None
    if day is not None and not 1 <= int(day) <= _DAYS[int(month) - 1]:
        return None
    if day == "29" and month == "02" and not _leap(int(year)):
        return None
    if hour is not None and int(hour) > 23:
        return None
    if minute is not None and int(minute) > 59:
        return None
    if second is not None and int(second) > 59:
        return None
    if sign is not None and (int(tzh) * 60 + int(tzm) > 14 * 60 or int(tzm) > 59):
        return None  # FHIR's offsets run from -14:00 to +14:00
    return m


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def date(text: str, default_tz: str = "") -> str | None:
    """DT/DTM → FHIR `date` (precision kept down to the day, time dropped)."""
    m = _parts(text)
    if m is None:
        return None
    year, month, day = m.group(1), m.group(2), m.group(3)
    if month is None:
        return year
    if day is None:
        return f"{year}-{month}"
    return f"{year}-{month}-{day}"


# `date_time` results by text and default zone: a message repeats its
# timestamps (MSH-7, EVN-2, PV1-44, the OBX-14 of every result of a panel); a
# pure function of its arguments, so memoised (bounded).
@lru_cache(maxsize=4096)
def date_time(text: str, default_tz: str = "") -> str | None:
    """DTM/TS → FHIR `dateTime`.

    Precision is kept (year, month, day); a value with a time gets seconds
    (minutes and seconds default to 00, as FHIR requires them) and a timezone:
    its own offset, else `default_tz`: the offset of MSH-7, which HL7 v2
    defines as the sender's zone, or an IANA zone name (the channel's, see
    `_zone`) whose offset on that date is taken; else UTC (`Z`).
    """
    m = _parts(text)
    if m is None:
        return None
    year, month, day, hour, minute, second, frac, sign, tzh, tzm = m.groups()
    if hour is None:
        return date(text)
    if sign:
        tz = f"{sign}{tzh}:{tzm}"
    elif not default_tz:
        tz = "Z"
    elif default_tz[0] in "+-":
        tz = default_tz
    else:
        wall = datetime(int(year), int(month), int(day), int(hour), int(minute or 0))
        tz = offset_at(default_tz, wall)
    if tz in ("+00:00", "-00:00"):
        tz = "Z"
    out = f"{year}-{month}-{day}T{hour}:{minute or '00'}:{second or '00'}"
    if frac:
        out += "." + frac
    return out + tz


def instant(text: str, default_tz: str = "") -> str | None:
    """DTM/TS → FHIR `instant`: as `date_time`, but only when precise to the day;
    a missing time reads as midnight."""
    m = _parts(text)
    if m is None or m.group(3) is None:
        return None
    if m.group(4) is None:
        return date_time(text.strip()[:8] + "000000", default_tz)
    return date_time(text, default_tz)


def date_time_timed(text: str, default_tz: str = "") -> str | None:
    """DTM → FHIR `dateTime` only when it has a time of day (PID-7's birth
    time extension, which the IG writes when PID-7 is longer than a date).
    With a time it is also a FHIR `instant` (seconds and a zone always
    written): `instant_timed`, the IG's TXA-6 "if time is included", where a
    date alone is no midnight instant."""
    m = _parts(text)
    if m is None or m.group(4) is None:
        return None
    return date_time(text, default_tz)


def date_time_minutes(text: str, default_tz: str = "") -> str | None:
    """DTM → FHIR `dateTime` only when precise to the minute (a start to which
    minutes can be added: the IG's PR1-5 "IF PR1-5.5 VALUED")."""
    m = _parts(text)
    if m is None or m.group(5) is None:
        return None
    return date_time(text, default_tz)


_TM = re.compile(r"(\d{2})(?:(\d{2})(?:(\d{2})(?:\.(\d{1,4}))?)?)?\s*(?:[+-]\d{4})?")


def time(text: str, default_tz: str = "") -> str | None:
    """TM → FHIR `time` (hh:mm:ss[.f]); the offset is dropped (FHIR's time has none)."""
    m = _TM.fullmatch(text.strip())
    if m is None:
        return None
    hour, minute, second, frac = m.groups()
    if int(hour) > 23 or int(minute or 0) > 59 or int(second or 0) > 59:
        return None
    out = f"{hour}:{minute or '00'}:{second or '00'}"
    return out + "." + frac if frac else out


def string(text: str, default_tz: str = "") -> str | None:
    """ST/TX/FT/ID → FHIR `string`; surrounding whitespace trimmed, empty → None."""
    text = text.strip()
    return text or None


def code(text: str, default_tz: str = "") -> str | None:
    """ID/IS → FHIR `code` (no leading/trailing or doubled whitespace)."""
    text = " ".join(text.split())
    return text or None


def decimal(text: str, default_tz: str = "") -> int | FhirDecimal | None:
    """NM → FHIR `decimal`: an int when the source has no fraction, else a
    `FhirDecimal` with the source's digits (a leading `+` and redundant
    leading zeros dropped, `.5` written `0.5`); None when not a number, or
    when its magnitude is past what a JSON reader holds as a double (about
    1.8e308: a reader would see infinity, which is no FHIR decimal)."""
    text = text.strip()
    whole, dot, fraction = text.partition(".")
    # ASCII digits with or without a fraction (most values) need no regex to tell.
    plain = text.isascii() and whole.isdigit() and (not dot or fraction.isdigit())
    if not (plain or _DECIMAL.fullmatch(text)):
        return None
    if len(text) > 300 and not math.isfinite(float(text)):
        return None
    if not fraction:
        return int(whole)
    sign = "-" if whole.startswith("-") else ""
    digits = whole.lstrip("+-").lstrip("0") or "0"
    return FhirDecimal(f"{sign}{digits}{dot}{fraction}")


def decimal_positive(text: str, default_tz: str = "") -> int | FhirDecimal | None:
    """NM → FHIR `decimal`, only when above zero (the IG's
    NM[Quantity-LengthOfStay]: "If positive"); else None."""
    value = decimal(text)
    return value if value is not None and float(value) > 0 else None


def decimal_credit(text: str, default_tz: str = "") -> int | FhirDecimal | None:
    """NM → FHIR `decimal` below zero: the quantity a credit takes back
    (DFT FT1-6 `CD`), negative whether or not the sender wrote the sign."""
    value = decimal(text)
    if value is None or float(value) == 0:
        return value
    if isinstance(value, int):
        return -abs(value)
    return FhirDecimal("-" + value.text.lstrip("-"))


def integer(text: str, default_tz: str = "") -> int | None:
    """NM/SI → FHIR `integer` (None outside FHIR's 32-bit range)."""
    text = text.strip()
    if _INT.fullmatch(text) is None:
        return None
    value = int(text)
    return value if -2147483648 <= value <= 2147483647 else None


def unsigned_int(text: str, default_tz: str = "") -> int | None:
    """NM → FHIR `unsignedInt` (None unless ≥ 0)."""
    value = integer(text)
    return value if value is not None and value >= 0 else None


def positive_int(text: str, default_tz: str = "") -> int | None:
    """NM → FHIR `positiveInt` (None unless ≥ 1)."""
    value = integer(text)
    return value if value is not None and value >= 1 else None


def boolean(text: str, default_tz: str = "") -> bool | None:
    """ID (HL7 table 0136 Y/N) → FHIR `boolean`."""
    text = text.strip().upper()
    if text in ("Y", "YES", "TRUE", "1"):
        return True
    if text in ("N", "NO", "FALSE", "0"):
        return False
    return None


def base64_data(text: str, default_tz: str = "") -> str | None:
    """Base64 text from an ED/RP → FHIR `base64Binary` (whitespace removed,
    None unless it decodes)."""
    data = "".join(text.split())
    if not data or not _B64.fullmatch(data):
        return None
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None
    return data


def text_as_base64(text: str, default_tz: str = "") -> str | None:
    """Plain text (an ED not in Base64) → FHIR `base64Binary` of its UTF-8 bytes."""
    return base64.b64encode(text.encode("utf-8")).decode("ascii") if text else None


def narrative(text: str, default_tz: str = "") -> str | None:
    """Plain text → FHIR `xhtml`: one XHTML `div` holding the text, escaped, so
    no markup in a message reaches a narrative (IG PV2-12 → Encounter.text.div);
    the two code points XML 1.0 refuses beyond the controls (dropped before) go."""
    text = text.replace("\ufffe", "").replace("\uffff", "").strip()
    if not text:
        return None
    return f'<div xmlns="http://www.w3.org/1999/xhtml">{html.escape(text, quote=False)}</div>'


def lower(text: str, default_tz: str = "") -> str | None:
    """Text → lower-case `code`."""
    value = code(text)
    return value.lower() if value else None


_SLACK = timedelta(hours=14)  # a time without a zone may be in any of them


def _bounds(fhir: str) -> tuple[datetime, datetime]:
    """The earliest and latest UTC instants (naive) a FHIR dateTime can mean: a
    time with its zone is one instant; a year, month or day spans its period,
    widened by 14 hours each side, as it names no zone."""
    if "T" in fhir:
        moment = datetime.fromisoformat(fhir.replace("Z", "+00:00"))
        instant = moment.astimezone(UTC).replace(tzinfo=None)
        return instant, instant
    year, month, day = (int(p) for p in (fhir + "-0-0").split("-")[:3])
    first = datetime(year, month or 1, day or 1)
    if day:
        last = first + timedelta(days=1)
    elif month:
        last = datetime(year + month // 12, month % 12 + 1, 1)
    else:
        last = datetime(year + 1, 1, 1)
    return first - _SLACK, last + _SLACK


def date_time_end(text: str, default_tz: str = "") -> str | None:
    """`start DTM|end DTM` → the end as FHIR `dateTime`, None when it is invalid
    or certainly before the start (FHIR per-1: a Period's start is not after
    its end; which of the two is wrong cannot be told, so the start, the time
    something began, is kept)."""
    start_text, _, end_text = text.partition("|")
    end = date_time(end_text, default_tz)
    start = date_time(start_text, default_tz)
    if end is None or start is None:
        return end
    if "T" not in start and "T" not in end:
        # Dates compare at their common precision (ISO text sorts as time does).
        common = min(len(start), len(end))
        return None if end[:common] < start[:common] else end
    return None if _bounds(end)[1] < _bounds(start)[0] else end


# Pairs: `first|second` (a template) → one of the two, so that what FHIR
# requires of them together holds (each pair converter named for its half).


def _instants(text: str, default_tz: str) -> tuple[str, str] | None:
    first, _, second = text.partition("|")
    start, end = instant(first, default_tz), instant(second, default_tz)
    return None if start is None or end is None else (start, end)


def instant_start(text: str, default_tz: str = "") -> str | None:
    """The first of two instants, only when both convert (FHIR app-2: an
    Appointment has both start and end, or neither)."""
    both = _instants(text, default_tz)
    return None if both is None else both[0]


def instant_end(text: str, default_tz: str = "") -> str | None:
    """The second of two instants, only when both convert (see `instant_start`)."""
    both = _instants(text, default_tz)
    return None if both is None else both[1]


def _decimals(text: str) -> tuple[int | FhirDecimal | None, int | FhirDecimal | None]:
    first, _, second = text.partition("|")
    return decimal(first), decimal(second)


def decimal_numerator(text: str, default_tz: str = "") -> int | FhirDecimal | None:
    """The first of two decimals, only when both convert (FHIR rat-1: a Ratio
    has numerator and denominator, or neither)."""
    first, second = _decimals(text)
    return first if second is not None else None


def decimal_denominator(text: str, default_tz: str = "") -> int | FhirDecimal | None:
    """The second of two decimals, only when both convert (see `decimal_numerator`)."""
    first, second = _decimals(text)
    return second if first is not None else None


# v2 "per (time unit)" (RXA-12, as RXO-17 and RXE-22): S, M, H, D, W or L
# and a count of seconds, minutes, hours, days, weeks or months -> UCUM.
_PER_TIME = {"S": "s", "M": "min", "H": "h", "D": "d", "W": "wk", "L": "mo"}


def _per_time(text: str) -> tuple[int, str] | None:
    text = text.strip()
    unit, count = _PER_TIME.get(text[:1]), text[1:]
    readable = count.isascii() and count.isdigit() and len(count) <= 9
    if unit is None or not readable or not int(count):
        return None
    return int(count), unit


def per_time_unit(text: str, default_tz: str = "") -> str | None:
    """The UCUM time unit of a v2 per-time-unit (`H1` -> `h`), None when unreadable."""
    both = _per_time(text)
    return None if both is None else both[1]


def rate_numerator(text: str, default_tz: str = "") -> int | FhirDecimal | None:
    """`amount|per time unit` -> the amount, only when the time unit reads
    too (FHIR rat-1: a rate Ratio has numerator and denominator, or neither)."""
    first, _, second = text.partition("|")
    return decimal(first) if _per_time(second) else None


def rate_denominator(text: str, default_tz: str = "") -> int | None:
    """`amount|per time unit` -> the time unit's count (`H1` -> 1), only when
    the amount reads too (see `rate_numerator`)."""
    first, _, second = text.partition("|")
    both = _per_time(second)
    return None if both is None or decimal(first) is None else both[0]


def _inverted(first: int | FhirDecimal | None, second: int | FhirDecimal | None) -> bool:
    return first is not None and second is not None and float(first) > float(second)


def decimal_low(text: str, default_tz: str = "") -> int | FhirDecimal | None:
    """A Range's low, None when it is above the high (FHIR rng-2): a range
    written the wrong way round says nothing certain, so neither is kept."""
    first, second = _decimals(text)
    return None if _inverted(first, second) else first


def decimal_high(text: str, default_tz: str = "") -> int | FhirDecimal | None:
    """A Range's high, None when the low is above it (see `decimal_low`)."""
    first, second = _decimals(text)
    return None if _inverted(first, second) else second


def date_time_plus(text: str, default_tz: str = "") -> str | None:
    """`DTM|minutes[|unit]` → FHIR `dateTime` that many minutes (or hours, when
    the unit is H/HR/HOUR) after the DTM; None when either is invalid."""
    stamp, _, rest = text.partition("|")
    amount, _, unit = rest.partition("|")
    start = date_time(stamp, default_tz)
    minutes = integer(amount)
    if start is None or minutes is None or "T" not in start:
        return None
    if unit.strip().upper() in ("H", "HR", "HRS", "HOUR", "HOURS"):
        minutes *= 60
    elif unit.strip().upper() not in ("", "M", "MIN", "MINS", "MINUTE", "MINUTES"):
        return None
    moment = datetime.fromisoformat(start.replace("Z", "+00:00")) + timedelta(minutes=minutes)
    out = moment.isoformat()
    return out[:-6] + "Z" if out.endswith("+00:00") else out


Converter = Callable[[str, str], Any]

PRIMITIVES: dict[str, Converter] = {
    "string": string,
    "code": code,
    "uri": uri,
    "url": url,
    "id": code,
    "lower": lower,
    "xhtml": narrative,
    "text": code,
    "decimal": decimal,
    "decimal_positive": decimal_positive,
    "decimal_credit": decimal_credit,
    "integer": integer,
    "positiveInt": positive_int,
    "unsignedInt": unsigned_int,
    "boolean": boolean,
    "date": date,
    "dateTime": date_time,
    "dateTime_timed": date_time_timed,
    "dateTime_minutes": date_time_minutes,
    "instant": instant,
    "instant_timed": date_time_timed,
    "time": time,
    "base64": base64_data,
    "text_base64": text_as_base64,
    "dateTime_plus": date_time_plus,
    "dateTime_end": date_time_end,
    "instant_start": instant_start,
    "instant_end": instant_end,
    "decimal_numerator": decimal_numerator,
    "decimal_denominator": decimal_denominator,
    "rate_numerator": rate_numerator,
    "rate_denominator": rate_denominator,
    "per_time_unit": per_time_unit,
    "decimal_low": decimal_low,
    "decimal_high": decimal_high,
    "naming_system": naming_system,
}
