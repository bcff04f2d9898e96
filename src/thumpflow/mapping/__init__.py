"""HL7 v2 → FHIR R4 (4.0.1) conversion: declarative maps plus one small evaluator.

The maps under `maps/` follow the HL7 V2-to-FHIR Implementation Guide
(message → Bundle, segment → resource, data type → data type, v2 table →
FHIR code system); where the guide is silent or unfinished, the map file says
which choice was made. They are read and compiled once, at import; a broken
map fails the import with a `MapError` naming the map and entry.

Guarantees of `convert`:

- Pure and deterministic: the same message gives the same Bundle, byte for
  byte once serialised with `to_json` (no clock, no randomness). Resource ids
  are `thumpflow.fhir.deterministic_id` of the resource type and business
  identifiers (see `_engine`). `Bundle.timestamp` and `Provenance.recorded`
  are MSH-7, else EVN-2 when MSH-7 is missing or invalid; with neither the
  message is rejected (`ConversionError` naming MSH-7).
- Decimals keep the sender's precision: one with a fraction is a
  `FhirDecimal` in the dict and `to_json` writes its digits (`1.50`). The
  dict is therefore for `to_json`, not `json.dumps`; validate the JSON
  (`thumpflow.fhir.validate(json.loads(to_json(bundle)))`), which holds
  plain numbers.
- Transaction bundles (the default): resources with a business identifier
  are written with a conditional update (`PUT Type?identifier=system|value`,
  no `id` in the resource), others with `PUT Type/<deterministic id>`;
  `fullUrl` is always `urn:uuid:<id>` and references between entries use it.
  Batch bundles (which FHIR does not resolve references in) use
  `PUT Type/<deterministic id>` for every entry and `Type/<id>` references.
- Every bundle ends with a Provenance naming the source message (MSH-10,
  sending application and facility, MSH-7, the event).
- Failures raise `ConversionError` (a `thumpflow.core.errors.MessageError`)
  with a reason naming message type, segment and field, never patient data;
  a message whose map would build nothing but the Provenance (an A40
  without PID) is a failure naming the missing segment.
"""

from __future__ import annotations

import json
import uuid
from importlib import resources
from typing import Any, Literal

import yaml

from thumpflow.core.errors import MessageError
from thumpflow.core.event import Event
from thumpflow.fhir import deterministic_id
from thumpflow.hl7v2 import Message
from thumpflow.mapping._compile import Compiler, MapError, compile_vocab
from thumpflow.mapping._engine import (
    ConversionError,
    MessageMap,
    compile_rules,
    evaluate,
)
from thumpflow.mapping._values import FhirDecimal

__all__ = [
    "FHIR_CONTENT_TYPE",
    "ConversionError",
    "FhirDecimal",
    "MapError",
    "convert",
    "derived_event_id",
    "supported_messages",
    "to_fhir",
    "to_json",
]

FHIR_CONTENT_TYPE = "application/fhir+json"


def _load() -> dict[str, MessageMap]:
    sections: dict[str, dict[str, Any]] = {
        "vocabulary": {},
        "datatypes": {},
        "segments": {},
        "messages": {},
        "final": {},
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
    comp = Compiler(
        {n: compile_vocab(n, s) for n, s in sections["vocabulary"].items()},
        sections["datatypes"],
        sections["segments"],
    )
    final = compile_rules(sections["final"].get("rules", []), comp, "final rules")
    by_event: dict[str, MessageMap] = {}
    for structure, spec in sections["messages"].items():
        rules = compile_rules(spec.get("rules"), comp, f"message {structure}")
        events = tuple(str(e) for e in spec.get("events", ()))
        mmap = MessageMap(structure, events, rules, final)
        for event in events:
            if event in by_event:
                raise MapError(f"message {structure}: event {event} is mapped twice")
            by_event[event] = mmap
    return by_event


_MAPS = _load()


def supported_messages() -> list[str]:
    """Every supported `TYPE^EVENT` (e.g. `ADT^A01`), sorted."""
    return sorted(_MAPS)


def convert(
    message: Message | bytes,
    *,
    bundle_type: Literal["transaction", "batch"] = "transaction",
) -> dict[str, Any]:
    """Convert one HL7 v2 message to a FHIR R4 Bundle (a dict for `to_json`).

    Raises `ConversionError` when the message cannot be parsed, its type is
    not supported (`supported_messages`), a segment the map requires is
    missing, or it has no usable message time (MSH-7, else EVN-2); nothing
    else (a bug in a map shows up as an error naming the map, at import).
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
    event = f"{message.message_type}^{message.trigger_event}"
    mmap = _MAPS.get(event)
    if mmap is None:
        shown = event if event.replace("^", "").isalnum() and len(event) <= 12 else "(invalid)"
        raise ConversionError(
            f"message type {shown} is not supported", segment="MSH", field=9, code="200"
        )
    return evaluate(message, mmap, bundle_type)


def to_json(bundle: dict[str, Any], *, pretty: bool = False) -> bytes:
    """A Bundle as UTF-8 JSON: compact with sorted keys, or indented with `pretty`.

    `FhirDecimal` values are written as numbers with the sender's digits
    (`1.50`, never `1.5`); everything else as `json.dumps` writes it. Raises
    TypeError for a value JSON cannot represent.
    """
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
    in the patient's order. Raises `ConversionError` like `convert`.
    """
    bundle = convert(message)
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
