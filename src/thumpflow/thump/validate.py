"""Row-level validation: a job's declared schema and rules, compiled once.

`RecordValidator.validate(record)` returns either the typed record (a new
dict: declared fields first, converted to their types, then undeclared fields
per the job's `unknown_fields`) or every failure found, each a `Failure`
naming the rule (`dob.type`, `mrn.required`, `rule:discharge-after-admit`)
and a remedy a person can act on. Remedies never quote the value: they
describe it ("got a value of 11 characters", "got a number"), so they are
safe to log; the reject itself keeps the record text. Validation is pure and
never raises on any input.

Two compiled forms of one schema, with one meaning:

- the *fast path*, a Python function generated from the schema once per job
  (`_generate`; names and literals are emitted with `repr`, never spliced in
  raw, and compiled with `compile()`): every field's check inlined, text
  values only, no failure bookkeeping. It answers the typed record, or None
  for "not sure";
- the *detailed path* (closures per field and rule, below), which finds every
  failure with its rule and remedy.

A record goes through the fast path first; when the fast path answers None
(a missing required field, a value that does not fit, a value that is not
text, an undeclared field under `unknown_fields: reject`, anything raised) or
a rule fails, the detailed path decides. The fast path accepts only what the
detailed path accepts and builds the same typed values with the same
converters' logic (the same regular expressions, `strip`, `fromisoformat`,
`Decimal`), so the answer never depends on which path gave it
(`tests/thump/test_validate_compiled.py` checks both on the same inputs).

`RecordValidator.prepare(record)` is the fast path once more, generated to
also write the record's canonical JSON while each value is at hand
(`thumpflow.core.records.canonical_json` of the typed record: the bytes
its content hash is taken of, and what the NDJSON destination writes) and
its values as that JSON gives them back, in field order (what the SQLite
destination binds). A date's text is its own ISO form, a date-time's is when it has the
form `isoformat` writes, so neither is formatted again. It answers None
whenever `validate` would not take the fast path, and also for a record
with undeclared fields kept (`unknown_fields: keep`) or an integer outside
SQLite's 64 bits: the caller then validates and encodes the usual way. The
tests compare its JSON with `canonical_json`, and its values with that JSON's, on
generated records. `RecordValidator.row_preparer(columns)` is `prepare`
generated once more for rows of text in a CSV header's order, so a reader
need not make a mapping of each row first (the tests compare it with
`prepare` on the same records, with columns reordered, missing and
undeclared).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from json.encoder import encode_basestring
from typing import Any

from thumpflow.config.jobs import FieldSpec, Job, RuleSpec
from thumpflow.core import records
from thumpflow.core.records import CONVERTERS, InvalidValueError, is_missing

_OPERATORS: dict[str, tuple[Callable[[Any, Any], bool], str]] = {
    "lt": (operator.lt, "less than"),
    "le": (operator.le, "less than or equal to"),
    "gt": (operator.gt, "greater than"),
    "ge": (operator.ge, "greater than or equal to"),
    "eq": (operator.eq, "equal to"),
    "ne": (operator.ne, "different from"),
}


@dataclass(frozen=True, slots=True)
class Failure:
    """One broken rule of one record and how to fix it (no patient values)."""

    rule: str
    remedy: str


def describe(value: Any) -> str:
    """What a value is, without saying what it is: its kind and length only."""
    if isinstance(value, str):
        return f"a value of {len(value)} characters"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float | Decimal):
        return "a number"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def _field_checker(spec: FieldSpec) -> Callable[[Any], Any]:
    """A function from a present value to its typed value, raising `InvalidValueError`."""
    convert = CONVERTERS[spec.type]
    max_length = spec.max_length
    pattern = re.compile(spec.pattern) if spec.pattern is not None else None
    allowed = frozenset(spec.allowed) if spec.allowed is not None else None
    if max_length is None and pattern is None and allowed is None:
        return convert
    shown = ", ".join(spec.allowed or ())

    def check(value: Any) -> Any:
        typed = convert(value)
        text = typed if isinstance(typed, str) else str(value)
        if max_length is not None and len(text) > max_length:
            raise InvalidValueError("max_length", f"at most {max_length} characters")
        if pattern is not None and pattern.fullmatch(text) is None:
            raise InvalidValueError("pattern", f"text matching `{pattern.pattern}`")
        if allowed is not None and text not in allowed:
            raise InvalidValueError("allowed", f"one of {shown}")
        return typed

    return check


def _rule_checker(rule: RuleSpec) -> Callable[[Mapping[str, Any]], Failure | None]:
    name = f"rule:{rule.id}"
    field = rule.field
    if rule.requires is not None:
        needed = tuple(rule.requires)
        remedy = rule.remedy or (
            f"field{'s' if len(needed) > 1 else ''} "
            + ", ".join(f"`{n}`" for n in needed)
            + f" {'are' if len(needed) > 1 else 'is'} required when field `{field}` is given"
        )

        def requires(record: Mapping[str, Any]) -> Failure | None:
            if record.get(field) is None:
                return None
            if all(record.get(other) is not None for other in needed):
                return None
            return Failure(name, remedy)

        return requires
    assert rule.op is not None and rule.other is not None
    compare, words = _OPERATORS[rule.op]
    other = rule.other
    remedy = rule.remedy or f"field `{field}` must be {words} field `{other}`"

    def comparison(record: Mapping[str, Any]) -> Failure | None:
        left, right = record.get(field), record.get(other)
        if left is None or right is None:
            return None
        try:
            holds = compare(left, right)
        except TypeError:
            return Failure(
                name,
                f"fields `{field}` and `{other}` cannot be compared (give both with a time "
                "zone, or both without)",
            )
        return None if holds else Failure(name, remedy)

    return comparison


class RecordValidator:
    """A job's schema and rules, compiled; `validate` is pure and thread-safe."""

    def __init__(
        self,
        fields: Sequence[FieldSpec],
        rules: Sequence[RuleSpec] = (),
        *,
        unknown_fields: str = "keep",
        required: Sequence[str] = (),
    ) -> None:
        forced = set(required)
        self._fields = tuple(
            (spec.name, spec.required or spec.name in forced, _field_checker(spec))
            for spec in fields
        )
        self._declared = frozenset(spec.name for spec in fields)
        self._rules = tuple(_rule_checker(rule) for rule in rules)
        self._unknown = unknown_fields
        self._specs = tuple(fields)
        self._forced = forced
        self._fast = _generate(fields, forced, unknown_fields)
        self._prepare = _generate(fields, forced, unknown_fields, render=True)

    @classmethod
    def for_job(cls, job: Job) -> RecordValidator:
        """The validator of a job: its schema, rules, unknown-field policy; key fields required."""
        return cls(
            job.schema_, job.rules, unknown_fields=job.unknown_fields, required=job.business_key
        )

    def validate(self, data: Mapping[str, Any]) -> dict[str, Any] | list[Failure]:
        """The typed record, or every failure of this record (never both, never raises)."""
        typed: dict[str, Any] | None = self._fast(data)
        if typed is None:
            return self.validate_detailed(data)
        for rule in self._rules:
            if rule(typed) is not None:
                return self.validate_detailed(data)
        return typed

    def prepare(self, data: Mapping[str, Any]) -> Prepared | None:
        """The typed record with its canonical JSON and values, when the fast path is sure of
        the record.

        None means "validate instead" (see the module docstring); a record it
        answers is one `validate` accepts, as the same typed record.
        """
        prepared: Prepared | None = self._prepare(data)
        if prepared is None:
            return None
        typed = prepared[0]
        for rule in self._rules:
            if rule(typed) is not None:
                return None
        return prepared

    def row_preparer(self, columns: Sequence[str]) -> Callable[[Sequence[str]], Prepared | None]:
        """`prepare` for records given as rows of text in the order of `columns` (a CSV
        file's header): the same answers as `prepare(dict(zip(columns, row)))`, without
        making the mapping (which it does make, and prepares, when undeclared columns would
        have to be kept or rejected)."""
        declared = {name for name, _, _ in self._fields}
        if self._unknown != "drop" and not declared.issuperset(columns):
            prepare = self.prepare
            names = list(columns)
            return lambda row: prepare(dict(zip(names, row, strict=False)))
        fast: Callable[[Sequence[str]], Prepared | None] = _generate(
            self._specs, self._forced, self._unknown, render=True, columns=list(columns)
        )
        rules = self._rules
        if not rules:
            return fast

        def prepare_row(row: Sequence[str]) -> Prepared | None:
            prepared = fast(row)
            if prepared is None or any(rule(prepared[0]) is not None for rule in rules):
                return None
            return prepared

        return prepare_row

    def validate_detailed(self, data: Mapping[str, Any]) -> dict[str, Any] | list[Failure]:
        """`validate` without the fast path: every check with its failure (for failures, tests)."""
        typed: dict[str, Any] = {}
        failures: list[Failure] = []
        for name, required, check in self._fields:
            value = data.get(name)
            if is_missing(value):
                if required:
                    failures.append(
                        Failure(f"{name}.required", f"field `{name}` is required; it is missing")
                    )
                typed[name] = None
                continue
            try:
                typed[name] = check(value)
            except InvalidValueError as invalid:
                failures.append(
                    Failure(
                        f"{name}.{invalid.rule}",
                        f"field `{name}` must be {invalid.expected}; got {describe(value)}",
                    )
                )
        if self._unknown != "drop":
            for name, value in data.items():
                if name in self._declared:
                    continue
                if self._unknown == "reject":
                    failures.append(
                        Failure(
                            "unknown_fields",
                            f"field `{name}` is not declared in the job's schema; remove it or "
                            "declare it",
                        )
                    )
                else:
                    typed[name] = value
        if failures:
            return failures
        for rule in self._rules:
            failure = rule(typed)
            if failure is not None:
                failures.append(failure)
        return failures or typed


# ---------------------------------------------------------------- the fast path

Prepared = tuple[dict[str, Any], bytes, tuple[Any, ...]]
"""A prepared record: (typed record, its canonical JSON, the typed record's values in its key
order as that JSON gives them back: text, integers, booleans, None)."""

# A date-time text `datetime.isoformat` gives back unchanged: seconds, no fraction, `T`, and
# an offset with a colon other than -00:00 (which it writes as +00:00), or none.
_ISOFORMAT_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:[+-](?!00:00)\d{2}:\d{2}|\+00:00)?"
)


def _generate(
    fields: Sequence[FieldSpec],
    forced: set[str],
    unknown: str,
    *,
    render: bool = False,
    columns: Sequence[str] | None = None,
) -> Callable[[Any], Any]:
    """The fast path of a schema (see the module docstring): typed record or None.

    With `render`, a `Prepared` or None (also for undeclared fields kept).
    With `columns` (and `render`), the function takes a row of text values in
    the order of `columns` instead of a mapping (no undeclared column kept).
    """
    namespace: dict[str, Any] = {
        "_DATE": records.DATE_TEXT.match,
        "_DATETIME": records.DATETIME_TEXT.match,
        "_DECIMAL": records.DECIMAL_TEXT.match,
        "_INTEGER": records.INTEGER_TEXT.match,
        "_date": date.fromisoformat,
        "_datetime": datetime.fromisoformat,
        "Decimal": Decimal,
        "_str": str,
        "_DECLARED": frozenset(spec.name for spec in fields),
        "_ISOFORMAT": _ISOFORMAT_DATETIME.fullmatch,
        "_js": encode_basestring,
    }
    # `absent` counts declared names not in `data` (only a None from `get` can be one), so
    # `len(data) != len(fields) - absent` says, without a set, that undeclared names came.
    lines = ["def fast(data):", "    get = data.get", "    absent = 0", "    try:"]
    if columns is not None:
        lines[1] = "    pass"
    out = []
    for n, spec in enumerate(fields):
        name = repr(spec.name)
        target = f"f{n}"
        out.append(f"{name}: {target}")
        required = spec.required or spec.name in forced
        body = [f"v = get({name})"]
        if columns is not None:
            body = [f"v = data[{columns.index(spec.name)}]" if spec.name in columns else "v = None"]
        counted = [f"    if {name} not in data:", "        absent += 1"] if columns is None else []
        if spec.type in ("string", "code"):
            # `_text`: text is kept as given (not stripped); missing = None or blank.
            body += [
                "if v.__class__ is _str and v and not v.isspace():",
                f"    {target} = v",
            ]
            if required:
                body += ["else:", "    return None"]
            else:
                body += [
                    "elif v is None:",
                    f"    {target} = None",
                    *counted,
                    "elif v.__class__ is _str:",
                    f"    {target} = None",
                    "else:",
                    "    return None",
                ]
        else:
            body += [
                "if v.__class__ is _str:",
                "    s = v.strip()",
                "elif v is None:",
                "    s = ''",
                *counted,
                "else:",
                "    return None",
                "if not s:",
                "    return None" if required else f"    {target} = None",
                "else:",
            ]
            convert = _fast_convert(spec.type, target, namespace, n)
            body += ["    " + line for line in convert]
        body += _fast_constraints(spec, target, namespace, n)
        if render:
            body += _render(spec.type, n)
        lines += ["        " + line for line in body]
    lines.append("        typed = {" + ", ".join(out) + "}")
    if render:
        if unknown != "drop" and columns is None:
            lines += [f"        if len(data) != {len(fields)} - absent:", "            return None"]
        ordered = sorted(range(len(fields)), key=lambda n: fields[n].name)
        parts = [] if fields else [repr("{")]  # no field: "{}"
        for position, n in enumerate(ordered):
            opening = "{" if position == 0 else ","
            parts += [repr(opening + encode_basestring(fields[n].name) + ":"), f"j{n}"]
        values = "".join(f"v{n}, " for n in range(len(fields)))
        lines += [
            "        text = ''.join((" + ", ".join(parts) + ", '}'))",
            f"        return typed, text.encode('utf-8'), ({values})",
            "    except Exception:",
            "        return None",
        ]
        return _compiled(lines, namespace, "prepare" if columns is None else "prepare_row")
    if unknown != "drop":
        lines += [
            f"        if len(data) != {len(fields)} - absent:",
        ]
        if unknown == "reject":
            lines.append("            return None")
        else:
            lines += [
                "            for k, v in data.items():",
                "                if k not in _DECLARED:",
                "                    typed[k] = v",
            ]
    lines += ["        return typed", "    except Exception:", "        return None"]
    return _compiled(lines, namespace, "fast")


def _compiled(
    lines: list[str], namespace: dict[str, Any], name: str
) -> Callable[[Mapping[str, Any]], Any]:
    lines[0] = f"def {name}(data):"
    code = compile("\n".join(lines) + "\n", f"<thumpflow.thump.validate: {name}>", "exec")
    exec(code, namespace)
    function: Callable[[Mapping[str, Any]], Any] = namespace[name]
    return function


def _render(kind: str, n: int) -> list[str]:
    """Lines setting `v{n}`, the typed value `f{n}` as JSON gives it back (text, integer,
    boolean or None), and `j{n}`, its canonical JSON.

    After a conversion `s` still holds the text converted: a date's is its
    ISO form, a date-time's (after `Z` became `+00:00`) is when it matches
    `_ISOFORMAT`. Dates, date-times and decimals need no JSON escaping.
    """
    target = f"f{n}"
    value, text = {
        "string": (target, f"_js(v{n})"),
        "code": (target, f"_js(v{n})"),
        "date": ("s", f"'\"' + v{n} + '\"'"),
        "datetime": (
            f"s if _ISOFORMAT(s) is not None else {target}.isoformat()",
            f"'\"' + v{n} + '\"'",
        ),
        "decimal": (f"_str({target})", f"'\"' + v{n} + '\"'"),
        "integer": (target, f"_str({target})"),
        "boolean": (target, f"'true' if {target} else 'false'"),
    }[kind]
    lines = [
        f"if {target} is None:",
        f"    v{n} = None",
        f"    j{n} = 'null'",
        "else:",
        f"    v{n} = {value}",
        f"    j{n} = {text}",
    ]
    if kind == "integer":
        # SQLite holds 64-bit integers; a larger one is bound (and refused) the usual way.
        lines.insert(0, f"if {target} is not None and not {-(2**63)} <= {target} < {2**63}:")
        lines.insert(1, "    return None")
    return lines


def _fast_convert(kind: str, target: str, namespace: dict[str, Any], n: int) -> list[str]:
    """Lines converting the stripped present text `s` to its typed value, as `CONVERTERS` do."""
    if kind == "date":
        return ["if _DATE(s) is None:", "    return None", f"{target} = _date(s)"]
    if kind == "datetime":
        return [
            "if _DATETIME(s) is None:",
            "    return None",
            "if s[-1] == 'Z':",
            "    s = s[:-1] + '+00:00'",
            f"{target} = _datetime(s)",
        ]
    if kind == "decimal":
        return ["if _DECIMAL(s) is None:", "    return None", f"{target} = Decimal(s)"]
    if kind == "integer":
        return ["if _INTEGER(s) is None:", "    return None", f"{target} = int(s)"]
    namespace[f"_convert{n}"] = CONVERTERS[kind]
    return [f"{target} = _convert{n}(s)"]


def _fast_constraints(spec: FieldSpec, target: str, namespace: dict[str, Any], n: int) -> list[str]:
    """Lines answering None when a present value breaks `max_length`, `pattern` or `allowed`."""
    if spec.max_length is None and spec.pattern is None and spec.allowed is None:
        return []
    if spec.type not in ("string", "code"):
        # Rare: constraints on a converted type go through the detailed checker.
        namespace[f"_check{n}"] = _field_checker(spec)
        return [f"if {target} is not None:", f"    _check{n}(v)"]
    lines = [f"if {target} is not None:"]
    if spec.max_length is not None:
        lines += [f"    if len({target}) > {spec.max_length!r}:", "        return None"]
    if spec.pattern is not None:
        namespace[f"_pattern{n}"] = re.compile(spec.pattern).fullmatch
        lines += [f"    if _pattern{n}({target}) is None:", "        return None"]
    if spec.allowed is not None:
        namespace[f"_allowed{n}"] = frozenset(spec.allowed)
        lines += [f"    if {target} not in _allowed{n}:", "        return None"]
    return lines
