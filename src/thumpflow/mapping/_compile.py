"""Compiles the YAML maps into Python functions, once, at import.

The map language has four kinds of map, mirroring the HL7 V2-to-FHIR IG:
vocabulary maps (v2 code → FHIR code), data type maps (components → FHIR
data type elements), segment maps (fields → resource elements) and message
maps (segments and groups → resources in a Bundle; see `_program`). A data
type or segment map is a list of entries; each entry reads one element
(`from`), a constant (`const`) or a template (`template`), converts it (a
primitive `type`, a nested data type map `type`, a `vocab`), and writes it at
a FHIR path (`to`), under an optional condition (`when`). Entries run in
order, so a later entry's condition sees what earlier ones wrote.

Each data type map (per nesting level) and each segment map becomes one
generated Python function whose body is the entries in order: the elements
the map reads are split out of the segment once at the top, vocabulary
lookups are dict lookups, and only non-empty values are ever written, so the
output needs no clean-up pass. The source text is generated from the
packaged maps only (names and literals are emitted with `repr`, never
spliced in raw) and compiled with `compile()` once. Errors in a map raise
`MapError` naming the map and the entry; they are found at import.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from thumpflow.mapping._codegen import (
    COLLECT,
    PAD,
    SPLIT,
    GeneratedFunction,
    build,
    fhir_steps,
    generate_twice,
    identifier_code,
)
from thumpflow.mapping._forms import (
    element_of,
    per_repetition,
    recoded,
    regroup,
    segment_resource,
    template_text,
    whole_field,
)
from thumpflow.mapping._hooks import ELEMENT_HOOKS, FIELD_HOOKS
from thumpflow.mapping._memo import is_pure, recall, remember
from thumpflow.mapping._support import Condition, Fill, MapError, read_keys
from thumpflow.mapping._values import PRIMITIVES
from thumpflow.mapping._vocab import VocabTable

# What `Ctx.refs` holds for an element not met before in the message.
_MISSING = object()

# Primitives whose value from an element's stripped text is their value from its text.
_STRIPPED_TEXTS = (PRIMITIVES["string"], PRIMITIVES["code"])

_ENTRY_KEYS = frozenset(
    {
        "from",
        "const",
        "template",
        "to",
        "type",
        "vocab",
        "as",
        "repeat",
        "when",
        "with",
        "merge",
        "join",
        "resource",
        "identity",
        "note",
        "segment",
        "resource_map",
    }
)

# `*SEG-F?G=V1,V2`: only the segments whose field G (1st component) is V1 or V2.
_ONLY = re.compile(r"\d+=[A-Za-z0-9]+(?:,[A-Za-z0-9]+)*")


def _one_text(entries: list[Any]) -> str | None:
    """The key of a data type map whose one entry writes its first item's
    text there (`{from: 1, to: valueString}`), else None."""
    if len(entries) != 1 or not isinstance(entries[0], dict):
        return None
    (entry,) = entries
    to = entry.get("to")
    if set(entry) != {"from", "to"} or entry["from"] != 1 or not isinstance(to, str):
        return None
    return to if to.isidentifier() else None


def is_key_path(part: str) -> bool:
    """Whether a key part is an element path (`5.1`, `$MSH-10`, `@ORC-2.1`),
    not a rule's name."""
    return part[:1].isdigit() or part.startswith(("$", "@"))


class Compiler:
    """Every compiled map, by name: generates the functions and builds them."""

    def __init__(
        self,
        vocab: dict[str, VocabTable],
        datatype_specs: dict[str, dict[str, Any]],
        segment_specs: dict[str, dict[str, Any]],
    ) -> None:
        self.datatype_specs = datatype_specs
        self.segment_specs = segment_specs
        self.names: dict[str, Any] = {
            "_out": read_keys,
            "_MISSING": _MISSING,
            "_PAD": PAD,
            "_remember": remember,
            "_recall": recall,
        }
        for pname, conv in PRIMITIVES.items():
            self.names[f"P_{pname}"] = conv
        for i, vname in enumerate(sorted(vocab)):
            self.names[f"V{i}"] = vocab[vname]
        self.vocab_names = {vname: f"V{i}" for i, vname in enumerate(sorted(vocab))}
        self.datatypes: dict[tuple[str, int], str] = {}
        # Data type functions that build a resource and return a Reference.
        self.resource_datatypes: set[str] = set()
        # Pure data type functions (see `_memo`), and the memo slot of those
        # whose results are kept across messages.
        self.pure: set[str] = set()
        self.memo_slots: dict[str, int] = {}
        # Data type functions that write one element's text at one key (as
        # `ST[valueString]`), and that key: callers inline them.
        self.one_text: dict[str, str] = {}
        self.segments: dict[tuple[str, tuple[str, ...], bool], tuple[str, Fill]] = {}
        # Data type functions with a vocabulary applied, by (function, vocabulary).
        self.recoded: dict[tuple[str, str], str] = {}
        self.fnames: set[str] = set()

    # -- public: used by the engine --

    def segment(self, name: str, where: str, key: tuple[str, ...] = ()) -> tuple[str, Fill]:
        """The resource type of segment map `name` and its function
        `(fields, ctx, out) -> texts`, which writes into `out` and, for a
        rule with a `key`, returns the unescaped, stripped text at each of its
        element paths (field paths or `$` message paths), else None."""
        paths = tuple(part for part in key if is_key_path(part))
        found = self.segments.get((name, paths, bool(key)))
        if found is not None:
            return found
        spec = self.segment_specs.get(name)
        if spec is None:
            raise MapError(f"{where}: unknown segment map {name!r}")
        fname = self.fname("seg", name)

        def generate(gen: GeneratedFunction) -> None:
            element = spec.get("element")
            if element is None:
                self._entries(gen, spec.get("entries"), "o")
                gen.cleanup(spec["entries"], "o")
            else:
                element_of(self, gen, str(element), spec.get("entries"))
            if key:
                gen.body.append(f"return ({''.join(gen.text(path) + ', ' for path in paths)})")

        gen = generate_twice(GeneratedFunction(fname, 0, f"segment {name}"), generate)
        fill: Fill = self._define(gen.source("p, x, o"), fname)
        rtype = str(spec.get("resourceType", ""))
        self.segments[(name, paths, bool(key))] = (rtype, fill)
        return rtype, fill

    def test(self, spec: Any, where: str) -> Condition:
        """A rule's `when` as code over a segment's fields `p` (`set` and
        `unset` see an empty output)."""
        gen = GeneratedFunction("when", 0, where)
        expr = gen.condition(spec, "{}")
        return Condition(tuple(gen.prelude()), expr)

    def _define(self, source: str, fname: str) -> Any:
        """Compile `source` into the shared namespace (so generated functions
        find each other by name at call time) and return `fname`."""
        return build(source, self.names, fname)

    # -- generation --

    def fname(self, kind: str, name: str) -> str:
        """A name for a new generated function, unique in the shared namespace."""
        fname = f"{kind}_" + re.sub(r"\W", "_", name)
        while fname in self.fnames:
            fname += "_"
        self.fnames.add(fname)
        return fname

    def _datatype(self, name: str, level: int, where: str) -> str:
        cached = self.datatypes.get((name, level))
        if cached is not None:
            return cached
        spec = self.datatype_specs.get(name)
        if spec is None:
            raise MapError(f"{where}: unknown data type map {name!r}")
        fname = self.fname("dt", f"{name}_{level}")
        self.datatypes[(name, level)] = fname
        if "python" in spec:
            return self._hook(name, str(spec["python"]), level, fname, where)
        entries = list(spec.get("entries") or [])
        if "extends" in spec:
            base = self.datatype_specs.get(str(spec["extends"]))
            if base is None or "entries" not in base:
                raise MapError(f"{where}: data type {name} extends unknown {spec['extends']!r}")
            entries = list(base["entries"]) + entries
        key = _one_text(entries)
        if key is not None and "resourceType" not in spec:
            self.one_text[fname] = key

        def generate(gen: GeneratedFunction) -> None:
            gen.body.append("o = {}")
            gen.fresh = "o"
            self._entries(gen, entries, "o")
            gen.cleanup(entries, "o")

        gen = generate_twice(GeneratedFunction(fname, level, f"data type {name}"), generate)
        gen.body.append("if not o: return None")
        resource_type = spec.get("resourceType")
        if resource_type is None:
            gen.body.append("return o")
        else:
            self.resource_datatypes.add(fname)
            ident = spec.get("identity") or {}
            conditional = ident.get("conditional")
            if conditional is None:
                gen.body.append(f"return x.add({str(resource_type)!r}, o, None)")
            else:
                gen.body.extend(identifier_code("o", str(conditional), "_f"))
                gen.body.append(f"return x.add({str(resource_type)!r}, o, _f)")
        source = gen.source()
        if resource_type is None and is_pure(source, fname, self.pure):
            self.pure.add(fname)
            if spec.get("memo"):
                self.memo_slots[fname] = len(self.memo_slots)
        elif spec.get("memo"):
            raise MapError(f"{where}: data type {name} is not pure, so it cannot be memoised")
        self._define(source, fname)
        return fname

    def _hook(self, name: str, hook: str, level: int, fname: str, where: str) -> str:
        """A data type map written in Python over one element (`python:
        <hook>`, see `_hooks.ELEMENT_HOOKS`): called with its components."""
        if hook not in ELEMENT_HOOKS or level != 1:
            raise MapError(f"{where}: data type {name}: no hook {hook!r} for this level")
        self.names[f"H_{hook}"] = ELEMENT_HOOKS[hook]
        self.resource_datatypes.add(fname)
        self._define(f"def {fname}(p, x):\n    return H_{hook}(p, x)\n", fname)
        return fname

    def _entries(self, gen: GeneratedFunction, specs: Any, out: str) -> None:
        if not isinstance(specs, list):
            raise MapError(f"{gen.where}: `entries` must be a list")
        where = gen.where
        for i, spec in enumerate(specs):
            gen.where = f"{where} entry {i + 1}"
            self._entry(gen, spec, out)
        gen.where = where

    def _entry(self, gen: GeneratedFunction, spec: Any, out: str) -> None:
        where = gen.where
        if not isinstance(spec, dict):
            raise MapError(f"{where}: an entry is a mapping")
        unknown = set(spec) - _ENTRY_KEYS
        if unknown:
            raise MapError(f"{where}: unknown keys {sorted(unknown)}")
        if "to" not in spec:
            raise MapError(f"{where}: `to` is required")
        kinds = [k for k in ("from", "const", "template", "resource_map") if k in spec]
        if len(kinds) != 1:
            raise MapError(f"{where}: exactly one of from/const/template/resource_map is required")
        if "resource" in spec or "note" in spec:
            raise MapError(f"{where}: `resource`/`note` belong to `type` entries")
        steps = fhir_steps(str(spec["to"]), where)
        with_ = [(fhir_steps(str(k), where), v) for k, v in (spec.get("with") or {}).items()]
        if any(v is None for _, v in with_):
            raise MapError(f"{where}: a `with` element needs a value")
        merge = bool(spec.get("merge"))
        body = gen.body
        if "when" in spec:
            body.append(f"if {gen.condition(spec['when'], out)}:")
        inner = len(body)

        def emit(value: str) -> None:
            anchor = gen.write(steps, value, out, merge, bool(with_))
            for wsteps, wvalue in with_:
                gen.write(wsteps, repr(wvalue), anchor, False, False)

        self._produce(gen, spec, emit)
        if "when" in spec:
            gen.indent(body, inner)

    def _produce(
        self, gen: GeneratedFunction, spec: dict[str, Any], emit: Callable[[str], None]
    ) -> None:
        """Append the code computing the entry's value(s); `emit(name)` appends
        the write of one non-empty value held in local `name`."""
        where = gen.where
        body = gen.body
        if "resource_map" in spec:
            segment_resource(self, gen, spec, emit)
            return
        if "const" in spec:
            if spec["const"] is None:
                raise MapError(f"{where}: a `const` needs a value")
            value = gen.temp("_v")
            body.append(f"{value} = {spec['const']!r}")
            emit(value)
            return
        vocab: str | None = None
        if "vocab" in spec:
            vocab = self.vocab_names.get(str(spec["vocab"]))
            if vocab is None:
                raise MapError(f"{where}: unknown vocabulary {spec['vocab']!r}")
        as_ = str(spec.get("as", "code"))
        method = {"code": "code", "Coding": "coding", "CodeableConcept": "concept"}.get(as_)
        if method is None:
            raise MapError(f"{where}: `as` must be code, Coding or CodeableConcept")
        type_name = str(spec.get("type", "string"))

        def convert(text: str, strip_for_vocab: bool) -> str:
            value = gen.temp("_v")
            if vocab is not None:
                code = gen.temp("_k")
                body.append(f"{code} = {text}.strip()" if strip_for_vocab else f"{code} = {text}")
                lookup = (
                    f"({vocab}.codes.get({code}) or {vocab}.code({code}))"
                    if method == "code"
                    else f"{vocab}.{method}({code})"
                )
                body.append(f"{value} = {lookup} if {code} else None")
            elif PRIMITIVES.get(type_name) in (PRIMITIVES["string"], PRIMITIVES["code"]):
                gen.texts.add(value)
                if PRIMITIVES.get(type_name) is PRIMITIVES["string"]:
                    body.append(f"{value} = {text}.strip()")
                else:
                    body.append(f"{value} = ' '.join({text}.split())")
            else:
                if type_name not in PRIMITIVES:
                    raise MapError(f"{where}: {type_name!r} is neither a primitive nor usable here")
                body.append(f"{value} = P_{type_name}({text}, x.tz)")
            return value

        def emit_if_valued(value: str) -> None:
            body.append(f"if {value}:" if value in gen.texts else f"if {value} is not None:")
            mark = len(body)
            emit(value)
            gen.indent(body, mark)

        if "template" in spec:
            text = template_text(self, gen, str(spec["template"]), where)
            if vocab is not None:
                value = gen.temp("_v")
                body.append(f"{value} = {vocab}.{method}({text})")
            else:
                value = convert(text, False)
            emit_if_valued(value)
            return
        if isinstance(spec["from"], list):
            regroup(self, gen, spec["from"], type_name, emit_if_valued)
            return
        if "segment" in spec:
            per_repetition(self, gen, spec, emit)
            return
        path = str(spec["from"])
        if path.startswith("*"):
            seg_field, _, only = path[1:].partition("?")
            if COLLECT.fullmatch(seg_field) is None or (only and not _ONLY.fullmatch(only)):
                raise MapError(f"{where}: `*` sources are `*SEG-F[?G=V,...]`, got {path[1:]!r}")
            text = gen.temp("_s")
            body.append(f"{text} = x.mget({path!r})")
            body.append(f"if {text}:")
            mark = len(body)
            emit_if_valued(convert(text, False))
            gen.indent(body, mark)
            return
        if path[:1] in ("$", "@"):
            local = gen.text(path)
            body.append(f"if {local}:")
            mark = len(body)
            value = gen.temp("_v")
            if vocab is not None:
                body.append(f"{value} = {vocab}.{method}({local})")
            else:
                value = convert(local, False)
            emit_if_valued(value)
            gen.indent(body, mark)
            return
        hook = str(self.datatype_specs.get(type_name, {}).get("python", ""))
        if hook in FIELD_HOOKS:
            self.names[f"H_{hook}"] = FIELD_HOOKS[hook]
            whole_field(gen, spec, f"H_{hook}", emit_if_valued)
            return
        idx = gen.index(path)
        repeat = bool(spec.get("repeat")) and gen.level == 0
        join = spec.get("join")
        composite = type_name not in PRIMITIVES and (vocab is None or "type" in spec)
        nested = gen.level + len(idx)
        datatype = self._datatype(type_name, nested, where) if composite else ""
        if composite and vocab is not None:
            if "as" in spec:
                raise MapError(f"{where}: `as` does not go with a data type map's `type`")
            datatype = recoded(self, datatype, type_name, str(spec["vocab"]), where)

        def one(raw: str) -> None:
            if composite:
                parts = f"{raw}.split({SPLIT[nested]})" if nested in SPLIT else f"[{raw}]"
                value = gen.temp("_v")
                if datatype in self.resource_datatypes:
                    # The same element met again in this message (an assigning
                    # authority, a clinician, a location) refers to the resource
                    # already built: a new Reference dict, no rebuild.
                    key = gen.temp("_k")
                    body.append(f"{key} = ({datatype!r}, {raw})")
                    body.append(f"{value} = x.refs.get({key}, _MISSING)")
                    body.append(f"if {value} is _MISSING:")
                    body.append(f"    {value} = x.refs[{key}] = {datatype}({parts}, x)")
                    body.append(f"if {value} is not None: {value} = dict({value})")
                elif datatype in self.memo_slots:
                    # Met before in this context (a code, a unit): a copy of
                    # the result kept, no rebuild.
                    key = gen.temp("_k")
                    body.append(f"{key} = ({self.memo_slots[datatype]}, {raw})")
                    body.append(f"{value} = _M.get({key})")
                    body.append(f"if {value} is None:")
                    body.append(f"    {value} = _remember(_M, {key}, {datatype}({parts}, x))")
                    body.append(f"else: {value} = _recall({value})")
                elif datatype in self.one_text:
                    gen.one_text(raw, nested, self.one_text[datatype], emit)
                    return
                else:
                    body.append(f"{value} = {datatype}({parts}, x)")
                emit_if_valued(value)
                return
            known = "t" + raw[1:]
            if (known in gen.known or known in gen.ahead) and (
                vocab is not None or PRIMITIVES.get(type_name) in _STRIPPED_TEXTS
            ):
                # The prelude has this element's unescaped, stripped text already.
                if vocab is None and PRIMITIVES.get(type_name) is PRIMITIVES["string"]:
                    # A string is that text, when it is not empty.
                    gen.texts.add(known)
                    emit_if_valued(known)
                    return
                emit_if_valued(convert(known, False))
                return
            text = gen.temp("_u")
            body.append(f"{text} = U({raw}) if E in {raw} else {raw}")
            emit_if_valued(convert(text, True))

        if not repeat:
            raw = gen.raw(idx)
            body.append(f"if {raw}:")
            mark = len(body)
            one(raw)
            gen.indent(body, mark)
            return
        field = gen.field(idx[0])
        rep = gen.temp("_r")
        raws = gen.temp("_q")
        body.append(f"if {field}:")
        outer = len(body)
        if join is not None:
            body.append(f"{raws} = []")
        body.append(f"for {rep} in {field}.split(R):")
        mark = len(body)
        element = rep
        if len(idx) > 1:
            comps = gen.temp("_p")
            element = gen.temp("_e")
            body.append(f"{comps} = {rep}.split(C)")
            body.append(f"if len({comps}) < {idx[1]}: continue")
            body.append(f"{element} = {comps}[{idx[1] - 1}]")
            if len(idx) > 2:
                subs = gen.temp("_p")
                body.append(f"{subs} = {element}.split(S)")
                body.append(
                    f"{element} = {subs}[{idx[2] - 1}] if len({subs}) > {idx[2] - 1} else ''"
                )
        body.append(f"if not {element} or {element} == '\"\"': continue")
        if join is not None:
            body.append(f"{raws}.append({element})")
            gen.indent(body, mark)
            joined = gen.temp("_j")
            body.append(f"if {raws}:")
            mark = len(body)
            body.append(f"{joined} = {str(join)!r}.join({raws})")
            one(joined)
            gen.indent(body, mark)
        else:
            one(element)
            gen.indent(body, mark)
        gen.indent(body, outer)
