"""Edits of HL7 v2 segments for the mapping properties: one component replaced by text."""

from __future__ import annotations

from thumpflow.hl7v2 import escape
from thumpflow.hl7v2.delimiters import DEFAULT_DELIMITERS


def replace_component(segment: str, field_no: int, comp_no: int, text: str) -> str:
    """`segment` (default delimiters) with component `comp_no` of field
    `field_no` replaced by `text`, escaped as a sender must; the field and
    component are added, empty before them, when the segment is shorter."""
    fields = segment.split("|")
    while len(fields) <= field_no:
        fields.append("")
    comps = fields[field_no].split("^")
    while len(comps) < comp_no:
        comps.append("")
    comps[comp_no - 1] = escape(text, DEFAULT_DELIMITERS)
    fields[field_no] = "^".join(comps)
    return "|".join(fields)
