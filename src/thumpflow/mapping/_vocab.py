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

    __slots__ = ("codes", "codings", "default", "tables", "v2")

    def __init__(
        self,
        codes: dict[str, str],
        codings: dict[str, dict[str, str]],
        default: str | None,
        v2: str | None,
        older: tuple[str, ...] = (),
    ) -> None:
        self.codes = codes
        self.codings = codings
        self.default = default
        self.v2 = v2
        self.tables = _table_names(v2) | {name.upper() for name in older}

    def code(self, text: str) -> str | None:
        found = self.codes.get(text)
        if found is None:
            found = self.codes.get(text.upper())
        return self.default if found is None else found

    def _listed(self, code: str) -> dict[str, str] | None:
        """The vocabulary's coding for `code`, looked up as given, then upper-cased."""
        found = self.codings.get(code)
        return self.codings.get(code.upper()) if found is None else found

    def coding(self, text: str) -> dict[str, str] | None:
        found = self._listed(text)
        if found is not None:
            return dict(found)
        return {"code": " ".join(text.split())} if self.v2 else None

    def applies_to(self, system_name: str) -> bool:
        """Whether a code sent with coding system name `system_name` (CWE-3,
        stripped) is one of this vocabulary's v2 table: when CWE-3 is empty,
        names that table (`HL70002`, `0002`, `HL7-0002`, its URI) or the
        vocabulary maps no v2 table. The IG's concept maps are keyed by code
        and table: a local code (`S^Separated^99LOCAL`) that happens to be
        spelled like a table code is not that code."""
        return not system_name or not self.tables or system_name.upper() in self.tables

    def recode_concept(
        self, concept: dict[str, Any] | None, code: str, system_name: str = ""
    ) -> dict[str, Any] | None:
        """`concept`, what CWE[CodeableConcept] made of a CWE whose CWE-1 is
        `code` (stripped) and CWE-3 `system_name`, with its first coding
        (CWE-1..3 and 7) replaced by this vocabulary's coding for `code` when
        it lists one and the code is of this vocabulary's table
        (`applies_to`; the IG's "if mapped to FHIR, use code system and
        display"; CWE-2 is the display when the vocabulary gives none).
        Everything else (the alternate codings, `text`) is kept; an unlisted
        code keeps the sender's coding as CWE[CodeableConcept] made it, but
        not under the system of the v2 table this vocabulary maps (see
        `_unlisted`); a code of another system is left as sent."""
        if not code or concept is None or not self.applies_to(system_name):
            return concept
        codings = concept["coding"]
        found = self._listed(code)
        if found is None:
            self._unlisted(codings[0])
            return concept
        codings[0] = _mapped(found, codings[0])
        return concept

    def recode_coding(
        self, coding: dict[str, Any] | None, code: str, system_name: str = ""
    ) -> dict[str, Any] | None:
        """`coding`, what CWE[Coding] made of a CWE whose CWE-1 is `code` and
        CWE-3 `system_name`, replaced by this vocabulary's coding for `code`
        when it lists one and `applies_to` the code (CWE-2 the display when
        the vocabulary gives none)."""
        if not code or coding is None or not self.applies_to(system_name):
            return coding
        found = self._listed(code)
        if found is None:
            self._unlisted(coding)
            return coding
        return _mapped(found, coding)

    def _unlisted(self, coding: dict[str, Any]) -> None:
        """A code this vocabulary does not list is no code of the v2 table it
        maps, whatever CWE-3 says (a local code, a code of another version):
        its coding loses that table's system (and the version with it)."""
        if self.v2 is not None and coding.get("system") == self.v2:
            del coding["system"]
            coding.pop("version", None)

    def concept(self, text: str) -> dict[str, Any] | None:
        found = self._listed(text)
        if found is not None:
            return {"coding": [dict(found)]}
        return {"text": text} if self.v2 else None


def _table_names(v2: str | None) -> frozenset[str]:
    """The names a CWE-3 gives the HL7 table whose FHIR code system is `v2`
    (`http://terminology.hl7.org/CodeSystem/v2-0002`: HL70002, 0002,
    HL7-0002, HL7_0002 and the URI), upper-cased; none without `v2`."""
    if not v2:
        return frozenset()
    number = v2.rsplit("v2-", 1)[-1]
    return frozenset({f"HL7{number}", number, f"HL7-{number}", f"HL7_{number}", v2.upper()})


def _mapped(found: dict[str, str], sent: dict[str, Any]) -> dict[str, Any]:
    """A new copy of the vocabulary's coding `found`, with the display of the
    sender's coding `sent` when the vocabulary gives none."""
    mapped: dict[str, Any] = dict(found)
    if "display" not in mapped and "display" in sent:
        mapped["display"] = sent["display"]
    return mapped


def compile_vocab(name: str, spec: Any) -> VocabTable:
    """The vocabulary map `name`: `map` (code → code or [code, display, system]),
    optional `system`, `v2`, `default` and `older` (names of tables the v2
    table replaced, whose codes it kept: SpecimenType's 0487 for 0070)."""
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
    older = spec.get("older") or []
    if not isinstance(older, list) or not all(isinstance(o, str) for o in older):
        raise MapError(f"{where}: `older` is a list of table names")
    return VocabTable(
        codes,
        codings,
        default if isinstance(default, str) else None,
        spec.get("v2"),
        tuple(older),
    )
