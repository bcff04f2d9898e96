"""A destination's own transform, run as each delivery is sent; its failure stays with it.

`TransformingDestination` wraps a `Destination`. Before each send it runs
the destination's transform on every delivery of the batch: the transform
gets the delivery's event as sent to this destination (`delivery_event`)
and its parsed HL7 v2 message (None for other content), and returns
exactly one event made with `thumpflow.transform.derive`, whose body and
content type are what this destination receives.

Guarantees:
- Confined: a delivery whose transform raises, or returns anything but
  one valid derived event, gets `Permanent(reason)` and is dead-lettered by
  the outbox with that reason (`pipeline.transform_failure`: no message
  values); the rest of the batch is sent, and other destinations and the
  sender's ACK never see the failure (the message was stored before any
  destination ran).
- Replayable: nothing a destination transform produced is stored, so a
  replay of the dead letter (after the transform or the data is fixed)
  runs it again on the stored body; a pure transform gives the same
  output on every attempt, so the delivery's key still identifies one
  content for the receiver.
- Order and batching are the inner destination's: the deliveries that
  passed are sent as one batch in their original order, and the results
  are put back in the batch's order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence

from thumpflow.core.errors import MessageError
from thumpflow.core.event import HL7V2_CONTENT_TYPE, Delivery, Event
from thumpflow.core.outcome import Permanent, SendResult
from thumpflow.core.ports import Destination
from thumpflow.flow.pipeline import transform_failure
from thumpflow.hl7v2 import Message
from thumpflow.transform import TransformError, check_outputs

DestinationTransform = Callable[[Event, Message | None], Iterable[object]]


def delivery_event(delivery: Delivery) -> Event:
    """The event a destination transform sees: the delivery's as sent to this destination.

    Event id, channel, event type, ordering key, sequence, lane, body and
    content type are the delivery's; the idempotency key is the delivery's
    egress key (`event_id.destination_id`), and both times are when the
    delivery was created (the source's own times are not carried by a
    delivery).
    """
    entity_type, _, entity_id = delivery.ordering_key.partition("/")
    return Event(
        event_id=delivery.event_id,
        idempotency_key=delivery.key,
        source_system="",
        channel_id=delivery.channel_id,
        event_type=delivery.event_type,
        entity_type=entity_type,
        entity_id=entity_id,
        occurred_at=delivery.created_at,
        received_at=delivery.created_at,
        body=delivery.body,
        content_type=delivery.content_type,
        sequence=delivery.sequence,
        lane=delivery.lane,
    )


def transform_delivery(transform: DestinationTransform, delivery: Delivery) -> Delivery:
    """`delivery` with the transform's body and content type; `MessageError` when it fails."""
    event = delivery_event(delivery)
    message = None
    if delivery.content_type == HL7V2_CONTENT_TYPE:
        try:
            message = Message.parse(delivery.body)
        except MessageError as err:
            raise TransformError(f"the body is not HL7 v2: {err.describe()}") from None
    try:
        outputs = check_outputs(event, transform(event, message), [delivery.destination_id])
    except Exception as err:
        raise transform_failure(err) from None
    if len(outputs) != 1:
        raise MessageError(
            f"transform failed: a destination transform returns exactly one event, "
            f"not {len(outputs)} (route with `when` instead)"
        )
    output, _ = outputs[0]
    return dataclasses.replace(delivery, body=output.body, content_type=output.content_type)


class TransformingDestination:
    """`inner`, with `transform` run on each delivery before it is sent (see the module)."""

    def __init__(self, inner: Destination, transform: DestinationTransform) -> None:
        self.inner = inner
        self.destination_id = inner.destination_id
        self.max_batch = inner.max_batch
        self._transform = transform

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    async def send(self, batch: Sequence[Delivery]) -> list[SendResult]:
        results: list[SendResult | None] = [None] * len(batch)
        ready: list[Delivery] = []
        positions: list[int] = []
        for position, delivery in enumerate(batch):
            try:
                ready.append(transform_delivery(self._transform, delivery))
            except MessageError as err:
                results[position] = Permanent(destination_reason(err))
                continue
            positions.append(position)
        if ready:
            sent = await self.inner.send(ready)
            if len(sent) != len(ready):
                return sent  # the outbox treats a wrong count as a transient failure of all
            for position, result in zip(positions, sent, strict=True):
                results[position] = result
        return [result for result in results if result is not None]


def destination_reason(err: MessageError) -> str:
    """The dead-letter reason for a delivery its destination's transform failed on."""
    reason = err.describe()
    if not reason.startswith("transform failed"):
        reason = f"transform failed: {reason}"
    return f"destination {reason}"
