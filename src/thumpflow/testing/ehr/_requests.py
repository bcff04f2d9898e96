"""What one FHIR interaction is: an `Entry` (method, relative URL, body, conditions), the
`Result` it produced, and the parsing and classification of its URL.

Parsing never guesses: a URL naming no resource type, an unknown type or an
invalid id, an unknown path, or a method the URL does not allow raises
`FhirError` (404, 400 or 405) before anything is read or written, so a bad
request changes nothing. Error texts name the type, path or method, never
the content of a resource.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

from thumpflow.testing.ehr._outcome import FhirError
from thumpflow.testing.ehr._store import Version
from thumpflow.testing.ehr._types import RESOURCE_TYPES

_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


@dataclass(slots=True)
class Entry:
    """One interaction; `url` is relative to the FHIR base (`Patient/1`, `Patient?identifier=x`)."""

    method: str
    url: str
    resource: dict[str, Any] | None = None
    full_url: str | None = None
    if_none_exist: str | None = None
    if_match: str | None = None


@dataclass(slots=True)
class Result:
    """What an interaction produced: status, body (resource or Bundle) and the version concerned."""

    status: int
    body: dict[str, Any] | None = None
    version: Version | None = None


@dataclass(slots=True)
class Target:
    """Where a URL points: a type, maybe an id, a history or a version, and a query."""

    type: str
    id: str | None = None
    history: bool = False
    version: str | None = None
    query: list[tuple[str, str]] = field(default_factory=list)
    has_query: bool = False


def status_line(status: int) -> str:
    """`201 Created`, as Bundle.entry.response.status wants it."""
    return f"{status} {HTTPStatus(status).phrase}"


def parse_url(url: str) -> Target:
    """Parse a URL relative to the FHIR base; FhirError 404/400 when it names nothing valid."""
    path, has_query, query = url.partition("?")
    segments = [s for s in path.strip("/").split("/") if s]
    if not segments:
        raise FhirError(404, "not-found", f"no resource type in {url!r}")
    type_ = segments[0]
    if type_ not in RESOURCE_TYPES:
        raise FhirError(404, "not-supported", f"unknown resource type {type_!r}")
    target = Target(
        type_, query=parse_qsl(query, keep_blank_values=True), has_query=bool(has_query)
    )
    rest = segments[1:]
    if rest:
        target.id = valid_id(rest[0])
    if len(rest) >= 2:
        if rest[1] != "_history" or len(rest) > 3:
            raise FhirError(404, "not-found", f"unknown path {path!r}")
        target.history = len(rest) == 2
        target.version = rest[2] if len(rest) == 3 else None
    return target


def valid_id(text: str) -> str:
    """`text` if it is a valid FHIR id; FhirError 400 otherwise."""
    if not _ID.match(text):
        raise FhirError(400, "invalid", f"{text!r} is not a valid FHIR id")
    return text


def classify(method: str, target: Target) -> tuple[str, str]:
    """The interaction kind and the SMART permission letter it needs."""
    if method == "GET":
        if target.id is None:
            return "read", "s"
        return "read", "r"
    if target.history or target.version is not None:
        raise FhirError(405, "not-supported", f"{method} is not allowed on a history URL")
    if method == "POST" and target.id is None and not target.has_query:
        return "create", "c"
    if method == "PUT":
        if target.id is not None and not target.has_query:
            return "update", "u"
        if target.id is None and target.has_query:
            return "conditional-update", "u"
    if method == "DELETE":
        if target.id is not None and not target.has_query:
            return "delete", "d"
        if target.id is None and target.has_query:
            return "conditional-delete", "d"
    raise FhirError(405, "not-supported", f"{method} is not supported on this URL")
