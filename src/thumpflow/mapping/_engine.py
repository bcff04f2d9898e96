"""The evaluator: runs a compiled message map over one parsed message.

Guarantees:

- Pure and deterministic: the output depends only on the message bytes (no
  clock, no randomness, no environment); converting twice gives equal dicts.
- Resource ids are `thumpflow.fhir.deterministic_id` over the resource type
  and its business identifier (system, value), or over a key the message map
  declares (e.g. the report's id, OBX-3 and OBX-4 for an Observation);
  resources derived from a data type (Practitioner, Organization, Location)
  without an identifier are keyed by their content, so one such resource
  named twice in a message is one entry. Two rules producing the same id in
  one message get a disambiguating `#n` part, never a silent overwrite.
- Errors are `ConversionError` (a `MessageError`) naming the message type,
  segment and field, never a value from the message.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal
from urllib.parse import quote

from thumpflow.core.errors import MessageError
from thumpflow.fhir import deterministic_id
from thumpflow.hl7v2 import Message, unescape
from thumpflow.mapping._report import (
    MISSING_SEGMENT,
    NO_REFERENCE_TARGET,
    ConversionWarning,
)
from thumpflow.mapping._rules import MessageMap, Rule
from thumpflow.mapping._support import Ctx, Parts, read_output
from thumpflow.mapping._values import FhirDecimal, instant, timezone_of

BundleType = Literal["transaction", "batch", "collection"]


class ConversionError(MessageError):
    """A message that cannot be converted to FHIR; `reason` names the message
    type, segment and field concerned, never data from the message."""


@dataclass(slots=True)
class _Built:
    resource: dict[str, Any]
    rid: str
    url: str
    conditional: bool
    ref: str
    # The segment (index in the message) the resource was built from, and the
    # one a `follows` rule's segment follows (-1: none).
    seg: int = -1
    anchor: int = -1


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
    items = value if type(value) is list else [value] if type(value) is dict else []
    for ident in items:
        if type(ident) is dict and ident.get("value"):
            return str(ident.get("system", "")), str(ident["value"])
    return None


_SEARCH_SAFE = re.compile(r"[A-Za-z0-9:/._~-]*")


def _search_escape(text: str) -> str:
    if _SEARCH_SAFE.fullmatch(text):
        return text
    for ch in ("\\", "|", ",", "$"):
        text = text.replace(ch, "\\" + ch)
    return quote(text, safe=":/.-_~")


# Resources built from a data type (Practitioner, Organization, Location) are
# reference data: the same few thousand recur in message after message, so
# their ids are memoised across messages (bounded; ids are a pure function).
_reference_data_id = lru_cache(maxsize=16384)(deterministic_id)


def _content_key(value: Any) -> str:
    if type(value) is FhirDecimal:
        return value.text
    raise TypeError(f"{type(value).__name__} in a resource")


_EVENT = re.compile(r"[A-Z0-9]{2,3}\^[A-Z0-9]{2,3}")


def shown_event(message_type: str, trigger_event: str) -> str:
    """`ADT^A01` for warnings and errors, or `(invalid)` when MSH-9 is not a message type
    and trigger event of 2-3 letters or digits each, so nothing else a sender put there
    reaches a reason, a NAK or the log."""
    event = f"{message_type}^{trigger_event}"
    return event if _EVENT.fullmatch(event) else "(invalid)"


class _Run:
    """State of one conversion: the message's segments split into fields once,
    the resources built so far, and the evaluation context."""

    def __init__(self, message: Message, bundle_type: BundleType) -> None:
        self.message = message
        self.message_type = shown_event(message.message_type, message.trigger_event)
        self.transaction = bundle_type == "transaction"
        self.batch = bundle_type == "batch"
        self.built: dict[str, _Built] = {}
        self.order: list[str] = []
        self.warnings: list[str] = []
        self.texts: dict[str, str] = {}
        d = message.delimiters
        enc = message.encoding
        split = message.segment_fields()
        self.ids_of: list[str] = [sid for sid, _ in split]
        self.fields: list[Parts] = [fields for _, fields in split]
        self.ctx = Ctx(
            d.repetition,
            d.component,
            d.subcomponent,
            d.escape,
            lambda raw: unescape(raw, d, enc),
            timezone_of(message.get("MSH-7")),
            self.message_get,
            self.add_datatype_resource,
        )

    def close(self) -> None:
        """Break the run ↔ context reference cycle, so the run and everything
        it built are freed by reference counting, without waiting for (and
        promoting garbage into the older generations of) the cyclic GC."""
        self.ctx.mget = self.ctx.add = _closed

    def message_get(self, path: str) -> str:
        """The unescaped, stripped text at a message path; `*SEG-F` joins every
        repetition of that field of every such segment with line feeds."""
        cached = self.texts.get(path)
        if cached is None:
            if path.startswith("*"):
                seg_id, fld = path[1:].split("-")
                lines = [
                    line for seg in self.message.segments_named(seg_id) for line in seg.get_all(fld)
                ]
                cached = "\n".join(lines)
            else:
                cached = self.message.get(path).strip()
            self.texts[path] = cached
        return cached

    def reference(self, b: _Built) -> dict[str, Any]:
        """A new Reference to `b` (`urn:uuid:` or, in a batch, `Type/id`)."""
        return {"reference": b.ref}

    def register(
        self,
        rtype: str,
        resource: dict[str, Any],
        found: tuple[str, str] | None,
        basis: tuple[str, ...],
        rid: str,
    ) -> _Built:
        """Add `resource` to the Bundle under `rid` (its id from `basis`, the
        identifier `found` or the rule's key), or under `basis + #n` when
        another resource of this message already has that id."""
        url = ""
        is_conditional = False
        if found is not None:
            system, value = found
            query = (
                f"{_search_escape(system)}|{_search_escape(value)}"
                if system
                else (_search_escape(value))
            )
            url = f"{rtype}?identifier={query}"
            is_conditional = self.transaction
        n = 1
        while rid in self.built:
            n += 1
            rid = deterministic_id(rtype, *basis, f"#{n}")
        local = f"{rtype}/{rid}"
        if not is_conditional:
            url = local
        b = _Built(resource, rid, url, is_conditional, local if self.batch else f"urn:uuid:{rid}")
        self.built[rid] = b
        self.order.append(rid)
        return b

    def add_datatype_resource(
        self, rtype: str, body: dict[str, Any], conditional: str | None, key: str | None = None
    ) -> dict[str, Any]:
        """Register a resource built by a data type map (once per message) and
        return a reference to it; its id comes from its identifier (with
        `conditional`), else `key`, else its content."""
        resource = body
        resource["resourceType"] = rtype
        found = _identifier_of(resource, conditional) if conditional else None
        if found is not None:
            basis: tuple[str, ...] = found
        elif key is not None:
            basis = (key,)
        else:
            basis = (
                json.dumps(resource, sort_keys=True, ensure_ascii=False, default=_content_key),
            )
        rid = _reference_data_id(rtype, *basis)
        existing = self.built.get(rid)
        if existing is None:
            existing = self.register(rtype, resource, found, basis, rid)
        return self.reference(existing)

    # -- rules ---------------------------------------------------------------

    def run(
        self,
        rules: tuple[Rule, ...],
        segs: list[int],
        scope: _Scope,
        structure: str,
        pending: list[tuple[Rule, _Built, _Scope]],
    ) -> None:
        """Apply `rules` to the segments at positions `segs` (a whole message
        or one group instance), collecting built resources into `pending`."""
        ids_of = self.ids_of
        fields = self.fields
        ctx = self.ctx
        at: dict[str, list[int]] = {}
        for pos, i in enumerate(segs):
            found = at.get(ids_of[i])
            if found is None:
                at[ids_of[i]] = [pos]
            else:
                found.append(pos)
        for rule in rules:
            if rule.group is not None:
                starts, inner = rule.group
                instances = _instances(segs, ids_of, starts)
                if not instances and rule.required:
                    self.missing(structure, starts[0])
                for instance in instances:
                    self.run(inner, instance, _Scope(scope), structure, pending)
                continue
            if rule.unless is not None and scope.lookup(rule.unless):
                continue
            if rule.needs is not None and not scope.lookup(rule.needs):
                if rule.segment in ids_of:
                    self.warn(
                        f"{self.message_type}: {rule.segment} not converted to"
                        f" {rule.resource_type}: no {rule.needs} to refer to",
                        NO_REFERENCE_TARGET,
                    )
                continue
            positions = at.get(rule.segment)
            if positions is None:
                if rule.required:
                    self.missing(structure, rule.segment)
                continue
            when = rule.when
            for pos in positions if rule.each else positions[:1]:
                parts = fields[segs[pos]]
                anchor = -1 if rule.follows is None else self.anchor_of(segs[pos], rule.follows)
                if anchor == -2:
                    continue
                if when is None or when(parts, ctx):
                    built = self.apply(rule, parts, segs, pos, scope)
                    if built is not None:
                        built.seg, built.anchor = segs[pos], anchor
                        pending.append((rule, built, scope))

    def anchor_of(self, i: int, follows: tuple[str, ...]) -> int:
        """The segment that segment `i` belongs to under a `follows` rule: the
        nearest `follows[0]` before it, stepping back only over segments like
        `i` itself, NTEs and `follows[1:]` (a PRT after PID and PD1 belongs
        to the PID; one after OBX, NTE and PRT to that OBX); -2 when there is
        none, so the rule does not apply."""
        ids_of = self.ids_of
        own = ids_of[i]
        j = i - 1
        while j >= 0:
            sid = ids_of[j]
            if sid == follows[0]:
                return j
            if sid not in (own, "NTE") and sid not in follows:
                break
            j -= 1
        return -2

    def missing(self, structure: str, segment: str) -> None:
        """Note a required segment that is absent (once per segment): what the
        message does hold is still converted."""
        self.warn(
            f"{self.message_type} ({structure}): required segment {segment} is missing",
            MISSING_SEGMENT,
        )

    def warn(self, text: str, code: str) -> None:
        """Add `text` (with its `code`) to the warnings unless it is there already."""
        if text not in self.warnings:
            self.warnings.append(ConversionWarning(text, code))

    def apply(
        self, rule: Rule, parts: Parts, segs: list[int], pos: int, scope: _Scope
    ) -> _Built | None:
        assert rule.fill is not None
        if rule.into is not None:
            targets = scope.lookup(rule.into)
            if targets:
                rule.fill(parts, self.ctx, targets[0].resource)
            return None
        resource: dict[str, Any] = {"resourceType": rule.resource_type}
        rule.fill(parts, self.ctx, resource)
        if rule.notes is not None:
            for k in range(pos + 1, len(segs)):
                i = segs[k]
                if self.ids_of[i] != "NTE":
                    break
                text = self.note_text(self.fields[i])
                if text:
                    rule.notes(resource, {"text": text})
        for path, field, reason in rule.requires:
            if read_output(resource, path) is None:
                raise ConversionError(
                    f"{self.message_type}: {reason}", segment=rule.segment, field=field, code="101"
                )
        found = _identifier_of(resource, rule.conditional) if rule.conditional else None
        basis = found if found is not None else self.key(rule, parts, pos, scope)
        rtype = rule.resource_type
        built = self.register(rtype, resource, found, basis, deterministic_id(rtype, *basis))
        if rule.name:
            scope.names.setdefault(rule.name, []).append(built)
        return built

    def key(self, rule: Rule, parts: Parts, pos: int, scope: _Scope) -> tuple[str, ...]:
        """The id basis of a resource without a business identifier: the
        rule's key parts, else the message's sender, control id and position."""
        texts = rule.texts(parts, self.ctx) if rule.texts is not None else ()
        key_parts: list[str] = []
        for part in rule.key:
            if type(part) is int:
                key_parts.append(texts[part])
            else:
                named = scope.lookup(str(part))
                key_parts.append(named[0].rid if named else "")
        if not any(key_parts):
            return (self.message.sending_application, self.message.control_id, str(pos))
        return tuple(key_parts)

    def note_text(self, fields: Parts) -> str:
        """NTE-3, every repetition unescaped and joined with line feeds."""
        value = fields[3] if len(fields) > 3 else ""
        if not value:
            return ""
        ctx = self.ctx
        lines = (ctx.unescape(r) if ctx.esc in r else r for r in value.split(ctx.rep))
        return "\n".join(t for t in lines if t and t != '""').strip()

    def resolve(self, pending: list[tuple[Rule, _Built, _Scope]]) -> None:
        for rule, built, scope in pending:
            for ref in rule.refs:
                if ref.name == "*":
                    targets = [self.built[r] for r in self.order if r != built.rid]
                else:
                    targets = scope.lookup(ref.name)
                if ref.own:
                    targets = [t for t in targets if t.anchor == built.seg]
                if not ref.all:
                    targets = targets[:1]
                to, with_, resource = ref.to, ref.with_, built.resource
                for t in targets:
                    if t is not built:
                        anchor = to(resource, {"reference": t.ref})
                        for setter, value in with_:
                            setter(anchor, value)
                        if ref.fill is not None and t.seg >= 0:
                            ref.fill(self.fields[t.seg], self.ctx, anchor)


def _closed(*_: Any) -> Any:
    raise RuntimeError("the conversion run is over")


def _instances(segs: list[int], ids_of: list[str], starts: tuple[str, ...]) -> list[list[int]]:
    """Split `segs` into group instances: a start segment opens a new instance
    unless it continues the current one in `starts` order (ORC then OBR)."""
    instances: list[list[int]] = []
    current: list[int] | None = None
    seen: set[str] = set()
    high = -1
    for i in segs:
        sid = ids_of[i]
        if sid in starts:
            k = starts.index(sid)
            if current is None or sid in seen or k < high:
                current = []
                instances.append(current)
                seen = set()
                high = -1
            seen.add(sid)
            high = max(high, k)
        if current is not None:
            current.append(i)
    return instances


def evaluate(
    message: Message, mmap: MessageMap, bundle_type: BundleType, warnings: list[str]
) -> dict[str, Any]:
    """Run `mmap` over `message` and assemble the Bundle (see the package
    docstring); what could not be converted is appended to `warnings` (a
    required segment that is missing), and a message of which nothing at all
    can be converted raises `ConversionError` naming the segment missing."""
    run = _Run(message, bundle_type)
    try:
        return _evaluate(run, message, mmap, bundle_type, warnings)
    finally:
        run.close()


def _evaluate(
    run: _Run, message: Message, mmap: MessageMap, bundle_type: BundleType, warnings: list[str]
) -> dict[str, Any]:
    run.warnings = warnings
    root = _Scope(None)
    pending: list[tuple[Rule, _Built, _Scope]] = []
    everything = list(range(len(run.ids_of)))
    run.run(mmap.rules, everything, root, mmap.structure, pending)
    if not run.order:
        first = next(
            (r.segment for r in mmap.rules if r.required and r.segment not in run.ids_of),
            mmap.rules[0].segment,
        )
        raise ConversionError(
            f"{mmap.structure}: nothing to convert; segment {first} is missing",
            segment=first,
            code="100",
        )
    before = len(run.order)
    run.run(mmap.final, everything, root, mmap.structure, pending)
    # The final rules' own resources (the Provenance) end the Bundle, after
    # what their data type maps added (an EVN-5 Practitioner).
    last = {b.rid for r in mmap.final if r.name for b in root.names.get(r.name, ())}
    tail = run.order[before:]
    if any(rid not in last for rid in tail[-len(last) :]):
        run.order[before:] = [r for r in tail if r not in last] + [r for r in tail if r in last]
    run.resolve(pending)
    entries = []
    collection = bundle_type == "collection"
    for rid in run.order:
        b = run.built[rid]
        resource = b.resource
        if not b.conditional:
            resource["id"] = rid
        entry: dict[str, Any] = {"fullUrl": f"urn:uuid:{rid}", "resource": resource}
        if not collection:
            entry["request"] = {"method": "PUT", "url": b.url}
        entries.append(entry)
    if collection and warnings:
        entries.append(_outcome(warnings, message))
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": bundle_type}
    stamp = instant(message.get("MSH-7")) or instant(message.get("EVN-2.1"), run.ctx.tz)
    if stamp:
        bundle["timestamp"] = stamp
    if control := run.message_get("MSH-10"):
        bundle["identifier"] = {"value": control}  # IG MSH[Bundle]
    bundle["entry"] = entries
    return bundle


def _outcome(warnings: list[str], message: Message) -> dict[str, Any]:
    """An OperationOutcome entry holding `warnings` (severity warning, code
    incomplete), for collection Bundles, whose entries are not written."""
    rid = deterministic_id(
        "OperationOutcome", message.sending_application, message.control_id, *warnings
    )
    issues = [
        {"severity": "warning", "code": "incomplete", "diagnostics": str(text)} for text in warnings
    ]
    return {
        "fullUrl": f"urn:uuid:{rid}",
        "resource": {"resourceType": "OperationOutcome", "id": rid, "issue": issues},
    }
