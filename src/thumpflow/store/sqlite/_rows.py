"""SQLite's side of the row mapping: the event insert and the dead-letter filter.

The mappers and column lists are shared by every backend (`thumpflow.store.rows`)
and re-exported here for the SQLite modules.
"""

from __future__ import annotations

import json
from typing import Any

from thumpflow.core.event import DeadLetterFilter, Event
from thumpflow.store.crypt import Codec
from thumpflow.store.ops import Dialect
from thumpflow.store.rows import (
    DEAD,
    DEAD_LETTER_COLUMNS,
    DELIVERED,
    DELIVERY_COLUMNS,
    EVENT_FIELDS,
    PENDING,
    SELECT_EVENT,
    SUPERSEDED,
    dead_letter_from_row,
    delivery_from_row,
    event_from_row,
    reason_matches,
)
from thumpflow.store.rows import event_row as _event_values

__all__ = [
    "DEAD",
    "DEAD_LETTER_COLUMNS",
    "DELIVERED",
    "DELIVERY_COLUMNS",
    "DIALECT",
    "INSERT_EVENT",
    "NEWER_DELIVERED",
    "PENDING",
    "SELECT_EVENT",
    "SUPERSEDED",
    "dead_filter",
    "dead_letter_from_row",
    "delivery_from_row",
    "event_from_row",
    "event_row",
    "reason_matches",
]

# How SQLite writes what the shared statements say differently (see `thumpflow.store.ops`).
DIALECT = Dialect(
    in_ids="IN (SELECT value FROM json_each(?))",
    ids=json.dumps,
    sealed_prefix="typeof({column}) = 'blob' AND substr({column}, 1, ?) = ?",
)

INSERT_EVENT = (
    f"INSERT INTO events (event_seq, {', '.join(EVENT_FIELDS)})"
    f" VALUES (?{', ?' * len(EVENT_FIELDS)})"
)


def event_row(event_seq: int, event: Event, codec: Codec) -> tuple[Any, ...]:
    return (event_seq, *_event_values(event, codec))


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


# The latest delivery to the same destination with the same ordering key, committed
# after dead delivery `?` and delivered (with `max`, SQLite takes `delivered_at` from
# that row). A delivery's ordering key is its event's `entity_type/entity_id`, so the
# newer deliveries are found through that entity's events (index `events_patient`,
# then `deliveries_event`; the join order is fixed by CROSS JOIN): a few rows per
# patient, and no index on deliveries that every admission would have to pay for.
NEWER_DELIVERED = (
    "SELECT max(n.delivery_id), n.delivered_at FROM deliveries d"
    " CROSS JOIN events e ON e.event_seq = d.event_seq"
    " CROSS JOIN events ne ON substr(ne.entity_id, instr(ne.entity_id, '|') + 1)"
    " = substr(e.entity_id, instr(e.entity_id, '|') + 1)"
    " AND +ne.entity_id = e.entity_id AND +ne.entity_type = e.entity_type"
    " AND +ne.event_seq >= e.event_seq"
    " CROSS JOIN deliveries n ON n.event_seq = ne.event_seq"
    " WHERE d.delivery_id = ? AND +n.destination_id = d.destination_id"
    " AND +n.ordering_key = d.ordering_key AND +n.status = 1 AND +n.delivery_id > d.delivery_id"
)
