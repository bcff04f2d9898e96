"""FHIR Subscriptions tracking state: writer operation and row mapping.

The write function runs on the writer thread inside its transaction (one
savepoint per call, see `thumpflow.store.ops`). One row per (channel, subscription):
the last event number and the open gaps as a JSON array of numbers. Not
audited: it is the receiver's bookkeeping, not an act.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from thumpflow.store.ops import Db, WriteContext


@dataclass(slots=True, frozen=True)
class SaveSubscriptionState:
    channel_id: str
    subscription_id: str
    last: int | None
    missed: tuple[int, ...]
    at: float


def save_states(context: WriteContext, calls: list[SaveSubscriptionState]) -> list[Any]:
    """Insert or replace each subscription's state; answer None for each."""
    for call in calls:
        context.conn.execute(
            "INSERT INTO subscription_state"
            " (channel_id, subscription_id, last_event_number, missed, updated_at)"
            " VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (channel_id, subscription_id) DO UPDATE SET"
            " last_event_number = excluded.last_event_number,"
            " missed = excluded.missed, updated_at = excluded.updated_at",
            (
                call.channel_id,
                call.subscription_id,
                call.last,
                json.dumps(sorted(call.missed)),
                call.at,
            ),
        )
    return [None] * len(calls)


def load_state(
    conn: Db, channel_id: str, subscription_id: str
) -> tuple[int | None, tuple[int, ...]] | None:
    """(last event number, open gaps) of a subscription, or None when none was saved."""
    row = conn.execute(
        "SELECT last_event_number, missed FROM subscription_state"
        " WHERE channel_id = ? AND subscription_id = ?",
        (channel_id, subscription_id),
    ).fetchone()
    if row is None:
        return None
    return row[0], tuple(int(n) for n in json.loads(row[1]))
