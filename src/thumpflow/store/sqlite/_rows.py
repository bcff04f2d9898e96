"""Mapping between core records and rows, shared by the writer and the readers.

Payload columns (event bodies, delivery errors and reasons) go through the
store's `Codec`: sealed when written if encryption is configured, opened
when read.
"""

from __future__ import annotations

import json
from typing import Any

from thumpflow.core.event import DeadLetter, DeadLetterFilter, Delivery, Event
from thumpflow.core.lanes import Lane
from thumpflow.store.crypt import DELIVERY_ERROR, DELIVERY_REASON, EVENT_BODY, Codec

PENDING = 0
DELIVERED = 1
DEAD = 2
SUPERSEDED = 3

INSERT_EVENT = (
    "INSERT INTO events (event_seq, event_id, idempotency_key, source_system, channel_id,"
    " event_type, entity_type, entity_id, occurred_at, received_at, content_type, sequence,"
    " lane, location, actor, correlation_id, causation_id, body)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

SELECT_EVENT = (
    "SELECT event_id, idempotency_key, source_system, channel_id, event_type, entity_type,"
    " entity_id, occurred_at, received_at, content_type, sequence, lane, location, actor,"
    " correlation_id, causation_id, body FROM events"
)

# Columns of a Delivery, in constructor order, from `deliveries d JOIN events e`.
DELIVERY_COLUMNS = (
    "d.delivery_id, e.event_id, d.destination_id, d.channel_id, d.ordering_key, d.lane,"
    " d.sequence, d.created_at, e.body, e.content_type, e.event_type, d.attempts,"
    " d.next_attempt_at, d.first_failed_at, d.last_error, d.business_key, d.content_hash"
)

DEAD_LETTER_COLUMNS = (
    "d.delivery_id, e.event_id, d.destination_id, d.channel_id, e.event_type, d.ordering_key,"
    " d.lane, d.attempts, d.reason, d.created_at, d.died_at"
)


def event_row(event_seq: int, event: Event, codec: Codec) -> tuple[Any, ...]:
    return (
        event_seq,
        event.event_id,
        event.idempotency_key,
        event.source_system,
        event.channel_id,
        event.event_type,
        event.entity_type,
        event.entity_id,
        event.occurred_at,
        event.received_at,
        event.content_type,
        event.sequence,
        int(event.lane),
        event.location,
        event.actor,
        event.correlation_id,
        event.causation_id,
        codec.seal(event.body, EVENT_BODY),
    )


def event_from_row(row: tuple[Any, ...], codec: Codec) -> Event:
    return Event(
        event_id=row[0],
        idempotency_key=row[1],
        source_system=row[2],
        channel_id=row[3],
        event_type=row[4],
        entity_type=row[5],
        entity_id=row[6],
        occurred_at=row[7],
        received_at=row[8],
        content_type=row[9],
        sequence=row[10],
        lane=Lane(row[11]),
        location=row[12],
        actor=row[13],
        correlation_id=row[14],
        causation_id=row[15],
        body=codec.open(bytes(row[16]), EVENT_BODY),
    )


def delivery_from_row(row: tuple[Any, ...], codec: Codec) -> Delivery:
    return Delivery(
        delivery_id=row[0],
        event_id=row[1],
        destination_id=row[2],
        channel_id=row[3],
        ordering_key=row[4],
        lane=Lane(row[5]),
        sequence=row[6],
        created_at=row[7],
        body=codec.open(bytes(row[8]), EVENT_BODY),
        content_type=row[9],
        event_type=row[10],
        attempts=row[11],
        next_attempt_at=row[12],
        first_failed_at=row[13],
        last_error=codec.open_text(row[14], DELIVERY_ERROR),
        business_key=row[15],
        content_hash=row[16],
    )


def dead_letter_from_row(row: tuple[Any, ...], codec: Codec) -> DeadLetter:
    return DeadLetter(
        delivery_id=row[0],
        event_id=row[1],
        destination_id=row[2],
        channel_id=row[3],
        event_type=row[4],
        ordering_key=row[5],
        lane=Lane(row[6]),
        attempts=row[7],
        reason=codec.open_text(row[8], DELIVERY_REASON) or "",
        created_at=row[9],
        died_at=row[10],
    )


def dead_filter(flt: DeadLetterFilter, codec: Codec) -> tuple[str, list[Any]]:
    """WHERE clause (over `deliveries d JOIN events e`) selecting dead deliveries matching `flt`.

    Fields combine with AND; `reason_contains` is a case-sensitive substring
    match; an empty `delivery_ids` matches nothing. With encryption the
    reasons are sealed, so `reason_contains` is left out of the clause and
    the caller applies it to the opened reasons (`reason_matches`).
    """
    clauses = ["d.status = 2"]
    params: list[Any] = []
    if flt.destination_id is not None:
        clauses.append("d.destination_id = ?")
        params.append(flt.destination_id)
    if flt.channel_id is not None:
        clauses.append("d.channel_id = ?")
        params.append(flt.channel_id)
    if flt.event_type is not None:
        clauses.append("e.event_type = ?")
        params.append(flt.event_type)
    if flt.reason_contains is not None and not codec.encrypts:
        clauses.append("instr(d.reason, ?) > 0")
        params.append(flt.reason_contains)
    if flt.delivery_ids is not None:
        clauses.append("d.delivery_id IN (SELECT value FROM json_each(?))")
        params.append(json.dumps(list(flt.delivery_ids)))
    return " AND ".join(clauses), params


def reason_matches(flt: DeadLetterFilter, reason: str | None) -> bool:
    """Whether an opened dead-letter reason passes `flt.reason_contains`."""
    return flt.reason_contains is None or flt.reason_contains in (reason or "")
