"""Small resource helpers for mapping: stable ids and literal references."""

from __future__ import annotations

import json
import re
import uuid

from thumpflow.fhir._definitions import REGISTRY

# Frozen forever: changing it changes every id thumpflow has ever written.
# (It is uuid5(NAMESPACE_URL, "https://thumpflow.org/ns/fhir-resource-id").)
_NAMESPACE = uuid.UUID("4d6519af-2965-5e19-9560-6e39db2d04eb")
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}", re.ASCII)


def _require_resource_type(resource_type: str) -> None:
    if resource_type not in REGISTRY.resource_names:
        raise ValueError(f"{resource_type!r} is not an R4 resource type")


def deterministic_id(resource_type: str, *parts: str) -> str:
    """A FHIR id derived only from the resource type and business identifiers.

    The same arguments give the same id in every process and release (UUID
    version 5 over a fixed namespace), so converting one message twice yields
    the same resource ids, and a retried write targets the same resource.
    Different arguments give different ids: the parts are encoded
    unambiguously (`("a|b",)` and `("a", "b")` differ), and order matters.
    The result is a lowercase 36-character UUID string, a valid R4 `id`.

    Raises ValueError when `resource_type` is not an R4 resource type, or when
    no part is a non-empty string (an id derived from nothing would collide).
    """
    _require_resource_type(resource_type)
    if not any(parts):
        raise ValueError("deterministic_id needs at least one non-empty business identifier")
    for part in parts:
        if type(part) is not str:
            raise TypeError("deterministic_id parts must be strings")
    name = json.dumps([resource_type, *parts], ensure_ascii=False, separators=(",", ":"))
    return str(uuid.uuid5(_NAMESPACE, name))


def reference(resource_type: str, id: str, *, display: str | None = None) -> dict[str, str]:
    """A literal relative Reference `{"reference": "Type/id"}`, with `display` if given.

    Raises ValueError when `resource_type` is not an R4 resource type or `id`
    is not a valid FHIR id, so a bad reference fails where it is made rather
    than at the destination.
    """
    _require_resource_type(resource_type)
    if type(id) is not str or _ID.fullmatch(id) is None:
        raise ValueError("not a valid FHIR id (1-64 of A-Z a-z 0-9 - .)")
    result = {"reference": f"{resource_type}/{id}"}
    if display:
        result["display"] = display
    return result
