"""`core.subscription.advance`: the order in which nodes fold notifications does not matter.

Several nodes fold notifications into one saved state, in whatever order
their transactions reach the row. From a saved state, every order of the
same notifications must end in the same last number and open gaps: a number
any notification carried is not open, every other number above the start
and up to the highest seen or counted is.
"""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from thumpflow.core.subscription import SubscriptionState, advance

notification = st.tuples(
    st.frozensets(st.integers(1, 60), max_size=6), st.none() | st.integers(0, 60)
)


@given(
    st.integers(0, 20),
    st.frozensets(st.integers(1, 20), max_size=5),
    st.lists(notification, max_size=6),
    st.randoms(use_true_random=False),
)
def test_any_order_of_folding_gives_the_same_state(
    last: int,
    missed: frozenset[int],
    notes: list[tuple[frozenset[int], int | None]],
    rng: random.Random,
) -> None:
    start = SubscriptionState(last, tuple(sorted(n for n in missed if n <= last)), 0.0)
    shuffled = list(notes)
    rng.shuffle(shuffled)
    results = []
    for order in (notes, shuffled):
        state = start
        for at, (seen, since) in enumerate(order, 1):
            state = advance(state, seen, since, float(at)).after
        results.append((state.last, state.missed))
    assert results[0] == results[1]
    seen_any: frozenset[int] = frozenset().union(*(seen for seen, _ in notes))
    top = max([last, *seen_any, *(since for _, since in notes if since is not None)])
    expected = (set(start.missed) | set(range(last + 1, top + 1))) - seen_any
    assert results[0] == (top, tuple(sorted(expected)))


def test_a_handshake_resets_and_the_first_notification_sets_the_baseline() -> None:
    reset = advance(SubscriptionState(9, (3, 4), 1.0), frozenset(), None, 2.0, reset=2)
    assert reset.after == SubscriptionState(2, (), 2.0) and reset.gap == ()
    first = advance(None, frozenset({5, 7}), None, 3.0)
    assert first.after == SubscriptionState(7, (6,), 3.0) and (first.gap, first.count) == ((6,), 1)
    counted = advance(None, frozenset(), 4, 3.0)
    assert counted.after == SubscriptionState(4, (), 3.0) and counted.count == 0
