"""FHIR Subscriptions tracking state: writer operation and row mapping.

The write function runs on the writer thread inside its transaction (one
savepoint per call, see `thumpflow.store.ops`). One row per (channel, subscription):
the last event number, the open gaps as a JSON array of numbers, and when a
notification last changed it (a row with `updated_at` -1 is a placeholder
inserted to lock on, read as none). Not audited: it is the receiver's
bookkeeping, not an act.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from thumpflow.core.subscription import SubscriptionState, advance
from thumpflow.store.ops import Db, WriteContext


@dataclass(slots=True, frozen=True)
class AdvanceSubscription:
    channel_id: str
    subscription_id: str
    seen: frozenset[int]
    since: int | None
    at: float
    reset: int | None


def advance_states(context: WriteContext, calls: list[AdvanceSubscription]) -> list[Any]:
    """Fold each notification into its subscription's row (`core.subscription.advance`),
    reading the row after locking it, so concurrent writers (other nodes) serialise on it;
    answer the `Advance` of each."""
    answers: list[Any] = []
    for call in calls:
        key = (call.channel_id, call.subscription_id)
        context.conn.execute(
            "INSERT INTO subscription_state"
            " (channel_id, subscription_id, last_event_number, missed, updated_at)"
            " VALUES (?, ?, NULL, '[]', ?) ON CONFLICT (channel_id, subscription_id) DO NOTHING",
            (*key, -1.0),
        )
        context.conn.execute(
            "UPDATE subscription_state SET updated_at = updated_at"
            " WHERE channel_id = ? AND subscription_id = ?",
            key,
        )
        saved = load_state(context.conn, *key)
        if saved is not None and saved.updated_at < 0:
            saved = None
        step = advance(saved, call.seen, call.since, call.at, reset=call.reset)
        context.conn.execute(
            "UPDATE subscription_state SET last_event_number = ?, missed = ?, updated_at = ?"
            " WHERE channel_id = ? AND subscription_id = ?",
            (step.after.last, json.dumps(list(step.after.missed)), call.at, *key),
        )
        answers.append(step)
    return answers


def load_state(conn: Db, channel_id: str, subscription_id: str) -> SubscriptionState | None:
    """The state saved for a subscription, or None when none was saved."""
    row = conn.execute(
        "SELECT last_event_number, missed, updated_at FROM subscription_state"
        " WHERE channel_id = ? AND subscription_id = ?",
        (channel_id, subscription_id),
    ).fetchone()
    if row is None or row[2] < 0:
        return None
    return SubscriptionState(row[0], tuple(int(n) for n in json.loads(row[1])), row[2])
