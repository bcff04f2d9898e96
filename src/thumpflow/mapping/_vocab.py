"""Vocabulary maps (HL7 v2 table code → FHIR code, Coding or CodeableConcept), compiled.

`compile_vocab` checks one map's shape (raising `MapError` naming it) and
returns a `VocabTable`, which the generated functions call as dict lookups.
"""

from __future__ import annotations

from typing import Any

from thumpflow.mapping._support import MapError


class VocabTable:
    """One compiled vocabulary map: v2 code → FHIR code, Coding or CodeableConcept.

    A code is looked up as given, then upper-cased. Unmapped codes: `code`
    gives the vocabulary default (else None, so the element is omitted);
    `coding`/`concept` keep the original code when the vocabulary names a v2
    table (`v2`), but never under that table's system: a code the map does
    not list may be a local or free-text value (a Coding without system, a
    CodeableConcept with text only); else None. Every call returns new objects.
    """

    __slots__ = ("codes", "codings", "default", "v2")

    def __init__(
        self,
        codes: dict[str, str],
        codings: dict[str, dict[str, str]],
        default: str | None,
        v2: str | None,
    ) -> None:
        self.codes = codes
        self.codings = codings
        self.default = default
        self.v2 = v2

    def code(self, text: str) -> str | None:
        found = self.codes.get(text)
        if found is None:
            found = self.codes.get(text.upper())
        return self.default if found is None else found

    def coding(self, text: str) -> dict[str, str] | None:
        found = self.codings.get(text)
        if found is None:
            found = self.codings.get(text.upper())
        if found is not None:
            return dict(found)
        return {"code": " ".join(text.split())} if self.v2 else None

    def concept(self, text: str) -> dict[str, Any] | None:
        found = self.codings.get(text)
        if found is None:
            found = self.codings.get(text.upper())
        if found is not None:
            return {"coding": [dict(found)]}
        return {"text": text} if self.v2 else None


def compile_vocab(name: str, spec: Any) -> VocabTable:
    """The vocabulary map `name`: `map` (code → code or [code, display, system]),
    optional `system`, `v2` and `default`."""
    where = f"vocabulary {name}"
    if not isinstance(spec, dict) or "map" not in spec:
        raise MapError(f"{where}: needs a `map`")
    system = spec.get("system")
    codes: dict[str, str] = {}
    codings: dict[str, dict[str, str]] = {}
    for v2code, target in (spec["map"] or {}).items():
        if isinstance(target, str):
            code, display, sys_ = target, None, system
        elif isinstance(target, list) and 1 <= len(target) <= 3:
            code = str(target[0])
            display = target[1] if len(target) > 1 else None
            sys_ = target[2] if len(target) > 2 else system
        else:
            raise MapError(f"{where}: entry {v2code!r} must be code or [code, display, system]")
        coding = {"system": sys_} if sys_ else {}
        coding["code"] = code
        if display:
            coding["display"] = display
        codes[str(v2code)] = code
        codings[str(v2code)] = coding
    default = spec.get("default")
    return VocabTable(codes, codings, default if isinstance(default, str) else None, spec.get("v2"))
