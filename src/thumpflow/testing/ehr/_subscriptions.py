"""Topic-based Subscriptions on the simulated EHR: it notifies a rest-hook endpoint.

`SimulatedEhr.subscribe(...)` returns a `SubscriptionFeed` playing one
Subscription of a real server, in the shape of the R4 Subscriptions Backport
IG (`version="R4"`: `history` Bundles led by a SubscriptionStatus
`Parameters`) or of R5 (`subscription-notification` Bundles led by a
`SubscriptionStatus`), with `full-resource`, `id-only` or `empty` content:

- `handshake()`, `heartbeat()`: post those notifications;
- `event(resource)`: writes the resource to the EHR (a new version), numbers
  the event (1, 2, ...) and posts its notification; `send=False` numbers
  and stores it without notifying (a lost notification, for gap tests);
- `resend(number)`: posts an earlier event's notification again;
- `GET [base]/Subscription/<id>/$events?eventsSinceNumber=&eventsUntilNumber=`
  answers a `history` / `subscription-notification` Bundle of those events
  (served by the EHR, recorded in its request log like any read).

Each post returns the endpoint's (status, JSON body). The bearer token given
is sent as the Subscription's channel header would send it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import aiohttp

Content = Literal["full-resource", "id-only", "empty"]


@dataclass(slots=True, frozen=True)
class _Event:
    number: int
    focus: str
    at: str


class SubscriptionFeed:
    """One Subscription's notifications; see the module docstring."""

    def __init__(
        self,
        *,
        base_url: Callable[[], str],
        write: Callable[[dict[str, Any]], dict[str, Any]],
        read: Callable[[str], dict[str, Any] | None],
        subscription_id: str,
        topic: str,
        endpoint: str,
        token: str | None,
        content: Content,
        version: Literal["R4", "R5"],
    ) -> None:
        self.subscription_id = subscription_id
        self.topic = topic
        self.endpoint = endpoint
        self.content: Content = content
        self.version = version
        self._base_url = base_url
        self._write = write
        self._read = read
        self.token = token
        self.events: list[_Event] = []

    async def handshake(self) -> tuple[int, Any]:
        return await self.post(self.bundle("handshake", []))

    async def heartbeat(self) -> tuple[int, Any]:
        return await self.post(self.bundle("heartbeat", []))

    async def event(self, resource: dict[str, Any], *, send: bool = True) -> tuple[int, Any]:
        """Write `resource`, number its event, notify (unless `send` is False: (0, None))."""
        stored = self._write(resource)
        focus = f"{self._base_url()}/{stored['resourceType']}/{stored['id']}"
        event = _Event(len(self.events) + 1, focus, _now())
        self.events.append(event)
        if not send:
            return 0, None
        return await self.post(self.bundle("event-notification", [event]))

    async def resend(self, number: int) -> tuple[int, Any]:
        return await self.post(self.bundle("event-notification", [self.events[number - 1]]))

    def events_bundle(self, since: int, until: int) -> dict[str, Any]:
        """The `$events` answer for numbers `since`..`until` (inclusive, clipped to known ones)."""
        chosen = [e for e in self.events if since <= e.number <= until]
        return self.bundle("query-event", chosen, content="id-only")

    def bundle(
        self, kind: str, events: list[_Event], content: Content | None = None
    ) -> dict[str, Any]:
        """A notification Bundle of `kind` carrying `events`, in this feed's version and content."""
        content = content or self.content
        subscription = f"{self._base_url()}/Subscription/{self.subscription_id}"
        status = (
            self._backport_status(kind, events, subscription, content)
            if self.version == "R4"
            else self._r5_status(kind, events, subscription, content)
        )
        entries: list[dict[str, Any]] = [
            {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": status}
        ]
        if self.version == "R4":
            entries[0]["request"] = {"method": "GET", "url": f"{subscription}/$status"}
            entries[0]["response"] = {"status": "200"}
        if content != "empty":
            for event in events:
                entry: dict[str, Any] = {"fullUrl": event.focus}
                if content == "full-resource":
                    entry["resource"] = self._read(event.focus.removeprefix(self._base_url() + "/"))
                if self.version == "R4":
                    entry["request"] = {"method": "PUT", "url": event.focus}
                    entry["response"] = {"status": "200"}
                entries.append(entry)
        kind_of_bundle = "history" if self.version == "R4" else "subscription-notification"
        return {
            "resourceType": "Bundle",
            "type": kind_of_bundle,
            "timestamp": _now(),
            "entry": entries,
        }

    def _backport_status(
        self, kind: str, events: list[_Event], subscription: str, content: Content
    ) -> dict[str, Any]:
        parameters: list[dict[str, Any]] = [
            {"name": "subscription", "valueReference": {"reference": subscription}},
            {"name": "topic", "valueCanonical": self.topic},
            {"name": "status", "valueCode": "active"},
            {"name": "type", "valueCode": kind},
            {"name": "events-since-subscription-start", "valueString": str(len(self.events))},
        ]
        for event in events:
            parts: list[dict[str, Any]] = [
                {"name": "event-number", "valueString": str(event.number)},
                {"name": "timestamp", "valueInstant": event.at},
            ]
            if content != "empty":
                parts.append({"name": "focus", "valueReference": {"reference": event.focus}})
            parameters.append({"name": "notification-event", "part": parts})
        return {
            "resourceType": "Parameters",
            "meta": {
                "profile": [
                    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
                    "backport-subscription-status-r4"
                ]
            },
            "parameter": parameters,
        }

    def _r5_status(
        self, kind: str, events: list[_Event], subscription: str, content: Content
    ) -> dict[str, Any]:
        notified = []
        for event in events:
            item: dict[str, Any] = {"eventNumber": str(event.number), "timestamp": event.at}
            if content != "empty":
                item["focus"] = {"reference": event.focus}
            notified.append(item)
        status: dict[str, Any] = {
            "resourceType": "SubscriptionStatus",
            "status": "active",
            "type": kind,
            "eventsSinceSubscriptionStart": str(len(self.events)),
            "subscription": {"reference": subscription},
            "topic": self.topic,
        }
        if notified:
            status["notificationEvent"] = notified
        return status

    async def post(self, bundle: dict[str, Any]) -> tuple[int, Any]:
        """Post any Bundle to the endpoint as this Subscription would; (status, JSON body)."""
        headers = {"Content-Type": "application/fhir+json"}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.endpoint, json=bundle, headers=headers) as response,
        ):
            return response.status, await response.json(content_type=None)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
