"""Message maps as compiled rules: a segment (or group) → a resource.

A message map (`messages` in the map files) is a list of rules; each names a
segment, the segment map it applies (`map`), how the resource's id is
derived (`identity`), which other rules' resources it references (`refs`),
and conditions (`when`, `unless`, `given`, `absent`, `present`, `required`,
`follows`: the segment a PRT belongs to; without `each`, the rule applies to
the first segment of its id that follows, and `else_follows` names where to
look when none does: RDE's RXR after RXE, else the one after RXO). A `group`
applies its rules once per instance (from one of its start segments to the
next), each instance a scope of its own; its `export` (`{order: orders}`)
gives the enclosing scope, once the group has run, every instance's
resources of a name under a new name (MDM: the document refers to the first
of every order);
`whole_without_start: true` makes a message without any start segment one
instance (ORU's optional, repeating PID), and `leading_after: [PID, PD1,
ROL]` makes the segments before the first start segment, after the
enclosing scope's opening run of those ids, an instance of their own (BAR's
VISIT, whose PV1 is optional: a visit without PV1 before one with PV1);
`runs: true` keeps a run of start segments of one id in one instance (RAS's
ADMINISTRATION, `{RXA} RXR`), and `carry: [ORC]` gives each instance the
enclosing scope's first ORC too (before its own segments), so its rules
read the order it belongs to.
A message map's `skip` lists segment groups the IG maps to nothing that
would otherwise read as groups that it maps (OML's PRIOR_RESULT, whose PID,
ORC, OBR and OBX are another patient record's, not the message's): `Skip`.
A rule's `not_converted` (a text, in place of `map`) builds nothing: each
segment it applies to is left out with a warning giving that text (DFT: an
FT1 payment is no ChargeItem).
A rule's `also` (`{segment: ORC, map: "ORC[Immunization]"}`, or a list of
them) fills its resource from the first such segment of its scope too,
before the id is taken, so what that segment says (its identifiers) can
identify it.
An identity's `distinct: true` (beside `conditional`) makes each segment a
resource of its own: one repeating any identifier of an earlier one loses
it, with a warning (VXU: two orders with one filler number). Its `create:
true` (beside `conditional`) makes the resource only where none with its
identifier exists (ORU: the order a result answers, IG ORU_R01 "if a
ServiceRequest needs to be created for the receiver"): `_support.as_create`.
A list among a map's rules is a run of rules spliced in where it stands
(one definition shared by YAML alias: the order ORU and OUL results create).
`compile_rules` turns them into `Rule` values once, at import;
a malformed rule raises `MapError` naming the map and rule. `_program`
compiles each message map's rules into one function.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
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
    `follows` rule's own segment: the SPM of a specimen's OBX); `same`: only
    to the one built from this rule's own segment (IN1: its Coverage's
    insured, each IN1 its own);
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
    same: bool = False


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
    # `given`: the rule applies only when its scope (or an enclosing one)
    # names resources of this name, the counterpart of `unless` (ORU: an
    # OBR Specimen for a specimen collector PRT, which would otherwise be
    # nothing's).
    given: str | None = None
    # `absent`: segment ids whose presence in the rule's scope skips it (RDS:
    # the placer's RXO fills the order only when no RXE encodes it).
    absent: tuple[str, ...] = ()
    # `present`: the rule applies only when its scope holds one of these
    # segment ids (ORU's SPECIMEN_OBSERVATION rule: an SPM).
    present: tuple[str, ...] = ()
    needs: str | None = None
    follows: tuple[str, ...] | None = None
    # `else_follows` (only with `follows`, without `each`): the segments to
    # follow when no segment of the rule's id follows `follows[0]`.
    else_follows: tuple[tuple[str, ...], ...] = ()
    # `comments`: a top-level string element of the resource the texts of
    # the NTEs after the segment are written to, one line each, after any
    # text already there (IG SIU_S12: NTEs concatenated into R4's
    # Appointment.comment); the plain-text counterpart of `notes`.
    comments: str | None = None
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
    # A group's `leading_after`: the segments before its first start segment,
    # after the scope's opening run of these ids, are an instance of their
    # own (`_scope.with_leading`).
    leading_after: tuple[str, ...] = ()
    # A group's `runs`: a start segment right after one of its own id stays
    # in the instance (`_scope.group_instances`); `carry`: the enclosing
    # scope's first segment of each of these ids is in every instance too
    # (`_scope.carried`).
    runs: bool = False
    carry: tuple[str, ...] = ()
    # `also`: (segment id, its fill) pairs: the first such segment of the
    # rule's scope fills the resource too, after the rule's own map and
    # before its identity is taken (VXU: ORC-3/ORC-2 identify the RXA's
    # Immunization; RAS: the ADMINISTRATION's RXR is each RXA's route).
    also: tuple[tuple[str, Fill], ...] = ()
    # `identity: {distinct: true}` (with `conditional`): each segment is a
    # resource of its own (IG VXU_V04 row 12.1: each ORDER a new
    # Immunization); one holding a business identifier an earlier one of the
    # message holds loses it, with a warning (`_Run.repeated`,
    # `_Run.held_elsewhere`).
    distinct: bool = False
    # `identity: {create: true}` (with `conditional`): in a transaction the
    # resource is created only if no resource holds its identifier (a POST
    # with `ifNoneExist`), never updated; made only when that identifier has
    # a system, and not in a batch, whose references are by id (`_program`).
    # What its fill registers (a data type's Practitioner) stays in the
    # Bundle even when it is not made: the rule's `when` should require the
    # fields that give the identifier its system.
    create: bool = False
    # Set by `settled`: nothing writes to the resource once it is registered
    # (no `refs`, no `into` of its name), so its content then is final.
    complete: bool = False
    # `not_converted`: the reason (naming fields, never values) a segment the
    # rule applies to is left out, with a warning; the rule builds nothing.
    not_converted: str | None = None


@dataclass(frozen=True, slots=True)
class Skip:
    """One of a message map's `skip`: segment group `group` (its name in the
    v2 structure, for the warning) opens at a segment of `starts` that comes
    after one of `after` and runs up to a segment of `ends` (not included) or
    the message's end (`_scope.skipped`). Its segments are hidden from every
    rule, as if the message did not hold them (a `*SEG-F` source, which
    reads the message itself, still sees them), with a warning."""

    group: str
    starts: tuple[str, ...]
    after: tuple[str, ...]
    ends: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MessageMap:
    structure: str
    events: tuple[str, ...]
    rules: tuple[Rule, ...]
    final: tuple[Rule, ...]
    # `rules` then `final`, compiled into one function (see `_program`).
    program: Program
    skips: tuple[Skip, ...] = ()


def rule_names(rules: tuple[Rule, ...]) -> frozenset[str]:
    """The names one scope's rules give resources: their own, and their groups' exports."""
    own = {r.name for r in rules if r.name and r.group is None}
    return frozenset(own | {outer for r in rules for _, outer in r.exports})


def compile_rules(specs: Any, comp: Compiler, where: str) -> tuple[Rule, ...]:
    """The rules of a message map (or group), compiled."""
    if not isinstance(specs, list):
        raise MapError(f"{where}: `rules` must be a list")
    # A list in the list is a run of rules shared by YAML alias (ORU's and
    # OUL's order): its rules take its place, in order.
    flat = [r for s in specs for r in (s if isinstance(s, list) else [s])]
    rules = tuple(_compile_rule(s, comp, f"{where} rule {i + 1}") for i, s in enumerate(flat))
    own = {r.name for r in rules if r.name}
    for _, outer in (pair for r in rules for pair in r.exports):
        if outer in own:
            raise MapError(f"{where}: exported name {outer!r} is a rule's name too")
    return rules


def compile_skips(specs: Any, where: str) -> tuple[Skip, ...]:
    """A message map's `skip`: a list of `{group, starts, after, ends}`, each
    a group name and three lists of segment ids."""
    if specs is None:
        return ()
    if not isinstance(specs, list):
        raise MapError(f"{where}: `skip` must be a list")
    return tuple(_compile_skip(spec, where) for spec in specs)


def _compile_skip(spec: Any, where: str) -> Skip:
    group = spec.get("group") if isinstance(spec, dict) else None
    lists: list[tuple[str, ...]] = []
    for key in ("starts", "after", "ends"):
        ids = spec.get(key) if isinstance(spec, dict) else None
        if isinstance(ids, list) and ids and all(isinstance(i, str) for i in ids):
            lists.append(tuple(ids))
    if not (isinstance(group, str) and group) or len(lists) != 3:
        raise MapError(f"{where}: a `skip` is a `group` name and lists starts, after, ends")
    starts, after, ends = lists
    return Skip(group, starts, after, ends)


def settled(rules: tuple[Rule, ...], final: tuple[Rule, ...]) -> tuple[Rule, ...]:
    """`rules` (a message map's, at every depth) with `complete` set on each
    rule that builds a resource nothing writes to once it is registered: the
    rule has no `refs`, and no `into` of the map or of `final` names it (nor
    the name a group exports it under)."""

    def every(rs: tuple[Rule, ...]) -> list[Rule]:
        return [x for r in rs for x in ([r] if r.group is None else [r, *every(r.group[1])])]

    alls = every(rules) + every(final)
    into = {r.into for r in alls if r.into is not None}
    exports = [pair for r in alls for pair in r.exports]
    while more := {inner for inner, outer in exports if outer in into} - into:
        into |= more

    def mark(r: Rule) -> Rule:
        if r.group is not None:
            return replace(r, group=(r.group[0], tuple(map(mark, r.group[1]))))
        if r.into is None and not r.refs and r.name not in into:
            return replace(r, complete=True)
        return r

    return tuple(map(mark, rules))


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
        bool(r.get("same")),
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
            leading_after=_segment_ids(spec.get("leading_after"), "leading_after", where),
            runs=bool(spec.get("runs")),
            carry=_segment_ids(spec.get("carry"), "carry", where),
        )
    segment = str(spec.get("segment", ""))
    if not segment:
        raise MapError(f"{where}: `segment` is required")
    if "not_converted" in spec:
        return _left_out(spec, segment, comp, where)
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
    comments = spec.get("comments")
    if comments is not None and not (isinstance(comments, str) and comments.isidentifier()):
        raise MapError(f"{where}: `comments` names a top-level string element")
    if comments and notes:
        raise MapError(f"{where}: a rule has `notes` or `comments`, not both")
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
        distinct=_beside_conditional(ident, "distinct", where),
        create=_beside_conditional(ident, "create", where),
        key=key,
        refs=refs,
        notes=str(notes) if notes else None,
        comments=comments,
        note_fill=comp.segment(NOTE_MAP, where)[1] if notes else None,
        group=None,
        requires=requires,
        unless=spec.get("unless"),
        given=spec.get("given"),
        absent=_segment_ids(spec.get("absent"), "absent", where),
        present=_segment_ids(spec.get("present"), "present", where),
        follows=_follows(spec.get("follows"), where),
        also=_also(spec.get("also"), comp, where, resource_type),
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


def _beside_conditional(ident: dict[str, Any], flag: str, where: str) -> bool:
    """An identity's `distinct` or `create`, which only a `conditional` one may have."""
    value = ident.get(flag, False)
    if not isinstance(value, bool) or (value and not ident.get("conditional")):
        raise MapError(f"{where}: `{flag}` is true or false, beside `conditional`")
    return value


def _left_out(spec: dict[str, Any], segment: str, comp: Compiler, where: str) -> Rule:
    """A `not_converted` rule: a segment, `each`, `follows`, `when` and the
    reason, nothing that builds or writes."""
    reason = spec["not_converted"]
    if not (isinstance(reason, str) and reason) or set(spec) - _LEFT_OUT_KEYS:
        raise MapError(f"{where}: a `not_converted` rule has a reason and no map")
    return Rule(
        name=None,
        segment=segment,
        each=bool(spec.get("each")),
        required=False,
        when=comp.test(spec["when"], where) if "when" in spec else None,
        resource_type="",
        fill=None,
        into=None,
        conditional=None,
        key=(),
        refs=(),
        notes=None,
        group=None,
        requires=(),
        follows=_follows(spec.get("follows"), where),
        not_converted=reason,
    )


_LEFT_OUT_KEYS = frozenset({"segment", "each", "when", "follows", "not_converted"})


def _follows(spec: Any, where: str) -> tuple[str, ...] | None:
    """A rule's `follows`: the segment ids a segment must come after (the
    first is the one it belongs to; see `_scope.anchors_of`)."""
    if spec is None:
        return None
    if not isinstance(spec, list) or not spec or not all(isinstance(s, str) for s in spec):
        raise MapError(f"{where}: `follows` is a list of segment ids")
    return tuple(spec)


def _also(
    spec: Any, comp: Compiler, where: str, resource_type: str
) -> tuple[tuple[str, Fill], ...]:
    """A rule's `also`: one or a list of segment ids, each with a segment map
    of the rule's resource type."""
    if spec is None:
        return ()
    out: list[tuple[str, Fill]] = []
    for one in spec if isinstance(spec, list) else [spec]:
        if not isinstance(one, dict) or not isinstance(one.get("segment"), str):
            raise MapError(
                f"{where}: `also` is a mapping with `segment` and `map`, or a list of them"
            )
        rtype, fill = comp.segment(str(one.get("map", "")), where)
        if rtype != resource_type:
            raise MapError(f"{where}: `also` maps to {rtype}, the rule to {resource_type}")
        out.append((one["segment"], fill))
    return tuple(out)


def _segment_ids(spec: Any, key: str, where: str) -> tuple[str, ...]:
    """A rule's list of segment ids under `key` (none when absent)."""
    if spec is None:
        return ()
    if not isinstance(spec, list) or not all(isinstance(s, str) and s for s in spec):
        raise MapError(f"{where}: `{key}` is a list of segment ids")
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
        ("Goal", "subject"),
        ("Immunization", "patient"),
        ("MedicationAdministration", "subject"),
        ("MedicationRequest", "subject"),
        ("Procedure", "subject"),
        ("RelatedPerson", "patient"),
        ("ServiceRequest", "subject"),
    }
)
