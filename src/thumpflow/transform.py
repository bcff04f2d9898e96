"""Writing a channel transform: the public, stable API. Pure: no I/O.

A transform is a function `transform(event, message)` named in a channel's
(or a destination's) `transform: module:function`; the module is looked for
in the configuration's `transforms_path` folders. It gets the received
`Event` and its parsed HL7 v2 `Message` and returns the events to deliver:
none (the message is stored but sent nowhere), one, or several. It must be
pure: the engine may run it again for the same message (a replay, a
restart before the commit) and relies on getting the same events.

Every event it returns must be *derived* from the received one, which only
`derive` does right: a new event id (deterministic, from the received id
and a `purpose`), an idempotency key with a `#purpose` suffix, the received
event as `causation_id`, the same channel. The engine checks each output
before anything is stored (`check_outputs`), and `thumpflow try` runs the
same pipeline, so it shows the same refusal; an output that breaks a rule is a
`TransformError` naming the rule, never a store failure that makes the
sender resend forever.

A transform that cannot handle a message raises `TransformError(reason)`:
the message becomes a reject with that reason, in the NAK's ERR segment,
the log and the reject list. The reason must name fields and rules, never
values from the message (it is logged). Any other exception is reported
by its type and place only, for the same reason.

`route(event, *destination_ids)` limits one output to some of the
destinations the routing conditions chose. Examples of the common tasks
(route, enrich from a lookup table, split, rewrite a field) are in
`examples/transforms/`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from thumpflow.core.errors import MessageError
from thumpflow.core.event import Event
from thumpflow.core.ids import derived_ulid
from thumpflow.hl7v2 import Message

__all__ = [
    "Event",
    "Message",
    "Routed",
    "TransformError",
    "check_outputs",
    "derive",
    "editable",
    "route",
]

# What a transform may change on a derived event; the rest identifies it and
# its cause, and is set by `derive` alone.
_CHANGEABLE = frozenset(
    {
        "event_type",
        "entity_type",
        "entity_id",
        "occurred_at",
        "sequence",
        "lane",
        "location",
        "actor",
        "correlation_id",
    }
)


class TransformError(MessageError):
    """A message the transform refuses, with a reason that names no message values.

    The message is kept as a reject with this reason and the sender is
    answered AE/CR with it in the ERR segment (HL7 code 207 unless given).
    """

    def __init__(self, reason: str, *, code: str = "207") -> None:
        super().__init__(reason, code=code)


@dataclass(frozen=True, slots=True)
class Routed:
    """An output event sent only to `destinations` (among those its routing conditions chose)."""

    event: Event
    destinations: tuple[str, ...]


def derive(
    source: Event,
    body: bytes | str,
    *,
    purpose: str = "transform",
    content_type: str | None = None,
    **changes: Any,
) -> Event:
    """A new event derived from `source` with `body`, ready to be stored.

    `purpose` tells several outputs of one message apart (`obx-1`, `obx-2`;
    `fhir`): it makes the event id and the idempotency key, so the same
    purpose gives the same event every time. `content_type` defaults to the
    source's. `changes` may set event_type, entity_type, entity_id,
    occurred_at, sequence, lane, location, actor and correlation_id; any
    other field is a `TypeError` (ids and causation are not the
    transform's to choose).
    """
    unknown = sorted(set(changes) - _CHANGEABLE)
    if unknown:
        raise TypeError(
            f"derive() cannot set {', '.join(unknown)}; it may set {', '.join(sorted(_CHANGEABLE))}"
        )
    if not purpose or "#" in purpose:
        raise ValueError("purpose must be a non-empty text without '#'")
    return dataclasses.replace(
        source,
        event_id=derived_ulid(source.event_id, purpose),
        idempotency_key=f"{source.idempotency_key}#{purpose}",
        body=body.encode() if isinstance(body, str) else body,
        content_type=source.content_type if content_type is None else content_type,
        correlation_id=source.correlation_id or source.event_id,
        causation_id=source.event_id,
        **changes,
    )


def route(event: Event, *destinations: str) -> Routed:
    """`event`, sent only to these destination ids (ids of the channel's destinations)."""
    if not destinations:
        raise ValueError("route() needs at least one destination id")
    return Routed(event, tuple(destinations))


def editable(event: Event) -> Message:
    """A fresh parsed copy of `event`'s HL7 v2 body, to change with `Message.set` and derive.

    The `message` a transform receives is shared with the engine (routing
    and the ledger read it), so it must not be changed; this copy may be.
    """
    return Message.parse(event.body)


def check_outputs(
    received: Event, outputs: Iterable[object], destinations: Sequence[str]
) -> list[tuple[Event, tuple[str, ...] | None]]:
    """Each output as (event, destination ids or None for all), or `TransformError` naming the rule.

    The rules are those the store would otherwise enforce by refusing the
    whole message: an `Event` (or `Routed`), its own event id and
    idempotency key (not the received event's, not another output's), the
    received event as cause, the same channel, a bytes body, and routes to
    destinations of the channel.
    """
    checked: list[tuple[Event, tuple[str, ...] | None]] = []
    ids = {received.event_id}
    keys = {received.idempotency_key}
    for number, item in enumerate(outputs, 1):
        where = f"transform output {number}"
        only: tuple[str, ...] | None = None
        output = item
        if isinstance(item, Routed):
            only = item.destinations
            output = item.event
            unknown = [name for name in only if name not in destinations]
            if unknown:
                raise TransformError(
                    f"{where} is routed to {', '.join(unknown)}, not a destination of the channel "
                    f"(destinations: {', '.join(destinations)})"
                )
        if not isinstance(output, Event):
            raise TransformError(
                f"{where} is a {type(output).__name__}, not an Event: build outputs with "
                "thumpflow.transform.derive(event, body)"
            )
        _check_event(where, received, output, ids, keys)
        ids.add(output.event_id)
        keys.add(output.idempotency_key)
        checked.append((output, only))
    return checked


def _check_event(where: str, received: Event, output: Event, ids: set[str], keys: set[str]) -> None:
    remedy = "derive it with thumpflow.transform.derive(event, body, purpose=...)"
    if output.event_id in ids:
        raise TransformError(f"{where} reuses an event id already used for this message; {remedy}")
    if output.idempotency_key in keys:
        raise TransformError(
            f"{where} reuses an idempotency key already used for this message; {remedy} "
            "with a purpose of its own"
        )
    if output.causation_id != received.event_id:
        raise TransformError(f"{where} does not name the received event as its cause; {remedy}")
    if output.channel_id != received.channel_id:
        raise TransformError(f"{where} belongs to another channel; {remedy}")
    if not isinstance(output.body, bytes):
        raise TransformError(
            f"{where} has a {type(output.body).__name__} body, not bytes; {remedy}"
        )
