"""The evaluator: runs a compiled message map over one parsed message.

Guarantees:

- Pure and deterministic: the output depends only on the message bytes (no
  clock, no randomness, no environment); converting twice gives equal dicts.
- Resource ids are UUIDv5 over the resource type and its business identifier
  (system|value), or over a key the message map declares (e.g. the report's
  id, OBX-3 and OBX-4 for an Observation); resources derived from a data
  type (Practitioner, Organization, Location) without an identifier are
  keyed by their content. Two rules producing the same id in one message get
  a disambiguating suffix in the key, never a silent overwrite.
- Errors are `ConversionError` (a `MessageError`) naming the message type,
  segment and field, never a value from the message.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

from thumpflow.core.errors import MessageError
from thumpflow.fhir import deterministic_id, reference
from thumpflow.hl7v2 import Message, Segment, unescape
from thumpflow.mapping._compile import (
    Cond,
    Ctx,
    Emit,
    Identity,
    MapError,
    Parts,
    Registry,
    compile_condition,
    compile_setter,
    compile_text,
    prune,
    segment_map,
)
from thumpflow.mapping._values import instant, timezone_of

BundleType = Literal["transaction", "batch"]


class ConversionError(MessageError):
    """A message that cannot be converted to FHIR; `reason` names the message
    type, segment and field concerned, never data from the message."""


@dataclass(frozen=True, slots=True)
class Ref:
    to: Callable[[dict[str, Any], Any, bool], dict[str, Any]]
    name: str
    all: bool
    with_: tuple[tuple[Callable[[dict[str, Any], Any, bool], dict[str, Any]], Any], ...]


@dataclass(frozen=True, slots=True)
class Rule:
    """One line of a message map: a segment (or group) → a resource."""

    name: str | None
    segment: str
    each: bool
    required: bool
    when: Cond | None
    resource_type: str
    emits: tuple[Emit, ...]
    into: str | None
    identity: Identity
    key_texts: tuple[Callable[[Parts, Ctx], str] | str, ...]
    refs: tuple[Ref, ...]
    notes: Callable[[dict[str, Any], Any, bool], dict[str, Any]] | None
    group: tuple[tuple[str, ...], tuple[Rule, ...]] | None


@dataclass(frozen=True, slots=True)
class MessageMap:
    structure: str
    events: tuple[str, ...]
    rules: tuple[Rule, ...]


def compile_rules(specs: Any, reg: Registry, where: str) -> tuple[Rule, ...]:
    if not isinstance(specs, list):
        raise MapError(f"{where}: `rules` must be a list")
    return tuple(_compile_rule(s, reg, f"{where} rule {i + 1}") for i, s in enumerate(specs))


def _compile_rule(spec: Any, reg: Registry, where: str) -> Rule:
    if not isinstance(spec, dict):
        raise MapError(f"{where}: a rule is a mapping")
    if "group" in spec:
        starts = tuple(str(s) for s in spec["group"])
        inner = compile_rules(spec.get("rules"), reg, f"{where} group")
        return Rule(
            None, "", False, False, None, "", (), None, Identity(), (), (), None, (starts, inner)
        )
    segment = str(spec.get("segment", ""))
    if not segment:
        raise MapError(f"{where}: `segment` is required")
    resource_type, emits = segment_map(reg, str(spec.get("map", "")), where)
    ident = spec.get("identity") or {}
    key = tuple(str(k) for k in ident.get("key", ()))
    key_texts: list[Callable[[Parts, Ctx], str] | str] = []
    for part in key:
        if part[:1].isdigit() or part.startswith("$"):
            key_texts.append(compile_text(part, 0, where))
        else:
            key_texts.append(part)
    refs = tuple(
        Ref(
            compile_setter(str(r["to"]), where),
            str(r["ref"]),
            bool(r.get("all")),
            tuple((compile_setter(str(k), where), v) for k, v in (r.get("with") or {}).items()),
        )
        for r in spec.get("refs", ())
    )
    notes = spec.get("notes")
    return Rule(
        name=spec.get("name"),
        segment=segment,
        each=bool(spec.get("each")),
        required=bool(spec.get("required")),
        when=compile_condition(spec["when"], 0, where) if "when" in spec else None,
        resource_type=resource_type,
        emits=tuple(emits),
        into=spec.get("into"),
        identity=Identity(ident.get("conditional"), key),
        key_texts=tuple(key_texts),
        refs=refs,
        notes=compile_setter(str(notes), where) if notes else None,
        group=None,
    )


@dataclass(slots=True)
class _Built:
    resource: dict[str, Any]
    rid: str
    url: str
    conditional: bool


class _Scope:
    __slots__ = ("names", "parent")

    def __init__(self, parent: _Scope | None) -> None:
        self.parent = parent
        self.names: dict[str, list[_Built]] = {}

    def lookup(self, name: str) -> list[_Built]:
        scope: _Scope | None = self
        while scope is not None:
            found = scope.names.get(name)
            if found:
                return found
            scope = scope.parent
        return []


def _identifier_of(resource: dict[str, Any], path: str) -> tuple[str, str] | None:
    value = resource.get(path)
    items = value if isinstance(value, list) else [value] if isinstance(value, dict) else []
    for ident in items:
        if isinstance(ident, dict) and ident.get("value"):
            return str(ident.get("system", "")), str(ident["value"])
    return None


def _search_escape(text: str) -> str:
    for ch in ("\\", "|", ",", "$"):
        text = text.replace(ch, "\\" + ch)
    return quote(text, safe=":/.-_~")


class _Run:
    """State of one conversion."""

    def __init__(self, message: Message, bundle_type: BundleType) -> None:
        self.message = message
        self.bundle_type = bundle_type
        self.built: dict[str, _Built] = {}
        self.order: list[str] = []
        d = message.delimiters
        self.fs = d.field
        esc = d.escape
        enc = message.encoding
        self.collected: dict[str, str] = {}
        msh7 = message.get("MSH-7")
        self.ctx = Ctx(
            rep=d.repetition,
            comp=d.component,
            sub=d.subcomponent,
            unescape=lambda raw: unescape(raw, d, enc) if esc in raw else raw,
            tz=timezone_of(msh7),
            message_get=self.message_get,
            add_resource=self.add_datatype_resource,
        )

    def message_get(self, path: str) -> str:
        if path.startswith("*"):
            cached = self.collected.get(path)
            if cached is None:
                seg_id, fld = path[1:].split("-")
                lines = [
                    line for seg in self.message.segments_named(seg_id) for line in seg.get_all(fld)
                ]
                cached = self.collected[path] = "\n".join(lines)
            return cached
        return self.message.get(path)

    def parts(self, seg: Segment) -> Parts:
        fields = seg.text.split(self.fs)
        if seg.id == "MSH":
            fields.insert(1, self.fs)
        return fields

    def reference(self, b: _Built) -> dict[str, Any]:
        if self.bundle_type == "transaction":
            return {"reference": f"urn:uuid:{b.rid}"}
        return reference(b.resource["resourceType"], b.rid)

    def register(
        self, resource: dict[str, Any], identity: Identity, key: tuple[str, ...]
    ) -> _Built:
        rtype = resource["resourceType"]
        found = _identifier_of(resource, identity.conditional) if identity.conditional else None
        if found is not None:
            system, value = found
            basis: tuple[str, ...] = found
            query = (
                f"{_search_escape(system)}|{_search_escape(value)}"
                if system
                else (_search_escape(value))
            )
            url = f"{rtype}?identifier={query}"
            conditional = self.bundle_type == "transaction"
        else:
            basis = key
            url = ""
            conditional = False
        rid = deterministic_id(rtype, *basis)
        n = 1
        while rid in self.built:
            n += 1
            rid = deterministic_id(rtype, *basis, f"#{n}")
        if not conditional:
            url = f"{rtype}/{rid}"
        b = _Built(resource, rid, url, conditional)
        self.built[rid] = b
        self.order.append(rid)
        return b

    def add_datatype_resource(self, resource: dict[str, Any], identity: Identity) -> dict[str, Any]:
        found = _identifier_of(resource, identity.conditional) if identity.conditional else None
        rtype = resource["resourceType"]
        basis = (
            found
            if found is not None
            else (json.dumps(resource, sort_keys=True, ensure_ascii=False),)
        )
        rid = deterministic_id(rtype, *basis)
        existing = self.built.get(rid)
        if existing is None:
            existing = self.register(resource, Identity(identity.conditional), basis)
        return self.reference(existing)

    # -- rules ---------------------------------------------------------------

    def run_rules(
        self,
        rules: tuple[Rule, ...],
        segs: list[Segment],
        scope: _Scope,
        structure: str,
    ) -> list[tuple[Rule, _Built]]:
        pending: list[tuple[Rule, _Built]] = []
        for rule in rules:
            matches = [(i, s) for i, s in enumerate(segs) if s.id == rule.segment]
            if not matches:
                if rule.required:
                    raise ConversionError(
                        f"{structure}: required segment {rule.segment} is missing",
                        segment=rule.segment,
                        code="100",
                    )
                continue
            if not rule.each:
                matches = matches[:1]
            for pos, seg in matches:
                parts = self.parts(seg)
                if rule.when is not None and not rule.when(parts, self.ctx, {}):
                    continue
                built = self.apply(rule, parts, segs, pos, scope)
                if built is not None:
                    pending.append((rule, built))
        return pending

    def apply(
        self, rule: Rule, parts: Parts, segs: list[Segment], pos: int, scope: _Scope
    ) -> _Built | None:
        if rule.into is not None:
            targets = scope.lookup(rule.into)
            if not targets:
                return None
            target = targets[0].resource
            for emit in rule.emits:
                emit(parts, self.ctx, target)
            return None
        out: dict[str, Any] = {}
        for emit in rule.emits:
            emit(parts, self.ctx, out)
        if rule.notes is not None:
            for nte in _following(segs, pos, "NTE"):
                text = "\n".join(t for t in nte.get_all("3") if t and t != '""').strip()
                if text:
                    rule.notes(out, {"text": text}, False)
        body = prune(out) or {}
        resource = {"resourceType": rule.resource_type, **body}
        key_parts = []
        for kt in rule.key_texts:
            if isinstance(kt, str):
                found = scope.lookup(kt)
                key_parts.append(found[0].rid if found else "")
            else:
                key_parts.append(kt(parts, self.ctx))
        if not any(key_parts):
            key_parts = [self.message.sending_application, self.message.control_id, str(pos)]
        built = self.register(resource, rule.identity, tuple(key_parts))
        if rule.name:
            scope.names.setdefault(rule.name, []).append(built)
        return built

    def resolve(self, pending: list[tuple[Rule, _Built]], scopes: dict[int, _Scope]) -> None:
        for rule, built in pending:
            scope = scopes[id(built)]
            for ref in rule.refs:
                if ref.name == "*":
                    targets = [self.built[r] for r in self.order if r != built.rid]
                else:
                    targets = scope.lookup(ref.name)
                if not ref.all:
                    targets = targets[:1]
                for t in targets:
                    if t is not built:
                        anchor = ref.to(built.resource, self.reference(t), False)
                        for setter, value in ref.with_:
                            setter(anchor, value, False)


def _following(segs: list[Segment], pos: int, seg_id: str) -> list[Segment]:
    out = []
    for seg in segs[pos + 1 :]:
        if seg.id != seg_id:
            break
        out.append(seg)
    return out


def _instances(segs: list[Segment], starts: tuple[str, ...]) -> list[list[Segment]]:
    """Split `segs` into group instances: a start segment opens a new instance
    unless it continues the current one in `starts` order (ORC then OBR)."""
    instances: list[list[Segment]] = []
    current: list[Segment] | None = None
    seen: set[str] = set()
    high = -1
    for seg in segs:
        if seg.id in starts:
            k = starts.index(seg.id)
            if current is None or seg.id in seen or k < high:
                current = []
                instances.append(current)
                seen = set()
                high = -1
            seen.add(seg.id)
            high = max(high, k)
        if current is not None:
            current.append(seg)
    return instances


def evaluate(message: Message, mmap: MessageMap, bundle_type: BundleType) -> dict[str, Any]:
    """Run `mmap` over `message` and assemble the Bundle (see module docstring)."""
    run = _Run(message, bundle_type)
    segs = message.segments()
    root = _Scope(None)
    scopes: dict[int, _Scope] = {}
    pending = _run_tracking(run, mmap.rules, segs, root, mmap.structure, scopes)
    run.resolve(pending, scopes)
    entries = []
    for rid in run.order:
        b = run.built[rid]
        resource = b.resource
        if not b.conditional:
            resource = {
                "resourceType": resource["resourceType"],
                "id": rid,
                **{k: v for k, v in resource.items() if k != "resourceType"},
            }
        entries.append(
            {
                "fullUrl": f"urn:uuid:{rid}",
                "resource": resource,
                "request": {"method": "PUT", "url": b.url},
            }
        )
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": bundle_type}
    stamp = instant(message.get("MSH-7"))
    if stamp:
        bundle["timestamp"] = stamp
    bundle["entry"] = entries
    return bundle


def _run_tracking(  # noqa: PLR0917
    run: _Run,
    rules: tuple[Rule, ...],
    segs: list[Segment],
    scope: _Scope,
    structure: str,
    scopes: dict[int, _Scope],
) -> list[tuple[Rule, _Built]]:
    pending: list[tuple[Rule, _Built]] = []
    for rule in rules:
        if rule.group is not None:
            starts, inner = rule.group
            for instance in _instances(segs, starts):
                pending.extend(
                    _run_tracking(run, inner, instance, _Scope(scope), structure, scopes)
                )
            continue
        got = run.run_rules((rule,), segs, scope, structure)
        for _, built in got:
            scopes[id(built)] = scope
        pending.extend(got)
    return pending
