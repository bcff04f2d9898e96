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
- C0 control characters other than tab, LF and CR, which no FHIR string may
  hold, are dropped from the message's text and from what escapes decode to.
"""

from __future__ import annotations

import json
import re
from functools import cached_property, lru_cache
from typing import Any, Literal

from thumpflow.core.errors import MessageError
from thumpflow.fhir import deterministic_id
from thumpflow.hl7v2 import Message, compile_path, unescape
from thumpflow.hl7v2.segment import element
from thumpflow.mapping._memo import context_key, memo_for
from thumpflow.mapping._report import (
    MISSING_SEGMENT,
    NO_REFERENCE_TARGET,
    ConversionWarning,
    outcome_entry,
    shown_event,
)
from thumpflow.mapping._rules import MessageMap, Rule
from thumpflow.mapping._scope import (
    Built,
    Scope,
    anchors_of,
    group_instances,
    identifier_of,
    search_escape,
    segment_positions,
)
from thumpflow.mapping._support import Ctx, Parts, read_output
from thumpflow.mapping._values import FhirDecimal, instant, timezone_of

BundleType = Literal["transaction", "batch", "collection"]


class ConversionError(MessageError):
    """A message that cannot be converted to FHIR; `reason` names the message
    type, segment and field concerned, never data from the message."""


# Resources built from a data type (Practitioner, Organization, Location) are
# reference data: the same few thousand recur in message after message, so
# their ids are memoised across messages (bounded; ids are a pure function).
_reference_data_id = lru_cache(maxsize=16384)(deterministic_id)
# Identifier systems are few (naming systems, OIDs): escaped once each.
_escaped_system = lru_cache(maxsize=1024)(search_escape)


def _content_key(value: Any) -> str:
    if type(value) is FhirDecimal:
        return value.text
    raise TypeError(f"{type(value).__name__} in a resource")


# The C0 control characters FHIR's string types refuse (all but tab, LF and
# CR): dropped from what a message says, raw or as a `\Xhh\` escape.
_CONTROLS = "".join(map(chr, [*range(9), 11, 12, *range(14, 32)]))
_CONTROL = re.compile(f"[{re.escape(_CONTROLS)}]")
_CONTROL_BYTES = _CONTROLS.encode("ascii")
_NO_CONTROLS = str.maketrans("", "", _CONTROLS)


def _has_controls(message: Message) -> bool:
    """Whether the message may hold a control character FHIR refuses: its bytes hold one
    of those byte values, or, for text that its character set cannot encode (given to
    `Message.parse` as str), its text holds one of those characters."""
    try:
        raw = message.to_bytes()
    except UnicodeError:
        return _CONTROL.search(message.to_str()) is not None
    return len(raw.translate(None, _CONTROL_BYTES)) != len(raw)


class _Run:
    """State of one conversion: the message's segments split into fields once,
    the resources built so far, and the evaluation context."""

    def __init__(self, message: Message, bundle_type: BundleType) -> None:
        self.message = message
        self.transaction = bundle_type == "transaction"
        self.batch = bundle_type == "batch"
        self.built: dict[str, Built] = {}
        self.order: list[str] = []
        self.warnings: list[str] = []
        self.texts: dict[str, str] = {}
        # (resource type, id basis) -> the last `#n` given.
        self.repeats: dict[tuple[str, tuple[str, ...]], int] = {}
        d = message.delimiters
        enc = message.encoding
        self.ids_of, self.fields = message.segment_table()
        if _has_controls(message):
            # Rare: FHIR strings hold no C0 controls but tab, LF and CR.
            self.fields = [[f.translate(_NO_CONTROLS) for f in seg] for seg in self.fields]
        self.ctx = Ctx(
            d.repetition,
            d.component,
            d.subcomponent,
            d.escape,
            lambda raw: unescape(raw, d, enc).translate(_NO_CONTROLS),
            "",
            self.message_get,
            self.add_datatype_resource,
        )
        self.ctx.tz = timezone_of(self.message_get("MSH-7"))
        self.ctx.memo = memo_for(context_key(d, enc, self.ctx.tz))

    @cached_property
    def message_type(self) -> str:
        """The message's event for warnings and errors (see `shown_event`)."""
        return shown_event(self.message.message_type, self.message.trigger_event)

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
                cached = "\n".join(lines).translate(_NO_CONTROLS)
            else:
                # `message.get(path)`, read from the fields split already.
                sid, _, field, rep, comp, sub = compile_path(path)
                try:
                    fields = self.fields[self.ids_of.index(sid)]
                except ValueError:
                    raw = ""
                else:
                    raw = element(fields, self.message.delimiters, field, rep, comp, sub)
                ctx = self.ctx
                cached = (ctx.unescape(raw) if ctx.esc in raw else raw).strip()
            self.texts[path] = cached
        return cached

    def register(
        self,
        rtype: str,
        resource: dict[str, Any],
        found: tuple[str, str] | None,
        basis: tuple[str, ...],
        rid: str,
    ) -> Built:
        """Add `resource` to the Bundle under `rid` (its id from `basis`, the
        identifier `found` or the rule's key), or under `basis + #n` when
        another resource of this message already has that id."""
        built = self.built
        if rid in built:
            # The n-th resource with this basis is `#n`; counting on from the last
            # one keeps a message of many alike segments linear.
            n = self.repeats.get((rtype, basis), 1)
            while rid in built:
                n += 1
                rid = deterministic_id(rtype, *basis, f"#{n}")
            self.repeats[(rtype, basis)] = n
        query = None
        if found is not None and self.transaction:
            system, value = found
            query = (
                f"{rtype}?identifier={_escaped_system(system)}|{search_escape(value)}"
                if system
                else f"{rtype}?identifier={search_escape(value)}"
            )
        b = Built(
            resource, rtype, rid, f"{rtype}/{rid}" if self.batch else f"urn:uuid:{rid}", query
        )
        built[rid] = b
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
        found = identifier_of(resource, conditional) if conditional else None
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
        return {"reference": existing.ref}

    # -- rules ---------------------------------------------------------------

    def run(
        self,
        rules: tuple[Rule, ...],
        segs: list[int],
        scope: Scope,
        structure: str,
        pending: list[tuple[Rule, Built, Scope]],
        *,
        at: dict[str, list[int]] | None = None,
    ) -> None:
        """Apply `rules` to the segments at positions `segs` (a whole message
        or one group instance), collecting the built resources that have
        references to write (`refs`) into `pending`;
        `at` is `segment_positions(segs)` when the caller has it already."""
        ids_of = self.ids_of
        fields = self.fields
        ctx = self.ctx
        if at is None:
            at = segment_positions(list(map(ids_of.__getitem__, segs)))
        for rule in rules:
            if rule.group is not None:
                starts, inner = rule.group
                instances = group_instances(segs, ids_of, starts)
                if not instances and rule.required:
                    self.missing(structure, starts[0])
                for instance in instances:
                    self.run(inner, instance, Scope(scope), structure, pending)
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
            if not rule.each:
                positions = positions[:1]
            follows = rule.follows
            anchors = None if follows is None else anchors_of(ids_of, segs, positions, follows)
            for pos in positions:
                parts = fields[segs[pos]]
                anchor = -1 if anchors is None else anchors[pos]
                if anchor == -2:
                    continue
                if when is None or when(parts, ctx):
                    built = self.apply(rule, parts, segs, pos, scope)
                    if built is not None:
                        built.seg, built.anchor = segs[pos], anchor
                        if rule.refs:
                            pending.append((rule, built, scope))

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
        self, rule: Rule, parts: Parts, segs: list[int], pos: int, scope: Scope
    ) -> Built | None:
        assert rule.fill is not None
        if rule.into is not None:
            targets = scope.lookup(rule.into)
            if targets:
                rule.fill(parts, self.ctx, targets[0].resource)
            return None
        resource: dict[str, Any] = {"resourceType": rule.resource_type}
        texts = rule.fill(parts, self.ctx, resource)
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
        found = identifier_of(resource, rule.conditional) if rule.conditional else None
        basis = found if found is not None else self.key(rule, texts, pos, scope)
        rtype = rule.resource_type
        built = self.register(rtype, resource, found, basis, deterministic_id(rtype, *basis))
        if rule.name:
            scope.names.setdefault(rule.name, []).append(built)
        return built

    def key(
        self, rule: Rule, texts: tuple[str, ...] | None, pos: int, scope: Scope
    ) -> tuple[str, ...]:
        """The id basis of a resource without a business identifier: the
        rule's key parts (`texts`, its element texts, with the ids of the
        resources it names), else the message's sender, control id and position."""
        key_parts = texts or ()
        if rule.texts is not None:
            rids = []
            for name in rule.key:
                named = scope.lookup(name)
                rids.append(named[0].rid if named else "")
            key_parts = rule.texts(key_parts, rids)
        if not any(key_parts):
            return (self.message.sending_application, self.message.control_id, str(pos))
        return key_parts

    def note_text(self, fields: Parts) -> str:
        """NTE-3, every repetition unescaped and joined with line feeds."""
        value = fields[3] if len(fields) > 3 else ""
        if not value:
            return ""
        ctx = self.ctx
        lines = []
        for r in value.split(ctx.rep):
            t = ctx.unescape(r) if ctx.esc in r else r
            if t and t != '""':
                lines.append(t)
        return "\n".join(lines).strip()

    def resolve(self, pending: list[tuple[Rule, Built, Scope]]) -> None:
        """Write the references of each pending resource (its rule's `refs`;
        `*` names every other resource of the Bundle, in Bundle order)."""
        everything = self.built
        order = self.order
        for rule, built, scope in pending:
            resource = built.resource
            # Every rule has run: the names each scope sees are final.
            names = scope.visible()
            for ref in rule.refs:
                key = ref.first
                if key is not None:
                    # `to: key` naming one resource: what `ref.to` writes.
                    found = names.get(ref.name)
                    if found and found[0] is not built:
                        resource[key] = {"reference": found[0].ref}
                    continue
                if ref.name == "*":
                    targets = list(map(everything.__getitem__, order))
                else:
                    found = names.get(ref.name)
                    if not found:
                        continue
                    targets = found
                if ref.own:
                    targets = [t for t in targets if t.anchor == built.seg]
                    if not targets:
                        continue
                if not ref.all:
                    targets = targets[:1]
                key = ref.put
                if key is not None:
                    # `to: key` without `with`: what `ref.to` writes.
                    for t in targets:
                        if t is not built:
                            resource[key] = {"reference": t.ref}
                    continue
                key = ref.append
                if key is not None:
                    # `to: key[]` without `with`: what `ref.to` writes, once per list.
                    seq = None
                    for t in targets:
                        if t is not built:
                            if seq is None:
                                seq = resource.get(key)
                                if type(seq) is not list:
                                    seq = resource[key] = []
                            seq.append({"reference": t.ref})
                    continue
                to, with_ = ref.to, ref.with_
                for t in targets:
                    if t is not built:
                        anchor = to(resource, {"reference": t.ref})
                        for setter, value in with_:
                            setter(anchor, value)
                        if ref.fill is not None and t.seg >= 0:
                            ref.fill(self.fields[t.seg], self.ctx, anchor)


def _closed(*_: Any) -> Any:
    raise RuntimeError("the conversion run is over")


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
    root = Scope(None)
    pending: list[tuple[Rule, Built, Scope]] = []
    everything = list(range(len(run.ids_of)))
    at = segment_positions(run.ids_of)
    run.run(mmap.rules, everything, root, mmap.structure, pending, at=at)
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
    run.run(mmap.final, everything, root, mmap.structure, pending, at=at)
    # The final rules' own resources (the Provenance) end the Bundle, after
    # what their data type maps added (an EVN-5 Practitioner).
    last = set()
    for r in mmap.final:
        if r.name:
            for b in root.names.get(r.name, ()):
                last.add(b.rid)
    tail = run.order[before:]
    if not last.issuperset(tail[-len(last) :]):
        run.order[before:] = [r for r in tail if r not in last] + [r for r in tail if r in last]
    run.resolve(pending)
    entries = []
    collection = bundle_type == "collection"
    batch = run.batch
    built = run.built
    for rid in run.order:
        b = built[rid]
        resource = b.resource
        query = b.query
        if query is None:
            resource["id"] = rid
        entry: dict[str, Any] = {
            "fullUrl": f"urn:uuid:{rid}" if batch else b.ref,
            "resource": resource,
        }
        if not collection:
            entry["request"] = {"method": "PUT", "url": query or f"{b.rtype}/{rid}"}
        entries.append(entry)
    if collection and warnings:
        entries.append(outcome_entry(warnings, message.sending_application, message.control_id))
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": bundle_type}
    stamp = instant(run.message_get("MSH-7")) or instant(run.message_get("EVN-2.1"), run.ctx.tz)
    if stamp:
        bundle["timestamp"] = stamp
    if control := run.message_get("MSH-10"):
        bundle["identifier"] = {"value": control}  # IG MSH[Bundle]
    bundle["entry"] = entries
    return bundle
