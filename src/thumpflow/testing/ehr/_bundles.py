"""The Bundles the simulated EHR answers with: searchset pages, instance history, and the
responses of transactions and batches.

Pure builders over versions already read in one store transaction, so a
Bundle shows one consistent state. A searchset has its `total` and `self`
and `next` links (`_offset` paging); a history is newest first with each
version's method and status as it was written; a response Bundle has one
entry per request entry, in entry order, a failed batch entry carrying its
OperationOutcome (texts from `FhirError`, never resource content).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

from thumpflow.testing.ehr._outcome import FhirError
from thumpflow.testing.ehr._requests import Result, status_line
from thumpflow.testing.ehr._search import Search
from thumpflow.testing.ehr._store import Transaction, Version, instant_text, new_id


def searchset(
    base: str, tx: Transaction, type_: str, query: list[tuple[str, str]], search: Search
) -> dict[str, Any]:
    """One page of the live `type_` resources `search` selects, with total and paging links."""
    matches = search.select(tx.live(type_))
    page = matches[search.offset : search.offset + search.count]
    params = [(k, v) for k, v in query if k != "_offset"]
    links = [{"relation": "self", "url": page_url(base, type_, params, search.offset)}]
    if search.count and search.offset + search.count < len(matches):
        next_offset = search.offset + search.count
        links.append({"relation": "next", "url": page_url(base, type_, params, next_offset)})
    return {
        "resourceType": "Bundle",
        "id": new_id(),
        "meta": {"lastUpdated": instant_text(tx.instant)},
        "type": "searchset",
        "total": len(matches),
        "link": links,
        "entry": [
            {
                "fullUrl": f"{base}/{v.type}/{v.id}",
                "resource": v.resource,
                "search": {"mode": "match"},
            }
            for v in page
        ],
    }


def history_bundle(base: str, tx: Transaction, versions: list[Version]) -> dict[str, Any]:
    """Newest first; request.method is DELETE for a deletion, POST for a first version
    (or the first after a deletion), PUT otherwise."""
    entries = []
    for position in range(len(versions) - 1, -1, -1):
        v = versions[position]
        created = position == 0 or versions[position - 1].deleted
        method = "DELETE" if v.deleted else "POST" if created else "PUT"
        status = 204 if v.deleted else 201 if created else 200
        entry: dict[str, Any] = {"fullUrl": f"{base}/{v.type}/{v.id}"}
        if v.resource is not None:
            entry["resource"] = v.resource
        entry["request"] = {
            "method": method,
            "url": v.type if method == "POST" else f"{v.type}/{v.id}",
        }
        entry["response"] = {
            "status": status_line(status),
            "etag": v.etag,
            "lastModified": v.last_updated,
        }
        entries.append(entry)
    return {
        "resourceType": "Bundle",
        "id": new_id(),
        "meta": {"lastUpdated": instant_text(tx.instant)},
        "type": "history",
        "total": len(entries),
        "entry": entries,
    }


def page_url(base: str, type_: str, params: Iterable[tuple[str, str]], offset: int) -> str:
    """The URL of the searchset page starting at `offset`."""
    pairs = list(params)
    if offset:
        pairs.append(("_offset", str(offset)))
    return f"{base}/{type_}" + (f"?{urlencode(pairs)}" if pairs else "")


def response_bundle(
    type_: str, outcomes: list[Result] | list[Result | FhirError], *, minimal: bool
) -> dict[str, Any]:
    """A `type_` Bundle (transaction- or batch-response) with one entry per outcome, in order."""
    entries: list[dict[str, Any]] = []
    for outcome in outcomes:
        if isinstance(outcome, FhirError):
            entries.append(
                {"response": {"status": status_line(outcome.status), "outcome": outcome.outcome()}}
            )
            continue
        response: dict[str, Any] = {"status": status_line(outcome.status)}
        entry: dict[str, Any] = {}
        version = outcome.version
        if version is not None:
            if outcome.status in (200, 201) and version.resource is not None:
                response["location"] = version.location
            response["etag"] = version.etag
            response["lastModified"] = version.last_updated
        if outcome.body is not None and not minimal:
            entry["resource"] = outcome.body
        entry["response"] = response
        entries.append(entry)
    return {"resourceType": "Bundle", "id": new_id(), "type": type_, "entry": entries}
