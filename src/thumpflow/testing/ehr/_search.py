"""Search parameters understood by the simulated EHR, and how they match.

Supported: `_id`, `identifier` (`system|value`, `value`, `|value` for no
system, `system|` for any value in a system; commas OR, repeated parameters
AND), `_lastUpdated` (prefixes `eq` (default), `ne`, `gt`, `lt`, `ge`,
`le`; precision from year to fractions of a second, implicit ranges as FHIR
defines them; a value without a zone is UTC), `_count` (page size, default
100, at most 1000; `0` gives only the total), `_offset` (paging, used by the
`next` links), `_sort` (`_lastUpdated`, `-_lastUpdated`, `_id`) and
`_format` (JSON only). Any other parameter, or a modifier, is answered 400:
silently ignoring an unknown criterion would make a conditional write match
resources it should not.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from thumpflow.testing.ehr._outcome import FhirError
from thumpflow.testing.ehr._store import Version

DEFAULT_COUNT = 100
MAX_COUNT = 1000

_DATE = re.compile(
    r"^(?P<prefix>[a-z]{2})?"
    r"(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.(?P<fraction>\d+))?)?"
    r"(?P<zone>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)
_PREFIXES = frozenset({"eq", "ne", "gt", "lt", "ge", "le"})
_FORMATS = frozenset({"json", "application/json", "application/fhir+json"})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class IdentifierToken:
    """One `identifier` token: None means "any"; an empty system means "no system"."""

    system: str | None
    value: str | None

    def matches(self, identifier: Any) -> bool:
        if not isinstance(identifier, dict):
            return False
        if self.value is not None and identifier.get("value") != self.value:
            return False
        if self.system is None:
            return True
        if self.system == "":
            return "system" not in identifier
        return bool(identifier.get("system") == self.system)


@dataclass(frozen=True, slots=True)
class DateCriterion:
    prefix: str
    start_us: int
    end_us: int

    def matches(self, micros: int) -> bool:
        if self.prefix == "eq":
            return self.start_us <= micros < self.end_us
        if self.prefix == "ne":
            return not self.start_us <= micros < self.end_us
        if self.prefix == "gt":
            return micros >= self.end_us
        if self.prefix == "ge":
            return micros >= self.start_us
        if self.prefix == "lt":
            return micros < self.start_us
        return micros < self.end_us


@dataclass(slots=True)
class Search:
    """Parsed criteria: every criterion must match (AND); inside one, any token (OR)."""

    ids: list[frozenset[str]] = field(default_factory=list)
    identifiers: list[list[IdentifierToken]] = field(default_factory=list)
    last_updated: list[DateCriterion] = field(default_factory=list)
    count: int = DEFAULT_COUNT
    offset: int = 0
    sort: str = "_lastUpdated"

    @property
    def has_criteria(self) -> bool:
        return bool(self.ids or self.identifiers or self.last_updated)

    def matches(self, version: Version) -> bool:
        resource = version.resource
        if resource is None:
            return False
        if any(version.id not in ids for ids in self.ids):
            return False
        if self.identifiers:
            identifiers = resource.get("identifier")
            if isinstance(identifiers, dict):
                identifiers = [identifiers]
            if not isinstance(identifiers, list):
                return False
            for tokens in self.identifiers:
                if not any(t.matches(i) for t in tokens for i in identifiers):
                    return False
        return all(c.matches(version.last_updated_us) for c in self.last_updated)

    def select(self, candidates: Iterable[Version]) -> list[Version]:
        """Every matching version, in the requested order (paging not applied)."""
        found = [v for v in candidates if self.matches(v)]
        if self.sort == "_id":
            found.sort(key=lambda v: v.id)
        else:
            found.sort(key=lambda v: (v.last_updated_us, v.id), reverse=self.sort.startswith("-"))
        return found


def parse_search(pairs: Iterable[tuple[str, str]]) -> Search:
    """Parse query parameters; raises FhirError(400) on anything unsupported or malformed."""
    search = Search()
    for name, value in pairs:
        if name == "_id":
            search.ids.append(frozenset(_unescape(v) for v in _split(value, ",")))
        elif name == "identifier":
            search.identifiers.append([_identifier(token) for token in _split(value, ",")])
        elif name == "_lastUpdated":
            search.last_updated.append(_date(value))
        elif name == "_count":
            search.count = min(_non_negative(name, value), MAX_COUNT)
        elif name == "_offset":
            search.offset = _non_negative(name, value)
        elif name == "_sort":
            if value not in ("_lastUpdated", "-_lastUpdated", "_id"):
                raise FhirError(400, "not-supported", f"_sort={value!r} is not supported")
            search.sort = value
        elif name == "_format":
            if value not in _FORMATS:
                raise FhirError(400, "not-supported", f"_format={value!r}: only JSON is served")
        else:
            raise FhirError(400, "not-supported", f"search parameter {name!r} is not supported")
    return search


def _split(text: str, separator: str) -> list[str]:
    """Split on unescaped `separator`; escapes are kept (see `_unescape`)."""
    parts: list[str] = []
    current: list[str] = []
    chars = iter(text)
    for char in chars:
        if char == "\\":
            current.append(char + next(chars, ""))
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    """Undo FHIR search escapes: `\\,`, `\\|`, `\\$` and `\\\\`."""
    return re.sub(r"\\([,|$\\])", r"\1", text)


def _identifier(token: str) -> IdentifierToken:
    pieces = [_unescape(piece) for piece in _split(token, "|")]
    if len(pieces) == 1:
        if not pieces[0]:
            raise FhirError(400, "invalid", "empty identifier search value")
        return IdentifierToken(None, pieces[0])
    if len(pieces) != 2:
        raise FhirError(400, "invalid", f"identifier token {token!r} has more than one '|'")
    system, value = pieces
    if not system and not value:
        raise FhirError(400, "invalid", "identifier token '|' names neither system nor value")
    return IdentifierToken(system, value or None)


def _non_negative(name: str, value: str) -> int:
    if not value.isdigit():
        raise FhirError(400, "invalid", f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def _date(text: str) -> DateCriterion:
    match = _DATE.match(text)
    if match is None:
        raise FhirError(400, "invalid", f"_lastUpdated value {text!r} is not a FHIR date")
    prefix = match["prefix"] or "eq"
    if prefix not in _PREFIXES:
        raise FhirError(400, "not-supported", f"_lastUpdated prefix {prefix!r} is not supported")
    zone = match["zone"]
    tz: timezone = UTC
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        tz = timezone(timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])) * sign)
    try:
        year = int(match["year"])
        if match["month"] is None:
            start = datetime(year, 1, 1, tzinfo=tz)
            end = datetime(year + 1, 1, 1, tzinfo=tz)
        elif match["day"] is None:
            month = int(match["month"])
            start = datetime(year, month, 1, tzinfo=tz)
            end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=tz)
        else:
            day = datetime(year, int(match["month"]), int(match["day"]), tzinfo=tz)
            if match["hour"] is None:
                start, end = day, day + timedelta(days=1)
            else:
                start = day.replace(hour=int(match["hour"]), minute=int(match["minute"]))
                width = timedelta(minutes=1)
                if match["second"] is not None:
                    start = start.replace(second=int(match["second"]))
                    width = timedelta(seconds=1)
                    fraction = match["fraction"]
                    if fraction:
                        digits = fraction[:6]
                        start = start.replace(microsecond=int(digits.ljust(6, "0")))
                        width = timedelta(microseconds=10 ** (6 - len(digits)))
                end = start + width
    except ValueError as err:
        raise FhirError(400, "invalid", f"_lastUpdated value {text!r}: {err}") from None
    return DateCriterion(prefix, _micros(start), _micros(end))


def _micros(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
