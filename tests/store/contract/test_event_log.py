"""Storage contract: `EventLog`, committed events of the asked channels in commit order."""

from __future__ import annotations

import os

from tests.store.support import admission, event, run
from thumpflow.core.event import Admission
from thumpflow.core.ports import StateStore
from thumpflow.store.crypt import PayloadCipher

from .conftest import StoreFactory


def test_events_after_pages_in_commit_order_with_bodies_decrypted(
    store_factory: StoreFactory,
) -> None:
    cipher = PayloadCipher([("k1", os.urandom(32))])

    async def body(store: StateStore) -> None:
        assert await store.last_position() == 0
        assert await store.events_after(0, ["a"], 10) == []
        ids = []
        for n in range(1, 8):
            channel = "b" if n % 3 == 0 else "a"
            received = event(channel=channel, body=f"body {n}".encode())
            ids.append(received.event_id)
            await store.admit(Admission(received=received))
        last = await store.last_position()
        first = await store.events_after(0, ["a"], 3)
        assert [e.body for _, e in first] == [b"body 1", b"body 2", b"body 4"]
        rest = await store.events_after(first[-1][0], ["a"], 100)
        assert [e.body for _, e in rest] == [b"body 5", b"body 7"]
        positions = [p for p, _ in first + rest]
        assert positions == sorted(positions) and positions[-1] == last
        both = await store.events_after(0, ["a", "b"], 100)
        assert [e.event_id for _, e in both] == ids
        assert await store.events_after(0, [], 100) == []
        assert await store.events_after(last, ["a", "b"], 100) == []

    run(lambda: store_factory.make(cipher=cipher), body)


def test_positions_follow_commit_order_of_admissions_with_deliveries(
    store_factory: StoreFactory,
) -> None:
    async def body(store: StateStore) -> None:
        await store.admit(admission("ehr", entity="MRN1"))
        await store.admit(admission("ehr", entity="MRN2"))
        logged = await store.events_after(0, ["adt-in"], 100)
        assert [e.entity_id for _, e in logged] == ["MRN1", "MRN2"]
        assert logged[0][0] < logged[1][0] == await store.last_position()

    run(store_factory.make, body)
