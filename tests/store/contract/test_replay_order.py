"""Storage contract: replay respects order per ordering key (every backend).

A dead delivery whose ordering key has had a later delivery to the same
destination delivered is refused unless the replay is asked out of order;
then it is replayed and audited as `replayed.out_of_order`. Only delivered
deliveries committed after the dead one, of the same key and destination,
count.
"""

from __future__ import annotations

from tests.store.support import StepClock, admission, run
from thumpflow.core.event import DeadLetterFilter, Delivery, OrderConflict
from thumpflow.core.outcome import Delivered, Died, Superseded
from thumpflow.core.ports import Store

from .conftest import StoreFactory


async def one(store: Store, destination: str = "fhir", entity: str = "MRN001") -> Delivery:
    result = await store.admit(admission(destination, entity=entity))
    return result.deliveries[0]  # type: ignore[union-attr]


async def deliver(store: Store, d: Delivery, at: float) -> None:
    await store.record([Delivered(d.delivery_id, at, 1, d.destination_id, d.ordering_key, None)])


async def kill(store: Store, d: Delivery) -> None:
    await store.record([Died(d.delivery_id, 50.0, 1, "HTTP 422")])


def ids(deliveries: tuple[Delivery, ...]) -> list[int]:
    return [d.delivery_id for d in deliveries]


def test_a_newer_delivery_of_the_key_refuses_the_replay_until_asked_out_of_order(
    store_factory: StoreFactory,
) -> None:
    clock = StepClock(1_700_009_000.0)

    async def body(store: Store) -> None:
        first = await one(store)
        second = await one(store)
        third = await one(store)
        await kill(store, first)
        await deliver(store, second, 60.0)
        await deliver(store, third, 70.0)
        by_id = DeadLetterFilter(delivery_ids=(first.delivery_id,))

        refused = await store.replay(by_id, "user:alice", "receiver fixed")
        conflict = OrderConflict(first.delivery_id, "fhir", third.delivery_id, 70.0)
        assert (refused.replayed, refused.refused, refused.out_of_order) == ((), (conflict,), ())
        assert ids(await store.dead_letters(DeadLetterFilter())) == [first.delivery_id]
        assert await store.pending_count("fhir") == 0
        trail = await store.audit(f"delivery:{first.delivery_id}")
        assert [entry.action for entry in trail] == ["dead_lettered"]
        explained = conflict.explain()
        assert str(third.delivery_id) in explained and "MRN001" not in explained

        forced = await store.replay(by_id, "user:alice", "receiver fixed", out_of_order=True)
        assert (ids(forced.replayed), forced.refused) == ([first.delivery_id], ())
        assert forced.out_of_order == (conflict,)
        assert await store.dead_letters(DeadLetterFilter()) == []
        assert ids(tuple(await store.load_pending("fhir", 0, 10))) == [first.delivery_id]
        [entry, *_] = await store.audit(f"delivery:{first.delivery_id}")
        assert (entry.action, entry.actor, entry.at) == (
            "replayed.out_of_order",
            "user:alice",
            1_700_009_000.0,
        )
        assert entry.detail.startswith("receiver fixed") and str(third.delivery_id) in entry.detail
        outboxes = [o for s in await store.stats() for o in s.outboxes]
        assert [(o.pending, o.dead) for o in outboxes] == [(1, 0)]

    run(lambda: store_factory.make(clock), body)


def test_only_later_delivered_deliveries_of_the_same_key_and_destination_count(
    store_factory: StoreFactory,
) -> None:
    async def body(store: Store) -> None:
        earlier = await one(store)
        await deliver(store, earlier, 10.0)
        dead = await one(store)
        other_patient = await one(store, entity="MRN002")
        other_destination = await one(store, destination="bed")
        later_dead = await one(store)
        later_superseded = await one(store)
        later_pending = await one(store)
        await kill(store, dead)
        await deliver(store, other_patient, 20.0)
        await deliver(store, other_destination, 21.0)
        await kill(store, later_dead)
        await store.record([Superseded(later_superseded.delivery_id, 22.0, "stale")])
        result = await store.replay(DeadLetterFilter(destination_id="fhir"), "ops", "fixed")
        assert ids(result.replayed) == [dead.delivery_id, later_dead.delivery_id]
        assert (result.refused, result.out_of_order) == ((), ())
        assert ids(tuple(await store.load_pending("fhir", 0, 10))) == [
            dead.delivery_id,
            later_dead.delivery_id,
            later_pending.delivery_id,
        ]

    run(store_factory.make, body)


def test_a_replay_by_filter_judges_each_dead_delivery_on_its_own(
    store_factory: StoreFactory,
) -> None:
    async def body(store: Store) -> None:
        blocked = await one(store, entity="MRN001")
        free = await one(store, entity="MRN002")
        newer = await one(store, entity="MRN001")
        elsewhere = await one(store, destination="bed", entity="MRN001")
        for d in (blocked, free, elsewhere):
            await kill(store, d)
        await deliver(store, newer, 30.0)
        result = await store.replay(DeadLetterFilter(), "ops", "bulk")
        assert ids(result.replayed) == [free.delivery_id, elsewhere.delivery_id]
        assert result.refused == (
            OrderConflict(blocked.delivery_id, "fhir", newer.delivery_id, 30.0),
        )
        assert ids(await store.dead_letters(DeadLetterFilter())) == [blocked.delivery_id]
        actions = {
            d.delivery_id: [e.action for e in await store.audit(f"delivery:{d.delivery_id}")]
            for d in (blocked, free, elsewhere)
        }
        assert actions == {
            blocked.delivery_id: ["dead_lettered"],
            free.delivery_id: ["replayed", "dead_lettered"],
            elsewhere.delivery_id: ["replayed", "dead_lettered"],
        }
        forced = await store.replay(DeadLetterFilter(), "ops", "bulk", out_of_order=True)
        assert ids(forced.replayed) == [blocked.delivery_id] and forced.refused == ()

    run(store_factory.make, body)
