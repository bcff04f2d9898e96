"""The Bundle invariants of FHIR R4 (bdl-1 to bdl-5, bdl-7 to bdl-12; a request where a
transaction needs one; fullUrl agreeing with its resource): each broken one is an issue at
its element path."""

from __future__ import annotations

from typing import Any

from thumpflow.fhir._context import Context
from thumpflow.fhir._references import (
    ABSOLUTE,
    RESOURCES,
    RESTFUL_TAIL,
    TRANSACTION_LIKE,
    URN,
)

_REQUEST_REQUIRED = ("transaction", "batch", "history")
_RESPONSE_REQUIRED = ("transaction-response", "batch-response", "history")
_WITH_BODY = ("POST", "PUT", "PATCH")


def bundle_rules(
    bundle: dict[str, Any], btype: Any, entries: list[Any], path: str, ctx: Context
) -> None:
    """The cheap R4 Bundle invariants (bdl-1..5, 7..12) and transaction request sanity."""
    if "total" in bundle and btype not in ("searchset", "history"):
        ctx.error(f"{path}.total", "bdl-1", "total only when a search or history")
    if btype == "document":
        identifier = bundle.get("identifier")
        if not (type(identifier) is dict and "system" in identifier and "value" in identifier):
            ctx.error(
                f"{path}.identifier",
                "bdl-9",
                "a document must have an identifier with a system and a value",
            )
        if "timestamp" not in bundle:
            ctx.error(f"{path}.timestamp", "bdl-10", "a document must have a date")
    first = entries[0].get("resource") if entries and type(entries[0]) is dict else None
    first_type = first.get("resourceType") if type(first) is dict else None
    if btype == "document" and first_type != "Composition":
        ctx.error(
            f"{path}.entry", "bdl-11", "a document must have a Composition as the first resource"
        )
    if btype == "message" and first_type != "MessageHeader":
        ctx.error(
            f"{path}.entry", "bdl-12", "a message must have a MessageHeader as the first resource"
        )
    seen: set[tuple[str, Any]] = set()
    for i, entry in enumerate(entries):
        if type(entry) is not dict or not entry:
            continue
        where = f"{path}.entry[{i}]"
        request = entry.get("request")
        if btype in _REQUEST_REQUIRED:
            if request is None:
                ctx.error(
                    f"{where}.request", "bdl-3", f"entry.request is mandatory in a {btype} Bundle"
                )
        elif request is not None:
            ctx.error(
                f"{where}.request", "bdl-3", "entry.request only in a batch, transaction or history"
            )
        if btype in _RESPONSE_REQUIRED:
            if "response" not in entry:
                ctx.error(
                    f"{where}.response", "bdl-4", f"entry.response is mandatory in a {btype} Bundle"
                )
        elif "response" in entry:
            ctx.error(
                f"{where}.response",
                "bdl-4",
                "entry.response only in a batch-response, transaction-response or history",
            )
        if "search" in entry and btype != "searchset":
            ctx.error(f"{where}.search", "bdl-2", "entry.search only when a searchset")
        resource = entry.get("resource")
        if resource is None and request is None and "response" not in entry:
            ctx.error(where, "bdl-5", "an entry must have a resource, a request or a response")
        if (
            btype in TRANSACTION_LIKE
            and type(request) is dict
            and request.get("method") in _WITH_BODY
            and resource is None
        ):
            ctx.error(
                f"{where}.resource",
                "bundle-request",
                f"a {request['method']} entry needs a resource",
            )
        full_url = entry.get("fullUrl")
        if type(full_url) is str and full_url:
            _full_url(full_url, resource, f"{where}.fullUrl", ctx)
            if btype != "history":
                meta = resource.get("meta") if type(resource) is dict else None
                version = meta.get("versionId") if type(meta) is dict else None
                if (full_url, version) in seen:
                    ctx.error(f"{where}.fullUrl", "bdl-7", "fullUrl must be unique in a Bundle")
                seen.add((full_url, version))


def _full_url(full_url: str, resource: Any, path: str, ctx: Context) -> None:
    if "/_history/" in full_url:
        ctx.error(path, "bdl-8", "fullUrl cannot be a version specific reference")
        return
    if full_url.startswith("urn:"):
        if not URN.fullmatch(full_url):
            ctx.error(
                path, "bundle-fullurl", "a urn fullUrl must be urn:uuid:<uuid> or urn:oid:<oid>"
            )
        return
    if not ABSOLUTE.fullmatch(full_url):
        ctx.error(
            path, "bundle-fullurl", "fullUrl must be an absolute http(s) URL, urn:uuid or urn:oid"
        )
        return
    if type(resource) is not dict:
        return
    tail = RESTFUL_TAIL.search(full_url)
    if tail is None or tail.end() != len(full_url) or tail.group(1) not in RESOURCES:
        return
    rid = resource.get("id")
    if tail.group(1) != resource.get("resourceType") or (type(rid) is str and rid != tail.group(2)):
        ctx.error(path, "bundle-fullurl", "fullUrl does not agree with the resource's type and id")
