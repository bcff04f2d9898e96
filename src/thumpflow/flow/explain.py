"""What a channel's pipeline would do with one message, stage by stage, without delivering.

Pure: it runs the same compiled pipeline the engine runs (filter, lane rules,
ordering key, transform, routing) and records each stage's decision, so
`thumpflow try` shows exactly what the engine would commit. A transform that
raises is reported as that stage's failure, as the engine would reject it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from thumpflow.config.model import Condition
from thumpflow.core.errors import MessageError
from thumpflow.core.event import Delivery, Event, NewDelivery
from thumpflow.flow.destination_transform import (
    DestinationTransform,
    transform_delivery,
)
from thumpflow.flow.pipeline import ChannelPipeline, compile_condition, transform_failure
from thumpflow.hl7v2 import Message


@dataclass(slots=True, frozen=True)
class ConditionResult:
    description: str
    holds: bool


@dataclass(slots=True, frozen=True)
class Route:
    """A destination's routing decision and, when it has a transform, what that made of it.

    `sent` holds the bodies the destination would receive after its own
    transform (empty without one); `transform_error` the reason its
    delivery would be dead-lettered with.
    """

    destination_id: str
    receives: bool
    conditions: tuple[ConditionResult, ...]
    sent: tuple[Event, ...] = ()
    transform_error: str | None = None


@dataclass(slots=True)
class Explanation:
    segments: list[tuple[str, int]]
    received: Event
    filter: list[ConditionResult]
    accepted: bool
    lane_rule: int | None
    transformed: bool
    outputs: list[Event] = field(default_factory=list)
    transform_error: str | None = None
    conversion_warnings: list[str] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)


def _describe(condition: Condition) -> str:
    if condition.any is not None:
        return "any of (" + "; ".join(_describe(option) for option in condition.any) + ")"
    for name, label in (
        ("equals", "equals"),
        ("in_", "in"),
        ("not_in", "not in"),
        ("prefix", "starts with"),
        ("matches", "matches"),
        ("exists", "exists"),
    ):
        value = getattr(condition, name)
        if value is not None:
            return f"{condition.path} {label} {value!r}"
    return str(condition.path)


def explain(
    pipeline: ChannelPipeline,
    message: Message,
    raw: bytes,
    now: float,
    destination_transforms: Mapping[str, DestinationTransform] | None = None,
) -> Explanation:
    """Run every stage for one message and say what each decided.

    With `destination_transforms` (destination id -> its transform), each
    receiving destination's transform is run on what it would receive, as
    the engine runs it when sending.
    """
    channel = pipeline.channel
    segments = [(segment.id, segment.field_count) for segment in message.segments()]
    checks = [
        ConditionResult(_describe(condition), compile_condition(condition)(message))
        for condition in channel.filter
    ]
    lane_rule = next(
        (
            index
            for index, rule in enumerate(channel.lanes.rules)
            if all(compile_condition(condition)(message) for condition in rule.when)
        ),
        None,
    )
    received = pipeline.event(message, raw, now)
    result = Explanation(
        segments=segments,
        received=received,
        filter=checks,
        accepted=all(check.holds for check in checks),
        lane_rule=lane_rule,
        transformed=channel.transform is not None,
    )
    if not result.accepted:
        return result
    try:
        outcome = pipeline.run(message, raw, now)
    except Exception as err:
        # The engine's reason, then (for an exception that is not a MessageError,
        # which the engine does not quote) the exception's own text, shown here only.
        result.transform_error = transform_failure(err).describe()
        if not isinstance(err, MessageError):
            result.transform_error += f" [{type(err).__name__}: {err}]"
        return result
    result.received = outcome.received
    result.outputs = list(outcome.derived) or [outcome.received]
    result.conversion_warnings = list(outcome.conversion_warnings)
    routed = {delivery.destination_id for delivery in outcome.deliveries}
    for destination in channel.destinations:
        conditions = tuple(
            ConditionResult(_describe(condition), compile_condition(condition)(message))
            for condition in destination.when
        )
        route = Route(destination.id, destination.id in routed, conditions)
        transform = (destination_transforms or {}).get(destination.id)
        if route.receives and transform is not None:
            route = _destination_stage(route, transform, outcome.deliveries, result.outputs)
        result.routes.append(route)
    return result


def _destination_stage(
    route: Route,
    transform: DestinationTransform,
    deliveries: Sequence[NewDelivery],
    outputs: Sequence[Event],
) -> Route:
    by_id = {event.event_id: event for event in outputs}
    sent: list[Event] = []
    for planned in deliveries:
        if planned.destination_id != route.destination_id:
            continue
        event = by_id[planned.event_id]
        delivery = Delivery(
            delivery_id=0,
            event_id=event.event_id,
            destination_id=route.destination_id,
            channel_id=event.channel_id,
            ordering_key=event.ordering_key,
            lane=event.lane,
            sequence=event.sequence,
            created_at=event.received_at,
            body=event.body,
            content_type=event.content_type,
            event_type=event.event_type,
        )
        try:
            changed = transform_delivery(transform, delivery)
        except MessageError as err:
            return dataclasses.replace(route, transform_error=f"destination {err.describe()}")
        sent.append(
            dataclasses.replace(event, body=changed.body, content_type=changed.content_type)
        )
    return dataclasses.replace(route, sent=tuple(sent))
