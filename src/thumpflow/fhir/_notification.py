"""Subscription notification Bundles: R4 (Subscriptions R5 Backport IG) and R5. Pure.

Both shapes carry the same facts; `parse_notification` reads either into a
`Notification`:

- R4 Backport: `Bundle.type` `history`; the first entry is a `Parameters`
  (SubscriptionStatus profile) with parameters `subscription`
  (valueReference), `topic` (valueCanonical), `status`, `type` (valueCode),
  `events-since-subscription-start` (valueString or an integer type) and
  one `notification-event` per event, whose parts are `event-number`,
  `timestamp`, `focus` (valueReference) and `additional-context`.
- R5: `Bundle.type` `subscription-notification`; the first entry is a
  `SubscriptionStatus` with `subscription`, `topic`, `status`, `type`,
  `eventsSinceSubscriptionStart` and `notificationEvent[]` (`eventNumber`,
  `timestamp`, `focus`). integer64 values arrive as JSON strings.

For `full-resource` content the focus resources are further entries of the
Bundle; an event's `resource` is the entry whose `fullUrl` ends with the
focus reference (or whose type and id match it). Errors name the element
path (`Bundle.entry[0].resource.parameter[3].part[0]`), never a value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from thumpflow.core.errors import ThumpflowError

NotificationType = Literal[
    "handshake", "heartbeat", "event-notification", "query-status", "query-event"
]
_TYPES: dict[str, NotificationType] = {
    "handshake": "handshake",
    "heartbeat": "heartbeat",
    "event-notification": "event-notification",
    "query-status": "query-status",
    "query-event": "query-event",
}


class NotificationError(ThumpflowError):
    """A notification Bundle that cannot be read; `path` names where."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


@dataclass(slots=True, frozen=True)
class NotificationEvent:
    """One event of a notification: its number, focus reference and resource (full-resource)."""

    number: int | None
    focus: str | None
    resource: dict[str, Any] | None


@dataclass(slots=True, frozen=True)
class Notification:
    """What a notification says, whichever FHIR version carried it."""

    version: Literal["R4", "R5"]
    subscription: str
    topic: str | None
    status: str | None
    type: NotificationType
    events_since_start: int | None
    events: tuple[NotificationEvent, ...]


def parse_notification(bundle: Any) -> Notification:
    """Read a notification Bundle; `NotificationError` naming the path when it is not one."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise NotificationError("(body)", "a notification is a Bundle")
    entries = bundle.get("entry")
    if not isinstance(entries, list) or not entries or not isinstance(entries[0], dict):
        raise NotificationError("Bundle.entry", "the first entry must hold the subscription status")
    status = entries[0].get("resource")
    kind = bundle.get("type")
    if kind == "history":
        if not isinstance(status, dict) or status.get("resourceType") != "Parameters":
            raise NotificationError(
                "Bundle.entry[0].resource", "an R4 notification starts with a Parameters resource"
            )
        return _backport(status, entries)
    if kind == "subscription-notification":
        if not isinstance(status, dict) or status.get("resourceType") != "SubscriptionStatus":
            raise NotificationError(
                "Bundle.entry[0].resource", "an R5 notification starts with a SubscriptionStatus"
            )
        return _r5(status, entries)
    raise NotificationError(
        "Bundle.type", "must be history (R4 Backport) or subscription-notification (R5)"
    )


def _backport(status: dict[str, Any], entries: list[Any]) -> Notification:
    base = "Bundle.entry[0].resource.parameter"
    parameters = status.get("parameter")
    if not isinstance(parameters, list):
        raise NotificationError(base, "missing")
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    events: list[NotificationEvent] = []
    for index, parameter in enumerate(parameters):
        path = f"{base}[{index}]"
        if not isinstance(parameter, dict) or not isinstance(parameter.get("name"), str):
            raise NotificationError(path, "a parameter needs a name")
        if parameter["name"] == "notification-event":
            events.append(_backport_event(parameter, path, entries))
        else:
            found.setdefault(parameter["name"], (path, parameter))
    subscription = _required(found, "subscription", "valueReference", base)
    reference = subscription.get("reference") if isinstance(subscription, dict) else None
    if not isinstance(reference, str):
        raise NotificationError(f"{base}:subscription", "needs valueReference.reference")
    return Notification(
        version="R4",
        subscription=reference,
        topic=_optional_text(found, "topic", "valueCanonical"),
        status=_optional_text(found, "status", "valueCode"),
        type=_type(_required(found, "type", "valueCode", base), f"{base}:type"),
        events_since_start=_number_value(found.get("events-since-subscription-start")),
        events=tuple(events),
    )


def _backport_event(parameter: dict[str, Any], path: str, entries: list[Any]) -> NotificationEvent:
    parts = parameter.get("part")
    if not isinstance(parts, list):
        raise NotificationError(f"{path}.part", "a notification-event needs parts")
    by_name = {
        part["name"]: (f"{path}.part[{i}]", part)
        for i, part in enumerate(parts)
        if isinstance(part, dict) and isinstance(part.get("name"), str)
    }
    focus = by_name.get("focus")
    reference = focus[1].get("valueReference") if focus else None
    literal = reference.get("reference") if isinstance(reference, dict) else None
    return NotificationEvent(
        number=_number_value(by_name.get("event-number")),
        focus=literal if isinstance(literal, str) else None,
        resource=_focus_resource(literal, entries),
    )


def _r5(status: dict[str, Any], entries: list[Any]) -> Notification:
    base = "Bundle.entry[0].resource"
    subscription = status.get("subscription")
    reference = subscription.get("reference") if isinstance(subscription, dict) else None
    if not isinstance(reference, str):
        raise NotificationError(f"{base}.subscription", "needs a reference")
    raw_events = status.get("notificationEvent", [])
    if not isinstance(raw_events, list):
        raise NotificationError(f"{base}.notificationEvent", "must be an array")
    events = []
    for index, item in enumerate(raw_events):
        path = f"{base}.notificationEvent[{index}]"
        if not isinstance(item, dict):
            raise NotificationError(path, "must be an object")
        focus = item.get("focus")
        literal = focus.get("reference") if isinstance(focus, dict) else None
        events.append(
            NotificationEvent(
                number=_number(item.get("eventNumber"), f"{path}.eventNumber"),
                focus=literal if isinstance(literal, str) else None,
                resource=_focus_resource(literal, entries),
            )
        )
    topic = status.get("topic")
    state = status.get("status")
    return Notification(
        version="R5",
        subscription=reference,
        topic=topic if isinstance(topic, str) else None,
        status=state if isinstance(state, str) else None,
        type=_type(status.get("type"), f"{base}.type"),
        events_since_start=_number(
            status.get("eventsSinceSubscriptionStart"), f"{base}.eventsSinceSubscriptionStart"
        ),
        events=tuple(events),
    )


def _required(
    found: dict[str, tuple[str, dict[str, Any]]], name: str, value_key: str, base: str
) -> Any:
    if name not in found:
        raise NotificationError(f"{base}:{name}", "missing")
    path, parameter = found[name]
    if value_key not in parameter:
        raise NotificationError(f"{path}.{value_key}", "missing")
    return parameter[value_key]


def _optional_text(
    found: dict[str, tuple[str, dict[str, Any]]], name: str, value_key: str
) -> str | None:
    value = found[name][1].get(value_key) if name in found else None
    return value if isinstance(value, str) else None


def _number_value(item: tuple[str, dict[str, Any]] | None) -> int | None:
    """The number of a parameter or part: valueString, valueUnsignedInt, valueInteger(64)."""
    if item is None:
        return None
    path, parameter = item
    for key in ("valueString", "valueUnsignedInt", "valueInteger64", "valueInteger"):
        if key in parameter:
            return _number(parameter[key], f"{path}.{key}")
    raise NotificationError(path, "needs a number value")


def _number(value: Any, path: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise NotificationError(path, "must be a whole number")
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise NotificationError(path, "must be a whole number (0 or more)")


def _type(value: Any, path: str) -> NotificationType:
    if isinstance(value, str) and value in _TYPES:
        return _TYPES[value]
    raise NotificationError(path, f"must be one of {', '.join(_TYPES)}")


def _focus_resource(reference: str | None, entries: list[Any]) -> dict[str, Any] | None:
    if not reference:
        return None
    for entry in entries[1:]:
        if not isinstance(entry, dict) or not isinstance(entry.get("resource"), dict):
            continue
        resource: dict[str, Any] = entry["resource"]
        full_url = entry.get("fullUrl")
        own = f"{resource.get('resourceType')}/{resource.get('id')}"
        if (
            reference in (own, full_url)
            or reference.endswith("/" + own)
            or (isinstance(full_url, str) and full_url.endswith("/" + reference))
        ):
            return resource
    return None
