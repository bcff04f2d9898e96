"""Compiles the YAML maps into closures, once, at import.

The map language (see `maps/README.md`) has four kinds of map, mirroring the
HL7 V2-to-FHIR IG: vocabulary maps (v2 code → FHIR code), data type maps
(components → FHIR data type elements), segment maps (fields → resource
elements) and message maps (segments and groups → resources in a Bundle).
A data type or segment map is a list of entries; each entry reads one element
(`from`), a constant (`const`) or a template (`template`), converts it (a
primitive `type`, a nested data type map `type`, a `vocab`), and writes it at
a FHIR path (`to`), under an optional condition (`when`). Errors in a map file
raise `MapError` naming the file and the entry; they are found at import.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from thumpflow.core.errors import ThumpflowError
from thumpflow.mapping._values import PRIMITIVES, Converter


class MapError(ThumpflowError):
    """A map file that cannot be compiled; names the map and the entry."""


class Ctx:
    """Per-message evaluation state: delimiters, unescaping, default timezone
    and the resources built so far (filled by `thumpflow.mapping._engine`)."""

    __slots__ = ("add_resource", "comp", "message_get", "rep", "sub", "tz", "unescape")

    def __init__(
        self,
        *,
        rep: str,
        comp: str,
        sub: str,
        unescape: Callable[[str], str],
        tz: str,
        message_get: Callable[[str], str],
        add_resource: Callable[[dict[str, Any], Identity], dict[str, Any]],
    ) -> None:
        self.rep = rep
        self.comp = comp
        self.sub = sub
        self.unescape = unescape
        self.tz = tz
        self.message_get = message_get
        self.add_resource = add_resource


Parts = list[str]
Source = Callable[[Parts, Ctx], list[str]]
Cond = Callable[[Parts, Ctx, dict[str, Any]], bool]
Emit = Callable[[Parts, Ctx, dict[str, Any]], None]
DataType = Callable[[Parts, Ctx], Any]


@dataclass(frozen=True, slots=True)
class Identity:
    """How a resource gets its id: `conditional` names the output element
    holding business identifiers (first one with a value wins); `key` lists
    the parts of a deterministic key otherwise (rule names, field paths,
    `$`-message paths)."""

    conditional: str | None = None
    key: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Term:
    code: str
    display: str | None
    system: str | None


@dataclass(slots=True)
class Vocab:
    name: str
    terms: dict[str, Term]
    v2_system: str | None
    default: Term | None


@dataclass(slots=True)
class Registry:
    """Every compiled map, by name."""

    vocab: dict[str, Vocab] = field(default_factory=dict)
    datatype_specs: dict[str, dict[str, Any]] = field(default_factory=dict)
    datatypes: dict[tuple[str, int], DataType] = field(default_factory=dict)
    segment_specs: dict[str, dict[str, Any]] = field(default_factory=dict)
    segments: dict[str, tuple[str, list[Emit]]] = field(default_factory=dict)


# -- paths -----------------------------------------------------------------

_STEP = re.compile(r"([A-Za-z_][A-Za-z0-9_\-]*)(?:\[(\d*)\])?")
_TEMPLATE = re.compile(r"\{([0-9.]+)(?::([A-Za-z0-9_\[\]]+))?\}")


def _parse_index(path: str, where: str) -> tuple[int, ...]:
    try:
        idx = tuple(int(p) for p in path.split("."))
    except ValueError:
        raise MapError(f"{where}: malformed element path {path!r}") from None
    if not idx or any(i < 1 for i in idx):
        raise MapError(f"{where}: malformed element path {path!r}")
    return idx


Setter = Callable[[dict[str, Any], Any, bool], dict[str, Any]]


def compile_setter(path: str, where: str) -> Setter:
    """A function writing a value at a FHIR path such as `name[].given[]`,
    `type.coding[0].code` or `valueQuantity`; `[]` appends a new element,
    `[n]` addresses element n (created empty as needed). It returns the
    anchor: the list element the path last stepped into (new for `[]`), else
    the target itself; `with` constants are written there."""
    steps: list[tuple[str, int | None]] = []
    for part in path.split("."):
        m = _STEP.fullmatch(part)
        if m is None:
            raise MapError(f"{where}: malformed FHIR path {path!r}")
        key, idx = m.group(1), m.group(2)
        steps.append((key, None if idx is None else (-1 if idx == "" else int(idx))))
    last = len(steps) - 1

    def setter(target: dict[str, Any], value: Any, merge: bool) -> dict[str, Any]:
        node: dict[str, Any] = target
        anchor = target
        for i, (key, idx) in enumerate(steps):
            final = i == last
            if idx is None:
                if final:
                    if merge and isinstance(value, dict) and isinstance(node.get(key), dict):
                        node[key].update(value)
                    else:
                        node[key] = value
                    return anchor
                child = node.get(key)
                if not isinstance(child, dict):
                    child = node[key] = {}
                node = child
                continue
            seq = node.get(key)
            if not isinstance(seq, list):
                seq = node[key] = []
            if idx < 0:
                if final:
                    seq.append(value)
                    return value if isinstance(value, dict) else node
                new: dict[str, Any] = {}
                seq.append(new)
                node = anchor = new
                continue
            while len(seq) <= idx:
                seq.append({})
            if final:
                if merge and isinstance(value, dict) and isinstance(seq[idx], dict):
                    seq[idx].update(value)
                else:
                    seq[idx] = value
                return anchor
            node = anchor = seq[idx]
        return anchor

    return setter


def read_output(target: dict[str, Any], path: str) -> Any:
    """The value at a plain dotted output path (`valueQuantity.value`), or None."""
    node: Any = target
    for key in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def prune(value: Any) -> Any:
    """Drop empty dicts, lists and strings recursively (None when all empty)."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            p = prune(v)
            if p is not None:
                out[k] = p
        return out or None
    if isinstance(value, list):
        items = [p for p in (prune(v) for v in value) if p is not None]
        return items or None
    if value == "":
        return None
    return value


# -- sources ---------------------------------------------------------------


def _is_null(raw: str) -> bool:
    return not raw or raw == '""'


def compile_source(path: str, level: int, repeat: bool, where: str) -> Source:
    """Raw (escaped) element strings at `path` relative to `level`
    (0: fields of a segment, 1: components, 2: subcomponents), one per
    repetition when `repeat`; `$`-paths read the message, `*SEG-F` joins that
    field of every such segment in scope (see the engine)."""
    idx = _parse_index(path, where)
    depth = len(idx)
    if level == 0:
        fld = idx[0]
        rest = idx[1:]

        def field_source(parts: Parts, ctx: Ctx) -> list[str]:
            if fld >= len(parts):
                return []
            value = parts[fld]
            if _is_null(value):
                return []
            reps = value.split(ctx.rep) if repeat else [value.split(ctx.rep, 1)[0]]
            if not rest:
                return [r for r in reps if not _is_null(r)]
            out = []
            for r in reps:
                comps = r.split(ctx.comp)
                if rest[0] > len(comps):
                    continue
                v = comps[rest[0] - 1]
                if len(rest) > 1:
                    subs = v.split(ctx.sub)
                    v = subs[rest[1] - 1] if rest[1] <= len(subs) else ""
                if not _is_null(v):
                    out.append(v)
            return out

        if depth > 3:
            raise MapError(f"{where}: path {path!r} is deeper than FIELD.COMPONENT.SUB")
        return field_source
    if depth + level > 3:
        raise MapError(f"{where}: path {path!r} is too deep for a level {level} element")
    first = idx[0]
    second = idx[1] if depth > 1 else 0

    def comp_source(parts: Parts, ctx: Ctx) -> list[str]:
        if first > len(parts):
            return []
        v = parts[first - 1]
        if second:
            subs = v.split(ctx.sub)
            v = subs[second - 1] if second <= len(subs) else ""
        return [] if _is_null(v) else [v]

    return comp_source


def leaf_text(raws: list[str], ctx: Ctx) -> str:
    return ctx.unescape(raws[0]) if raws else ""


# -- conditions ------------------------------------------------------------


def compile_condition(spec: Any, level: int, where: str) -> Cond:
    """Conditions: `valued`, `not_valued`, `equals`, `in`, `not_in` (on an
    element's unescaped first repetition; `$`-paths on the message), `set`,
    `unset` (on the output), `all`, `any`, `not`."""
    if not isinstance(spec, dict) or len(spec) != 1:
        raise MapError(f"{where}: a condition is a mapping with one key, got {spec!r}")
    ((op, arg),) = spec.items()
    if op in ("all", "any"):
        subs = [compile_condition(s, level, where) for s in arg]
        if op == "all":
            return lambda p, c, o: all(s(p, c, o) for s in subs)
        return lambda p, c, o: any(s(p, c, o) for s in subs)
    if op == "not":
        inner = compile_condition(arg, level, where)
        return lambda p, c, o: not inner(p, c, o)
    if op in ("set", "unset"):
        path = str(arg)
        want = op == "set"
        return lambda p, c, o: (read_output(o, path) is not None) == want
    if op in ("valued", "not_valued"):
        text = compile_text(str(arg), level, where)
        want = op == "valued"
        return lambda p, c, o: bool(text(p, c)) == want
    if op in ("equals", "in", "not_in"):
        if not isinstance(arg, list) or len(arg) != 2:
            raise MapError(f"{where}: {op} takes [path, value(s)]")
        text = compile_text(str(arg[0]), level, where)
        values = frozenset(str(v) for v in (arg[1] if op != "equals" else [arg[1]]))
        if op == "not_in":
            return lambda p, c, o: text(p, c) not in values
        return lambda p, c, o: text(p, c) in values
    raise MapError(f"{where}: unknown condition {op!r}")


def compile_text(path: str, level: int, where: str) -> Callable[[Parts, Ctx], str]:
    """The unescaped text of the first repetition at `path` (or a `$` message path)."""
    if path.startswith("$"):
        mpath = path[1:]
        return lambda p, c: c.message_get(mpath).strip()
    src = compile_source(path, level, False, where)
    return lambda p, c: leaf_text(src(p, c), c).strip()


# -- vocabulary ------------------------------------------------------------


def compile_vocab(name: str, spec: Any) -> Vocab:
    where = f"vocabulary {name}"
    if not isinstance(spec, dict) or "map" not in spec:
        raise MapError(f"{where}: needs a `map`")
    system = spec.get("system")
    terms: dict[str, Term] = {}
    for v2code, target in (spec["map"] or {}).items():
        if isinstance(target, str):
            terms[str(v2code)] = Term(target, None, system)
        elif isinstance(target, list) and 1 <= len(target) <= 3:
            disp = target[1] if len(target) > 1 else None
            sys_ = target[2] if len(target) > 2 else system
            terms[str(v2code)] = Term(str(target[0]), disp, sys_)
        else:
            raise MapError(f"{where}: entry {v2code!r} must be code or [code, display, system]")
    default = spec.get("default")
    return Vocab(
        name,
        terms,
        spec.get("v2"),
        Term(default, None, system) if isinstance(default, str) else None,
    )


def vocab_value(vocab: Vocab, text: str, as_: str, original: str | None) -> Any:
    """`text` mapped through `vocab`, shaped as `as_` (code, Coding, CodeableConcept).

    Unmapped codes: for `code` the vocabulary default (else None, so the
    element is omitted); for Coding/CodeableConcept the original code is kept
    under the v2 table's system when the vocabulary names one.
    """
    term = vocab.terms.get(text)
    if term is None:
        term = vocab.terms.get(text.upper())
    if term is None:
        if as_ == "code":
            return vocab.default.code if vocab.default else None
        if not vocab.v2_system:
            return None
        term = Term(text, original, vocab.v2_system)
    if as_ == "code":
        return term.code
    coding: dict[str, Any] = {}
    if term.system:
        coding["system"] = term.system
    coding["code"] = term.code
    if term.display:
        coding["display"] = term.display
    if as_ == "Coding":
        return coding
    return {"coding": [coding]}


# -- entries ---------------------------------------------------------------

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
    }
)


def compile_entries(specs: Any, level: int, reg: Registry, where: str) -> list[Emit]:
    if not isinstance(specs, list):
        raise MapError(f"{where}: `entries` must be a list")
    return [compile_entry(s, level, reg, f"{where} entry {i + 1}") for i, s in enumerate(specs)]


def compile_entry(spec: Any, level: int, reg: Registry, where: str) -> Emit:
    """One map entry → a closure `(parts, ctx, out) -> None` that writes into `out`."""
    if not isinstance(spec, dict):
        raise MapError(f"{where}: an entry is a mapping")
    unknown = set(spec) - _ENTRY_KEYS
    if unknown:
        raise MapError(f"{where}: unknown keys {sorted(unknown)}")
    if "to" not in spec:
        raise MapError(f"{where}: `to` is required")
    setter = compile_setter(str(spec["to"]), where)
    cond = compile_condition(spec["when"], level, where) if "when" in spec else None
    merge = bool(spec.get("merge"))
    with_setters = [(compile_setter(str(k), where), v) for k, v in (spec.get("with") or {}).items()]
    produce = _compile_producer(spec, level, reg, where)

    def emit(parts: Parts, ctx: Ctx, out: dict[str, Any]) -> None:
        if cond is not None and not cond(parts, ctx, out):
            return
        for value in produce(parts, ctx):
            anchor = setter(out, value, merge)
            for ws, wv in with_setters:
                ws(anchor, wv, False)

    return emit


def _compile_producer(
    spec: dict[str, Any], level: int, reg: Registry, where: str
) -> Callable[[Parts, Ctx], list[Any]]:
    kinds = [k for k in ("from", "const", "template") if k in spec]
    if len(kinds) != 1:
        raise MapError(f"{where}: exactly one of from/const/template is required")
    if "const" in spec:
        const = spec["const"]
        return lambda p, c: [const]
    vocab = None
    if "vocab" in spec:
        vocab = reg.vocab.get(spec["vocab"])
        if vocab is None:
            raise MapError(f"{where}: unknown vocabulary {spec['vocab']!r}")
    as_ = str(spec.get("as", "code"))
    if as_ not in ("code", "Coding", "CodeableConcept"):
        raise MapError(f"{where}: `as` must be code, Coding or CodeableConcept")
    type_name = spec.get("type", "string")
    if "template" in spec:
        return _compile_template(str(spec["template"]), level, reg, vocab, as_, type_name, where)
    path = str(spec["from"])
    repeat = bool(spec.get("repeat"))
    join = spec.get("join")
    if "resource" in spec or "note" in spec:
        raise MapError(f"{where}: `resource`/`note` belong to `type` entries")

    if path.startswith("*"):
        return _compile_collect(path[1:], type_name, where)
    if path.startswith("$"):
        text = compile_text(path, level, where)
        prim = _primitive(type_name, where)

        def message_value(parts: Parts, ctx: Ctx) -> list[Any]:
            t = text(parts, ctx)
            if not t:
                return []
            v = vocab_value(vocab, t, as_, None) if vocab is not None else prim(t, ctx.tz)
            return [] if v is None else [v]

        return message_value

    src = compile_source(path, level, repeat, where)
    depth = len(_parse_index(path, where))
    nested = level + depth
    if type_name in PRIMITIVES or vocab is not None:
        prim = _primitive(type_name if type_name in PRIMITIVES else "string", where)

        def primitive_values(parts: Parts, ctx: Ctx) -> list[Any]:
            raws = src(parts, ctx)
            if not raws:
                return []
            if join is not None:
                raws = [str(join).join(raws)] if raws else []
            out = []
            for raw in raws:
                text = ctx.unescape(raw)
                if vocab is not None:
                    code_text = text.strip()
                    v = vocab_value(vocab, code_text, as_, None) if code_text else None
                else:
                    v = prim(text, ctx.tz)
                if v is not None:
                    out.append(v)
            return out

        return primitive_values
    dt = datatype(reg, str(type_name), nested, where)

    def composite_values(parts: Parts, ctx: Ctx) -> list[Any]:
        out = []
        for raw in src(parts, ctx):
            if nested == 1:
                sub_parts = raw.split(ctx.comp)
            elif nested == 2:
                sub_parts = raw.split(ctx.sub)
            else:
                sub_parts = [raw]
            v = dt(sub_parts, ctx)
            if v is not None:
                out.append(v)
        return out

    return composite_values


def _primitive(name: Any, where: str) -> Converter:
    conv = PRIMITIVES.get(str(name))
    if conv is None:
        raise MapError(f"{where}: {name!r} is neither a primitive nor usable here")
    return conv


def _compile_template(  # noqa: PLR0917
    template: str,
    level: int,
    reg: Registry,
    vocab: Vocab | None,
    as_: str,
    type_name: Any,
    where: str,
) -> Callable[[Parts, Ctx], list[Any]]:
    pieces: list[str | tuple[Callable[[Parts, Ctx], str], Vocab | None]] = []
    pos = 0
    for m in _TEMPLATE.finditer(template):
        pieces.append(template[pos : m.start()])
        pv = None
        if m.group(2):
            pv = reg.vocab.get(m.group(2))
            if pv is None:
                raise MapError(f"{where}: unknown vocabulary {m.group(2)!r} in template")
        pieces.append((compile_text(m.group(1), level, where), pv))
        pos = m.end()
    pieces.append(template[pos:])
    prim = _primitive(type_name, where)

    def render(parts: Parts, ctx: Ctx) -> list[Any]:
        out = []
        for piece in pieces:
            if isinstance(piece, str):
                out.append(piece)
                continue
            text_fn, pv = piece
            t = text_fn(parts, ctx)
            if pv is not None and t:
                term = pv.terms.get(t) or pv.terms.get(t.upper())
                t = term.code if term else t
            out.append(t)
        text = "".join(out)
        v = vocab_value(vocab, text, as_, None) if vocab is not None else prim(text, ctx.tz)
        return [] if v is None else [v]

    return render


def _compile_collect(spec: str, type_name: Any, where: str) -> Callable[[Parts, Ctx], list[Any]]:
    m = re.fullmatch(r"([A-Z][A-Z0-9]{2})-(\d+)", spec)
    if m is None:
        raise MapError(f"{where}: `*` sources are `*SEG-FIELD`, got {spec!r}")
    prim = _primitive(type_name, where)
    key = f"*{spec}"

    def collect(parts: Parts, ctx: Ctx) -> list[Any]:
        text = ctx.message_get(key)
        v = prim(text, ctx.tz) if text else None
        return [] if v is None else [v]

    return collect


# -- data types ------------------------------------------------------------


def datatype(reg: Registry, name: str, level: int, where: str) -> DataType:
    """The compiled data type map `name` for elements split at `level`
    (1: a field's components, 2: a component's subcomponents)."""
    cached = reg.datatypes.get((name, level))
    if cached is not None:
        return cached
    spec = reg.datatype_specs.get(name)
    if spec is None:
        raise MapError(f"{where}: unknown data type map {name!r}")
    dt_where = f"data type {name}"
    entries = compile_entries(spec.get("entries"), level, reg, dt_where)
    resource_type = spec.get("resourceType")
    ident = spec.get("identity") or {}
    identity = Identity(ident.get("conditional"), tuple(str(k) for k in ident.get("key", ())))

    def convert(parts: Parts, ctx: Ctx) -> Any:
        out: dict[str, Any] = {}
        for e in entries:
            e(parts, ctx, out)
        value = prune(out)
        if value is None or resource_type is None:
            return value
        resource = {"resourceType": resource_type, **value}
        return ctx.add_resource(resource, identity)

    reg.datatypes[(name, level)] = convert
    return convert


def segment_map(reg: Registry, name: str, where: str) -> tuple[str, list[Emit]]:
    """The compiled segment map `name`: its resource type and entries."""
    cached = reg.segments.get(name)
    if cached is not None:
        return cached
    spec = reg.segment_specs.get(name)
    if spec is None:
        raise MapError(f"{where}: unknown segment map {name!r}")
    compiled = (
        str(spec.get("resourceType", "")),
        compile_entries(spec.get("entries"), 0, reg, f"segment {name}"),
    )
    reg.segments[name] = compiled
    return compiled
