"""`StoreUpkeep` and encryption at rest: the audit chain, retention, keys, vacuum.

Tampering with stored rows needs each backend's own SQL and is proven for
SQLite in `tests/security/test_audit_chain.py`; here the chain is checked
through the contract only.
"""

from __future__ import annotations

import os

import pytest

from tests.store.support import StepClock, run
from thumpflow.core.audit import Anchor
from thumpflow.core.batch import RowReject, RunCounts, RunStatus, RunTrigger, Window
from thumpflow.core.errors import StoreError
from thumpflow.core.event import Reject
from thumpflow.core.outcome import Died, Retrying
from thumpflow.core.ports import StateStore
from thumpflow.core.retention import DAY, RetentionPolicy
from thumpflow.store.crypt import PayloadCipher

from .conftest import StoreFactory
from .test_store import admit_one, delivered

T0 = 1_700_000_000.0
OLD = PayloadCipher([("k1", b"1" * 32)])
NEW = PayloadCipher([("k2", b"2" * 32), ("k1", b"1" * 32)])


def test_audit_chain_head_and_verification(store_factory: StoreFactory) -> None:
    async def body(store: StateStore) -> tuple[Anchor, int]:
        assert await store.audit_head() is None
        empty = await store.verify_audit()
        assert (empty.intact, empty.count, empty.head) == (True, 0, None)
        for n in range(3):
            await admit_one(store, "ehr", at=T0 + n)
        anchor = await store.audit_head()
        assert anchor is not None
        for n in range(3):
            await admit_one(store, "ehr", at=T0 + 10 + n)
        verdict = await store.verify_audit(anchor)
        assert (verdict.intact, verdict.count) == (True, 6)
        assert verdict.head == await store.audit_head()
        wrong = await store.verify_audit(Anchor(anchor.entry_id, "0" * 64))
        assert not wrong.intact
        assert wrong.entry_id == anchor.entry_id
        return anchor, verdict.count

    anchor, count = run(store_factory.make, body)

    async def reopened(store: StateStore) -> None:
        verdict = await store.verify_audit(anchor)
        assert (verdict.intact, verdict.count) == (True, count)

    run(store_factory.make, reopened)


def test_purge_keeps_pending_and_dead_and_audits_counts(store_factory: StoreFactory) -> None:
    clock = StepClock(T0)

    async def body(store: StateStore) -> None:
        done = [await admit_one(store, "ehr", at=T0 + n) for n in range(7)]
        pending = await admit_one(store, "ehr", at=T0 + 20)
        dead = await admit_one(store, "ehr", at=T0 + 21)
        await store.record([delivered(r.deliveries[0], at=T0 + 30) for r in done])
        await store.record([Died(dead.deliveries[0].delivery_id, T0 + 31, 3, "HTTP 422")])
        await store.reject(Reject("adt", T0, "peer", b"raw", "no MSH"))
        old_run = await store.start_run("census", RunTrigger.SCHEDULE, Window(None, "a"), T0, T0)
        assert old_run is not None
        await store.add_rejects([RowReject("census", old_run, "f:1", "r", "rule", "fix", T0)])
        await store.finish_run(old_run, RunStatus.SUCCEEDED, RunCounts(1, 0, 1, 0, 0), T0 + 1)
        new_run = await store.start_run("census", RunTrigger.SCHEDULE, Window("a", "b"), T0, T0)
        assert new_run is not None
        await store.finish_run(new_run, RunStatus.SUCCEEDED, RunCounts(), T0 + 2)
        assert (await store.purge(RetentionPolicy())).total == 0
        clock.value = T0 + 40 * DAY
        counts = await store.purge(
            RetentionPolicy(events_days=30, rejects_days=30, runs_days=30), batch=3
        )
        assert (counts.events, counts.deliveries, counts.idempotency) == (7, 7, 7)
        assert (counts.rejects, counts.row_rejects, counts.runs) == (1, 1, 1)
        assert await store.event(done[0].event_id) is None
        assert await store.event(pending.event_id) is not None
        assert await store.event(dead.event_id) is not None
        assert [r.run_id for r in await store.runs("census")] == [new_run]
        assert await store.pending_count("ehr") == 1
        [entry] = await store.audit("retention")
        assert (entry.action, entry.at) == ("purged", T0 + 40 * DAY)
        assert "events 7" in entry.detail
        assert (await store.verify_audit()).intact

    run(lambda: store_factory.make(clock), body)


def test_payloads_are_sealed_and_rekeyed_and_keys_are_checked(store_factory: StoreFactory) -> None:
    body_bytes = b"MSH|^~\\&|SIM|GEN|||secret\r"

    async def write(store: StateStore) -> tuple[str, int]:
        result = await admit_one(store, "ehr", body=body_bytes, at=T0)
        d = result.deliveries[0]
        await store.record([Retrying(d.delivery_id, T0 + 1, 1, T0 + 2, "HTTP 503: echo", T0 + 1)])
        await store.reject(Reject("adt", T0, "peer", b"raw secret", "no MSH"))
        return result.event_id, d.delivery_id

    event_id, delivery_id = run(lambda: store_factory.make(cipher=OLD), write)

    async def refused(cipher: PayloadCipher | None, words: str) -> None:
        store = store_factory.make(cipher=cipher)
        with pytest.raises(StoreError, match=words):
            await store.open()
        await store.close()

    import asyncio

    asyncio.run(refused(None, "k1"))
    asyncio.run(refused(PayloadCipher([("k1", os.urandom(32))]), "wrong key"))

    async def rekey(store: StateStore) -> None:
        stored = await store.event(event_id)
        assert stored is not None and stored.body == body_bytes
        [pending] = await store.load_pending("ehr", 0, 10)
        assert pending.last_error == "HTTP 503: echo"
        [(_, kept)] = await store.rejects("adt")
        assert kept.raw == b"raw secret"
        counts = await store.rekey(batch=1)
        assert (counts.event_bodies, counts.rejects) == (1, 1)
        assert counts.delivery_texts >= 1
        assert counts.retired == ("k1",)
        [entry] = await store.audit("key:k2")
        assert entry.action == "rekeyed"
        assert (await store.verify_audit()).intact

    run(lambda: store_factory.make(cipher=NEW), rekey)

    async def only_new(store: StateStore) -> None:
        stored = await store.event(event_id)
        assert stored is not None and stored.body == body_bytes
        [entry] = await store.audit(f"delivery:{delivery_id}")
        assert entry.detail == "HTTP 503"

    run(lambda: store_factory.make(cipher=PayloadCipher([("k2", b"2" * 32)])), only_new)


def test_vacuum_reports_sizes(store_factory: StoreFactory) -> None:
    async def body(store: StateStore) -> None:
        await admit_one(store, "ehr", at=T0)
        before, after = await store.vacuum()
        assert before > 0 and after > 0

    run(store_factory.make, body)
