"""PL (person location) → the IG's chain of Location resources.

The HL7 V2-to-FHIR IG (PL[Location]) makes one Location per level the PL
names — bed (PL-3), room (PL-2), floor (PL-8), point of care (PL-1),
building (PL-7), facility (PL-4) — each `mode: instance` with its
`physicalType`, and links each to the next level up with `partOf`. The
reference returned is to the most specific level, which also gets PL-9
(description).

Identifiers (IG HD[Identifier], PL.10): a level whose HD carries a
universal id (HD-2) has it as an identifier (`urn:oid:` for HD-3 `ISO`,
`urn:uuid:` for `UUID`, the URI for `URI`, typed by HD-3); PL.10, the
comprehensive location identifier (EI), is an identifier of the most
specific level.

thumpflow choices (the IG leaves these open): a level's `name` is its HD-1
(namespace id), not also a bare identifier; the point of care's physical
type is `wa` (ward; the IG's entry is unfinished); a Location is never
identified by an identifier (a room number shared by two floors must not
make one Location): its id is derived from its own and its parents' levels
and names, so the same bed in the same room of the same ward is the same
resource in every message and Bundle type. PL.11 (the assigning authority)
is not mapped.
"""

from __future__ import annotations

from typing import Any

from thumpflow.mapping._naming import naming_system, uri
from thumpflow.mapping._support import Ctx, component_text

_PHYSICAL = "http://terminology.hl7.org/CodeSystem/location-physical-type"
_ID_TYPES = "http://terminology.hl7.org/CodeSystem/v2-0301"
_URI_SYSTEM = "urn:ietf:rfc:3986"
# Universal id types (table 0301) whose ids are written as URIs, and how.
_AS_URI = {"ISO": "urn:oid:", "UUID": "urn:uuid:", "URI": ""}

# (PL component, physical type code, display), highest level first.
_LEVELS = (
    (4, "si", "Site"),
    (7, "bu", "Building"),
    (1, "wa", "Ward"),
    (8, "lvl", "Level"),
    (2, "ro", "Room"),
    (3, "bd", "Bed"),
)


def pl_locations(components: list[str], x: Ctx) -> dict[str, Any] | None:
    """Register the Locations of one PL (its components, escaped) and return
    a Reference to the most specific, or None when no level is valued."""
    valued = []
    for n, code, display in _LEVELS:
        name = component_text(components, n, x)
        if name:
            valued.append((name, code, display, n))
    if not valued:
        return None
    description = component_text(components, 9, x)
    comprehensive = _comprehensive(components, x)
    parent: dict[str, Any] | None = None
    key = ""
    for position, (name, code, display, n) in enumerate(valued, start=1):
        key += f"/{code}:{name}"
        body: dict[str, Any] = {
            "name": name,
            "mode": "instance",
            "physicalType": {"coding": [{"system": _PHYSICAL, "code": code, "display": display}]},
        }
        universal = _universal(components, n, x) if x.sub in components[n - 1] else None
        if universal is not None:
            body["identifier"] = [universal]
        if position == len(valued):
            if description:
                body["description"] = description
            if comprehensive is not None:
                body.setdefault("identifier", []).append(comprehensive)
        if parent is not None:
            body["partOf"] = parent
        parent = x.add(
            "Location", body, None, key + ("|" + description if "description" in body else "")
        )
    return parent


def _subcomponents(components: list[str], number: int, x: Ctx) -> list[str]:
    """Component `number`'s subcomponents, unescaped and stripped."""
    raw = components[number - 1] if len(components) >= number else ""
    return [(x.unescape(s) if x.esc in s else s).strip() for s in raw.split(x.sub)]


def _universal(components: list[str], number: int, x: Ctx) -> dict[str, Any] | None:
    """The identifier a level's HD-2 (universal id) gives, HD-3 its type
    (IG HD[Identifier] value[2], type[2]); None without HD-2. The caller
    checks that the level (component `number`) has subcomponents."""
    hd = _subcomponents(components, number, x)
    if not hd[1]:
        return None
    kind = hd[2] if len(hd) > 2 else ""
    identifier: dict[str, Any] = {"value": hd[1]}
    prefix = _AS_URI.get(kind)
    written = None if prefix is None else uri(prefix + hd[1])
    if written is not None:
        identifier = {"system": _URI_SYSTEM, "value": written}
    if kind:
        identifier["type"] = {"coding": [{"system": _ID_TYPES, "code": kind}]}
    return identifier


def _comprehensive(components: list[str], x: Ctx) -> dict[str, Any] | None:
    """PL.10, the comprehensive location identifier (EI): EI-1 the value, its
    system EI-3 (`urn:oid:` when EI-4 is `ISO`, the URI when `URI`), else
    EI-2's naming system; None without EI-1."""
    if len(components) < 10:
        return None
    ei = _subcomponents(components, 10, x)
    if not ei[0]:
        return None
    identifier: dict[str, Any] = {"value": ei[0]}
    universal, kind = (ei[2] if len(ei) > 2 else ""), (ei[3] if len(ei) > 3 else "")
    system = None
    if universal and kind in ("ISO", "URI"):
        system = uri(_AS_URI[kind] + universal)
    if system is None and len(ei) > 1 and ei[1]:
        system = naming_system(ei[1])
    if system is not None:
        identifier["system"] = system
    return identifier
