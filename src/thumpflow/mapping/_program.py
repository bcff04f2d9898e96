"""Message maps compiled into one Python function each: the map's program.

`compile_program` turns a message map's rules (and the final rules every
map ends with) into the source of one function, compiled once, when the
maps compile. The program applies the rules in order to a message's
segments, as the map language defines them (`_rules`): a rule's `unless`,
`given`, `needs`, `required`, `each`, `follows`, `when` and `not_converted`,
group instances, `also`, the id
basis of each resource (its business identifier, else its key's element
texts and named resources' ids, else the sender, control id and position),
and, once every rule has run, each rule's references, in the order the
resources were built, by a generated writer per rule. The names rules give
their resources are local lists of the program, one per scope (the message,
each group instance): a name in a group instance hides the enclosing one's
only when the instance has built a resource of that name.

Guarantees: the program does what interpreting the same rules does, output
and warnings alike (a property test against a plain interpreter); the
source is generated from the packaged maps only (names checked as
identifiers, literals emitted with `repr`); a rule that cannot be compiled
raises `MapError` naming the map and rule.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from thumpflow.fhir import deterministic_id
from thumpflow.mapping._codegen import (
    GeneratedFunction,
    build,
    context_locals,
    fhir_steps,
    identifier_code,
)
from thumpflow.mapping._compile import is_key_path
from thumpflow.mapping._rules import Ref, Rule, rule_names
from thumpflow.mapping._scope import (
    anchors_of,
    carried,
    first_anchored,
    group_instances,
    segment_positions,
    with_leading,
)
from thumpflow.mapping._support import Program, as_create, read_keys

if TYPE_CHECKING:
    from thumpflow.mapping._compile import Compiler

_HELPERS = {
    "_deterministic_id": deterministic_id,
    "_anchors_of": anchors_of,
    "_first_anchored": first_anchored,
    "_group_instances": group_instances,
    "_carried": carried,
    "_segment_positions": segment_positions,
    "_with_leading": with_leading,
    "_out": read_keys,
    "_as_create": as_create,
}


def _has_distinct(rules: tuple[Rule, ...]) -> bool:
    return any(r.distinct or (r.group is not None and _has_distinct(r.group[1])) for r in rules)


def compile_program(
    comp: Compiler, structure: str, rules: tuple[Rule, ...], final: tuple[Rule, ...]
) -> Program:
    """The program of message map `structure`: `rules`, then `final`, at the
    message's scope (see the module docstring)."""
    writer = _ProgramWriter(comp, structure)
    return writer.program(rules, final)


class _ProgramWriter:
    """Writes the source of one program and of its reference writers."""

    def __init__(self, comp: Compiler, structure: str) -> None:
        self.comp = comp
        self.structure = structure
        self.stem = re.sub(r"\W", "_", structure)
        self.lines: list[str] = []
        # Temporaries of the inline writes (`GeneratedFunction.write`).
        self.gen = GeneratedFunction("program", 0, f"message {structure}")
        self.writers = 0
        self.distinct = False

    def line(self, depth: int, text: str) -> None:
        self.lines.append("    " * depth + text)

    def program(self, rules: tuple[Rule, ...], final: tuple[Rule, ...]) -> Program:
        fname = self.comp.fname("program", self.structure)
        # Maps with `distinct` rules note, at each group instance's end, what
        # its resources hold (`_Run.settle`); the others pay nothing for it.
        self.distinct = _has_distinct(rules)
        root = rule_names(rules) | rule_names(final)
        frames = [root]
        self.line(0, f"def {fname}(run, ids_of, fields, A0):")
        self.line(1, "x = run.ctx")
        self.line(1, "register = run.register")
        self.line(1, "pending = []")
        self.line(1, "S0 = run.scope = range(len(ids_of))")
        self.line(1, "KC0 = {}")
        for name in sorted(root):
            self.line(1, f"{_local(0, name)} = []")
        for rule in rules:
            self.rule(rule, frames, 1)
        candidates = tuple(r.segment for r in rules if r.required)
        first = rules[0].segment if rules else ""
        self.line(
            1, f"if not run.order: run.nothing({self.structure!r}, {candidates!r}, {first!r})"
        )
        self.line(1, "before = len(run.order)")
        for rule in final:
            self.rule(rule, frames, 1)
        last = sorted({r.name for r in final if r.name})
        self.line(1, f"run.put_last(before, [{''.join(_local(0, n) + ', ' for n in last)}])")
        self.line(1, "for w, b, e in pending: w(run, b, e)")
        # The context's locals the inlined conditions use.
        defined = context_locals("\n".join(self.lines))
        if defined:
            self.lines.insert(2, "    " + defined)
        source = "\n".join(self.lines) + "\n"
        namespace = self.comp.names
        for name, helper in _HELPERS.items():
            namespace.setdefault(name, helper)
        program: Program = build(source, namespace, fname)
        return program

    # -- rules -------------------------------------------------------------

    def rule(self, rule: Rule, frames: list[frozenset[str]], ind: int) -> None:
        d = len(frames) - 1
        if rule.group is not None:
            self.group(rule, frames, ind)
            return
        seg = rule.segment
        if rule.unless is not None:
            unless = _lookup(rule.unless, frames)
            if unless != "()":
                self.line(ind, f"if not {unless}:")
                ind += 1
        if rule.given is not None:
            # No scope defining the name: the rule never applies.
            self.line(ind, f"if {_lookup(rule.given, frames)}:")
            ind += 1
        if rule.absent:
            self.line(ind, f"if not any(s in A{d} for s in {rule.absent!r}):")
            ind += 1
        if rule.present:
            self.line(ind, f"if any(s in A{d} for s in {rule.present!r}):")
            ind += 1
        if rule.needs is not None:
            needs = _lookup(rule.needs, frames)
            self.line(ind, f"if not {needs}:")
            self.line(
                ind + 1,
                f"if {seg!r} in ids_of:"
                f" run.unreferenced({seg!r}, {rule.resource_type!r}, {rule.needs!r})",
            )
            self.line(ind, "else:")
            ind += 1
        self.line(ind, f"P = A{d}.get({seg!r})")
        if rule.required:
            self.line(ind, f"if P is None: run.missing({self.structure!r}, {seg!r})")
        self.line(ind, "if P is not None:")
        ind += 1
        anchor = "-1"
        if rule.follows is not None:
            anchor = "a"
            if rule.each:
                # Rules of one segment id and one `follows` share the anchors.
                key = (seg, rule.follows)
                self.line(ind, f"K = KC{d}.get({key!r})")
                self.line(
                    ind,
                    f"if K is None: K = KC{d}[{key!r}] = "
                    f"_anchors_of(ids_of, S{d}, P, {rule.follows!r})",
                )
            else:
                choices = (rule.follows, *rule.else_follows)
                self.line(ind, f"pos, a = _first_anchored(ids_of, S{d}, P, {choices!r})")
        if rule.each:
            self.line(ind, "for pos in P:")
            ind += 1
        elif rule.follows is None:
            self.line(ind, "pos = P[0]")
        self.line(ind, "i = pos" if d == 0 else f"i = S{d}[pos]")
        self.line(ind, "p = fields[i]")
        if rule.follows is not None:
            if rule.each:
                self.line(ind, "a = K[pos]")
            self.line(ind, "if a != -2:")
            ind += 1
        if rule.when is not None:
            for text in rule.when.prelude:
                self.line(ind, text)
            self.line(ind, f"if {rule.when.expression}:")
            ind += 1
        if rule.not_converted is not None:
            reason = rule.not_converted
            self.line(ind, f"run.not_converted({self.structure!r}, {seg!r}, {reason!r})")
        elif rule.into is not None:
            self.into(rule, frames, ind)
        else:
            if rule.create:
                # Not even filled in a batch: what its data types register
                # (ORC-12's Practitioner) would be nothing's.
                self.line(ind, "if not run.batch:")
                ind += 1
            self.build(rule, frames, ind, anchor)

    def group(self, rule: Rule, frames: list[frozenset[str]], ind: int) -> None:
        assert rule.group is not None
        starts, inner = rule.group
        d = len(frames)
        runs = ", True" if rule.runs else ""
        self.line(ind, f"I = _group_instances(S{d - 1}, ids_of, {starts!r}{runs})")
        # Required: a start segment, even when segments without one are an
        # instance (`leading_after`: OML^O33's orders before any SPM).
        if rule.required:
            self.line(ind, f"if not I: run.missing({self.structure!r}, {starts[0]!r})")
        if rule.carry:
            self.line(ind, f"I = _carried(S{d - 1}, ids_of, I, {rule.carry!r})")
        if rule.leading_after:
            self.line(ind, f"I = _with_leading(S{d - 1}, ids_of, I, {rule.leading_after!r})")
        if rule.whole_without_start:
            self.line(ind, f"if not I: I = [list(S{d - 1})]")
        self.line(ind, f"for S{d} in I:")
        self.line(ind + 1, f"run.scope = S{d}")
        self.line(ind + 1, f"A{d} = _segment_positions(list(map(ids_of.__getitem__, S{d})))")
        self.line(ind + 1, f"KC{d} = {{}}")
        names = rule_names(inner)
        for name in sorted(names):
            self.line(ind + 1, f"{_local(d, name)} = []")
        for r in inner:
            self.rule(r, [*frames, names], ind + 1)
        for name, outer in rule.exports:
            self.line(ind + 1, f"{_local(d - 1, outer)}.extend({_local(d, name)})")
        if self.distinct:
            self.line(ind + 1, "if run.unsettled: run.settle()")
        self.line(ind, f"run.scope = S{d - 1}")

    def into(self, rule: Rule, frames: list[frozenset[str]], ind: int) -> None:
        assert rule.into is not None and rule.fill is not None
        targets = _lookup(rule.into, frames)
        if targets == "()":
            self.line(ind, "pass")
            return
        self.line(ind, f"T = {targets}")
        if rule.notes is None and rule.comments is None:
            self.line(ind, f"if T: {rule.fill.__name__}(p, x, T[0].resource)")
            return
        self.line(ind, "if T:")
        self.line(ind + 1, "o = T[0].resource")
        self.line(ind + 1, f"{rule.fill.__name__}(p, x, o)")
        self.notes(rule, len(frames) - 1, ind + 1)

    def build(self, rule: Rule, frames: list[frozenset[str]], ind: int, anchor: str) -> None:
        assert rule.fill is not None
        d = len(frames) - 1
        rtype = rule.resource_type
        self.line(ind, f"o = {{'resourceType': {rtype!r}}}")
        self.line(ind, f"t = {rule.fill.__name__}(p, x, o)")
        for also, fill in rule.also:
            self.line(ind, f"Q = A{d}.get({also!r})")
            seg_at = "Q[0]" if d == 0 else f"S{d}[Q[0]]"
            self.line(ind, f"if Q is not None: {fill.__name__}(fields[{seg_at}], x, o)")
        if rule.notes is not None or rule.comments is not None:
            self.notes(rule, d, ind)
        for path, field, reason in rule.requires:
            keys = ", ".join(repr(k) for k in path.split("."))
            self.line(
                ind,
                f"if _out(o, {keys}) is None: run.refuse({reason!r}, {rule.segment!r}, {field!r})",
            )
        fallback = "(run.message.sending_application, run.message.control_id, str(pos))"
        parts = []
        texts = 0
        for part in rule.key:
            if is_key_path(part):
                parts.append(f"t[{texts}]")
                texts += 1
            else:
                named = _lookup(part, frames)
                parts.append("''" if named == "()" else f"({named}[0].rid if {named} else '')")
        key = f"({''.join(p + ', ' for p in parts)})"
        at = ind
        if rule.conditional is not None:
            for text in identifier_code("o", rule.conditional, "f"):
                self.line(ind, text)
            self.line(ind, "if f is not None: k = f")
            self.line(ind, "else:")
            at = ind + 1
        else:
            self.line(ind, "f = None")
        if parts:
            self.line(at, f"k = {key}")
            self.line(at, f"if not any(k): k = {fallback}")
        else:
            self.line(at, f"k = {fallback}")
        complete = ", True" if rule.complete else ""
        rid = f"_deterministic_id({rtype!r}, *k)"
        if rule.distinct:
            # Only a resource whose identifier another segment's holds
            # already pays for more than the lookup.
            self.line(ind, f"r = {rid}")
            self.line(
                ind,
                "if f is not None and (r in run.built and run.built[r].seg != i"
                f" or run.held_elsewhere({rtype!r}, o, {rule.conditional!r}, i)):",
            )
            self.line(ind + 1, f"k = {key if parts else fallback}")
            if parts:
                self.line(ind + 1, f"if not any(k): k = {fallback}")
            self.line(
                ind + 1,
                f"f, k = run.repeated({rtype!r}, o, f, k,"
                f" path={rule.conditional!r}, segment={rule.segment!r}, seg=i)",
            )
            self.line(ind + 1, f"r = {rid}")
            rid = "r"
        if rule.create:
            # Created where absent: only by an identifier with a system (a
            # map's `when` says which fields give one, `Rule.create`).
            self.line(ind, "if f is not None and f[0]:")
            ind += 1
        self.line(ind, f"b = register({rtype!r}, o, f, k, {rid}, i, {anchor}{complete})")
        if rule.create:
            self.line(ind, "_as_create(b.entry)")
        if rule.distinct:
            self.line(ind, f"run.hold({rtype!r}, b.resource, {rule.conditional!r}, i)")
        if rule.name and rule.complete:
            # A resource registered again (see `_Run.register`) is named once
            # per segment it belongs to.
            named = _local(d, rule.name)
            self.line(
                ind,
                f"if b is run.order[-1] or all(c.rid != b.rid or c.anchor != b.anchor"
                f" for c in {named}): {named}.append(b)",
            )
        elif rule.name:
            self.line(ind, f"{_local(d, rule.name)}.append(b)")
        if rule.refs:
            writer, env = self.refs(rule, frames)
            self.line(ind, f"pending.append(({writer}, b, ({''.join(e + ', ' for e in env)})))")

    def notes(self, rule: Rule, d: int, ind: int) -> None:
        """The NTEs right after the segment (stepping over its PRTs, which the
        v2.7+ groups put between a segment and its notes: OBX, {PRT}, {NTE}):
        each one with a text (NTE-3) an Annotation at the rule's `notes` path in
        `o`, its author and time (NTE-5, NTE-6) filled by the note map when the
        NTE has those fields; with `comments` instead, their texts one line
        each at that string element, after any text it holds."""
        comments = rule.comments
        if comments is not None:
            self.line(ind, "c = []")
        self.line(ind, f"for q in range(pos + 1, len(S{d})):")
        self.line(ind + 1, "j = q" if d == 0 else f"j = S{d}[q]")
        self.line(ind + 1, "if ids_of[j] != 'NTE':")
        self.line(ind + 2, "if ids_of[j] == 'PRT': continue")
        self.line(ind + 2, "break")
        self.line(ind + 1, "n = run.note_text(fields[j])")
        if comments is not None:
            self.line(ind + 1, "if n: c.append(n)")
            self.line(ind, "if c:")
            self.line(ind + 1, "n = '\\n'.join(c)")
            c = repr(comments)
            self.line(ind + 1, f"o[{c}] = o[{c}] + '\\n' + n if {c} in o else n")
            return
        assert rule.notes is not None and rule.note_fill is not None
        self.line(ind + 1, "if n:")
        self.line(ind + 2, "v = {'text': n}")
        self.line(ind + 2, f"if len(fields[j]) > 5: {rule.note_fill.__name__}(fields[j], x, v)")
        for text in self.write(rule.notes, "v", "o", anchored=False):
            self.line(ind + 2, text)

    def write(
        self, path: str, value: str, target: str, *, anchored: bool, join: bool = False
    ) -> list[str]:
        """The code writing `value` at `path` under `target`; with `anchored`,
        the anchor (see `GeneratedFunction.write`) is left in local `_anchor`;
        with `join`, a value written at element n of a list (`basedOn[0]`)
        joins what that element holds (a reference: the report's order, its
        identifier and then its reference)."""
        gen = self.gen
        gen.body = []
        steps = fhir_steps(path, gen.where)
        at_element = join and steps[-1][1] is not None and steps[-1][1] >= 0
        anchor = gen.write(steps, value, target, at_element, anchored)
        return [*gen.body, f"_anchor = {anchor}"] if anchored else gen.body

    # -- references ----------------------------------------------------------

    def refs(self, rule: Rule, frames: list[frozenset[str]]) -> tuple[str, list[str]]:
        """The name of a new writer of `rule`'s references and the lists of
        named resources (the program's locals) it reads."""
        self.writers += 1
        fname = self.comp.fname("refs", f"{self.stem}_{self.writers}")
        env: list[str] = []
        for ref in rule.refs:
            if ref.name != "*":
                for d, names in enumerate(frames):
                    local = _local(d, ref.name)
                    if ref.name in names and local not in env:
                        env.append(local)
        lines = [f"def {fname}(run, b, e):"]
        if env:
            lines.append(f"    {''.join(e + ', ' for e in env)}= e")
        lines.append("    r = b.resource")
        for ref in rule.refs:
            lines.extend("    " + text for text in self.ref(ref, frames))
        build("\n".join(lines) + "\n", self.comp.names, fname)
        return fname, env

    def ref(self, ref: Ref, frames: list[frozenset[str]]) -> list[str]:
        """The code writing one reference (`to`, `with`, a ref's `map`)."""
        if ref.name == "*":
            targets = "run.order"
        else:
            targets = _lookup(ref.name, frames)
            if targets == "()":
                return []
        steps = fhir_steps(ref.to, f"message {self.structure}")
        plain = not ref.with_ and ref.fill is None
        top = len(steps) == 1 and plain
        if (
            top
            and steps[0][1] is None
            and not (ref.all or ref.own or ref.anchor or ref.same or ref.name == "*")
        ):
            # One named resource at a key: the first, unless it is this one.
            return [
                f"if {targets} and {targets}[0] is not b:",
                f"    r[{ref.to!r}] = {{'reference': {targets}[0].ref}}",
            ]
        out = [f"for c in {targets}:"]
        if ref.own:
            out.append("    if c.anchor != b.seg: continue")
        if ref.anchor:
            out.append("    if c.seg != b.anchor: continue")
        if ref.same:
            out.append("    if c.seg != b.seg: continue")
        out.append("    if c is not b:")
        if top and steps[0][1] == -1:
            # `to: key[]`: the list made once, when a first reference is written.
            key = steps[0][0]
            out[:0] = ["s = None"]
            out.append("        if s is None:")
            out.append(f"            s = r.get({key!r})")
            out.append(f"            if type(s) is not list: s = r[{key!r}] = []")
            out.append("        s.append({'reference': c.ref})")
        else:
            out.append("        v = {'reference': c.ref}")
            out.extend(
                "        " + text for text in self.write(ref.to, "v", "r", anchored=True, join=True)
            )
            for path, value in ref.with_:
                out.extend(
                    "        " + text
                    for text in self.write(path, repr(value), "_anchor", anchored=False)
                )
            if ref.fill is not None:
                fill = ref.fill.__name__
                out.append(f"        if c.seg >= 0: {fill}(run.fields[c.seg], run.ctx, _anchor)")
        if not ref.all:
            out.append("    break")
        return out


def _local(depth: int, name: str) -> str:
    return f"N{depth}_{name}"


def _lookup(name: str, frames: list[frozenset[str]]) -> str:
    """The expression for the resources named `name` seen from the innermost
    of `frames`: the innermost non-empty list of a scope defining it; `()`
    when no scope does."""
    found = [_local(d, name) for d in reversed(range(len(frames))) if name in frames[d]]
    if not found:
        return "()"
    return found[0] if len(found) == 1 else "(" + " or ".join(found) + ")"
