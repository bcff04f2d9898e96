"""PID-10 race and PID-22 ethnic group → the US Core race and ethnicity extensions.

The IG (PID[Patient], rows PID-10 and PID-22) maps both fields to the local
realm's extension, "e.g. US = US Core Race / US Core Ethnicity". thumpflow
writes the US Core extensions when the code system makes the US realm
evident: a repetition coded in CDC Race & Ethnicity (CWE-3 or CWE-6
`CDCREC`, or the HL7 table of the field, `HL70005` for race and `HL70189`
for ethnic group, holding a code of the CDC form `NNNN-N`). Everything else is left out:

- HL7 table 0189's own values in PID-22 (`H` Hispanic or Latino, `N` Not
  Hispanic or Latino, coding system `HL70189`) are the two OMB ethnicity
  categories they name (2135-2, 2186-5); its `U` (unknown) is not mapped;
- a repetition coded otherwise (a local code, a null flavor such as `UNK`,
  which names no realm) is not mapped; when its alternate triplet
  (CWE-4..6) is CDC-coded, that one is;
- a CDC code of the other kind (an ethnicity code, 2133-7 to 2186-5, in
  PID-10; a race code in PID-22) is not mapped, as US Core's bindings
  allow none;
- a field with no CDC-coded repetition gives no extension.

Guarantees, for a field with at least one CDC-coded repetition: one
extension (`us-core-race` or `us-core-ethnicity`) holding every distinct
code once: the OMB categories (race 1002-5, 2028-9, 2054-5, 2076-8, 2106-3;
ethnicity 2135-2, 2186-5) as `ombCategory`, then the other codes as
`detailed`, each group in the order sent, each a Coding of
`urn:oid:2.16.840.1.113883.6.238` with the sender's text (else the OMB
category's name) as display; then `text`,
always present and non-empty: the text of the first CDC-coded repetition
(its CWE-2, or CWE-5 for its alternate triplet), else its CWE-9, else the
OMB category's name, else the code. US Core allows one ethnicity
`ombCategory`: a second (contradictory) OMB ethnicity code is dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from thumpflow.mapping._support import Ctx, component_text

_CDC = "urn:oid:2.16.840.1.113883.6.238"
_CDC_CODE = re.compile(r"[0-9]{4}-[0-9]")
# The CDC code set's ethnicity concepts: 2133-7 (Ethnicity) to 2186-5 (Not
# Hispanic or Latino); every other code is a race concept.
_ETHNICITY_CODES = range(2133, 2187)
# A CWE's triplets: (code, text, coding system) component numbers.
_TRIPLETS = ((1, 2, 3), (4, 5, 6))
_ORIGINAL_TEXT = 9


@dataclass(frozen=True)
class _Field:
    """What one field maps to: its extension, the HL7 table naming CDC
    codes in it, its kind of CDC code, and the OMB categories by code."""

    url: str
    table: str
    ethnicity: bool
    omb: dict[str, str]
    omb_max: int
    table_codes: dict[str, str]


RACE = _Field(
    "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race",
    "HL70005",
    False,
    {
        "1002-5": "American Indian or Alaska Native",
        "2028-9": "Asian",
        "2054-5": "Black or African American",
        "2076-8": "Native Hawaiian or Other Pacific Islander",
        "2106-3": "White",
    },
    5,
    {},
)
ETHNICITY = _Field(
    "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity",
    "HL70189",
    True,
    {"2135-2": "Hispanic or Latino", "2186-5": "Not Hispanic or Latino"},
    1,
    {"H": "2135-2", "N": "2186-5"},
)


def _cdc_coded(components: list[str], x: Ctx, field: _Field) -> tuple[str, str] | None:
    """(code, text) of the first triplet of a CWE holding a CDC code of the
    field's kind, or None."""
    for code_number, text_number, system_number in _TRIPLETS:
        code = component_text(components, code_number, x)
        system = component_text(components, system_number, x).upper()
        if system == field.table and code in field.table_codes:
            return field.table_codes[code], component_text(components, text_number, x)
        if _CDC_CODE.fullmatch(code) is None:
            continue
        if (
            system in ("CDCREC", field.table)
            and (int(code[:4]) in _ETHNICITY_CODES) == field.ethnicity
        ):
            return code, component_text(components, text_number, x)
    return None


def _extension(repetitions: list[str], x: Ctx, field: _Field) -> dict[str, Any] | None:
    """The field's extension from its repetitions (escaped), or None; see the
    module docstring."""
    omb: list[dict[str, Any]] = []
    detailed: list[dict[str, Any]] = []
    seen: set[str] = set()
    text = ""
    for repetition in repetitions:
        components = repetition.split(x.comp)
        found = _cdc_coded(components, x, field)
        if found is None:
            continue
        code, display = found
        if not seen:
            text = (
                display
                or component_text(components, _ORIGINAL_TEXT, x)
                or field.omb.get(code, code)
            )
        if code in seen:
            continue
        seen.add(code)
        coding = {"system": _CDC, "code": code}
        display = display or field.omb.get(code, "")
        if display:
            coding["display"] = display
        if code not in field.omb:
            detailed.append({"url": "detailed", "valueCoding": coding})
        elif len(omb) < field.omb_max:
            omb.append({"url": "ombCategory", "valueCoding": coding})
    if not seen:
        return None
    return {"url": field.url, "extension": [*omb, *detailed, {"url": "text", "valueString": text}]}


def us_core_race(repetitions: list[str], x: Ctx) -> dict[str, Any] | None:
    """PID-10's repetitions (escaped, non-empty) → one `us-core-race`
    extension, or None when none is CDC-coded."""
    return _extension(repetitions, x, RACE)


def us_core_ethnicity(repetitions: list[str], x: Ctx) -> dict[str, Any] | None:
    """PID-22's repetitions (escaped, non-empty) → one `us-core-ethnicity`
    extension, or None when none is CDC-coded."""
    return _extension(repetitions, x, ETHNICITY)
