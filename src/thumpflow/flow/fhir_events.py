"""FHIR resources and Bundles as canonical events, and where they go. Pure.

A FHIR resource (or a whole Bundle) received over HTTP or from a Subscription
notification becomes ONE event, never split: a transaction Bundle must reach
its destinations whole, and one event per request keeps the answer to the
sender simple (one event id).

- `content_type` is `application/fhir+json`; the body is the JSON as received
  (HTTP ingest) or as read from the source (subscriptions).
- `event_type`: `fhir.<ResourceType>` for a resource (`fhir.Observation`);
  `fhir.bundle.<Bundle.type>` for a Bundle (`fhir.bundle.transaction`), or
  `fhir.message.<event code>` for a message Bundle whose first entry is a
  MessageHeader with `eventCoding.code`.
- Ordering key: the patient. A Patient resource orders by its own id
  (`Patient/<id>`); another resource by its `subject`, `patient` or
  `beneficiary` reference when that names a `Patient/<id>`; a Bundle by the
  first of its entries that yields one. Otherwise the resource's own
  `<Type>/<id>`, and as a last resort the channel (`Channel/<channel>`).
- `occurred_at` is `meta.lastUpdated` when readable (else the receipt time);
  `sequence` stays empty (FHIR versions are per resource, not per patient).
- Routing: a channel's conditions are HL7 v2 paths and cannot hold for FHIR
  content, so the channel `filter`, lane rules and `transform` do not apply:
  the event goes, in the channel's default lane, to every destination
  without a `when` condition.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from thumpflow.config.model import Channel
from thumpflow.core.event import Event, NewDelivery
from thumpflow.core.ids import new_ulid

FHIR_JSON = "application/fhir+json"

_PATIENT_REFERENCES = ("subject", "patient", "beneficiary")


class FhirRouting:
    """One channel's rules for FHIR events (see the module docstring)."""

    def __init__(self, channel: Channel) -> None:
        self.channel_id = channel.id
        self._lane = channel.lanes.default
        self._targets = tuple(spec.id for spec in channel.destinations if not spec.when)

    def event(
        self,
        resource: dict[str, Any],
        raw: bytes,
        received_at: float,
        idempotency_key: str | None,
        source_system: str,
    ) -> Event:
        """The event for a resource or Bundle already checked to be FHIR JSON.

        Without an idempotency key the event gets one of its own (its id), so
        it is never taken for a duplicate.
        """
        event_id = new_ulid(int(received_at * 1000))
        entity_type, entity_id = _ordering_entity(resource) or ("Channel", self.channel_id)
        occurred = _instant(resource.get("meta"))
        return Event(
            event_id=event_id,
            idempotency_key=idempotency_key or f"{self.channel_id}|{event_id}",
            source_system=source_system,
            channel_id=self.channel_id,
            event_type=event_type(resource),
            entity_type=entity_type,
            entity_id=entity_id,
            occurred_at=occurred if occurred is not None else received_at,
            received_at=received_at,
            body=raw,
            content_type=FHIR_JSON,
            lane=self._lane,
        )

    def deliveries(self, event: Event) -> tuple[NewDelivery, ...]:
        return tuple(
            NewDelivery(
                event_id=event.event_id,
                destination_id=destination,
                ordering_key=event.ordering_key,
                lane=event.lane,
            )
            for destination in self._targets
        )


def event_type(resource: dict[str, Any]) -> str:
    kind = resource.get("resourceType")
    if kind != "Bundle":
        return f"fhir.{kind}"
    entries = _entries(resource)
    header = entries[0] if entries else None
    if (
        resource.get("type") == "message"
        and header
        and header.get("resourceType") == "MessageHeader"
    ):
        coding = header.get("eventCoding")
        code = coding.get("code") if isinstance(coding, dict) else None
        if isinstance(code, str) and code:
            return f"fhir.message.{code}"
    return f"fhir.bundle.{resource.get('type')}"


def _entries(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    entries = bundle.get("entry")
    if not isinstance(entries, list):
        return []
    return [
        entry["resource"]
        for entry in entries
        if isinstance(entry, dict) and isinstance(entry.get("resource"), dict)
    ]


def _ordering_entity(resource: dict[str, Any]) -> tuple[str, str] | None:
    if resource.get("resourceType") == "Bundle":
        for entry in _entries(resource):
            patient = _patient_of(entry)
            if patient is not None:
                return patient
        return None
    patient = _patient_of(resource)
    if patient is not None:
        return patient
    own = resource.get("id")
    if isinstance(own, str) and own:
        return str(resource["resourceType"]), own
    return None


def _patient_of(resource: dict[str, Any]) -> tuple[str, str] | None:
    own = resource.get("id")
    if resource.get("resourceType") == "Patient" and isinstance(own, str) and own:
        return "Patient", own
    for name in _PATIENT_REFERENCES:
        value = resource.get(name)
        literal = value.get("reference") if isinstance(value, dict) else None
        if isinstance(literal, str):
            kind, _, rest = literal.rpartition("Patient/")
            patient_id = rest.split("/", 1)[0]
            if patient_id and (not kind or kind.endswith("/")):
                return "Patient", patient_id
    return None


def _instant(meta: Any) -> float | None:
    text = meta.get("lastUpdated") if isinstance(meta, dict) else None
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None
