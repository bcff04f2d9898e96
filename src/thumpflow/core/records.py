"""How a record is typed, keyed and hashed, shared by flow (the ledger) and thump (runs). Pure.

A batch run and a flow channel with a `ledger` must agree to the byte on a
record's business key and content hash, or the hybrid skip never matches:
both use `business_key` and `content_hash` from here, and both turn text into
typed values with the same `CONVERTERS` (a job's schema types), so a date is
`date(2026, 11, 20)` whether it was read as `2026-11-20` from a CSV or as
`20261120` from HL7 v2 (flow reformats HL7 dates and times to ISO 8601 text
first, then converts it here).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from json.encoder import encode_basestring
from typing import Any

INTEGER_TEXT = re.compile(r"^[+-]?\d+$")
DECIMAL_TEXT = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)$")
DATE_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DATETIME_TEXT = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:?\d{2})?$"
)
"""The texts the converters take (after `strip`); the compiled validators reuse them."""
_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})


class InvalidValueError(Exception):
    """A value that does not fit its type; `rule` names the check, `expected` what would fit.

    Neither quotes the value, so both are safe to log.
    """

    def __init__(self, rule: str, expected: str) -> None:
        self.rule = rule
        self.expected = expected


def is_missing(value: Any) -> bool:
    """None or blank text: a field that is not valued."""
    return value is None or (isinstance(value, str) and not value.strip())


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise InvalidValueError("type", "text")


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        raise InvalidValueError("type", "an integer (digits, optional sign)")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and INTEGER_TEXT.match(value.strip()):
        return int(value.strip())
    raise InvalidValueError("type", "an integer (digits, optional sign)")


def _decimal(value: Any) -> Decimal:
    expected = "a decimal number like 12.50"
    if isinstance(value, bool):
        raise InvalidValueError("type", expected)
    if isinstance(value, Decimal) and value.is_finite():
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float) and math.isfinite(value):
        return Decimal(repr(value))
    if isinstance(value, str) and DECIMAL_TEXT.match(value.strip()):
        try:
            return Decimal(value.strip())
        except InvalidOperation:
            raise InvalidValueError("type", expected) from None
    raise InvalidValueError("type", expected)


def _date(value: Any) -> date:
    expected = "a date YYYY-MM-DD"
    if isinstance(value, datetime):
        raise InvalidValueError("type", expected)
    if isinstance(value, date):
        return value
    if isinstance(value, str) and DATE_TEXT.match(value.strip()):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            raise InvalidValueError("type", expected + " (a real calendar date)") from None
    raise InvalidValueError("type", expected)


def _datetime(value: Any) -> datetime:
    expected = "a date-time YYYY-MM-DDThh:mm[:ss][Z|±hh:mm]"
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and DATETIME_TEXT.match(value.strip()):
        text = value.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            raise InvalidValueError("type", expected + " (a real date and time)") from None
    raise InvalidValueError("type", expected)


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    raise InvalidValueError("type", "a boolean (true/false, yes/no, 1/0)")


CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "string": _text,
    "code": _text,
    "integer": _integer,
    "decimal": _decimal,
    "date": _date,
    "datetime": _datetime,
    "boolean": _boolean,
}
"""Field type name -> a function from a present value to its typed value (raises
`InvalidValueError`). Keys are the types a job's `schema` may declare."""


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"a value of type {type(value).__name__} has no canonical JSON form")


_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_canonical
).encode


def canonical_json(data: Mapping[str, Any]) -> bytes:
    """Keys sorted, no whitespace, UTF-8; dates ISO 8601, decimals as text."""
    return _CANONICAL(data).encode("utf-8")


def content_hash(data: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of a record: equal content, equal hash."""
    return hashlib.sha256(canonical_json(data)).hexdigest()


def _canonical_value(value: Any) -> str:
    """One value as `canonical_json` writes it inside an object."""
    if value is None:
        return "null"
    kind = value.__class__
    if kind is date or kind is datetime:
        return encode_basestring(value.isoformat())
    if kind is Decimal:
        return encode_basestring(str(value))
    return _CANONICAL(value)


def content_hasher(fields: Sequence[str]) -> Callable[[Mapping[str, Any]], str]:
    """`content_hash`, specialised for records whose keys are exactly `fields` (in any order).

    The same function, only faster: the object's text is assembled from the
    keys' encoded forms (sorted once, here) and each value's JSON, exactly as
    `canonical_json` writes it; a record with other keys goes to
    `content_hash` itself. Generated once (names emitted with `repr`).
    """
    names = sorted(set(fields))
    if not names or any(not isinstance(name, str) for name in names):
        return content_hash
    # Each name present and as many keys as names: the keys are exactly the names. (A plain
    # dict only: a mapping that invents missing keys would otherwise seem to hold them.)
    lines = [
        "def hasher(data):",
        f"    if data.__class__ is not dict or len(data) != {len(names)}:",
        "        return _content_hash(data)",
        "    try:",
    ]
    lines += [f"        v{n} = data[{name!r}]" for n, name in enumerate(names)]
    lines += ["    except KeyError:", "        return _content_hash(data)"]
    parts = [] if names else [repr("{")]  # no field: "{}"
    for n, name in enumerate(names):
        parts.append(repr(("{" if n == 0 else ",") + encode_basestring(name) + ":"))
        parts.append(f"(_text(v{n}) if v{n}.__class__ is str else _value(v{n}))")
    lines.append("    text = ''.join((" + ", ".join(parts) + ", '}'))")
    lines.append("    return _sha256(text.encode('utf-8')).hexdigest()")
    namespace: dict[str, Any] = {
        "_content_hash": content_hash,
        "_text": encode_basestring,
        "_value": _canonical_value,
        "_sha256": hashlib.sha256,
    }
    code = compile("\n".join(lines) + "\n", "<thumpflow.core.records: hasher>", "exec")
    exec(code, namespace)
    hasher: Callable[[Mapping[str, Any]], str] = namespace["hasher"]
    return hasher


def _key_part(value: Any) -> str:
    if value.__class__ is str and "|" not in value and "\\" not in value:
        return value
    text = value.isoformat() if isinstance(value, datetime | date) else str(value)
    return text.replace("\\", "\\\\").replace("|", "\\|")


def business_key(record: Mapping[str, Any], fields: Sequence[str]) -> str:
    """The values of the key fields joined by `|` (a `|` or `\\` in a value is escaped)."""
    if len(fields) == 1:
        return _key_part(record[fields[0]])
    return "|".join([_key_part(record[name]) for name in fields])


VERSION_TYPES = frozenset({"integer", "date", "datetime"})
_EPOCH = datetime(1970, 1, 1)


def version_number(value: Any) -> int | None:
    """A typed version value (of a `VERSION_TYPES` field) as a comparable integer; None if absent.

    integer: itself; date: days since 0001-01-01 (`toordinal`); datetime:
    microseconds since 1970-01-01T00:00:00 UTC, a value without an offset
    read as UTC (so both sides of a comparison must agree on whether they
    give offsets, as they must for the content hash anyway).
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError("a boolean is not a version")
    if isinstance(value, int):
        return value
    if isinstance(value, datetime):
        naive = value if value.tzinfo is None else value.astimezone(UTC).replace(tzinfo=None)
        delta = naive - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    if isinstance(value, date):
        return value.toordinal()
    raise TypeError(f"a {type(value).__name__} is not a version")
