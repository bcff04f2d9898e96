"""`SubscriptionStateStore`: each notification folded into the saved state in one commit,
per (channel, subscription), kept across opens; a handshake resets it."""

from __future__ import annotations

from tests.store.support import run
from thumpflow.core.ports import StateStore
from thumpflow.core.subscription import SubscriptionState

from .conftest import StoreFactory


def test_subscription_state_is_advanced_reset_and_survives_reopening(
    store_factory: StoreFactory,
) -> None:
    async def write(store: StateStore) -> None:
        assert await store.subscription_state("subs", "enc-1") is None
        first = await store.advance_subscription("subs", "enc-1", frozenset({3}), 3, 1.0)
        assert first.before is None and first.after == SubscriptionState(3, (), 1.0)
        assert first.gap == () and first.count == 0
        jump = await store.advance_subscription("subs", "enc-1", frozenset({5}), 8, 2.0)
        assert jump.before == first.after
        assert (jump.gap, jump.count) == ((4, 6, 7, 8), 4)
        assert jump.after == SubscriptionState(8, (4, 6, 7, 8), 2.0)
        late = await store.advance_subscription("subs", "enc-1", frozenset({6, 8}), None, 3.0)
        assert late.after == SubscriptionState(8, (4, 7), 3.0) and late.gap == ()
        beat = await store.advance_subscription("subs", "enc-1", frozenset(), 8, 4.0)
        assert beat.after == SubscriptionState(8, (4, 7), 4.0), "a heartbeat is a sign of life"
        await store.advance_subscription("subs", "enc-2", frozenset(), 0, 5.0)
        await store.advance_subscription("other", "enc-1", frozenset({2}), None, 6.0)
        hand = await store.advance_subscription("subs", "enc-2", frozenset(), None, 7.0, reset=9)
        assert hand.after == SubscriptionState(9, (), 7.0)

    run(store_factory.make, write)

    async def read(store: StateStore) -> None:
        assert await store.subscription_state("subs", "enc-1") == SubscriptionState(8, (4, 7), 4.0)
        assert await store.subscription_state("subs", "enc-2") == SubscriptionState(9, (), 7.0)
        assert await store.subscription_state("other", "enc-1") == SubscriptionState(2, (), 6.0)
        assert await store.subscription_state("subs", "enc-3") is None

    run(store_factory.make, read)
