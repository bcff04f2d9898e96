"""The data type maps written in Python, by the name a map's `python:` gives.

Two kinds, told apart by the registry naming them:

- element hooks `(components, x) -> Reference | None`, a data type map over
  one element (its components, escaped) that builds resources and returns
  a Reference to one (PL → the IG's chain of Locations, `_locations`);
- field hooks `(repetitions, x) -> value | None`, a data type map over a
  whole field (its non-empty repetitions, escaped), for a field whose
  repetitions make one FHIR element together (PID-10 → one US Core race
  extension, `_uscore`).

A name in neither registry, or a hook used where its kind does not apply,
raises `MapError` when the maps compile.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from thumpflow.mapping._locations import pl_locations
from thumpflow.mapping._support import Ctx
from thumpflow.mapping._uscore import us_core_ethnicity, us_core_race

Hook = Callable[[list[str], Ctx], dict[str, Any] | None]

ELEMENT_HOOKS: dict[str, Hook] = {"pl_locations": pl_locations}
FIELD_HOOKS: dict[str, Hook] = {
    "us_core_race": us_core_race,
    "us_core_ethnicity": us_core_ethnicity,
}
