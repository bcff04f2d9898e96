"""Map entry forms that combine other maps, for the IG's composite rows.

Seven forms of the map language that hand part of a segment or element to
another map, each compiled into the calling map's generated function (so
they cost nothing at run time beyond what they do):

- `from: [2, 3, 4]` in a data type map: those components, in that order,
  are the components of a nested data type map (EI-2..4 read as the HD of
  an identifier's assigner Organization, IG EI[Identifier-Organization]);
- `element: contact[]` on a segment map: its entries write one new element
  of that list per segment (IG NK1[Patient]: one Patient.contact per NK1);
- `{from: 5, segment: M, to: component[]}` in a segment map: when field 5
  repeats, segment map M once per repetition (IG OBX[Observation-Component]);
- `{from: 10, type: T}` in a segment map, T a data type map written in
  Python over a whole field (`_hooks.FIELD_HOOKS`): every repetition of
  field 10 makes one value (IG PID-10: one US Core race extension);
- `{from: 16, vocab: V, type: T}`, T a data type map declaring `recode`
  (CWE[CodeableConcept], CWE[Coding]): T with vocabulary V applied to
  component 1's code (IG PID-16: CWE[CodeableConcept] with MaritalStatus);
- `{template: "{2:V}/{3}", to: contentType}`: literal text and components,
  each optionally through vocabulary V, joined (IG ED[Attachment]: ED-2 and
  ED-3 as the MIME type). A brace that is not such a placeholder is refused,
  so a mistyped one cannot be written into every resource as text;
- `{resource_map: M, to: performer[]}` in a segment map: segment map M
  builds a resource of its own from the same segment, referenced at `to`
  (IG OBX-23, OBX-24 and OBX-15: one performing Organization).

A form used where it does not apply raises `MapError` naming the map and
entry, when the maps compile.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from thumpflow.mapping._codegen import (
    SPLIT,
    GeneratedFunction,
    build,
    context_locals,
    fhir_steps,
    identifier_code,
)
from thumpflow.mapping._memo import is_pure
from thumpflow.mapping._support import MapError

if TYPE_CHECKING:
    from thumpflow.mapping._compile import Compiler


def element_of(comp: Compiler, gen: GeneratedFunction, element: str, entries: Any) -> None:
    """`element: contact[]`: the entries write one new element (their
    `to` paths are inside it), appended to that list of the resource
    when it has any value (one Patient.contact per NK1); the list may be
    inside an object or a list element of the resource, made as needed
    (`contained[0].ingredient[]`: one ingredient of a contained Medication
    per RXC)."""
    steps = fhir_steps(element, gen.where)
    *outer, (key, last) = steps
    if last != -1 or any(idx is not None and idx < 0 for _, idx in outer):
        raise MapError(f"{gen.where}: `element` names one list, as `contact[]`")
    gen.body.append("_el = {}")
    comp._entries(gen, entries, "_el")
    gen.cleanup(entries, "_el")
    gen.body.append("if _el:")
    node = "o"
    for step, idx in outer:
        gen.body.append(f"    _sn = {node}.get({step!r})")
        if idx is None:
            gen.body.append(f"    if type(_sn) is not dict: _sn = {node}[{step!r}] = {{}}")
        else:
            gen.body.append(f"    if type(_sn) is not list: _sn = {node}[{step!r}] = []")
            gen.body.append(f"    while len(_sn) <= {idx}: _sn.append({{}})")
            gen.body.append(f"    _sn = _sn[{idx}]")
        node = "_sd"
        gen.body.append("    _sd = _sn")
    gen.body.append(f"    _sl = {node}.get({key!r})")
    gen.body.append(f"    if type(_sl) is not list: _sl = {node}[{key!r}] = []")
    gen.body.append("    _sl.append(_el)")


def regroup(
    comp: Compiler,
    gen: GeneratedFunction,
    numbers: list[Any],
    type_name: str,
    emit_if_valued: Callable[[str], None],
) -> None:
    """`from: [2, 3, 4]` inside a data type map: those components, in
    that order, are the components of a nested data type map evaluated at
    the same level (EI-2..4 read as the HD of EI[Identifier]'s assigner)."""
    where = gen.where
    if gen.level == 0 or not numbers or not all(type(n) is int and n > 0 for n in numbers):
        raise MapError(f"{where}: a list `from` takes component numbers in a data type map")
    datatype = comp._datatype(type_name, gen.level, where)
    raws = [gen.raw((n,)) for n in numbers]
    parts = gen.temp("_g")
    value = gen.temp("_v")
    gen.body.append(f"{parts} = [{', '.join(raws)}]")
    gen.body.append(f"if any({parts}):")
    mark = len(gen.body)
    if datatype in comp.resource_datatypes:
        key = gen.temp("_k")
        delimiter = SPLIT.get(gen.level, "C")
        gen.body.append(f"{key} = ({datatype!r}, {delimiter}.join({parts}))")
        gen.body.append(f"{value} = x.refs.get({key}, _MISSING)")
        gen.body.append(f"if {value} is _MISSING:")
        gen.body.append(f"    {value} = x.refs[{key}] = {datatype}({parts}, x)")
        gen.body.append(f"if {value} is not None: {value} = dict({value})")
    else:
        gen.body.append(f"{value} = {datatype}({parts}, x)")
    emit_if_valued(value)
    gen.indent(gen.body, mark)


def per_repetition(
    comp: Compiler, gen: GeneratedFunction, spec: dict[str, Any], emit: Callable[[str], None]
) -> None:
    """`{from: 5, segment: M, to: component[]}`: when field 5 repeats, segment
    map M once per repetition (the segment's fields with field 5 being that
    repetition), each non-empty result written at `to` (the IG's
    OBX[Observation-Component]: one component per OBX-5 repetition)."""
    where = gen.where
    number = spec["from"]
    if gen.level != 0 or type(number) is not int or number < 1:
        raise MapError(f"{where}: a `segment` entry reads one field: `from: 5`")
    _, fill = comp.segment(str(spec["segment"]), where)
    body = gen.body
    field = gen.field(number)
    reps, rep, parts, value = gen.temp("_q"), gen.temp("_r"), gen.temp("_p"), gen.temp("_e")
    # Without a repetition separator the field does not repeat: nothing to do.
    body.append(f"if R in {field}:")
    body.append(f"    {reps} = [r for r in {field}.split(R) if r and r != '\"\"']")
    body.append(f"    if len({reps}) > 1:")
    body.append(f"        for {rep} in {reps}:")
    mark = len(body)
    body.append(f"{parts} = list(p)")
    body.append(f"{parts}[{number}] = {rep}")
    body.append(f"{value} = {{}}")
    body.append(f"{fill.__name__}({parts}, x, {value})")
    body.append(f"if {value}:")
    inner = len(body)
    emit(value)
    gen.indent(body, inner)
    gen.indent(body, mark)
    gen.indent(body, mark)
    gen.indent(body, mark)


def segment_resource(
    comp: Compiler, gen: GeneratedFunction, spec: dict[str, Any], emit: Callable[[str], None]
) -> None:
    """`{resource_map: M, to: performer[]}` in a segment map: segment map M,
    applied to the same segment, builds a resource of its own, registered
    once per message like a data type map's (by M's `identity: {conditional:
    ...}` business identifier, else by its content: the same one met again
    is the same resource), and a Reference to it is written at `to`. For a
    resource the IG builds from several fields (OBX-23, OBX-24 and OBX-15:
    one performing Organization), which a data type map, reading one field,
    cannot. M's `identity: {gather: [address]}` (beside `conditional`): the
    resource met again by its identifier gains the `address` items it lacks
    (`_Run.add_datatype_resource`), where otherwise the first one's content
    stays."""
    where = gen.where
    if gen.level != 0:
        raise MapError(f"{where}: `resource_map` belongs to segment maps")
    name = str(spec["resource_map"])
    rtype, fill = comp.segment(name, where)
    identity = comp.segment_specs[name].get("identity") or {}
    conditional = identity.get("conditional")
    gather = identity.get("gather") or []
    if not (isinstance(gather, list) and all(isinstance(k, str) for k in gather)) or (
        gather and conditional is None
    ):
        raise MapError(f"{where}: {name}'s `gather` lists elements, beside `conditional`")
    body = gen.body
    built, found, ref = gen.temp("_e"), gen.temp("_f"), gen.temp("_v")
    body.append(f"{built} = {{}}")
    body.append(f"{fill.__name__}(p, x, {built})")
    body.append(f"if {built}:")
    mark = len(body)
    if conditional is None:
        body.append(f"{found} = None")
    else:
        body.extend(identifier_code(built, str(conditional), found))
    if gather:
        body.append(f"{ref} = x.add({rtype!r}, {built}, {found}, None, {tuple(gather)!r})")
    else:
        body.append(f"{ref} = x.add({rtype!r}, {built}, {found})")
    emit(ref)
    gen.indent(body, mark)


def whole_field(
    gen: GeneratedFunction, spec: dict[str, Any], hook: str, emit_if_valued: Callable[[str], None]
) -> None:
    """`{from: 10, type: T}`, T a field hook: the hook (the generated code's
    name for it is `hook`) gets the non-empty, non-null repetitions of field
    10, escaped, and its value, unless None, is written at `to`."""
    number = spec["from"]
    if gen.level != 0 or type(number) is not int or number < 1 or "repeat" in spec:
        raise MapError(f"{gen.where}: a field hook reads one whole field: `from: 10`, no `repeat`")
    body = gen.body
    field = gen.field(number)
    reps, value = gen.temp("_q"), gen.temp("_v")
    body.append(f"if {field}:")
    mark = len(body)
    # One repetition (the usual case) needs no split.
    body.append(
        f"{reps} = [r for r in {field}.split(R) if r and r != '\"\"'] if R in {field}"
        f" else [{field}] if {field} != '\"\"' else []"
    )
    body.append(f"{value} = {hook}({reps}, x) if {reps} else None")
    emit_if_valued(value)
    gen.indent(body, mark)


def recoded(comp: Compiler, base: str, name: str, vname: str, where: str) -> str:
    """`{vocab: V, type: T}`: the function of data type map T (`name`,
    generated as `base`) with vocabulary V (`vname`) applied
    to its code (component 1) when component 3 names the vocabulary's
    table or nothing, for a map declaring `recode: CodeableConcept` (its
    first coding is component 1's: `VocabTable.recode_concept`) or `recode:
    Coding`. Pure when `base` is, and then memoised when `base` is, in a
    memo slot of its own: the vocabulary is part of what it computes."""
    kind = comp.datatype_specs[name].get("recode")
    if kind not in ("CodeableConcept", "Coding"):
        raise MapError(f"{where}: data type {name} takes no `vocab` (it declares no `recode`)")
    cached = comp.recoded.get((base, vname))
    if cached is not None:
        return cached
    fname = comp.fname("dt", f"{base}_{vname}")
    comp.recoded[(base, vname)] = fname
    vocab = comp.vocab_names[vname]
    method = "recode_concept" if kind == "CodeableConcept" else "recode_coding"
    body = [
        "c = p[0]",
        "c = '' if c == '\"\"' else (U(c) if E in c else c).strip()",
        "s = p[2] if len(p) > 2 else ''",
        "s = '' if s == '\"\"' else (U(s) if E in s else s).strip()",
        f"return {vocab}.{method}({base}(p, x), c, s)",
    ]
    lines = [context_locals("\n".join(body)), *body]
    source = f"def {fname}(p, x):\n" + "".join(f"    {line}\n" for line in lines)
    if base in comp.pure and is_pure(source, fname, comp.pure):
        comp.pure.add(fname)
        if base in comp.memo_slots:
            comp.memo_slots[fname] = len(comp.memo_slots)
    build(source, comp.names, fname)
    return fname


_PLACEHOLDER = re.compile(r"\{([0-9.]+)(?::([A-Za-z0-9_:\[\]]+))?\}")


def template_text(comp: Compiler, gen: GeneratedFunction, template: str, where: str) -> str:
    """Emit the joining of `template`'s pieces; the local holding the text."""
    pieces: list[str] = []
    pos = 0
    for m in [*_PLACEHOLDER.finditer(template), None]:
        literal = template[pos : m.start() if m else len(template)]
        if "{" in literal or "}" in literal:
            raise MapError(f"{where}: a brace in template {template!r} is not a placeholder")
        if literal:
            pieces.append(repr(literal))
        if m is None:
            break
        local = gen.text(m.group(1))
        if m.group(2):
            pv = comp.vocab_names.get(m.group(2))
            if pv is None:
                raise MapError(f"{where}: unknown vocabulary {m.group(2)!r} in template")
            local = f"({pv}.codes.get({local}) or {pv}.codes.get({local}.upper()) or {local})"
        pieces.append(local)
        pos = m.end()
    text = gen.temp("_s")
    gen.body.append(f"{text} = {' + '.join(pieces) or repr('')}")
    return text
