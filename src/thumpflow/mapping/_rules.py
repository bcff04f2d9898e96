"""Message maps as compiled rules: a segment (or group) → a resource.

A message map (`messages` in the map files) is a list of rules; each names a
segment, the segment map it applies (`map`), how the resource's id is
derived (`identity`), which other rules' resources it references (`refs`),
and conditions (`when`, `unless`, `required`, `follows`: the segment a PRT
belongs to; without `each`, the rule applies to the first segment of its id
that follows, and `else_follows` names where to look when none does: RDE's
RXR after RXE, else the one after RXO). A `group` applies its rules once
per instance (from one of its start segments to the next), each instance a
scope of its own; its `export` (`{order: orders}`) gives the enclosing
scope, once the group has run, every instance's resources of a name under a
new name (MDM: the document refers to the first of every order);
`whole_without_start: true` makes a message without any start segment one
instance (ORU's optional, repeating PID).
`compile_rules` turns them into `Rule` values once, at import;
a malformed rule raises `MapError` naming the map and rule. `_program`
compiles each message map's rules into one function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from thumpflow.mapping._codegen import fhir_steps
from thumpflow.mapping._compile import Compiler
from thumpflow.mapping._support import Condition, Fill, MapError, Program

# The segment map an NTE's Annotation is filled by (besides NTE-3, its text).
NOTE_MAP = "NTE[Annotation]"


@dataclass(frozen=True, slots=True)
class Ref:
    """One of a rule's `refs`: a Reference to the resources named `name`
    (`*`: every resource of the Bundle) written at path `to`, with the
    constants `with_` in the element holding it; `all`: to every one (else
    the first); `own`: only to those built from segments that follow this
    one (rules with `follows`: the PRTs of this OBX, not of its neighbours);
    `anchor`: only to the one built from the segment this one follows (a
    `follows` rule's own segment: the SPM of a specimen's OBX);
    `fill`: a segment map applied to the element holding the reference, with
    the fields of the segment the target was built from (`map:` on a ref:
    the DG1's use and rank on its Encounter.diagnosis element)."""

    to: str
    name: str
    all: bool
    with_: tuple[tuple[str, Any], ...]
    own: bool = False
    fill: Fill | None = None
    anchor: bool = False


@dataclass(frozen=True, slots=True)
class Rule:
    """One line of a message map: a segment (or group) → a resource.

    The deterministic key's parts (`key`) are element paths, whose texts
    `fill` returns in key order, and names of earlier rules, whose
    resources' ids take their place.
    """

    name: str | None
    segment: str
    each: bool
    required: bool
    when: Condition | None
    resource_type: str
    fill: Fill | None
    into: str | None
    conditional: str | None
    key: tuple[str, ...]
    refs: tuple[Ref, ...]
    notes: str | None
    group: tuple[tuple[str, ...], tuple[Rule, ...]] | None
    requires: tuple[tuple[str, int, str], ...]
    unless: str | None = None
    needs: str | None = None
    follows: tuple[str, ...] | None = None
    # `else_follows` (only with `follows`, without `each`): the segments to
    # follow when no segment of the rule's id follows `follows[0]`.
    else_follows: tuple[tuple[str, ...], ...] = ()
    # With `notes`: the segment map (NOTE_MAP) filling each NTE's Annotation
    # beyond its text (NTE-3): NTE-5 author, NTE-6 time.
    note_fill: Fill | None = None
    # A group's `export`: (inner name, outer name) pairs; once the group has
    # run, the enclosing scope's outer name holds every instance's resources
    # of the inner name, in order (MDM: every order, for the document).
    exports: tuple[tuple[str, str], ...] = ()
    # A group's `whole_without_start`: a message without any of its start
    # segments is one instance (ORU_R01's PATIENT_RESULT, whose PID is
    # optional: each PID opens a patient's results, and a message without PID
    # is one patient-less result group).
    whole_without_start: bool = False


@dataclass(frozen=True, slots=True)
class MessageMap:
    structure: str
    events: tuple[str, ...]
    rules: tuple[Rule, ...]
    final: tuple[Rule, ...]
    # `rules` then `final`, compiled into one function (see `_program`).
    program: Program


def rule_names(rules: tuple[Rule, ...]) -> frozenset[str]:
    """The names one scope's rules give resources: their own, and their groups' exports."""
    own = {r.name for r in rules if r.name and r.group is None}
    return frozenset(own | {outer for r in rules for _, outer in r.exports})


def compile_rules(specs: Any, comp: Compiler, where: str) -> tuple[Rule, ...]:
    """The rules of a message map (or group), compiled."""
    if not isinstance(specs, list):
        raise MapError(f"{where}: `rules` must be a list")
    rules = tuple(_compile_rule(s, comp, f"{where} rule {i + 1}") for i, s in enumerate(specs))
    own = {r.name for r in rules if r.name}
    for _, outer in (pair for r in rules for pair in r.exports):
        if outer in own:
            raise MapError(f"{where}: exported name {outer!r} is a rule's name too")
    return rules


def _compile_ref(r: Any, comp: Compiler, where: str) -> Ref:
    """One of a rule's `refs`; its paths are checked here, written by the program."""
    to = str(r["to"])
    with_ = tuple((str(k), v) for k, v in (r.get("with") or {}).items())
    for path in (to, *(k for k, _ in with_)):
        fhir_steps(path, where)
    return Ref(
        to,
        str(r["ref"]),
        bool(r.get("all")),
        with_,
        bool(r.get("own")),
        comp.segment(str(r["map"]), where)[1] if "map" in r else None,
        bool(r.get("anchor")),
    )


def _compile_rule(spec: Any, comp: Compiler, where: str) -> Rule:
    if not isinstance(spec, dict):
        raise MapError(f"{where}: a rule is a mapping")
    if "group" in spec:
        starts = tuple(str(s) for s in spec["group"])
        if not starts:
            raise MapError(f"{where}: a group names its start segments")
        inner = compile_rules(spec.get("rules"), comp, f"{where} group")
        exports = tuple((str(k), str(v)) for k, v in (spec.get("export") or {}).items())
        for pair in exports:
            if not all(n.isidentifier() for n in pair) or pair[0] not in rule_names(inner):
                raise MapError(f"{where}: `export` maps a name of the group's rules to a new name")
        return Rule(
            None,
            starts[0],
            False,
            bool(spec.get("required")),
            None,
            "",
            None,
            None,
            None,
            (),
            (),
            None,
            (starts, inner),
            (),
            exports=exports,
            whole_without_start=bool(spec.get("whole_without_start")),
        )
    segment = str(spec.get("segment", ""))
    if not segment:
        raise MapError(f"{where}: `segment` is required")
    map_name = str(spec.get("map", ""))
    ident = spec.get("identity") or {}
    key = tuple(str(k) for k in ident.get("key", ()))
    resource_type, fill = comp.segment(map_name, where, key)
    refs = tuple(_compile_ref(r, comp, where) for r in spec.get("refs", ()))
    notes = spec.get("notes")
    requires = tuple(
        (str(path), int(req["field"]), str(req["reason"]))
        for path, req in (comp.segment_specs[map_name].get("required") or {}).items()
    )
    name = spec.get("name")
    if name is not None and not (isinstance(name, str) and name.isidentifier()):
        raise MapError(f"{where}: a rule's `name` is an identifier")
    if notes:
        fhir_steps(str(notes), where)
    return Rule(
        name=name,
        segment=segment,
        each=bool(spec.get("each")),
        required=bool(spec.get("required")),
        when=comp.test(spec["when"], where) if "when" in spec else None,
        resource_type=resource_type,
        fill=fill,
        into=spec.get("into"),
        conditional=ident.get("conditional"),
        key=key,
        refs=refs,
        notes=str(notes) if notes else None,
        note_fill=comp.segment(NOTE_MAP, where)[1] if notes else None,
        group=None,
        requires=requires,
        unless=spec.get("unless"),
        follows=_follows(spec.get("follows"), where),
        else_follows=_else_follows(spec, where),
        needs=next(
            (
                str(r["ref"])
                for r in spec.get("refs", ())
                if (resource_type, str(r["to"])) in _REQUIRED_REFERENCES
            ),
            None,
        ),
    )


def _follows(spec: Any, where: str) -> tuple[str, ...] | None:
    """A rule's `follows`: the segment ids a segment must come after (the
    first is the one it belongs to; see `_scope.anchors_of`)."""
    if spec is None:
        return None
    if not isinstance(spec, list) or not spec or not all(isinstance(s, str) for s in spec):
        raise MapError(f"{where}: `follows` is a list of segment ids")
    return tuple(spec)


def _else_follows(spec: dict[str, Any], where: str) -> tuple[tuple[str, ...], ...]:
    """A rule's `else_follows`: the fallback of a `follows` rule without `each`."""
    other = _follows(spec.get("else_follows"), where)
    if other is None:
        return ()
    if "follows" not in spec or spec.get("each"):
        raise MapError(f"{where}: `else_follows` needs `follows` and no `each`")
    return (other,)


# References FHIR R4 requires (min 1) that message maps fill from another
# rule's resource: a rule whose resource needs one is skipped, with a warning,
# when that resource was not built (a PID missing), rather than writing an
# invalid resource.
_REQUIRED_REFERENCES = frozenset(
    {
        ("AllergyIntolerance", "patient"),
        ("Appointment", "participant[].actor"),
        ("ChargeItem", "subject"),
        ("Condition", "subject"),
        ("Coverage", "beneficiary"),
        ("Immunization", "patient"),
        ("MedicationRequest", "subject"),
        ("Procedure", "subject"),
        ("RelatedPerson", "patient"),
        ("ServiceRequest", "subject"),
    }
)
