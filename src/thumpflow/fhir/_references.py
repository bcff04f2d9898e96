"""Checks of references: the literal's form (Type/id, absolute URL, urn:uuid/urn:oid,
#contained, Type?search in a transaction or batch), the type it names, and whether a local
or transaction reference resolves. Each problem is an issue at its element path."""

from __future__ import annotations

import re
from typing import Any

from thumpflow.fhir._context import Context
from thumpflow.fhir._definitions import REGISTRY, Element

_ID = r"[A-Za-z0-9\-.]{1,64}"
_UUID = r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_OID = r"urn:oid:[0-2](?:\.(?:0|[1-9][0-9]*))+"
_RELATIVE = re.compile(rf"([A-Z][A-Za-z]+)/{_ID}(?:/_history/{_ID})?", re.ASCII)
ABSOLUTE = re.compile(r"https?://[^\s/?#]+(?:/[^\s?#]*)?", re.ASCII)
RESTFUL_TAIL = re.compile(rf"/([A-Z][A-Za-z]+)/({_ID})(?:/_history/{_ID})?", re.ASCII)
_CONDITIONAL = re.compile(r"([A-Z][A-Za-z]+)\?[^\s=&#]+=[^\s&#]*(?:&[^\s=&#]+=[^\s&#]*)*", re.ASCII)
URN = re.compile(rf"{_UUID}|{_OID}", re.ASCII)
_CONTAINED = re.compile(rf"#(?:{_ID})?", re.ASCII)

RESOURCES = REGISTRY.resources
TRANSACTION_LIKE = ("transaction", "batch")


def check_reference(reference: dict[str, Any], element: Element, path: str, ctx: Context) -> None:
    literal = reference.get("reference")
    if type(literal) is not str:
        return
    # An entry's fullUrl needs no parsing here: _full_url checks its format.
    target = ctx.entry_types.get(literal) or literal_target(literal, f"{path}.reference", ctx)
    if target is None:
        return
    if target not in RESOURCES:
        ctx.error(
            f"{path}.reference",
            "reference",
            "the reference names a type that is not an R4 resource",
        )
    elif element.targets is not None and target not in element.targets:
        allowed = ", ".join(sorted(element.targets))
        ctx.error(
            f"{path}.reference", "reference-type", f"refers to a {target}; allowed: {allowed}"
        )
    else:
        declared = reference.get("type")
        if type(declared) is str and declared in RESOURCES and declared != target:
            ctx.error(
                f"{path}.type", "reference-type", f"type disagrees with the reference ({target})"
            )


def literal_target(literal: str, where: str, ctx: Context) -> str | None:
    """The resource type a literal reference names, None if none; reports a bad format."""
    if _RELATIVE.fullmatch(literal):
        return literal.split("/", 1)[0]
    if literal.startswith("#"):
        if not _CONTAINED.fullmatch(literal):
            ctx.error(where, "reference", "a local reference is '#' followed by an id")
        elif literal != "#" and literal[1:] not in ctx.contained_ids:
            ctx.error(where, "reference", "no contained resource has this id")
        return None
    if literal.startswith("urn:"):
        if not URN.fullmatch(literal):
            ctx.error(where, "reference", "a urn reference must be a urn:uuid or urn:oid")
        elif ctx.bundle_type == "transaction":
            ctx.error(where, "reference", "no entry of the transaction Bundle has this fullUrl")
        return None
    if "?" in literal and _CONDITIONAL.fullmatch(literal):
        if ctx.bundle_type not in TRANSACTION_LIKE:
            ctx.error(
                where,
                "reference",
                "a conditional reference (Type?search) is only allowed in a transaction or batch",
            )
            return None
        return literal.split("?", 1)[0]
    if ABSOLUTE.fullmatch(literal):
        tail = RESTFUL_TAIL.search(literal)
        if tail is not None and tail.end() == len(literal) and tail.group(1) in RESOURCES:
            return tail.group(1)
        return None
    ctx.error(
        where,
        "reference",
        "expected Type/id, an absolute URL, urn:uuid:, #id, or Type?search in a transaction",
    )
    return None
