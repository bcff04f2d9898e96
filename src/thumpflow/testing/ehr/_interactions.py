"""FHIR interactions over the store: one code path for single requests, transactions, batches.

A single HTTP interaction runs as a transaction of one entry. A
transaction runs every entry or none: entries are planned in the FHIR
order (DELETE, POST, PUT, GET; entry order within each), `fullUrl`s of new
and updated resources are mapped to their final `Type/id`, references to
those `fullUrl`s and conditional references (`Type?identifier=...`) are
rewritten, then the writes are staged and committed together; the first
error aborts all and is answered with its own status. A batch runs each
entry as its own one-entry transaction, in entry order, and reports each
outcome in its entry.

Choices where FHIR leaves room:

- An update always makes a new version, even with identical content (as
  FHIR says), so every write the engine makes is visible in `_history`;
  `skip_identical_updates=True` answers such an update 200 with the current
  version instead, as some EHRs do.
- A conditional reference that matches no resource, or several, fails with
  412; it is resolved against the store as the transaction will leave it
  (resources created or updated by the same transaction included).
- A `urn:uuid:`/`urn:oid:` reference that names no entry's `fullUrl` is
  400, in a Bundle or a single create/update (nothing can resolve it later).
- Reading a deleted resource is 410; deleting a missing or deleted one is
  204 without a new version; a delete otherwise makes a new version.
- A conditional update that matches nothing creates the resource with the
  id in its body if there is one (409 if a live resource already has that
  id), else with a new id.
- `If-Match` on a resource that does not exist (or is deleted) is 412.
- PATCH is not supported (405).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from thumpflow.testing.ehr._bundles import history_bundle, response_bundle, searchset
from thumpflow.testing.ehr._outcome import FhirError
from thumpflow.testing.ehr._requests import (
    Entry,
    Result,
    Target,
    classify,
    parse_url,
    valid_id,
)
from thumpflow.testing.ehr._search import parse_search
from thumpflow.testing.ehr._store import ResourceStore, Transaction, Version, new_id
from thumpflow.testing.ehr._types import RESOURCE_TYPES

Authorize = Callable[[str, str], None]
"""Called with (resource type, one of "c", "r", "u", "d", "s") before an entry runs; may raise."""

Reject = Callable[[str, dict[str, Any]], str | None]
"""Called with each resource about to be written; a returned text fails it with 422."""

_CONDITIONAL_REFERENCE = re.compile(r"^([A-Z][A-Za-z]+)\?(.+)$")
_RANK = {"DELETE": 0, "POST": 1, "PUT": 2, "GET": 3}
_WRITES = frozenset({"create", "update", "conditional-update"})


@dataclass(slots=True)
class _Plan:
    index: int
    entry: Entry
    target: Target
    kind: str
    id: str | None = None
    existing: Version | None = None
    result: Result | None = None


class Executor:
    """Runs interactions against one store; `base_url` is the absolute FHIR base."""

    def __init__(
        self,
        store: ResourceStore,
        base_url: Callable[[], str],
        reject: Reject,
        *,
        skip_identical_updates: bool = False,
    ) -> None:
        self._store = store
        self._base_url = base_url
        self._reject = reject
        self.skip_identical_updates = skip_identical_updates

    def execute(self, entry: Entry, authorize: Authorize) -> Result:
        """One interaction, atomically; raises FhirError on failure (nothing written)."""
        plan = self._plan(0, entry, authorize)
        return self._run([plan], in_bundle=False)[0]

    def transaction(
        self, bundle: dict[str, Any], authorize: Authorize, *, minimal: bool
    ) -> dict[str, Any]:
        """All entries or none; on failure raises FhirError naming the entry, writes nothing."""
        entries = self._entries(bundle)
        plans: list[_Plan] = []
        for index, entry in enumerate(entries):
            if isinstance(entry, FhirError):
                raise entry.in_entry(index)
            try:
                plans.append(self._plan(index, entry, authorize))
            except FhirError as err:
                raise err.in_entry(index) from None
        results = self._run(plans, in_bundle=True)
        return response_bundle("transaction-response", results, minimal=minimal)

    def batch(
        self, bundle: dict[str, Any], authorize: Authorize, *, minimal: bool
    ) -> dict[str, Any]:
        """Each entry on its own; a failed entry reports its status and OperationOutcome."""
        outcomes: list[Result | FhirError] = []
        for index, entry in enumerate(self._entries(bundle)):
            if isinstance(entry, FhirError):
                outcomes.append(entry.in_entry(index))
                continue
            try:
                plan = self._plan(index, entry, authorize)
                outcomes.append(self._run([plan], in_bundle=False)[0])
            except FhirError as err:
                outcomes.append(err.in_entry(index))
        return response_bundle("batch-response", outcomes, minimal=minimal)

    def _entries(self, bundle: dict[str, Any]) -> list[Entry | FhirError]:
        raw_entries = bundle.get("entry", [])
        if not isinstance(raw_entries, list):
            raise FhirError(400, "structure", "Bundle.entry must be an array")
        return [self._entry(raw) for raw in raw_entries]

    def _entry(self, raw: Any) -> Entry | FhirError:
        if not isinstance(raw, dict):
            return FhirError(400, "structure", "entry must be an object")
        request = raw.get("request")
        if not isinstance(request, dict):
            return FhirError(400, "structure", "entry.request is required")
        method, url = request.get("method"), request.get("url")
        if not isinstance(method, str) or not isinstance(url, str) or not url:
            return FhirError(400, "structure", "entry.request needs a method and a url")
        base = self._base_url()
        if url.startswith(base + "/"):
            url = url[len(base) + 1 :]
        resource = raw.get("resource")
        if resource is not None and not isinstance(resource, dict):
            return FhirError(400, "structure", "entry.resource must be an object")
        full_url = raw.get("fullUrl")
        if_none_exist = request.get("ifNoneExist")
        if_match = request.get("ifMatch")
        return Entry(
            method=method.upper(),
            url=url,
            resource=resource,
            full_url=full_url if isinstance(full_url, str) else None,
            if_none_exist=if_none_exist if isinstance(if_none_exist, str) else None,
            if_match=if_match if isinstance(if_match, str) else None,
        )

    def _plan(self, index: int, entry: Entry, authorize: Authorize) -> _Plan:
        target = parse_url(entry.url)
        kind, permission = classify(entry.method, target)
        if kind in _WRITES:
            _check_body(entry.resource, target.type)
        if kind == "update":
            assert entry.resource is not None
            if entry.resource.get("id") != target.id:
                raise FhirError(400, "invalid", "the resource id must equal the id in the URL")
        authorize(target.type, permission)
        return _Plan(index, entry, target, kind)

    def _run(self, plans: list[_Plan], *, in_bundle: bool) -> list[Result]:
        """Plan, resolve, rewrite, write, read, commit; errors name the entry when `in_bundle`."""

        def located(err: FhirError, plan: _Plan) -> FhirError:
            return err.in_entry(plan.index) if in_bundle else err

        tx = self._store.begin()
        order = sorted(plans, key=lambda p: (_RANK[p.entry.method], p.index))
        aliases: dict[str, str] = {}
        written: set[tuple[str, str]] = set()
        for plan in order:
            try:
                self._resolve(tx, plan, aliases, written)
            except FhirError as err:
                raise located(err, plan) from None
        pending: dict[tuple[str, str], _Plan] = {}
        for plan in order:
            if plan.kind in _WRITES and plan.existing is None and plan.id is not None:
                pending[(plan.target.type, plan.id)] = plan
        for plan in pending.values():
            assert plan.entry.resource is not None
            try:
                _rewrite(
                    plan.entry.resource,
                    aliases,
                    lambda ref: self._match_reference(tx, ref, pending),
                )
            except FhirError as err:
                raise located(err, plan) from None
        for plan in order:
            try:
                if plan.entry.method in ("POST", "PUT"):
                    self._write(tx, plan)
                elif plan.entry.method == "GET":
                    plan.result = self._read(tx, plan)
            except FhirError as err:
                raise located(err, plan) from None
        tx.commit()
        results = [plan.result for plan in plans]
        assert all(result is not None for result in results)
        return [result for result in results if result is not None]

    def _resolve(
        self,
        tx: Transaction,
        plan: _Plan,
        aliases: dict[str, str],
        written: set[tuple[str, str]],
    ) -> None:
        """Decide which resource a write targets; stage deletions (they come first)."""
        target, entry = plan.target, plan.entry
        if plan.kind == "read":
            return
        if plan.kind == "create":
            if entry.if_none_exist is not None:
                plan.existing = self._single_match(tx, target.type, entry.if_none_exist)
            plan.id = plan.existing.id if plan.existing is not None else new_id()
        elif plan.kind == "update":
            plan.id = target.id
        elif plan.kind == "conditional-update":
            match = self._single_match(tx, target.type, target.query)
            assert entry.resource is not None
            body_id = entry.resource.get("id")
            if match is not None:
                if body_id is not None and body_id != match.id:
                    raise FhirError(400, "invalid", "the resource id differs from the match's id")
                plan.id = match.id
            elif body_id is not None:
                current = tx.latest(target.type, valid_id(str(body_id)))
                if current is not None and not current.deleted:
                    raise FhirError(409, "conflict", "no match, and the id in the body is taken")
                plan.id = str(body_id)
            else:
                plan.id = new_id()
        elif plan.kind == "delete":
            plan.id = target.id
        elif plan.kind == "conditional-delete":
            match = self._single_match(tx, target.type, target.query)
            plan.id = match.id if match is not None else None
        if plan.id is not None:
            key = (target.type, plan.id)
            if key in written:
                raise FhirError(
                    400, "invariant", f"{target.type}/{plan.id} is the target of several entries"
                )
            written.add(key)
            if entry.full_url:
                aliases[entry.full_url] = f"{target.type}/{plan.id}"
        if plan.kind in ("update", "conditional-update", "delete", "conditional-delete"):
            _check_if_match(tx, target.type, plan.id, entry.if_match)
        if plan.kind in ("delete", "conditional-delete"):
            current = None if plan.id is None else tx.latest(target.type, plan.id)
            if current is None or current.deleted or plan.id is None:
                plan.result = Result(204)
            else:
                plan.result = Result(204, None, tx.stage(target.type, plan.id, None))

    def _single_match(
        self, tx: Transaction, type_: str, query: str | list[tuple[str, str]]
    ) -> Version | None:
        pairs = parse_qsl(query, keep_blank_values=True) if isinstance(query, str) else query
        search = parse_search(pairs)
        if not search.has_criteria:
            raise FhirError(400, "invalid", "a conditional interaction needs search criteria")
        matches = search.select(tx.live(type_))
        if len(matches) > 1:
            raise FhirError(412, "multiple-matches", f"{len(matches)} {type_} resources match")
        return matches[0] if matches else None

    def _match_reference(
        self, tx: Transaction, reference: str, pending: dict[tuple[str, str], _Plan]
    ) -> str:
        found = _CONDITIONAL_REFERENCE.match(reference)
        assert found is not None
        type_, query = found.groups()
        if type_ not in RESOURCE_TYPES:
            raise FhirError(400, "invalid", f"conditional reference to unknown type {type_!r}")
        search = parse_search(parse_qsl(query, keep_blank_values=True))
        if not search.has_criteria:
            raise FhirError(400, "invalid", "a conditional reference needs search criteria")
        candidates = [v for v in tx.live(type_) if (type_, v.id) not in pending]
        for (pending_type, pending_id), plan in pending.items():
            if pending_type == type_:
                candidates.append(Version(type_, pending_id, 0, tx.instant, plan.entry.resource))
        matches = search.select(candidates)
        if len(matches) != 1:
            raise FhirError(
                412,
                "multiple-matches" if matches else "not-found",
                f"conditional reference to {type_} matches {len(matches)} resources, not one",
            )
        return f"{type_}/{matches[0].id}"

    def _write(self, tx: Transaction, plan: _Plan) -> None:
        if plan.existing is not None:
            plan.result = Result(200, plan.existing.resource, plan.existing)
            return
        resource, type_ = plan.entry.resource, plan.target.type
        assert resource is not None and plan.id is not None
        problem = self._reject(type_, resource)
        if problem is not None:
            raise FhirError(422, "invalid", problem)
        previous = tx.latest(type_, plan.id)
        live = previous is not None and not previous.deleted
        if (
            live
            and self.skip_identical_updates
            and previous is not None
            and previous.resource is not None
            and _content(previous.resource) == _content(resource)
        ):
            plan.result = Result(200, previous.resource, previous)
            return
        version = tx.stage(type_, plan.id, resource)
        plan.result = Result(200 if live else 201, version.resource, version)

    def _read(self, tx: Transaction, plan: _Plan) -> Result:
        target = plan.target
        if target.id is None:
            search = parse_search(target.query)
            return Result(200, searchset(self._base_url(), tx, target.type, target.query, search))
        versions = tx.versions(target.type, target.id)
        if not versions:
            raise FhirError(404, "not-found", f"{target.type}/{target.id} does not exist")
        if target.history:
            return Result(200, history_bundle(self._base_url(), tx, versions))
        if target.version is not None:
            chosen = [v for v in versions if v.version_id == target.version]
            if not chosen:
                raise FhirError(404, "not-found", f"no version {target.version} of that resource")
            version = chosen[0]
        else:
            version = versions[-1]
        if version.resource is None:
            raise FhirError(410, "deleted", f"{target.type}/{target.id} was deleted")
        return Result(200, version.resource, version)


def _check_body(resource: dict[str, Any] | None, type_: str) -> None:
    if resource is None:
        raise FhirError(400, "structure", "a resource body is required")
    if resource.get("resourceType") != type_:
        raise FhirError(400, "invalid", f"the body is not a {type_} (resourceType must match)")


def _check_if_match(tx: Transaction, type_: str, id_: str | None, if_match: str | None) -> None:
    if if_match is None:
        return
    wanted = if_match.strip().removeprefix("W/").strip('"')
    current = None if id_ is None else tx.latest(type_, id_)
    if current is None or current.deleted:
        raise FhirError(412, "conflict", f"If-Match {if_match}: the resource does not exist")
    if current.version_id != wanted:
        raise FhirError(
            412, "conflict", f"If-Match {if_match}: the current version is {current.version}"
        )


def _rewrite(node: Any, aliases: dict[str, str], conditional: Callable[[str], str]) -> None:
    """Rewrite, in place, references to entry fullUrls and conditional references."""
    if isinstance(node, list):
        for item in node:
            _rewrite(item, aliases, conditional)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key == "reference" and isinstance(value, str):
            if value in aliases:
                node[key] = aliases[value]
            elif value.startswith(("urn:uuid:", "urn:oid:")):
                raise FhirError(400, "invalid", f"reference {value} names no entry's fullUrl")
            elif _CONDITIONAL_REFERENCE.match(value):
                node[key] = conditional(value)
        else:
            _rewrite(value, aliases, conditional)


def _content(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource without its server-maintained meta, for the identical-content check."""
    content = {k: v for k, v in resource.items() if k != "meta"}
    meta = resource.get("meta")
    if isinstance(meta, dict):
        rest = {k: v for k, v in meta.items() if k not in ("versionId", "lastUpdated")}
        if rest:
            content["meta"] = rest
    return content
