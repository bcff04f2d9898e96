"""Editing a dead letter and sending the edited message to its destination.

`reprocess_dead_letter` admits the edited bytes as a new event derived from
the dead delivery's event (`thumpflow.transform.derive`, purpose
`edit-<sha256 prefix>`: the same edit twice is a duplicate, not a second
send), with one delivery, to the dead letter's destination only, and hands
it to that destination's running outbox. Before that, the act is audited
(`dead_letter.edited`, subject `delivery:<id>`, the caller, the reason and
the SHA-256 of the edited bytes, never the bytes).

The original event and its dead delivery are kept as they were (still on
the dead-letter list, for the record; replaying it would send the original
again). The edited delivery carries no entity version: the operator's
edit is sent even when a later version of the entity was delivered since.
The destination's own transform, if any, runs on it when it is sent.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from thumpflow.core.errors import ThumpflowError
from thumpflow.core.event import Admission, AuditEntry, DeadLetterFilter, Duplicate, NewDelivery
from thumpflow.transform import derive

if TYPE_CHECKING:
    from thumpflow.runtime.engine import Engine


class DeadLetterNotFoundError(ThumpflowError):
    """No dead delivery has this id."""


@dataclass(frozen=True, slots=True)
class EditedDelivery:
    """The new event made from the edit, and whether this edit had been sent already."""

    delivery_id: int
    destination_id: str
    event_id: str
    duplicate: bool


async def reprocess_dead_letter(
    engine: Engine, delivery_id: int, actor: str, reason: str, body: bytes
) -> EditedDelivery:
    """Send `body`, an edit of a dead delivery's message, to its destination (see the module)."""
    found = await engine.store.dead_letters(DeadLetterFilter(delivery_ids=(delivery_id,)), 1)
    if not found:
        raise DeadLetterNotFoundError(f"delivery {delivery_id} is not on the dead-letter list")
    letter = found[0]
    outbox = engine.outboxes.get(letter.destination_id)
    if outbox is None:
        raise ThumpflowError(f"destination {letter.destination_id!r} is not running here")
    event = await engine.store.event(letter.event_id)
    if event is None:
        raise DeadLetterNotFoundError(f"the event of delivery {delivery_id} is no longer stored")
    digest = hashlib.sha256(body).hexdigest()
    edited = derive(event, body, purpose=f"edit-{digest[:16]}", sequence=None)
    await engine.store.append_audit(
        AuditEntry(
            engine.clock.now(),
            actor,
            "dead_letter.edited",
            f"delivery:{delivery_id}",
            f"{reason} (event {edited.event_id}, sha256 {digest[:16]})",
        )
    )
    delivery = NewDelivery(
        event_id=edited.event_id,
        destination_id=letter.destination_id,
        ordering_key=edited.ordering_key,
        lane=edited.lane,
    )
    outcome = await engine.store.admit(
        Admission(
            received=edited,
            deliveries=(delivery,),
            audit_detail=f"edited from delivery {delivery_id} by {actor}",
        )
    )
    if isinstance(outcome, Duplicate):
        return EditedDelivery(delivery_id, letter.destination_id, outcome.original_event_id, True)
    outbox.offer(outcome.deliveries)
    return EditedDelivery(delivery_id, letter.destination_id, edited.event_id, False)
