"""HL7 v2 → FHIR R4 (4.0.1) conversion: declarative maps compiled into Python functions.

The maps under `maps/` follow the HL7 V2-to-FHIR Implementation Guide
(message → Bundle, segment → resource, data type → data type, v2 table →
FHIR code system); where the guide is silent or unfinished, the map file says
which choice was made. They are read and compiled once, at import; a broken
map fails the import with a `MapError` naming the map and entry.

Guarantees of `convert`:

- Pure and deterministic: the same message (and time received) gives the
  same Bundle, byte for byte once serialised with `to_json` (no randomness).
  Resource ids are `thumpflow.fhir.deterministic_id` of the resource type and
  business identifiers (see `_engine`). `Bundle.timestamp` and
  `Provenance.recorded` are MSH-7, else EVN-2 when MSH-7 is missing or
  invalid; with neither, the time the message was received (`received`: the
  event's `received_at` in a channel, else the clock's now) stands in, with a
  `no_message_time` warning.
- Decimals keep the sender's precision: one with a fraction is a
  `FhirDecimal` in the dict and `to_json` writes its digits (`1.50`). The
  dict is therefore for `to_json`, not `json.dumps`; validate the JSON
  (`thumpflow.fhir.validate(json.loads(to_json(bundle)))`), which holds
  plain numbers.
- Transaction bundles (the default): resources with a business identifier
  that has a system are written with a conditional update (`PUT
  Type?identifier=system|value`, no `id` in the resource), others with `PUT
  Type/<deterministic id>`; one business identifier is one resource per
  message;
  `fullUrl` is always `urn:uuid:<id>` and references between entries use it.
  Batch bundles (which FHIR does not resolve references in) use
  `PUT Type/<deterministic id>` for every entry and `Type/<id>` references.
  Collection bundles have no requests, every resource its id, `urn:uuid:`
  references, and the conversion's warnings as an OperationOutcome entry.
- Every message type converts (see `convert` and `map_for`): what could not
  be converted is a warning, not a failure.
- Every bundle ends with a Provenance naming the source message (MSH-10,
  sending application and facility, MSH-7, the event).
- Failures raise `ConversionError` (a `thumpflow.core.errors.MessageError`)
  with a reason naming message type, segment and field, never patient data;
  a message whose map would build nothing but the Provenance (an A40
  without PID) is a failure naming the missing segment.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from importlib import resources
from typing import Any

import orjson
import yaml

from thumpflow.core.errors import MessageError
from thumpflow.core.event import Event
from thumpflow.fhir import FhirDecimal, deterministic_id
from thumpflow.hl7v2 import Message
from thumpflow.mapping._compile import Compiler
from thumpflow.mapping._engine import BundleType, ConversionError, evaluate
from thumpflow.mapping._naming import (
    DEFAULT_BASE,
    NamingTable,
    configure_naming_systems,
    naming_table,
    read_naming_systems,
    system_for,
    using_naming_systems,
)
from thumpflow.mapping._program import compile_program
from thumpflow.mapping._report import (
    CHARSET_FALLBACK,
    NO_MESSAGE_MAP,
    WARNING_CODES,
    ConversionWarning,
    WarningListener,
    report,
    reporting_warnings,
    shown_event,
)
from thumpflow.mapping._rules import MessageMap, compile_rules, compile_skips, settled
from thumpflow.mapping._support import MapError
from thumpflow.mapping._vocab import compile_vocab
from thumpflow.mapping._zone import checked_zone, using_timezone

__all__ = [
    "DEFAULT_BASE",
    "FHIR_CONTENT_TYPE",
    "WARNING_CODES",
    "BundleType",
    "ConversionError",
    "ConversionWarning",
    "FhirDecimal",
    "MapError",
    "NamingTable",
    "WarningListener",
    "all_maps",
    "checked_zone",
    "configure_naming_systems",
    "convert",
    "derived_event_id",
    "map_for",
    "naming_table",
    "read_naming_systems",
    "reporting_warnings",
    "supported_messages",
    "system_for",
    "to_fhir",
    "to_json",
    "using_naming_systems",
    "using_timezone",
]

FHIR_CONTENT_TYPE = "application/fhir+json"


def _load() -> dict[str, MessageMap]:
    sections: dict[str, dict[str, Any]] = {
        "vocabulary": {},
        "datatypes": {},
        "segments": {},
        "messages": {},
        "final": {},
        "naming_systems": {},
    }
    folder = resources.files("thumpflow.mapping") / "maps"
    for item in sorted(folder.iterdir(), key=lambda t: t.name):
        if not item.name.endswith(".yaml"):
            continue
        data = yaml.load(item.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader) or {}
        for section, content in data.items():
            if section not in sections:
                raise MapError(f"{item.name}: unknown section {section!r}")
            for name, spec in (content or {}).items():
                if name in sections[section]:
                    raise MapError(f"{item.name}: {section} {name!r} is defined twice")
                sections[section][name] = spec
    naming = sections["naming_systems"]
    configure_naming_systems(
        naming.get("systems") or {}, base=naming.get("base"), where="naming-systems.yaml"
    )
    comp = Compiler(
        {n: compile_vocab(n, s) for n, s in sections["vocabulary"].items()},
        sections["datatypes"],
        sections["segments"],
    )
    final = compile_rules(sections["final"].get("rules", []), comp, "final rules")
    by_event: dict[str, MessageMap] = {}
    generic: MessageMap | None = None
    for structure, spec in sections["messages"].items():
        rules = settled(compile_rules(spec.get("rules"), comp, f"message {structure}"), final)
        events = tuple(str(e) for e in spec.get("events", ()))
        mmap = MessageMap(
            structure,
            events,
            rules,
            final,
            compile_program(comp, structure, rules, final),
            compile_skips(spec.get("skip"), f"message {structure}"),
        )
        if structure == GENERIC:
            generic = mmap
        for event in events:
            if event in by_event:
                raise MapError(f"message {structure}: event {event} is mapped twice")
            by_event[event] = mmap
        if _STRUCTURE.fullmatch(structure) and structure not in by_event:
            by_event[structure] = mmap
    if generic is None:
        raise MapError(f"no message map {GENERIC!r} (used for messages without a map)")
    by_event[GENERIC] = generic
    return by_event


log = logging.getLogger("thumpflow.mapping")
GENERIC = "generic"
_STRUCTURE = re.compile(r"[A-Z]{3}_[A-Z0-9]{3}")
_MAPS = _load()


def supported_messages() -> list[str]:
    """Every `TYPE^EVENT` (e.g. `ADT^A01`) with a message map of its own,
    sorted; any other message is converted with the generic map."""
    return sorted(e for e in _MAPS if "^" in e)


def map_for(message_type: str, trigger_event: str, structure: str) -> tuple[str, str | None]:
    """The name of the message map used for a message (its event's map, else
    that of its structure MSH-9.3, else the generic map) and, for the generic
    one, the warning saying so (naming the message type, never data)."""
    mmap, warning = _lookup(message_type, trigger_event, structure)
    return mmap.structure, warning


def all_maps() -> list[str]:
    """The name of every message map (the generic one included), sorted."""
    return sorted({m.structure for m in _MAPS.values()})


# Message types that v2.1 and v2.2 send without a trigger event (MSH-9 the
# type alone, and no EVN to name it): the one event each then had.
_SOLE_EVENT = {"ORU": "R01", "ORM": "O01", "VXU": "V04", "DFT": "P03", "RDE": "O11"}


def _lookup(
    message_type: str, trigger_event: str, structure: str
) -> tuple[MessageMap, ConversionWarning | None]:
    event = f"{message_type}^{trigger_event or _SOLE_EVENT.get(message_type, '')}"
    found = _MAPS.get(event) or _MAPS.get(structure)
    if found is not None:
        return found, None
    shown = shown_event(message_type, trigger_event)
    return _MAPS[GENERIC], ConversionWarning(
        f"message type {shown} has no message map; its common segments"
        " (PID, PD1, NK1, PV1, PV2, OBX, AL1, DG1, PR1, IN1 ...) were converted generically",
        NO_MESSAGE_MAP,
    )


def convert(
    message: Message | bytes,
    *,
    bundle_type: BundleType = "transaction",
    warnings: list[str] | None = None,
    received: float | None = None,
) -> dict[str, Any]:
    """Convert one HL7 v2 message to a FHIR R4 Bundle (a dict for `to_json`).

    Every message type converts: one without a map of its own (see
    `map_for`) has its common segments converted by the generic map. What is
    converted only in part is appended to `warnings` (when given) and, in a
    `collection` Bundle, listed in an OperationOutcome entry: a message type
    without a map, a required segment that is missing (naming it), no time
    of the message's own (MSH-7, else EVN-2), for which `received` (epoch
    seconds; now when None) stands in. Each is a `ConversionWarning` (text
    and fixed `code`); inside `reporting_warnings(listener)` the listener is
    told each. Raises `ConversionError` when the message cannot be
    parsed or nothing at all can be converted (naming the segment missing);
    nothing else (a bug in a map shows up as an error naming the map, at
    import).
    """
    if isinstance(message, bytes | bytearray):
        try:
            message = Message.parse(bytes(message))
        except MessageError as exc:
            raise ConversionError(
                f"not a parsable HL7 v2 message: {exc.reason}",
                segment=exc.segment,
                field=exc.field,
                code=exc.code,
            ) from None
    found: list[str] = [] if warnings is None else warnings
    known = len(found)
    mmap, warning = _lookup(message.message_type, message.trigger_event, message.get("MSH-9.3"))
    if warning is not None:
        found.append(warning)
    if message.charset_warning is not None:
        shown = shown_event(message.message_type, message.trigger_event)
        found.append(ConversionWarning(f"{shown}: {message.charset_warning}", CHARSET_FALLBACK))
    bundle = evaluate(message, mmap, bundle_type, found, received)
    report(found[known:])
    return bundle


def to_json(bundle: dict[str, Any] | list[dict[str, Any]], *, pretty: bool = False) -> bytes:
    """A Bundle (or a list of them) as UTF-8 JSON: compact, sorted keys, or indented (`pretty`).

    `FhirDecimal` values are written as numbers with the sender's digits
    (`1.50`, never `1.5`); dicts, lists, strings, ints, booleans and None
    exactly as `json.dumps(..., sort_keys=True, ensure_ascii=False)` writes
    them (compact: `separators=(",", ":")`). Compact output is written by
    orjson (several times faster), falling back to `json` for what orjson
    refuses (an int beyond 64 bits, a non-string key). Raises TypeError for
    a value JSON cannot represent.
    """
    if not pretty:
        try:
            return orjson.dumps(bundle, default=_fragment, option=_ORJSON_OPTIONS)
        except TypeError:
            pass
    return _stdlib_json(bundle, pretty)


def _stdlib_json(bundle: dict[str, Any] | list[dict[str, Any]], pretty: bool) -> bytes:
    """`to_json` by the standard library's `json` (the reference for orjson's output)."""
    indent, separators = (2, None) if pretty else (None, (",", ":"))
    mark = "\x00"
    while True:
        texts: list[str] = []

        def decimal_mark(value: Any, texts: list[str] = texts, mark: str = mark) -> str:
            if type(value) is FhirDecimal:
                texts.append(value.text)
                return mark
            raise TypeError(f"{type(value).__name__} is not JSON serialisable")

        text = json.dumps(
            bundle,
            ensure_ascii=False,
            indent=indent,
            separators=separators,
            sort_keys=True,
            default=decimal_mark,
        )
        if not texts:
            return text.encode("utf-8")
        # Each decimal was written as the string `mark`; a string in the data
        # equal to it would add a piece, so a longer mark is tried instead.
        pieces = text.split(json.dumps(mark))
        if len(pieces) == len(texts) + 1:
            out = [pieces[0]]
            for number, piece in zip(texts, pieces[1:], strict=True):
                out.append(number)
                out.append(piece)
            return "".join(out).encode("utf-8")
        mark += mark


# Dataclasses, datetimes and subclasses of str/int/dict/list go to `_fragment`
# (which refuses them, so `json` decides), as `json.dumps` would not write
# them natively.
_ORJSON_OPTIONS = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def _fragment(value: Any) -> orjson.Fragment:
    """A `FhirDecimal` as its digits, verbatim; anything else is refused."""
    if type(value) is FhirDecimal:
        return orjson.Fragment(value.text)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def derived_event_id(source_event_id: str, purpose: str = "fhir") -> str:
    """A ULID for an event derived from `source_event_id`, the same every time.

    The first 10 characters (the millisecond timestamp) are the source's, so
    the derived event sorts with its cause; the 16 random characters are the
    top 80 bits of `deterministic_id("Bundle", source id, purpose)`. Re-running a transform (a
    replay, a restart before commit) therefore yields the same event id.
    """
    digest = uuid.UUID(deterministic_id("Bundle", source_event_id, purpose)).int >> 48
    chars = []
    for _ in range(16):
        chars.append(_CROCKFORD[digest & 31])
        digest >>= 5
    return source_event_id[:10] + "".join(reversed(chars))


def to_fhir(event: Event, message: Message) -> list[Event]:
    """Channel transform: one derived Event whose body is the Bundle.

    The body is compact JSON with sorted keys (`to_json`), content type
    `application/fhir+json`; `event_id` is `derived_event_id(event.event_id)`,
    `causation_id` the source event, and the ordering key, lane, sequence,
    timestamps and identity fields are the source's, so the Bundle travels
    in the patient's order. Raises `ConversionError` like `convert`. What
    was converted only in part (a message type without a map, a missing
    required segment) is logged as a warning naming the channel, the event
    and the message type or segment, never a value; in a channel's pipeline
    each warning is also told to the listeners in scope (`reporting_warnings`),
    which count it and record it in the message's audit trail.
    """
    warnings: list[str] = []
    bundle = convert(message, warnings=warnings, received=event.received_at)
    for warning in warnings:
        log.warning(
            "channel %s: event %s converted to FHIR in part: %s",
            event.channel_id,
            event.event_id,
            warning,
            extra={"channel": event.channel_id},
        )
    return [
        Event(
            event_id=derived_event_id(event.event_id),
            idempotency_key=f"{event.idempotency_key}#fhir",
            source_system=event.source_system,
            channel_id=event.channel_id,
            event_type=event.event_type,
            entity_type=event.entity_type,
            entity_id=event.entity_id,
            occurred_at=event.occurred_at,
            received_at=event.received_at,
            body=to_json(bundle),
            content_type=FHIR_CONTENT_TYPE,
            sequence=event.sequence,
            lane=event.lane,
            location=event.location,
            actor=event.actor,
            correlation_id=event.correlation_id or event.event_id,
            causation_id=event.event_id,
        )
    ]
