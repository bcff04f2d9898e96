"""PL (person location) → the IG's chain of Location resources.

The HL7 V2-to-FHIR IG (PL[Location]) makes one Location per level the PL
names — bed (PL-3), room (PL-2), floor (PL-8), point of care (PL-1),
building (PL-7), facility (PL-4) — each `mode: instance` with its
`physicalType`, and links each to the next level up with `partOf`. The
reference returned is to the most specific level, which also gets PL-9
(description).

thumpflow choices (the IG leaves these open): a level's `name` is its HD-1
(namespace id); the point of care's physical type is `wa` (ward; the IG's
entry is unfinished); levels carry no identifier, so a room number shared by
two floors never makes one Location: a Location's id is derived from its
own and its parents' levels and names, so the same bed in the same room of
the same ward is the same resource in every message and Bundle type.
"""

from __future__ import annotations

from typing import Any

from thumpflow.mapping._support import Ctx, component_text

_PHYSICAL = "http://terminology.hl7.org/CodeSystem/location-physical-type"

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
            valued.append((name, code, display))
    if not valued:
        return None
    description = component_text(components, 9, x)
    parent: dict[str, Any] | None = None
    key = ""
    for position, (name, code, display) in enumerate(valued, start=1):
        key += f"/{code}:{name}"
        body: dict[str, Any] = {
            "name": name,
            "mode": "instance",
            "physicalType": {"coding": [{"system": _PHYSICAL, "code": code, "display": display}]},
        }
        if position == len(valued) and description:
            body["description"] = description
        if parent is not None:
            body["partOf"] = parent
        parent = x.add(
            "Location", body, None, key + ("|" + description if "description" in body else "")
        )
    return parent
