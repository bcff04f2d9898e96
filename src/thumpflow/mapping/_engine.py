"""One conversion run: a message map's program (`_program`) over one parsed
message, the resources it registers, and the Bundle they make.

Guarantees:

- Pure and deterministic: the output depends only on the message bytes (no
  clock, no randomness, no environment); converting twice gives equal dicts.
- Resource ids are `thumpflow.fhir.deterministic_id` over the resource type
  and its business identifier (system, value), or over a key the message map
  declares (e.g. the report's id, OBX-3 and OBX-4 for an Observation);
  resources derived from a data type (Practitioner, Organization, Location)
  without an identifier are keyed by their content, so one such resource
  named twice in a message is one entry. Two rules producing the same id in
  one message get a disambiguating `#n` part, never a silent overwrite,
  unless both are complete (`Rule.complete`: nothing is written to them once
  built) and equal in content: then they are one resource (the same PRT
  person in the same role in several groups is one PractitionerRole), and a
  resource that differs in anything stays its own `#n`.
- Errors are `ConversionError` (a `MessageError`) naming the message type,
  segment and field, never a value from the message.
- C0 control characters other than tab, LF and CR, which no FHIR string may
  hold, are dropped from the message's text and from what escapes decode to.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from functools import cached_property, lru_cache
from typing import Any, Literal

from thumpflow.core.errors import MessageError
from thumpflow.fhir import deterministic_id
from thumpflow.hl7v2 import Message, compile_path, unescape
from thumpflow.hl7v2.segment import element
from thumpflow.mapping._memo import context_key, memo_for
from thumpflow.mapping._report import (
    GROUP_NOT_CONVERTED,
    MISSING_SEGMENT,
    NO_MESSAGE_TIME,
    NO_REFERENCE_TARGET,
    REPEATED_IDENTIFIER,
    SEGMENT_NOT_CONVERTED,
    ConversionWarning,
    outcome_entry,
    shown_event,
)
from thumpflow.mapping._rules import MessageMap
from thumpflow.mapping._scope import (
    Built,
    alias,
    content_text,
    drop_claimed,
    identifier_keys,
    search_escape,
    segment_positions,
    skipped,
)
from thumpflow.mapping._support import NO_CONTROLS, Ctx, Parts, gather_items, has_controls
from thumpflow.mapping._values import instant, timezone_of
from thumpflow.mapping._zone import default_zone

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


class _Run:
    """State of one conversion: the message's segments split into fields once,
    the resources built so far, and the evaluation context."""

    def __init__(self, message: Message, bundle_type: BundleType) -> None:
        self.message = message
        self.transaction = bundle_type == "transaction"
        self.batch = bundle_type == "batch"
        self.collection = bundle_type == "collection"
        self.built: dict[str, Built] = {}
        # The resources in Bundle order, and their Bundle entries.
        self.order: list[Built] = []
        self.entries: list[dict[str, Any]] = []
        self.warnings: list[str] = []
        self.texts: dict[str, str] = {}
        # (resource type, id basis) -> the last `#n` given.
        self.repeats: dict[tuple[str, tuple[str, ...]], int] = {}
        # The ids of resources registered complete, and, once their id basis
        # repeats, those resources by (id of the basis, content).
        self.complete: set[str] = set()
        self.alike: dict[tuple[str, str], Built] = {}
        # The identifiers of `distinct` rules' resources, by (resource type,
        # system, value), each the segment whose resource holds it; those
        # held since the last group instance ended, read again at its end.
        self.held: dict[tuple[str, str, str], int] = {}
        self.unsettled: list[tuple[str, dict[str, Any], str, int]] = []
        # Read once: `Message.delimiters` is a property (a call each read).
        d = self.delimiters = message.delimiters
        enc = message.encoding
        self.ids_of, self.fields = message.segment_table()
        if has_controls(message):
            # Rare: FHIR strings hold no C0 controls but tab, LF and CR.
            self.fields = [[f.translate(NO_CONTROLS) for f in seg] for seg in self.fields]
        self.ctx = Ctx(
            d.repetition,
            d.component,
            d.subcomponent,
            d.escape,
            lambda raw: unescape(raw, d, enc).translate(NO_CONTROLS),
            "",
            self.message_get,
            self.add_datatype_resource,
        )
        self.ctx.tz = timezone_of(self.message_get("MSH-7")) or default_zone()
        # The segments (indexes) of the scope the program applies rules in:
        # a group instance's, else the message's (set by the program).
        self.scope: range | list[int] = range(len(self.ids_of))
        self.ctx.sget = self.scope_get
        self.ctx.memo = memo_for(context_key(d, enc, self.ctx.tz))

    @cached_property
    def message_type(self) -> str:
        """The message's event for warnings and errors (see `shown_event`)."""
        return shown_event(self.message.message_type, self.message.trigger_event)

    def close(self) -> None:
        """Break the run ↔ context reference cycle, so the run and everything
        it built are freed by reference counting, without waiting for (and
        promoting garbage into the older generations of) the cyclic GC."""
        self.ctx.mget = self.ctx.add = self.ctx.sget = _closed

    def message_get(self, path: str) -> str:
        """The unescaped, stripped text at a message path; `*SEG-F` joins every
        repetition of that field of every such segment with line feeds,
        `*SEG-F?G=V1,V2` of those whose field G (its first component) is V1 or V2."""
        cached = self.texts.get(path)
        if cached is None:
            if path.startswith("*"):
                seg_field, _, only = path[1:].partition("?")
                seg_id, fld = seg_field.split("-")
                segs = self.message.segments_named(seg_id)
                if only:
                    test, _, values = only.partition("=")
                    allowed = values.split(",")
                    segs = [seg for seg in segs if seg.get(f"{test}.1").strip() in allowed]
                lines = [line for seg in segs for line in seg.get_all(fld)]
                cached = "\n".join(lines).translate(NO_CONTROLS)
            else:
                # `message.get(path)`, read from the fields split already.
                sid, _, field, rep, comp, sub = compile_path(path)
                try:
                    fields = self.fields[self.ids_of.index(sid)]
                except ValueError:
                    raw = ""
                else:
                    raw = element(fields, self.delimiters, field, rep, comp, sub)
                ctx = self.ctx
                cached = (ctx.unescape(raw) if ctx.esc in raw else raw).strip()
            self.texts[path] = cached
        return cached

    def scope_get(self, path: str) -> str:
        """The unescaped, stripped text at `SEG-F[.C[.S]]` of the first such
        segment of the scope the rules are applied in (`scope`: an `@` path
        of a map, the group's ORC seen from its OBR); HL7 `""` is empty."""
        sid, _, field, rep, comp, sub = compile_path(path)
        ids_of = self.ids_of
        for i in self.scope:
            if ids_of[i] == sid:
                raw = element(self.fields[i], self.delimiters, field, rep, comp, sub)
                ctx = self.ctx
                text = (ctx.unescape(raw) if ctx.esc in raw else raw).strip()
                return "" if text == '""' else text
        return ""

    def register(  # noqa: PLR0917
        self,
        rtype: str,
        resource: dict[str, Any],
        found: tuple[str, str] | None,
        basis: tuple[str, ...],
        rid: str,
        seg: int = -1,
        anchor: int = -1,
        complete: bool = False,
    ) -> Built:
        """Add `resource` to the Bundle under `rid` (its id from `basis`, the
        identifier `found` or the rule's key), or under `basis + #n` when
        another resource of this message already has that id; its entry is
        made now (in a transaction a conditional update by `found` when it
        has a system, else an update by id, which the resource then holds).
        `seg` and `anchor`: see `Built`.

        `complete`: nothing will be written to `resource` once registered.
        Such a resource whose id basis and content (all but its id) equal
        those of one registered complete before is that resource: the Built
        returned is it, with this segment's `seg` and `anchor`, so each
        segment's references find it; a resource either was not complete
        (it may change still) or that differs in anything gets its `#n`.

        The same business identifier twice in one message is one resource: the
        first is kept and `resource` dropped (a transaction may not touch one
        resource twice, and two would both claim the identifier), returned as
        met at this segment (`seg`, `anchor`: the second OBX's device is
        found by that OBX's references too); so is
        the same segment registered again under the same id (a group naming a
        resource the message level made already, to refer to it). An
        identifier without a system never becomes a condition: a search by a
        bare value matches that value in every system, so it could update
        another patient's record; the update is by the id it gives instead."""
        built = self.built
        alike: tuple[str, str] | None = None
        if rid in built:
            existing = built[rid]
            if seg >= 0 and existing.seg == seg:
                return existing
            if found is not None:
                return existing if seg < 0 else alias(existing, seg, anchor)
            if complete:
                if rid in self.complete:
                    self.alike.setdefault((rid, content_text(existing.resource)), existing)
                alike = (rid, content_text(resource))
                same = self.alike.get(alike)
                if same is not None:
                    return alias(same, seg, anchor)
            # The n-th resource with this basis is `#n`; counting on from the last
            # one keeps a message of many alike segments linear.
            n = self.repeats.get((rtype, basis), 1)
            while rid in built:
                n += 1
                rid = deterministic_id(rtype, *basis, f"#{n}")
            self.repeats[(rtype, basis)] = n
        elif complete:
            self.complete.add(rid)
        full = "urn:uuid:" + rid
        if found is not None and self.transaction and found[0]:
            system, value = found
            url = f"{rtype}?identifier={_escaped_system(system)}|{search_escape(value)}"
        else:
            resource["id"] = rid
            url = f"{rtype}/{rid}"
        entry: dict[str, Any] = (
            {"fullUrl": full, "resource": resource}
            if self.collection
            else {"fullUrl": full, "resource": resource, "request": {"method": "PUT", "url": url}}
        )
        b = Built()
        b.resource = resource
        b.rid = rid
        # In a batch (never conditional) a Reference is `Type/<id>`, the url.
        b.ref = url if self.batch else full
        b.entry = entry
        b.seg = seg
        b.anchor = anchor
        built[rid] = b
        self.order.append(b)
        self.entries.append(entry)
        if alike is not None:
            self.alike[alike] = b
        return b

    def add_datatype_resource(
        self,
        rtype: str,
        body: dict[str, Any],
        found: tuple[str, str] | None,
        key: str | None = None,
        gather: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        """Register a resource built by a data type map (once per message) and
        return a reference to it; its id comes from its business identifier
        `found` (system, value), else `key`, else its content. One met again
        gains the items of its lists `gather` it lacks (`gather_items`)."""
        resource = body
        resource["resourceType"] = rtype
        if found is not None:
            basis: tuple[str, ...] = found
        elif key is not None:
            basis = (key,)
        else:
            basis = (content_text(resource),)
        rid = _reference_data_id(rtype, *basis)
        existing = self.built.get(rid)
        if existing is None:
            existing = self.register(rtype, resource, found, basis, rid)
        elif gather:
            gather_items(existing.resource, resource, gather)
        return {"reference": existing.ref}

    # -- what programs call (see `_program`) ---------------------------------

    def missing(self, structure: str, segment: str) -> None:
        """Note a required segment that is absent (once per segment): what the
        message does hold is still converted."""
        self.warn(
            f"{self.message_type} ({structure}): required segment {segment} is missing",
            MISSING_SEGMENT,
        )

    def skip_groups(self, mmap: MessageMap) -> bool:
        """Hide the segments of the map's skipped groups (`_rules.Skip`) from
        its rules, their ids made empty in `ids_of` (a new list: the message's
        own is shared), with a warning per group found; whether any was."""
        ids = self.ids_of
        for skip in mmap.skips:
            hidden = skipped(ids, skip.starts, skip.after, skip.ends)
            if hidden:
                if ids is self.ids_of:
                    ids = list(ids)
                for i in hidden:
                    ids[i] = ""
                self.warn(
                    f"{self.message_type} ({mmap.structure}): segment group {skip.group}"
                    " not converted (the IG maps it to nothing)",
                    GROUP_NOT_CONVERTED,
                )
        if ids is self.ids_of:
            return False
        self.ids_of = ids
        return True

    def unreferenced(self, segment: str, rtype: str, needs: str) -> None:
        """Note a segment not converted for want of the resource it must refer to."""
        self.warn(
            f"{self.message_type}: {segment} not converted to {rtype}: no {needs} to refer to",
            NO_REFERENCE_TARGET,
        )

    def repeated(
        self,
        rtype: str,
        resource: dict[str, Any],
        found: tuple[str, str],
        key: tuple[str, ...],
        *,
        path: str,
        segment: str,
        seg: int,
    ) -> tuple[tuple[str, str] | None, tuple[str, ...]]:
        """A `distinct` rule's resource (from segment `seg`) whose identifier
        `found` (at `path`) another of the message holds (a sender's error:
        two orders, one filler number): kept, without the identifiers others
        hold, identified by the first left, else `key`, with a warning naming
        `segment`. Returns its identifier and id basis."""
        self.warn(
            f"{self.message_type}: {segment} repeats the identifier of an earlier {rtype}:"
            f" converted as another {rtype}, without that identifier",
            REPEATED_IDENTIFIER,
        )
        left = drop_claimed(rtype, resource, path, self.built, held=self.held, seg=seg)
        return left, key if left is None else left

    def held_elsewhere(self, rtype: str, resource: dict[str, Any], path: str, seg: int) -> bool:
        """Whether an identifier at `path` of `resource` (a `distinct`
        rule's, from segment `seg`) is held by another segment's resource
        of type `rtype` (see `hold`): two orders, one filler number, even
        when each is identified by its own placer number."""
        held = self.held
        return bool(held) and any(
            held.get(k, seg) != seg for k in identifier_keys(rtype, resource, path)
        )

    def hold(self, rtype: str, resource: dict[str, Any], path: str, seg: int) -> None:
        """Note the identifiers at `path` of a `distinct` rule's `resource`
        (segment `seg`) now and at its group instance's end (`settle`: later
        segments may add some, OBR-3 beside ORC-2): linear in the message."""
        for k in identifier_keys(rtype, resource, path):
            self.held.setdefault(k, seg)
        self.unsettled.append((rtype, resource, path, seg))

    def settle(self) -> None:
        """At a group instance's end: note what its resources hold now."""
        for rtype, resource, path, seg in self.unsettled:
            for k in identifier_keys(rtype, resource, path):
                self.held.setdefault(k, seg)
        self.unsettled.clear()

    def not_converted(self, structure: str, segment: str, reason: str) -> None:
        """Note a segment a rule's `not_converted` leaves out, for `reason`
        (the map's text: fields by name, never a value from the message)."""
        self.warn(
            f"{self.message_type} ({structure}): {segment} not converted: {reason}",
            SEGMENT_NOT_CONVERTED,
        )

    def warn(self, text: str, code: str) -> None:
        """Add `text` (with its `code`) to the warnings unless it is there already."""
        if text not in self.warnings:
            self.warnings.append(ConversionWarning(text, code))

    def stand_in_time(self, received: float | None) -> None:
        """When the message states no time of its own (MSH-7, else EVN-2: what
        Provenance.recorded and Bundle.timestamp are read from), the time it
        was received (epoch seconds; now when not given) stands in, read as
        EVN-2, and a warning says so; a message that states one is unchanged."""
        if instant(self.message_get("MSH-7.1")) or instant(self.message_get("EVN-2.1")):
            return
        when = datetime.fromtimestamp(time.time() if received is None else received, UTC)
        self.texts["EVN-2.1"] = when.strftime("%Y%m%d%H%M%S+0000")
        self.warn(
            f"{self.message_type}: no message time (MSH-7 missing or invalid, no EVN-2): "
            "the time the message was received stands in",
            NO_MESSAGE_TIME,
        )

    def refuse(self, reason: str, segment: str, field: int) -> None:
        """Raise the `ConversionError` of a resource missing what FHIR requires."""
        raise ConversionError(
            f"{self.message_type}: {reason}", segment=segment, field=field, code="101"
        )

    def nothing(self, structure: str, required: tuple[str, ...], first: str) -> None:
        """Raise the `ConversionError` of a message of which the map builds
        nothing, naming the first required segment missing, else `first`."""
        missing = next((s for s in required if s not in self.ids_of), first)
        raise ConversionError(
            f"{structure}: nothing to convert; segment {missing} is missing",
            segment=missing,
            code="100",
        )

    def put_last(self, before: int, named: list[list[Built]]) -> None:
        """Move the final rules' own resources (`named`, the Provenance) to the
        end of the Bundle, after what their data type maps added since
        `before` (an EVN-5 Practitioner)."""
        last = {id(b) for found in named for b in found}
        tail = self.order[before:]
        if all(id(b) in last for b in tail[len(tail) - len(last) :]):
            return
        moved = [b for b in tail if id(b) not in last] + [b for b in tail if id(b) in last]
        self.order[before:] = moved
        self.entries[before:] = [b.entry for b in moved]

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


def _closed(*_: Any) -> Any:
    raise RuntimeError("the conversion run is over")


def evaluate(
    message: Message,
    mmap: MessageMap,
    bundle_type: BundleType,
    warnings: list[str],
    received: float | None = None,
) -> dict[str, Any]:
    """Run `mmap` over `message` and assemble the Bundle (see the package
    docstring); what could not be converted is appended to `warnings` (a
    required segment that is missing, the time received standing in for a
    message time, see `_Run.stand_in_time`), and a message of which nothing at
    all can be converted raises `ConversionError` naming the segment missing."""
    run = _Run(message, bundle_type)
    try:
        run.warnings = warnings
        run.stand_in_time(received)
        return _evaluate(run, message, mmap, bundle_type, warnings)
    finally:
        run.close()


def _evaluate(
    run: _Run, message: Message, mmap: MessageMap, bundle_type: BundleType, warnings: list[str]
) -> dict[str, Any]:
    hidden = bool(mmap.skips) and run.skip_groups(mmap)
    positions = segment_positions(run.ids_of) if hidden else message.segment_positions()
    mmap.program(run, run.ids_of, run.fields, positions)
    entries = run.entries
    if run.collection and warnings:
        entries.append(outcome_entry(warnings, message.sending_application, message.control_id))
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": bundle_type}
    stamp = instant(run.message_get("MSH-7"), run.ctx.tz) or instant(
        run.message_get("EVN-2.1"), run.ctx.tz
    )
    if stamp:
        bundle["timestamp"] = stamp
    if control := run.message_get("MSH-10"):
        bundle["identifier"] = {"value": control}  # IG MSH[Bundle]
    bundle["entry"] = entries
    return bundle
