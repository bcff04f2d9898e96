"""`SubscriptionStateStore`: saved, replaced and kept across opens, per (channel, subscription)."""

from __future__ import annotations

from tests.store.support import run
from thumpflow.core.ports import StateStore

from .conftest import StoreFactory


def test_subscription_state_is_saved_replaced_and_survives_reopening(
    store_factory: StoreFactory,
) -> None:
    async def write(store: StateStore) -> None:
        assert await store.subscription_state("subs", "enc-1") is None
        await store.save_subscription_state("subs", "enc-1", 4, (2, 3), 1_700_000_001.0)
        await store.save_subscription_state("subs", "enc-1", 7, (6, 3), 1_700_000_002.0)
        await store.save_subscription_state("subs", "enc-2", 0, (), 1_700_000_003.0)
        await store.save_subscription_state("other", "enc-1", None, (), 1_700_000_004.0)

    run(store_factory.make, write)

    async def read(store: StateStore) -> None:
        assert await store.subscription_state("subs", "enc-1") == (7, (3, 6))
        assert await store.subscription_state("subs", "enc-2") == (0, ())
        assert await store.subscription_state("other", "enc-1") == (None, ())
        assert await store.subscription_state("subs", "enc-3") is None

    run(store_factory.make, read)
