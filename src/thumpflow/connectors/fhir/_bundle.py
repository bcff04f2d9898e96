"""Reading a delivery's Bundle and making every entry safe to apply twice. Pure, no I/O.

Every write the destination sends is idempotent, so a resend (after a lost
response, a crash, a replay) converges on the same server state instead of
creating a second resource:

- `PUT Type/id` (deterministic ids from the mapping) and conditional
  `PUT Type?search` are idempotent; `DELETE` is too.
- `POST` with `ifNoneExist` creates only when nothing matches.
- A plain `POST` (or an entry with no `request`) is made idempotent from its
  resource: in `conditional_update` mode it becomes
  `PUT Type?identifier=system|value`; in `transaction`/`batch` mode it keeps
  its create semantics with `ifNoneExist: identifier=system|value` added.
  Failing an identifier, a resource with an id becomes `PUT Type/id`.
- Anything else (a POST of a resource with neither identifier nor id, PATCH)
  is refused (`BundleError`, a permanent failure): it could duplicate.

In `conditional_update` mode, non-conditional `PUT Type/id` entries of
resources with an identifier are written by identifier too; the references
other entries make to them (by `fullUrl`, `Type/id` or conditional URL) are
rewritten to the id the server answers, and entries are written after the
entries they reference.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

Mode = Literal["transaction", "batch", "conditional_update"]
JsonObject = dict[str, Any]


class BundleError(ValueError):
    """The delivery body cannot be written safely (not a Bundle, or a non-idempotent entry)."""


@dataclass(slots=True)
class Entry:
    """One write of a Bundle, normalised; `raw` is the Bundle's own entry, kept in step."""

    index: int
    resource_type: str
    method: str
    url: str
    raw: JsonObject
    if_none_exist: str | None = None
    if_match: str | None = None
    aliases: list[str] = field(default_factory=list)

    @property
    def resource(self) -> JsonObject | None:
        resource = self.raw.get("resource")
        return resource if isinstance(resource, dict) else None

    @property
    def label(self) -> str:
        return f"entry {self.index} ({self.resource_type} {self.method})"

    @property
    def conditional(self) -> bool:
        return "?" in self.url

    def pin(self, resource_id: str, version: str | None) -> None:
        """Aim the write at the existing `Type/resource_id`, with `If-Match` when versioned."""
        self.url = f"{self.resource_type}/{resource_id}"
        self.if_match = f'W/"{version}"' if version is not None else None
        if self.resource is not None:
            self.resource["id"] = resource_id
        self.aliases.append(self.url)
        self.sync()

    def sync(self) -> None:
        request: JsonObject = {"method": self.method, "url": self.url}
        if self.if_none_exist is not None:
            request["ifNoneExist"] = self.if_none_exist
        if self.if_match is not None:
            request["ifMatch"] = self.if_match
        self.raw["request"] = request


def parse(body: bytes) -> JsonObject:
    """The Bundle in a delivery body; BundleError when it is not one."""
    try:
        bundle = json.loads(body)
    except ValueError as exc:
        raise BundleError(f"delivery body is not JSON: {exc}") from None
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise BundleError("delivery body is not a FHIR Bundle")
    entries = bundle.get("entry")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise BundleError("Bundle has no entries")
    return bundle


def plan(bundle: JsonObject, mode: Mode) -> list[Entry]:
    """The Bundle's entries as idempotent writes (see the module docstring), in Bundle order."""
    return [_entry(index, raw, mode) for index, raw in enumerate(bundle["entry"])]


def _entry(index: int, raw: JsonObject, mode: Mode) -> Entry:
    resource = raw.get("resource")
    request = raw.get("request")
    if request is not None and not isinstance(request, dict):
        raise BundleError(f"entry {index}: request is not an object")
    request = request or {}
    method = str(request.get("method") or "POST").upper()
    url = str(request.get("url") or "").lstrip("/")
    if resource is not None and not (
        isinstance(resource, dict) and isinstance(resource.get("resourceType"), str)
    ):
        raise BundleError(f"entry {index}: resource has no resourceType")
    resource_type = resource["resourceType"] if resource else url.split("?")[0].split("/")[0]
    if not resource_type:
        raise BundleError(f"entry {index}: neither a resource nor a request url")
    entry = Entry(index, resource_type, method, url, raw)
    if_none_exist = request.get("ifNoneExist")
    entry.if_none_exist = str(if_none_exist) if if_none_exist else None
    if_match = request.get("ifMatch")
    entry.if_match = str(if_match) if if_match else None
    if isinstance(raw.get("fullUrl"), str):
        entry.aliases.append(raw["fullUrl"])
    if resource and isinstance(resource.get("id"), str):
        entry.aliases.append(f"{resource_type}/{resource['id']}")
    if method in ("GET", "HEAD") and mode != "conditional_update":
        entry.sync()
        return entry
    if method == "DELETE":
        if not url:
            raise BundleError(f"{entry.label}: DELETE without a url")
        entry.sync()
        return entry
    if method not in ("PUT", "POST") or resource is None:
        raise BundleError(f"{entry.label}: only PUT, POST and DELETE of a resource are written")
    if method == "PUT" and "?" in url:
        entry.aliases.append(url)
    elif method == "POST" and entry.if_none_exist is not None:
        entry.url = resource_type
    elif mode == "conditional_update" or method == "POST":
        _make_idempotent(entry, resource, mode)
    entry.sync()
    return entry


def _make_idempotent(entry: Entry, resource: JsonObject, mode: Mode) -> None:
    search = identifier_search(resource)
    if search is not None and mode == "conditional_update":
        entry.method, entry.url = "PUT", f"{entry.resource_type}?{search}"
        entry.aliases.append(entry.url)
    elif search is not None and entry.method == "POST":
        entry.url, entry.if_none_exist = entry.resource_type, search
    elif isinstance(resource.get("id"), str):
        entry.method, entry.url = "PUT", f"{entry.resource_type}/{resource['id']}"
    elif entry.method == "POST":
        raise BundleError(
            f"{entry.label}: a create without an identifier, id or ifNoneExist could be "
            "duplicated by a resend"
        )


def identifier_search(resource: JsonObject) -> str | None:
    """`identifier=system|value` for the resource's first identifier that has both."""
    for identifier in resource.get("identifier") or ():
        if not isinstance(identifier, dict):
            continue
        system, value = identifier.get("system"), identifier.get("value")
        if isinstance(system, str) and isinstance(value, str) and system and value:
            return f"identifier={quote(system, safe=':/')}|{quote(value, safe='')}"
    return None


def write_order(entries: list[Entry]) -> list[Entry]:
    """Entries ordered so that each comes after the entries it references (Bundle order else).

    BundleError on a reference cycle, which individual writes cannot resolve.
    """
    owner = {alias: entry.index for entry in entries for alias in entry.aliases}
    needs = {
        entry.index: {
            owner[ref]
            for ref in references(entry.resource)
            if ref in owner and owner[ref] != entry.index
        }
        for entry in entries
    }
    ordered: list[Entry] = []
    done: set[int] = set()
    waiting = list(entries)
    while waiting:
        ready = [entry for entry in waiting if needs[entry.index] <= done]
        if not ready:
            raise BundleError(
                "entries " + ", ".join(str(e.index) for e in waiting) + " reference each other "
                "in a cycle; write them as a transaction"
            )
        ordered.extend(ready)
        done.update(entry.index for entry in ready)
        waiting = [entry for entry in waiting if entry.index not in done]
    return ordered


def references(node: object) -> Iterator[str]:
    """Every `reference` string inside a resource."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                yield value
            else:
                yield from references(value)
    elif isinstance(node, list):
        for item in node:
            yield from references(item)


def rewrite_references(node: object, resolved: dict[str, str]) -> None:
    """Replace, in place, each `reference` found in `resolved` by its resolved value."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                if value in resolved:
                    node[key] = resolved[value]
            else:
                rewrite_references(value, resolved)
    elif isinstance(node, list):
        for item in node:
            rewrite_references(item, resolved)
