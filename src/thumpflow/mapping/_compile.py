"""Compiles the YAML maps into Python functions, once, at import.

The map language has four kinds of map, mirroring the HL7 V2-to-FHIR IG:
vocabulary maps (v2 code → FHIR code), data type maps (components → FHIR
data type elements), segment maps (fields → resource elements) and message
maps (segments and groups → resources in a Bundle; see `_engine`). A data
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

from thumpflow.core.errors import ThumpflowError
from thumpflow.mapping._values import PRIMITIVES


class MapError(ThumpflowError):
    """A map file that cannot be compiled; names the map and the entry."""


class Ctx:
    """Per-message evaluation state read by generated functions: delimiters,
    the unescape function, the default timezone, message-level reads and the
    registration of resources built from data types (see `_engine`)."""

    __slots__ = ("add", "comp", "esc", "mget", "rep", "sub", "tz", "unescape")

    def __init__(  # noqa: PLR0917
        self,
        rep: str,
        comp: str,
        sub: str,
        esc: str,
        unescape: Callable[[str], str],
        tz: str,
        mget: Callable[[str], str],
        add: Callable[..., dict[str, Any]],
    ) -> None:
        self.rep = rep
        self.comp = comp
        self.sub = sub
        self.esc = esc
        self.unescape = unescape
        self.tz = tz
        self.mget = mget
        self.add = add


Parts = list[str]
Fill = Callable[[Parts, Ctx, dict[str, Any]], None]
Test = Callable[[Parts, Ctx], bool]
Texts = Callable[[Parts, Ctx], tuple[str, ...]]
Setter = Callable[[dict[str, Any], Any], dict[str, Any]]


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
        return {"code": text} if self.v2 else None

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


def read_output(target: dict[str, Any], path: str) -> Any:
    """The value at a plain dotted output path (`valueQuantity.value`), or None."""
    node: Any = target
    for key in path.split("."):
        if type(node) is not dict:
            return None
        node = node.get(key)
    return node


def _out(node: Any, *keys: str) -> Any:
    for key in keys:
        if type(node) is not dict:
            return None
        node = node.get(key)
    return node


# -- paths -----------------------------------------------------------------

_STEP = re.compile(r"([A-Za-z_][A-Za-z0-9_\-]*)(?:\[(\d*)\])?")
_TEMPLATE = re.compile(r"\{([0-9.]+)(?::([A-Za-z0-9_\[\]]+))?\}")
_COLLECT = re.compile(r"([A-Z][A-Z0-9]{2})-(\d+)")
_MESSAGE_PATH = re.compile(r"\$[A-Z][A-Z0-9]{2}-\d+(?:\.\d+){0,2}")

Step = tuple[str, int | None]


def _steps(path: str, where: str) -> list[Step]:
    """`name[].given[]` → [("name", -1), ("given", -1)]; None: a plain key,
    -1: append a new element, n: element n (created empty as needed)."""
    steps: list[Step] = []
    for part in path.split("."):
        m = _STEP.fullmatch(part)
        if m is None:
            raise MapError(f"{where}: malformed FHIR path {path!r}")
        idx = m.group(2)
        steps.append((m.group(1), None if idx is None else (-1 if idx == "" else int(idx))))
    return steps


def _parse_index(path: str, where: str) -> tuple[int, ...]:
    try:
        idx = tuple(int(p) for p in path.split("."))
    except ValueError:
        raise MapError(f"{where}: malformed element path {path!r}") from None
    if not idx or any(i < 1 for i in idx):
        raise MapError(f"{where}: malformed element path {path!r}")
    return idx


def compile_setter(path: str, where: str) -> Setter:
    """A function writing a value at a FHIR path (as entries' `to` does) and
    returning the anchor that `with` constants go into; for the few writes
    the engine makes itself (references, notes)."""
    gen = _Function("setter", 0, where)
    anchor = gen.write(_steps(path, where), "v", "o", merge=False, want_anchor=True)
    gen.body.append(f"return {anchor}")
    fn: Setter = _build(gen.source("o, v"), {}, "setter")
    return fn


# -- generated functions ---------------------------------------------------

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
_SPLIT = {1: "C", 2: "S"}


class _Function:
    """The source of one generated function over `p` (the fields of a
    segment at level 0, the components of an element at level 1, its
    subcomponents at level 2): a prelude reading every element the map uses
    once, grouped by field (or component) so an empty one costs one test,
    then the body."""

    def __init__(self, name: str, level: int, where: str) -> None:
        self.name = name
        self.level = level
        self.where = where
        self.heads: dict[str, str] = {}
        self.inner: dict[str, list[str]] = {}
        self.defined: dict[str, list[str]] = {}
        self.body: list[str] = []
        self.known: set[str] = set()
        self.counter = 0

    def temp(self, stem: str) -> str:
        self.counter += 1
        return f"{stem}{self.counter}"

    def source(self, params: str = "p, x") -> str:
        lines = [f"def {self.name}({params}):"]
        if self.heads:
            lines.append("    R = x.rep; C = x.comp; S = x.sub; E = x.esc; U = x.unescape")
            lines.append("    n = len(p)")
        for head, expr in self.heads.items():
            lines.append(f"    {head} = {expr}")
            if self.inner[head]:
                lines.append(f"    if {head}:")
                lines.extend("        " + line for line in self.inner[head])
                lines.append("    else:")
                lines.append("        " + " = ".join(self.defined[head]) + " = ''")
        lines.extend("    " + line for line in self.body)
        return "\n".join(lines) + "\n"

    # -- reading elements (prelude) --

    def head(self, name: str, expr: str) -> str:
        """A local read once at the top: a field (or component) as a whole, or a message text."""
        if name not in self.heads:
            self.heads[name] = expr
            self.inner[name] = []
            self.defined[name] = []
            self.known.add(name)
        return name

    def _define(self, head: str, name: str, expr: str) -> str:
        """A local computed from `head` when it is non-empty, else ""."""
        if name not in self.known:
            self.known.add(name)
            self.inner[head].append(f"{name} = {expr}")
            self.defined[head].append(name)
        return name

    def field(self, number: int) -> str:
        return self.head(f"f{number}", f"p[{number}] if n > {number} else ''")

    def raw(self, idx: tuple[int, ...]) -> str:
        """A local holding the escaped first-repetition element at `idx`, "" when null."""
        key = "_".join(map(str, idx))
        name = f"a{key}"
        if name in self.known:
            return name
        if self.level == 0:
            head = self.field(idx[0])
            expr = self._define(head, f"r{idx[0]}", f"{head}.split(R, 1)[0]")
            if len(idx) > 1:
                comps = self._define(head, f"c{idx[0]}", f"{expr}.split(C)")
                expr = f"{comps}[{idx[1] - 1}] if len({comps}) > {idx[1] - 1} else ''"
                if len(idx) > 2:
                    comp = self._define(head, f"a{idx[0]}_{idx[1]}x", expr)
                    subs = self._define(head, f"s{idx[0]}_{idx[1]}", f"{comp}.split(S)")
                    expr = f"{subs}[{idx[2] - 1}] if len({subs}) > {idx[2] - 1} else ''"
        else:
            head = self.head(f"h{idx[0]}", f"p[{idx[0] - 1}] if n > {idx[0] - 1} else ''")
            expr = head
            if len(idx) > 1:
                subs = self._define(head, f"s{idx[0]}", f"{head}.split(S)")
                expr = f"{subs}[{idx[1] - 1}] if len({subs}) > {idx[1] - 1} else ''"
        self._define(head, name, expr)
        self.inner[head].append(f"if {name} == '\"\"': {name} = ''")
        return name

    def text(self, path: str) -> str:
        """A local holding the unescaped, stripped text at `path` (`$` paths read the message)."""
        if path.startswith("$"):
            if _MESSAGE_PATH.fullmatch(path) is None:
                raise MapError(f"{self.where}: malformed message path {path!r}")
            name = "m_" + re.sub(r"\W", "_", path[1:])
            return self.head(name, f"x.mget({path[1:]!r})")
        idx = self.index(path)
        raw = self.raw(idx)
        name = "t" + raw[1:]
        head = f"f{idx[0]}" if self.level == 0 else f"h{idx[0]}"
        return self._define(head, name, f"(U({raw}) if E in {raw} else {raw}).strip()")

    def index(self, path: str) -> tuple[int, ...]:
        idx = _parse_index(path, self.where)
        if len(idx) + self.level > 3:
            raise MapError(f"{self.where}: path {path!r} is too deep for this element")
        return idx

    # -- conditions --

    def condition(self, spec: Any, out: str) -> str:
        """A Python expression for a `when` condition: `valued`, `not_valued`,
        `equals`, `in`, `not_in` (on an element's unescaped first repetition;
        `$`-paths on the message), `set`, `unset` (on the output), `all`,
        `any`, `not`."""
        if not isinstance(spec, dict) or len(spec) != 1:
            raise MapError(f"{self.where}: a condition is a mapping with one key, got {spec!r}")
        ((op, arg),) = spec.items()
        if op in ("all", "any"):
            if not isinstance(arg, list) or not arg:
                raise MapError(f"{self.where}: {op} takes a list of conditions")
            joiner = " and " if op == "all" else " or "
            return "(" + joiner.join(self.condition(s, out) for s in arg) + ")"
        if op == "not":
            return f"(not {self.condition(arg, out)})"
        if op in ("set", "unset"):
            keys = str(arg).split(".")
            test = "is not None" if op == "set" else "is None"
            if len(keys) == 1:
                return f"({out}.get({keys[0]!r}) {test})"
            return f"(_out({out}, {', '.join(repr(k) for k in keys)}) {test})"
        if op in ("valued", "not_valued"):
            local = self.text(str(arg))
            return local if op == "valued" else f"(not {local})"
        if op in ("equals", "in", "not_in"):
            if not isinstance(arg, list) or len(arg) != 2:
                raise MapError(f"{self.where}: {op} takes [path, value(s)]")
            local = self.text(str(arg[0]))
            values = [arg[1]] if op == "equals" else arg[1]
            # A set display after `in` compiles to a frozenset constant.
            literal = "{" + ", ".join(repr(str(v)) for v in sorted(set(values), key=str)) + "}"
            return f"({local} {'not in' if op == 'not_in' else 'in'} {literal})"
        raise MapError(f"{self.where}: unknown condition {op!r}")

    # -- writing --

    def write(
        self, steps: list[Step], value: str, target: str, merge: bool, want_anchor: bool
    ) -> str:
        """Append to the body the code writing `value` at `steps` under
        `target`; returns the name of the anchor (where `with` goes): the
        list element the path last stepped into, the appended value itself
        when it is an object, else the target."""
        body = self.body
        node = anchor = target
        last = len(steps) - 1
        for i, (key, idx) in enumerate(steps):
            final = i == last
            if idx is None:
                if final:
                    if merge:
                        cur = self.temp("_m")
                        body.append(f"{cur} = {node}.get({key!r})")
                        body.append(f"if type({value}) is dict and type({cur}) is dict:")
                        body.append(f"    {cur}.update({value})")
                        body.append("else:")
                        body.append(f"    {node}[{key!r}] = {value}")
                    else:
                        body.append(f"{node}[{key!r}] = {value}")
                    return anchor
                child = self.temp("_d")
                body.append(f"{child} = {node}.get({key!r})")
                body.append(f"if type({child}) is not dict: {child} = {node}[{key!r}] = {{}}")
                node = child
                continue
            seq = self.temp("_l")
            body.append(f"{seq} = {node}.get({key!r})")
            body.append(f"if type({seq}) is not list: {seq} = {node}[{key!r}] = []")
            if idx < 0:
                if final:
                    body.append(f"{seq}.append({value})")
                    if not want_anchor:
                        return anchor
                    result = self.temp("_w")
                    body.append(f"{result} = {value} if type({value}) is dict else {node}")
                    return result
                new = self.temp("_d")
                body.append(f"{new} = {{}}")
                body.append(f"{seq}.append({new})")
                node = anchor = new
                continue
            body.append(f"while len({seq}) <= {idx}: {seq}.append({{}})")
            if final:
                if merge:
                    body.append(f"if type({value}) is dict and type({seq}[{idx}]) is dict:")
                    body.append(f"    {seq}[{idx}].update({value})")
                    body.append("else:")
                    body.append(f"    {seq}[{idx}] = {value}")
                else:
                    body.append(f"{seq}[{idx}] = {value}")
                return anchor
            element = self.temp("_d")
            body.append(f"{element} = {seq}[{idx}]")
            node = anchor = element
        return anchor

    def indent(self, lines: list[str], start: int) -> None:
        """Indent the body from `start` on by one level."""
        for i in range(start, len(lines)):
            lines[i] = "    " + lines[i]


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
        self.names: dict[str, Any] = {"_out": _out}
        for pname, conv in PRIMITIVES.items():
            self.names[f"P_{pname}"] = conv
        for i, vname in enumerate(sorted(vocab)):
            self.names[f"V{i}"] = vocab[vname]
        self.vocab_names = {vname: f"V{i}" for i, vname in enumerate(sorted(vocab))}
        self.datatypes: dict[tuple[str, int], str] = {}
        self.segments: dict[str, tuple[str, Fill]] = {}
        self.fnames: set[str] = set()

    # -- public: used by the engine --

    def segment(self, name: str, where: str) -> tuple[str, Fill]:
        """The resource type of segment map `name` and its function
        `(fields, ctx, out) -> None`, which writes into `out`."""
        found = self.segments.get(name)
        if found is not None:
            return found
        spec = self.segment_specs.get(name)
        if spec is None:
            raise MapError(f"{where}: unknown segment map {name!r}")
        fname = self._fname("seg", name)
        gen = _Function(fname, 0, f"segment {name}")
        self._entries(gen, spec.get("entries"), "o")
        self._cleanup(gen, spec["entries"], "o")
        fill: Fill = self._define(gen.source("p, x, o"), fname)
        rtype = str(spec.get("resourceType", ""))
        self.segments[name] = (rtype, fill)
        return rtype, fill

    def test(self, spec: Any, where: str) -> Test:
        """A function `(fields, ctx) -> bool` for a rule's `when` (`set` and
        `unset` see an empty output)."""
        gen = _Function(self._fname("when", "rule"), 0, where)
        expr = gen.condition(spec, "{}")
        gen.body.append(f"return bool({expr})")
        test: Test = self._define(gen.source(), gen.name)
        return test

    def texts(self, paths: list[str], where: str) -> Texts:
        """A function `(fields, ctx) -> tuple[str, ...]` giving the unescaped,
        stripped text at each path (field paths or `$` message paths)."""
        gen = _Function(self._fname("keys", "rule"), 0, where)
        locals_ = [gen.text(p) for p in paths]
        gen.body.append(f"return ({', '.join(locals_)},)")
        texts: Texts = self._define(gen.source(), gen.name)
        return texts

    def _define(self, source: str, fname: str) -> Any:
        """Compile `source` into the shared namespace (so generated functions
        find each other by name at call time) and return `fname`."""
        return _build(source, self.names, fname)

    # -- generation --

    def _fname(self, kind: str, name: str) -> str:
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
        fname = self._fname("dt", f"{name}_{level}")
        self.datatypes[(name, level)] = fname
        if "python" in spec:
            return self._hook(name, str(spec["python"]), level, fname, where)
        gen = _Function(fname, level, f"data type {name}")
        gen.body.append("o = {}")
        entries = list(spec.get("entries") or [])
        if "extends" in spec:
            base = self.datatype_specs.get(str(spec["extends"]))
            if base is None or "entries" not in base:
                raise MapError(f"{where}: data type {name} extends unknown {spec['extends']!r}")
            entries = list(base["entries"]) + entries
        self._entries(gen, entries, "o")
        self._cleanup(gen, entries, "o")
        gen.body.append("if not o: return None")
        resource_type = spec.get("resourceType")
        if resource_type is None:
            gen.body.append("return o")
        else:
            ident = spec.get("identity") or {}
            conditional = ident.get("conditional")
            gen.body.append(f"return x.add({str(resource_type)!r}, o, {conditional!r})")
        self._define(gen.source(), fname)
        return fname

    def _hook(self, name: str, hook: str, level: int, fname: str, where: str) -> str:
        """A data type map written in Python (`python: <hook>`, see
        `_locations.HOOKS`): called with the components of one field."""
        from thumpflow.mapping._locations import HOOKS

        if hook not in HOOKS or level != 1:
            raise MapError(f"{where}: data type {name}: no hook {hook!r} for this level")
        self.names[f"H_{hook}"] = HOOKS[hook]
        self._define(f"def {fname}(p, x):\n    return H_{hook}(p, x)\n", fname)
        return fname

    def _entries(self, gen: _Function, specs: Any, out: str) -> None:
        if not isinstance(specs, list):
            raise MapError(f"{gen.where}: `entries` must be a list")
        where = gen.where
        for i, spec in enumerate(specs):
            gen.where = f"{where} entry {i + 1}"
            self._entry(gen, spec, out)
        gen.where = where

    def _cleanup(self, gen: _Function, entries: list[dict[str, Any]], out: str) -> None:
        """Entries writing element n > 0 of a list leave empty placeholders
        before it when earlier elements got no value; drop them."""
        lists: set[tuple[str, ...]] = set()
        for spec in entries:
            steps = _steps(str(spec.get("to", "")), gen.where)
            for j, (_, idx) in enumerate(steps):
                if idx is not None and idx > 0:
                    if any(s[1] is not None for s in steps[:j]):
                        raise MapError(
                            f"{gen.where}: [n > 0] is supported only outside other lists"
                        )
                    lists.add(tuple(k for k, _ in steps[: j + 1]))
        for keys in sorted(lists):
            seq = gen.temp("_c")
            getter = f"_out({out}, {', '.join(repr(k) for k in keys)})"
            gen.body.append(f"{seq} = {getter}")
            gen.body.append(f"if type({seq}) is list and {{}} in {seq}:")
            gen.body.append(f"    {seq}[:] = [e for e in {seq} if e != {{}}]")

    def _entry(self, gen: _Function, spec: Any, out: str) -> None:
        where = gen.where
        if not isinstance(spec, dict):
            raise MapError(f"{where}: an entry is a mapping")
        unknown = set(spec) - _ENTRY_KEYS
        if unknown:
            raise MapError(f"{where}: unknown keys {sorted(unknown)}")
        if "to" not in spec:
            raise MapError(f"{where}: `to` is required")
        kinds = [k for k in ("from", "const", "template") if k in spec]
        if len(kinds) != 1:
            raise MapError(f"{where}: exactly one of from/const/template is required")
        if "resource" in spec or "note" in spec:
            raise MapError(f"{where}: `resource`/`note` belong to `type` entries")
        steps = _steps(str(spec["to"]), where)
        with_ = [(_steps(str(k), where), v) for k, v in (spec.get("with") or {}).items()]
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

    def _produce(self, gen: _Function, spec: dict[str, Any], emit: Callable[[str], None]) -> None:
        """Append the code computing the entry's value(s); `emit(name)` appends
        the write of one non-empty value held in local `name`."""
        where = gen.where
        body = gen.body
        if "const" in spec:
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
            elif PRIMITIVES.get(type_name) is PRIMITIVES["string"]:
                body.append(f"{value} = {text}.strip() or None")
            elif PRIMITIVES.get(type_name) is PRIMITIVES["code"]:
                body.append(f"{value} = ' '.join({text}.split()) or None")
            else:
                if type_name not in PRIMITIVES:
                    raise MapError(f"{where}: {type_name!r} is neither a primitive nor usable here")
                body.append(f"{value} = P_{type_name}({text}, x.tz)")
            return value

        def emit_if_valued(value: str) -> None:
            body.append(f"if {value} is not None:")
            mark = len(body)
            emit(value)
            gen.indent(body, mark)

        if "template" in spec:
            pieces: list[str] = []
            pos = 0
            template = str(spec["template"])
            for m in _TEMPLATE.finditer(template):
                if template[pos : m.start()]:
                    pieces.append(repr(template[pos : m.start()]))
                local = gen.text(m.group(1))
                if m.group(2):
                    pv = self.vocab_names.get(m.group(2))
                    if pv is None:
                        raise MapError(f"{where}: unknown vocabulary {m.group(2)!r} in template")
                    local = (
                        f"({pv}.codes.get({local}) or {pv}.codes.get({local}.upper()) or {local})"
                    )
                pieces.append(local)
                pos = m.end()
            if template[pos:]:
                pieces.append(repr(template[pos:]))
            text = gen.temp("_s")
            body.append(f"{text} = {' + '.join(pieces) or repr('')}")
            if vocab is not None:
                value = gen.temp("_v")
                body.append(f"{value} = {vocab}.{method}({text})")
            else:
                value = convert(text, False)
            emit_if_valued(value)
            return
        path = str(spec["from"])
        if path.startswith("*"):
            if _COLLECT.fullmatch(path[1:]) is None:
                raise MapError(f"{where}: `*` sources are `*SEG-FIELD`, got {path[1:]!r}")
            text = gen.temp("_s")
            body.append(f"{text} = x.mget({path!r})")
            body.append(f"if {text}:")
            mark = len(body)
            emit_if_valued(convert(text, False))
            gen.indent(body, mark)
            return
        if path.startswith("$"):
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
        idx = gen.index(path)
        repeat = bool(spec.get("repeat")) and gen.level == 0
        join = spec.get("join")
        composite = type_name not in PRIMITIVES and vocab is None
        nested = gen.level + len(idx)
        datatype = self._datatype(type_name, nested, where) if composite else ""

        def one(raw: str) -> None:
            if composite:
                parts = f"{raw}.split({_SPLIT[nested]})" if nested in _SPLIT else f"[{raw}]"
                value = gen.temp("_v")
                body.append(f"{value} = {datatype}({parts}, x)")
                emit_if_valued(value)
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
            return
        one(element)
        gen.indent(body, mark)


def _build(source: str, namespace: dict[str, Any], fname: str) -> Any:
    """Compile the generated `source` into `namespace`; returns function `fname`."""
    code = compile(source, f"<thumpflow.mapping: {fname}>", "exec")
    exec(code, namespace)
    return namespace[fname]
