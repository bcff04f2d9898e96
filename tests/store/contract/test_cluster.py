"""`ClusterStore`: nodes, leases with epochs, fenced outcomes, partitioned loads; every backend.

Times are the database's clock. The SQLite store's clock is the one it was
made with (a `FakeClock` here, moved forward by the test); PostgreSQL's is
the server's, so a lease there is made short and the test waits, polling
`db_now`, until it passed.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.store.support import run
from thumpflow.core.batch import RunStatus, RunTrigger, Window
from thumpflow.core.cluster import (
    Lease,
    LeaseLostError,
    NodeConflictError,
    NodeInfo,
    partition_of,
)
from thumpflow.core.event import AuditEntry, DeadLetterFilter
from thumpflow.core.outcome import Died
from thumpflow.core.ports import StateStore
from thumpflow.testing.batch import FakeClock

from .conftest import StoreFactory
from .test_store import admit_one, delivered

TTL = 0.4


async def _until_past(store: StateStore, clock: FakeClock, moment: float) -> None:
    """Wait (bounded) until the database's clock is past `moment`."""
    for _ in range(500):
        if await store.db_now() > moment:
            return
        await clock.advance(0.05)
        await asyncio.sleep(0.01)
    raise AssertionError("the database clock did not pass the moment")


async def _actions(store: StateStore, prefix: str) -> list[AuditEntry]:
    """Audit entries about subjects starting with `prefix`, oldest first."""
    entries = await store.audit(None, 1000)
    return [entry for entry in reversed(entries) if entry.subject.startswith(prefix)]


def _node(node_id: str, incarnation: str, pid: int = 100) -> NodeInfo:
    return NodeInfo(node_id, incarnation, "host-a", pid, "127.0.0.1:8080")


def test_a_lease_has_one_owner_and_a_new_epoch_at_each_change_of_owner(
    store_factory: StoreFactory,
) -> None:
    clock = FakeClock()

    async def body(store: StateStore) -> None:
        racers = await asyncio.gather(
            *(store.acquire_lease("duty:scheduler", f"n{i}", TTL) for i in range(5))
        )
        won = [lease for lease in racers if lease is not None]
        assert len(won) == 1 and won[0].epoch == 1
        first = won[0]
        assert first.expires_at == pytest.approx(first.granted_at + TTL)
        other = "n1" if first.owner != "n1" else "n2"
        assert await store.acquire_lease("duty:scheduler", other, TTL) is None
        again = await store.acquire_lease("duty:scheduler", first.owner, TTL)
        assert again is not None and again.epoch == 1
        renewed = await store.renew_lease(first, TTL)
        assert renewed is not None and renewed.epoch == 1
        assert renewed.expires_at >= first.expires_at
        [record] = await store.leases("duty:")
        assert (record.owner, record.epoch, record.held) == (first.owner, 1, True)
        assert await store.leases("partition:") == []

        await _until_past(store, clock, renewed.expires_at)
        assert await store.renew_lease(renewed, TTL) is None
        taken = await store.acquire_lease("duty:scheduler", other, TTL)
        assert taken is not None and (taken.owner, taken.epoch) == (other, 2)
        assert not await store.release_lease(renewed)
        assert await store.release_lease(taken)
        [record] = await store.leases()
        assert not record.held
        back = await store.acquire_lease("duty:scheduler", first.owner, TTL)
        assert back is not None and back.epoch == 3
        acquired = await _actions(store, "lease:")
        assert [(e.actor, e.action, e.detail) for e in acquired] == [
            (first.owner, "lease.acquired", "epoch 1"),
            (other, "lease.acquired", "epoch 2"),
            (first.owner, "lease.acquired", "epoch 3"),
        ]

    run(lambda: store_factory.make(clock=clock), body)


def test_outcomes_fenced_by_a_lost_epoch_are_refused_and_write_nothing(
    store_factory: StoreFactory,
) -> None:
    clock = FakeClock()

    async def body(store: StateStore) -> None:
        first = (await admit_one(store, "fhir", entity="MRN1")).deliveries[0]
        second = (await admit_one(store, "fhir", entity="MRN1")).deliveries[0]
        old = await store.acquire_lease("partition:fhir:0", "a", TTL)
        assert old is not None
        await store.record_fenced([delivered(first)], old)
        await _until_past(store, clock, old.expires_at)
        new = await store.acquire_lease("partition:fhir:0", "b", TTL)
        assert new is not None and new.epoch == old.epoch + 1
        with pytest.raises(LeaseLostError, match="no longer held"):
            await store.record_fenced([delivered(second)], old)
        pending = await store.load_pending("fhir", 0, 10)
        assert [d.delivery_id for d in pending] == [second.delivery_id]
        forged = Lease(new.name, "a", new.epoch, new.granted_at, new.expires_at)
        with pytest.raises(LeaseLostError):
            await store.record_fenced([delivered(second)], forged)
        await store.record_fenced([delivered(second)], new)
        assert await store.load_pending("fhir", 0, 10) == []
        unknown = Lease("partition:lab:3", "b", 1, 0.0, 0.0)
        with pytest.raises(LeaseLostError):
            await store.record_fenced([delivered(second)], unknown)

    run(lambda: store_factory.make(clock=clock), body)


def test_fenced_records_of_several_partitions_together_refuse_only_the_lost_ones(
    store_factory: StoreFactory,
) -> None:
    """Submitted at once, so they share a group commit and its one lease read."""
    clock = FakeClock()

    async def body(store: StateStore) -> None:
        ids = [(await admit_one(store, "fhir", entity=f"MRN{n}")).deliveries[0] for n in range(4)]
        held = await store.acquire_lease("partition:fhir:0", "a", 30)
        other = await store.acquire_lease("partition:fhir:1", "b", 30)
        assert held is not None and other is not None
        stale = Lease(other.name, "a", other.epoch, other.granted_at, other.expires_at)
        unknown = Lease("partition:fhir:9", "a", 1, 0.0, 0.0)
        results = await asyncio.gather(
            store.record_fenced([delivered(ids[0])], held),
            store.record_fenced([delivered(ids[1])], stale),
            store.record_fenced([delivered(ids[2])], held),
            store.record_fenced([delivered(ids[3])], unknown),
            return_exceptions=True,
        )
        assert results[0] is None and results[2] is None
        assert isinstance(results[1], LeaseLostError) and isinstance(results[3], LeaseLostError)
        pending = await store.load_pending("fhir", 0, 10)
        assert [d.delivery_id for d in pending] == [ids[1].delivery_id, ids[3].delivery_id]

    run(lambda: store_factory.make(clock=clock), body)


def test_a_node_id_is_refused_while_another_incarnation_of_it_is_alive(
    store_factory: StoreFactory,
) -> None:
    clock = FakeClock()

    async def body(store: StateStore) -> None:
        await store.join_node(_node("n1", "i1", pid=11), TTL)
        await store.join_node(_node("n2", "j1"), TTL)
        with pytest.raises(NodeConflictError, match="node id 'n1' is already in use") as caught:
            await store.join_node(_node("n1", "i2", pid=12), TTL)
        assert caught.value.holder.pid == 11 and caught.value.holder.incarnation == "i1"
        assert await store.heartbeat("n1", "i1", TTL, ready=True)
        await store.join_node(_node("n1", "i2", pid=12), TTL, replace="i1")
        assert not await store.heartbeat("n1", "i1", TTL, ready=True)
        nodes = {node.node_id: node for node in await store.nodes()}
        assert (nodes["n1"].incarnation, nodes["n1"].pid, nodes["n1"].alive) == ("i2", 12, True)
        await store.leave_node("n2", "j1")
        nodes = {node.node_id: node for node in await store.nodes()}
        assert not nodes["n2"].alive
        await store.join_node(_node("n2", "j2"), TTL)
        await _until_past(store, clock, (await store.db_now()) + TTL)
        assert not any(node.alive for node in await store.nodes())
        await store.join_node(_node("n1", "i3"), TTL)
        joined = [e.action for e in await _actions(store, "node:")]
        assert joined == ["node.joined"] * 3 + ["node.left", "node.joined", "node.joined"]

    run(lambda: store_factory.make(clock=clock), body)


def test_a_node_is_ready_only_once_a_heartbeat_of_its_incarnation_says_so(
    store_factory: StoreFactory,
) -> None:
    clock = FakeClock()

    async def body(store: StateStore) -> None:
        async def ready() -> dict[str, bool]:
            return {node.node_id: node.ready for node in await store.nodes()}

        await store.join_node(_node("n1", "i1", pid=11), TTL)
        await store.join_node(_node("n2", "j1"), TTL)
        assert await ready() == {"n1": False, "n2": False}
        assert await store.heartbeat("n1", "i1", TTL, ready=False)
        assert await ready() == {"n1": False, "n2": False}
        assert await store.heartbeat("n1", "i1", TTL, ready=True)
        assert await ready() == {"n1": True, "n2": False}
        await store.join_node(_node("n1", "i2", pid=12), TTL, replace="i1")
        assert await ready() == {"n1": False, "n2": False}, "a new incarnation starts unready"
        assert not await store.heartbeat("n1", "i1", TTL, ready=True)
        assert await ready() == {"n1": False, "n2": False}, "the replaced one cannot say so"

    run(lambda: store_factory.make(clock=clock), body)


def test_partitions_split_a_destinations_pending_deliveries_by_ordering_key(
    store_factory: StoreFactory,
) -> None:
    async def body(store: StateStore) -> None:
        keys = [f"MRN{n}" for n in range(12)]
        for round_ in range(3):
            for key in keys:
                await admit_one(store, "fhir", "lab", entity=key, at=1_700_000_000.0 + round_)
        everything = await store.load_pending("fhir", 0, 1000)
        first = everything[0]
        await store.record([delivered(first)])
        everything = everything[1:]
        parts = 4
        union = []
        for partition in range(parts):
            loaded = await store.load_partition("fhir", parts, partition, 0, 1000)
            assert all(partition_of(d.ordering_key, parts) == partition for d in loaded)
            assert [d.delivery_id for d in loaded] == sorted(d.delivery_id for d in loaded)
            assert await store.partition_pending("fhir", parts, partition) == len(loaded)
            paged = await store.load_partition("fhir", parts, partition, 0, 2)
            assert paged == loaded[:2]
            if loaded:
                after = await store.load_partition(
                    "fhir", parts, partition, loaded[0].delivery_id, 1000
                )
                assert after == loaded[1:]
            union.extend(loaded)
        assert sorted(d.delivery_id for d in union) == [d.delivery_id for d in everything]
        assert await store.has_pending_after("fhir", 0)
        assert await store.has_pending_after("fhir", everything[-1].delivery_id - 1)
        assert not await store.has_pending_after("fhir", everything[-1].delivery_id)
        assert not await store.has_pending_after("nowhere", 0)

    run(store_factory.make, body)


def test_run_recovery_closes_only_runs_whose_node_is_gone(store_factory: StoreFactory) -> None:
    clock = FakeClock()

    async def body(store: StateStore) -> None:
        at = await store.db_now()
        await store.join_node(_node("n1", "inc-a"), TTL)
        store.act_as("inc-a")
        mine = await store.start_run("census", RunTrigger.SCHEDULE, Window(), None, at)
        store.act_as("inc-gone")
        orphan = await store.start_run("billing", RunTrigger.SCHEDULE, Window(), None, at)
        assert mine is not None and orphan is not None
        assert await store.recover_runs(at) == [orphan]
        assert (await store.run(mine)).status is RunStatus.RUNNING  # type: ignore[union-attr]
        await _until_past(store, clock, (await store.db_now()) + TTL)
        assert await store.recover_runs(at) == [mine]
        assert (await store.run(mine)).error == "interrupted"  # type: ignore[union-attr]

    run(lambda: store_factory.make(clock=clock), body)


def test_a_replay_raises_its_destinations_replay_signal(store_factory: StoreFactory) -> None:
    async def body(store: StateStore) -> None:
        assert await store.signals("replay:") == {}
        first = (await admit_one(store, "fhir", "lab", entity="MRN1")).deliveries
        await store.record([Died(d.delivery_id, 1.0, 1, "HTTP 422") for d in first])
        everything = DeadLetterFilter()
        await store.replay(DeadLetterFilter(destination_id="fhir"), "ops", "fixed")
        assert await store.signals("replay:") == {"replay:fhir": 1}
        await store.replay(everything, "ops", "again")
        assert await store.signals("replay:") == {"replay:fhir": 1, "replay:lab": 1}
        await store.replay(everything, "ops", "nothing dead")
        assert await store.signals("replay:") == {"replay:fhir": 1, "replay:lab": 1}
        [fhir, _] = first
        await store.record([Died(fhir.delivery_id, 2.0, 1, "HTTP 422")])
        await store.replay(everything, "ops", "third")
        assert await store.signals("replay:f") == {"replay:fhir": 2}

    run(store_factory.make, body)
