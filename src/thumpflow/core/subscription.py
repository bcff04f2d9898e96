"""A FHIR Subscription's tracking state, and the one rule that advances it.

Event numbers run 1, 2, 3, ... from the subscription's start. The state is
the last number known (seen, or counted by `events-since-subscription-start`)
and the open gaps (numbers at or below it that never arrived). `advance`
folds one notification into it. The store applies it inside one write
transaction on the locked row (`SubscriptionStateStore.advance_subscription`),
so notifications handled at the same time by several nodes each fold into
the latest state, in either order, with the same result: a number seen by
any of them is never left open, and a number none of them saw is open.
"""

from __future__ import annotations

from dataclasses import dataclass

TRACKED_GAP = 1000
"""At most this many open gaps are kept (the newest); older ones stay counted and alerted."""


@dataclass(slots=True, frozen=True)
class SubscriptionState:
    """The last event number (None before any), the open gaps ascending, when it last changed
    (any notification, from any node, counts: it is also the last sign of life)."""

    last: int | None
    missed: tuple[int, ...]
    updated_at: float


@dataclass(slots=True, frozen=True)
class Advance:
    """What folding one notification did: the state before and after, and the numbers
    found missing by it (`gap`, at most `TRACKED_GAP` of them; `count` is all of them)."""

    before: SubscriptionState | None
    after: SubscriptionState
    gap: tuple[int, ...]
    count: int


def advance(
    state: SubscriptionState | None,
    seen: frozenset[int],
    since: int | None,
    at: float,
    *,
    reset: int | None = None,
) -> Advance:
    """Fold a notification's event numbers `seen` and its count `since` into `state`.

    `reset` (a handshake's count) replaces the state: that number is the
    baseline and no gap stays open. Without a state, the first notification
    sets the baseline (the number before the lowest seen, or its count).
    """
    if reset is not None:
        return Advance(state, SubscriptionState(reset, (), at), (), 0)
    missed = set(state.missed) if state is not None else set()
    last = state.last if state is not None else None
    if last is None:
        last = min(seen) - 1 if seen else (since or 0)
    marks = [*seen, *([] if since is None else [since])]
    top = max([last, *marks])
    missed.difference_update(seen)
    arrived_above = len([n for n in seen if n > last])
    gap: list[int] = []
    count = 0
    if top - last > arrived_above:
        end = min(top, last + TRACKED_GAP)
        gap = [n for n in range(last + 1, end + 1) if n not in seen]
        count = top - last - arrived_above
        missed.update(gap)
        if len(missed) > TRACKED_GAP:
            missed = set(sorted(missed)[-TRACKED_GAP:])
    after = SubscriptionState(top, tuple(sorted(missed)), at)
    return Advance(state, after, tuple(gap), count)
