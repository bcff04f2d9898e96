"""Checks of FHIR R4 primitive values as they appear in JSON.

Each check takes a decoded JSON value and returns True when it is a valid
value of the primitive type. String-valued types are matched against the R4
regular expressions (read from the definitions; compiled with ASCII
semantics, so `\\s` means the whitespace of the Java regexes the spec was
written for), and every string must be non-empty (FHIR JSON has no empty
primitive). Beyond the R4 regexes:

- `date`, `dateTime` and `instant` must name a real calendar day (the regex
  accepts `2023-02-30`);
- `base64Binary` must be canonical base64 once whitespace is removed: padding
  only at the end (the R4 regex accepts `=` anywhere);
- `xhtml` must be a string starting with `<div` (its XHTML content is not parsed);
- `integer` is a JSON integer in the signed 32-bit range, `positiveInt` >= 1,
  `unsignedInt` >= 0; `decimal` is a finite JSON number (or a `FhirDecimal` whose text is
  the decimal's lexical form); `boolean` a JSON boolean.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import date
from typing import Any

from thumpflow.fhir._decimal import FhirDecimal

Check = Callable[[Any], bool]

_INT_MIN = -(2**31)
_INT_MAX = 2**31 - 1
_BASE64 = re.compile(r"[A-Za-z0-9+/]*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


def _real_day(value: str) -> bool:
    if len(value) < 10 or value[8:10] <= "28":
        return True
    try:
        date(int(value[0:4]), int(value[5:7]), int(value[8:10]))
    except ValueError:
        return False
    return True


def _boolean(value: Any) -> bool:
    return type(value) is bool


def _integer(value: Any) -> bool:
    return type(value) is int and _INT_MIN <= value <= _INT_MAX


def _positive_int(value: Any) -> bool:
    return type(value) is int and 1 <= value <= _INT_MAX


def _unsigned_int(value: Any) -> bool:
    return type(value) is int and 0 <= value <= _INT_MAX


# R4's decimal regex: the lexical form a `FhirDecimal`'s text must have.
_DECIMAL_TEXT = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?", re.ASCII)


def _decimal(value: Any) -> bool:
    kind = type(value)
    if kind is FhirDecimal:
        return _DECIMAL_TEXT.fullmatch(value.text) is not None
    return kind is int or (kind is float and math.isfinite(value))


def _base64(value: Any) -> bool:
    if type(value) is not str or not value:
        return False
    compact = "".join(value.split())
    return len(compact) % 4 == 0 and _BASE64.fullmatch(compact) is not None


def _xhtml(value: Any) -> bool:
    return type(value) is str and value.lstrip().startswith("<div")


class Primitive:
    """How to check values of one primitive type.

    `check(value)` is the whole check. `pattern`, when set, is a compiled
    regex whose fullmatch on a `str` is by itself the whole check (non-empty
    included), which lets the validator's hot loop skip a Python call.
    """

    __slots__ = ("check", "pattern")

    def __init__(self, check: Check, pattern: re.Pattern[str] | None) -> None:
        self.check = check
        self.pattern = pattern


def _lexical(regex: str) -> re.Pattern[str]:
    if regex == r"\S*":
        regex = r"\S+"
    compiled = re.compile(regex, re.ASCII)
    if compiled.fullmatch("") is not None:
        compiled = re.compile(rf"(?=[\s\S])(?:{regex})", re.ASCII)
    return compiled


def _with_pattern(pattern: re.Pattern[str]) -> Primitive:
    fullmatch = pattern.fullmatch

    def check(value: Any) -> bool:
        return type(value) is str and fullmatch(value) is not None

    return Primitive(check, pattern)


def _calendar(pattern: re.Pattern[str]) -> Primitive:
    fullmatch = pattern.fullmatch

    def check(value: Any) -> bool:
        return type(value) is str and fullmatch(value) is not None and _real_day(value)

    return Primitive(check, None)


_JAVA_STRING = r"[ \r\n\t\S]+"
_CALENDAR = ("date", "dateTime", "instant")
_SPECIAL: dict[str, Check] = {
    "boolean": _boolean,
    "integer": _integer,
    "positiveInt": _positive_int,
    "unsignedInt": _unsigned_int,
    "decimal": _decimal,
    "base64Binary": _base64,
    "xhtml": _xhtml,
}


def primitive_rule(name: str, spec: dict[str, Any]) -> Primitive:
    """The rule for primitive type `name`, given its entry in the definitions."""
    special = _SPECIAL.get(name)
    if special is not None:
        return Primitive(special, None)
    regex = spec.get("regex", r"[\s\S]+")
    if regex == _JAVA_STRING:
        # Under Java's (and re.ASCII's) \S this class excludes only \f and \v.
        bound = spec.get("maxLength")
        regex = r"[^\x0b\x0c]" + (f"{{1,{bound}}}" if bound else "+")
    if name in _CALENDAR:
        return _calendar(_lexical(regex))
    return _with_pattern(_lexical(regex))


def describe_json(value: Any) -> str:
    """The JSON kind of a decoded value, for messages that must not show the value."""
    if value is None:
        return "null"
    if type(value) is bool:
        return "a boolean"
    if isinstance(value, int | float | FhirDecimal):
        return "a number"
    if isinstance(value, str):
        return "an empty string" if value == "" else "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
