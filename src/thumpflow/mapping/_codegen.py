"""The source text of one generated map function, and its compilation.

`GeneratedFunction` accumulates the code of one function over `p` (the
fields of a segment, the components of an element or its subcomponents): a
prelude reading each element the map uses once, conditions, and writes at
FHIR paths. `build` compiles the text (generated from the packaged maps
only; names and literals are emitted with `repr`) into a namespace.
Malformed paths raise `MapError` naming where.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from thumpflow.mapping._support import MapError

_STEP = re.compile(r"([A-Za-z_][A-Za-z0-9_\-]*)(?:\[(\d*)\])?")
COLLECT = re.compile(r"([A-Z][A-Z0-9]{2})-(\d+)")
_MESSAGE_PATH = re.compile(r"[$@][A-Z][A-Z0-9]{2}-\d+(?:\.\d+){0,2}")

Step = tuple[str, int | None]


def fhir_steps(path: str, where: str) -> list[Step]:
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


# The local holding the delimiter that splits an element nested n levels deep.
SPLIT = {1: "C", 2: "S"}


# The locals a generated function may read from the context `x`.
_CONTEXT = (
    ("R", "rep"),
    ("C", "comp"),
    ("S", "sub"),
    ("E", "esc"),
    ("U", "unescape"),
    ("_M", "memo"),
)


def context_locals(code: str) -> str:
    """The statement defining the context's locals (see `_CONTEXT`) that
    `code` uses, from the context `x`; "" when it uses none."""
    return "; ".join(
        f"{name} = x.{attr}" for name, attr in _CONTEXT if re.search(rf"\b{name}\b", code)
    )


# Padding for a short `p`: `p + PAD[k - n]` has k items (see `_reads`).
PAD = tuple([""] * j for j in range(100))


class GeneratedFunction:
    """The source of one generated function over `p` (the fields of a
    segment at level 0, the components of an element at level 1, its
    subcomponents at level 2): a prelude reading every element the map uses
    once, grouped by field (or component) so an empty one costs one test,
    then the body.

    Elements read as "" when absent or null (`""`). Below level 0 the null
    test is one for the whole list (`p` is an element's own split); at
    level 0 it is made per element, after splitting its field."""

    def __init__(self, name: str, level: int, where: str) -> None:
        self.name = name
        self.level = level
        self.where = where
        self.heads: dict[str, str] = {}
        # The heads that are items of `p`, by their index in it.
        self.positions: dict[str, int] = {}
        self.inner: dict[str, list[str]] = {}
        self.defined: dict[str, list[str]] = {}
        self.body: list[str] = []
        self.known: set[str] = set()
        # The text locals (`t...`) the prelude will compute (see `generate_twice`).
        self.ahead: frozenset[str] = frozenset()
        # A dict the body starts empty (a data type map's `o`; the body has
        # no loops there), and the keys written at the top of any target so far.
        self.fresh: str | None = None
        self.touched: set[str] = set()
        # The locals holding a new dict (never None), as `one_text` makes.
        self.dicts: set[str] = set()
        # The locals holding a text, which has a value when it is not empty.
        self.texts: set[str] = set()
        self.counter = 0

    def temp(self, stem: str) -> str:
        self.counter += 1
        return f"{stem}{self.counter}"

    def _append_element(self, body: list[str], seq: str) -> str:
        """Code appending a new empty object to the list `seq`; the object's name."""
        element = self.temp("_d")
        body.append(f"{element} = {{}}")
        body.append(f"{seq}.append({element})")
        return element

    def source(self, params: str = "p, x") -> str:
        lines = [f"def {self.name}({params}):"]
        lines.extend("    " + line for line in self.prelude())
        lines.extend("    " + line for line in self.body)
        defined = context_locals("\n".join(lines[1:]))
        if defined:
            lines.insert(1, "    " + defined)
        return "\n".join(lines) + "\n"

    def prelude(self) -> list[str]:
        """The code reading every element the body uses into its locals, from
        `p` and the context's locals (see `_CONTEXT`)."""
        lines = self._reads()
        for head, expr in self.heads.items():
            if head not in self.positions:
                lines.append(f"{head} = {expr}")
            if self.inner[head]:
                lines.append(f"if {head}:")
                lines.extend("    " + line for line in self.inner[head])
                lines.append("else:")
                lines.append("    " + " = ".join(self.defined[head]) + " = ''")
        return lines

    def _reads(self) -> list[str]:
        """The prelude's reads of the items of `p` the map uses: unpacked at
        once from `p` padded or cut to length when they are many of its
        first items, else read one by one."""
        positions = self.positions
        if not positions:
            return []
        out = ["n = len(p)"]
        if self.level > 0:
            out.append("if '\"\"' in p: p = ['' if e == '\"\"' else e for e in p]")
        k = max(positions.values()) + 1
        if k < len(PAD) and 15 * len(positions) >= 35 + k:
            names = ["_"] * k
            for head, i in positions.items():
                names[i] = head
            out.append(f"q = p if n == {k} else p[:{k}] if n > {k} else p + _PAD[{k} - n]")
            out.append(", ".join(names) + ", = q")
        else:
            out.extend(f"{head} = p[{i}] if n > {i} else ''" for head, i in positions.items())
        return out

    # -- reading elements (prelude) --

    def head(self, name: str, expr: str) -> str:
        """A local read once at the top: a message text (`expr`)."""
        if name not in self.heads:
            self.heads[name] = expr
            self.inner[name] = []
            self.defined[name] = []
            self.known.add(name)
        return name

    def item(self, name: str, index: int) -> str:
        """A local read once at the top: item `index` of `p` (a field or component as a whole)."""
        if name not in self.heads:
            self.head(name, "")
            self.positions[name] = index
        return name

    def _define(self, head: str, name: str, expr: str) -> str:
        """A local computed from `head` when it is non-empty, else ""."""
        if name not in self.known:
            self.known.add(name)
            self.inner[head].append(f"{name} = {expr}")
            self.defined[head].append(name)
        return name

    def field(self, number: int) -> str:
        return self.item(f"f{number}", number)

    def raw(self, idx: tuple[int, ...]) -> str:
        """A local holding the escaped first-repetition element at `idx`, "" when null."""
        if self.level > 0:
            head = self.item(f"h{idx[0]}", idx[0] - 1)
            if len(idx) == 1:
                return head
        key = "_".join(map(str, idx))
        name = f"a{key}"
        if name in self.known:
            return name
        if self.level == 0:
            head = self.field(idx[0])
            expr = self._define(
                head, f"r{idx[0]}", f"{head}.split(R, 1)[0] if R in {head} else {head}"
            )
            if len(idx) > 1:
                comps = self._define(head, f"c{idx[0]}", f"{expr}.split(C)")
                expr = _item(comps, idx[1] - 1)
                if len(idx) > 2:
                    comp = self._define(head, f"a{idx[0]}_{idx[1]}x", expr)
                    subs = self._define(head, f"s{idx[0]}_{idx[1]}", f"{comp}.split(S)")
                    expr = _item(subs, idx[2] - 1)
        else:
            subs = self._define(head, f"s{idx[0]}", f"{head}.split(S)")
            expr = _item(subs, idx[1] - 1)
        self._define(head, name, expr)
        self.inner[head].append(f"if {name} == '\"\"': {name} = ''")
        return name

    def text(self, path: str) -> str:
        """A local holding the unescaped, stripped text at `path` (`$` paths
        read the message, `@` paths the first such segment of the rule's
        scope: its group instance, else the message)."""
        if path[:1] in ("$", "@"):
            if _MESSAGE_PATH.fullmatch(path) is None:
                raise MapError(f"{self.where}: malformed message path {path!r}")
            scoped = path[0] == "@"
            name = ("g_" if scoped else "m_") + re.sub(r"\W", "_", path[1:])
            return self.head(name, f"x.{'sget' if scoped else 'mget'}({path[1:]!r})")
        idx = self.index(path)
        raw = self.raw(idx)
        name = "t" + raw[1:]
        head = f"f{idx[0]}" if self.level == 0 else f"h{idx[0]}"
        return self._define(head, name, f"(U({raw}) if E in {raw} else {raw}).strip()")

    def one_text(self, raw: str, nested: int, key: str, emit: Callable[[str], None]) -> None:
        """Append the code of a data type map that writes one element's text
        at `key` (see `Compiler.one_text`), without calling it: when the first
        item of `raw` (nested `nested` deep), unescaped and stripped, is not
        empty, `emit` writes the new dict `{key: text}`."""
        first = self.temp("_h")
        text = self.temp("_t")
        value = self.temp("_v")
        body = self.body
        split = f"{raw}.split({SPLIT[nested]}, 1)[0]" if nested in SPLIT else raw
        body.append(f"{first} = {split}")
        body.append(
            f"{text} = (U({first}) if E in {first} else {first}).strip()"
            f" if {first} != '\"\"' else ''"
        )
        body.append(f"if {text}:")
        mark = len(body)
        body.append(f"    {value} = {{{key!r}: {text}}}")
        self.dicts.add(value)
        emit(value)
        self.indent(body, mark + 1)

    def index(self, path: str) -> tuple[int, ...]:
        idx = _parse_index(path, self.where)
        if len(idx) + self.level > 3:
            raise MapError(f"{self.where}: path {path!r} is too deep for this element")
        return idx

    # -- conditions --

    def condition(self, spec: Any, out: str) -> str:
        """A Python expression for a `when` condition: `valued`, `not_valued`,
        `equals`, `in`, `not_in`, `same` (two elements' texts are equal) (on an
        element's unescaped first repetition; `$`-paths on the message),
        `repeats` (a field sent with more than one repetition), `set`,
        `unset` (on the output, a path such as `identifier[1].value`), `all`,
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
            steps = fhir_steps(str(arg), self.where)
            if any(index == -1 for _, index in steps):
                raise MapError(f"{self.where}: {op} takes an element, not `[]`: {arg!r}")
            if len(steps) == 1 and steps[0][1] is None:
                # Generated code never writes None (see `_compile`), so a key
                # present is a key set.
                return f"({steps[0][0]!r} {'in' if op == 'set' else 'not in'} {out})"
            present = self._present(out, steps)
            return present if op == "set" else f"(not {present})"
        if op in ("valued", "not_valued"):
            local = self.text(str(arg))
            return local if op == "valued" else f"(not {local})"
        if op == "repeats":
            idx = self.index(str(arg))
            if len(idx) != 1 or self.level != 0:
                raise MapError(f"{self.where}: repeats takes a segment's field number")
            return f"(R in {self.field(idx[0])})"
        if op == "same":
            if not isinstance(arg, list) or len(arg) != 2:
                raise MapError(f"{self.where}: same takes [path, path]")
            return f"({self.text(str(arg[0]))} == {self.text(str(arg[1]))})"
        if op in ("equals", "in", "not_in"):
            if not isinstance(arg, list) or len(arg) != 2:
                raise MapError(f"{self.where}: {op} takes [path, value(s)]")
            local = self.text(str(arg[0]))
            values = [arg[1]] if op == "equals" else arg[1]
            # A set display after `in` compiles to a frozenset constant.
            literal = "{" + ", ".join(repr(str(v)) for v in sorted(set(values), key=str)) + "}"
            return f"({local} {'not in' if op == 'not_in' else 'in'} {literal})"
        raise MapError(f"{self.where}: unknown condition {op!r}")

    def _present(self, out: str, steps: list[Step]) -> str:
        """An expression true when the output (`out`, a dict) has a value at
        `steps` (dict keys, list elements by index), read inline: no call per
        test; a type test also stands for the test that a value is there."""
        tests: list[str] = []
        node = out
        last = len(steps) - 1
        for i, (key, index) in enumerate(steps):
            getter = f"{node}.get({key!r})"
            if index is not None:
                seq = self.temp("_p")
                tests.append(f"type({seq} := {getter}) is list and len({seq}) > {index}")
                getter = f"{seq}[{index}]"
            if i == last:
                tests.append(f"{getter} is not None")
            else:
                node = self.temp("_p")
                tests.append(f"type({node} := {getter}) is dict")
        return "(" + " and ".join(tests) + ")"

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
        # The first write of a key of a fresh dict finds no value there.
        first = target == self.fresh and steps[0][0] not in self.touched
        self.touched.add(steps[0][0])
        for i, (key, idx) in enumerate(steps):
            final = i == last
            first = first and i == 0
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
                if first:
                    body.append(f"{child} = {node}[{key!r}] = {{}}")
                else:
                    body.append(f"{child} = {node}.get({key!r})")
                    body.append(f"if type({child}) is not dict: {child} = {node}[{key!r}] = {{}}")
                node = child
                continue
            seq = self.temp("_l")
            if final and (idx < 0 or (first and idx == 0 and not merge)):
                # The value appended, or the list made with it when there is none.
                if first:
                    body.append(f"{node}[{key!r}] = [{value}]")
                else:
                    body.append(
                        f"if type({seq} := {node}.get({key!r})) is list: {seq}.append({value})"
                    )
                    body.append(f"else: {node}[{key!r}] = [{value}]")
                if idx == 0 or not want_anchor:
                    return anchor
                if value in self.dicts:
                    return value
                result = self.temp("_w")
                body.append(f"{result} = {value} if type({value}) is dict else {node}")
                return result
            if first:
                body.append(f"{seq} = {node}[{key!r}] = []")
            else:
                body.append(f"{seq} = {node}.get({key!r})")
                body.append(f"if type({seq}) is not list: {seq} = {node}[{key!r}] = []")
            if (first and idx == 0) or idx < 0:
                # A new element (element 0 of a new list, as `while` would make it).
                node = anchor = self._append_element(body, seq)
                continue
            if idx == 0 and not (final and merge):
                # Element 0: the list's first, or a new one.
                element = self.temp("_d")
                if final:
                    body.append(f"if {seq}: {seq}[0] = {value}")
                    body.append(f"else: {seq}.append({value})")
                    return anchor
                body.append(f"if {seq}: {element} = {seq}[0]")
                body.append(f"else: {element} = {{}}; {seq}.append({element})")
                node = anchor = element
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

    def cleanup(self, entries: list[dict[str, Any]], out: str) -> None:
        """Entries writing element n > 0 of a list leave empty placeholders
        before it when earlier elements got no value; drop them."""
        lists: set[tuple[str, ...]] = set()
        for spec in entries:
            steps = fhir_steps(str(spec.get("to", "")), self.where)
            for j, (_, idx) in enumerate(steps):
                if idx is not None and idx > 0:
                    if any(s[1] is not None for s in steps[:j]):
                        raise MapError(
                            f"{self.where}: [n > 0] is supported only outside other lists"
                        )
                    lists.add(tuple(k for k, _ in steps[: j + 1]))
        for keys in sorted(lists):
            seq = self.temp("_c")
            getter = (
                f"{out}.get({keys[0]!r})"
                if len(keys) == 1
                else f"_out({out}, {', '.join(repr(k) for k in keys)})"
            )
            self.body.append(f"{seq} = {getter}")
            self.body.append(f"if type({seq}) is list and {{}} in {seq}:")
            self.body.append(f"    {seq}[:] = [e for e in {seq} if e != {{}}]")

    def indent(self, lines: list[str], start: int) -> None:
        """Indent the body from `start` on by one level."""
        for i in range(start, len(lines)):
            lines[i] = "    " + lines[i]


def _item(parts: str, i: int) -> str:
    """The expression for item `i` of the split `parts`, "" when it has fewer
    (a split has at least one item)."""
    return f"{parts}[0]" if i == 0 else f"{parts}[{i}] if len({parts}) > {i} else ''"


def identifier_code(resource: str, path: str, found: str) -> list[str]:
    """Code setting local `found` to the business identifier of the dict
    `resource`: (system, value) of the first identifier with a value at its
    key `path` (an identifier or a list of them), or None."""
    return [
        f"{found} = None",
        f"_i = {resource}.get({path!r})",
        "if type(_i) is list:",
        "    for _e in _i:",
        "        if type(_e) is dict and _e.get('value'):",
        f"            {found} = (str(_e.get('system', '')), str(_e['value']))",
        "            break",
        "elif type(_i) is dict and _i.get('value'):",
        f"    {found} = (str(_i.get('system', '')), str(_i['value']))",
    ]


def generate_twice(
    gen: GeneratedFunction, generate: Callable[[GeneratedFunction], None]
) -> GeneratedFunction:
    """`generate` run on a copy of `gen` to learn which elements' texts the
    prelude computes, then on `gen`, whose entries then read those texts
    instead of unescaping and stripping the elements again."""
    probe = GeneratedFunction(gen.name, gen.level, gen.where)
    generate(probe)
    gen.ahead = frozenset(n for n in probe.known if n.startswith("t"))
    generate(gen)
    return gen


def build(source: str, namespace: dict[str, Any], fname: str) -> Any:
    """Compile the generated `source` into `namespace`; returns function `fname`."""
    code = compile(source, f"<thumpflow.mapping: {fname}>", "exec")
    exec(code, namespace)
    return namespace[fname]
