"""The run storage contract: what every `RunStore` backend must do (see `core.ports.RunStore`).

Every test runs against every backend in `conftest.BACKENDS`.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from tests.store.support import event, run
from thumpflow.core.batch import (
    LedgerEntry,
    Manifest,
    RowReject,
    RunCounts,
    RunStatus,
    RunTrigger,
    Window,
)
from thumpflow.core.event import Admission, Admitted, DeadLetterFilter, NewDelivery
from thumpflow.core.lanes import Lane
from thumpflow.core.outcome import Delivered, Died, Superseded
from thumpflow.core.ports import RunStore, Store

from .conftest import StoreFactory

T0 = 1_700_000_000.0


class FullStore(Store, RunStore, Protocol):
    """A backend implements both contracts."""


def make(factory: StoreFactory) -> FullStore:
    store = factory.make()
    assert hasattr(store, "start_run")
    return store  # type: ignore[return-value]


def reject(run_id: int, n: int, job: str = "census") -> RowReject:
    return RowReject(job, run_id, f"in.csv:line {n}", f"row {n}", "dob.type", "fix it", T0 + n)


def test_start_run_refuses_a_second_running_run_of_the_same_job(
    store_factory: StoreFactory,
) -> None:
    async def body(store: FullStore) -> None:
        first = await store.start_run("census", RunTrigger.SCHEDULE, Window("a"), T0, T0)
        assert first is not None
        assert await store.start_run("census", RunTrigger.MANUAL, Window(), None, T0 + 1) is None
        other = await store.start_run("billing", RunTrigger.MANUAL, Window(), None, T0 + 1)
        assert other is not None and other != first
        concurrent = await asyncio.gather(
            *(store.start_run("lab", RunTrigger.MANUAL, Window(), None, T0) for _ in range(5))
        )
        assert sum(1 for run_id in concurrent if run_id is not None) == 1
        await store.finish_run(first, RunStatus.SUCCEEDED, RunCounts(read=1), T0 + 5)
        again = await store.start_run("census", RunTrigger.MANUAL, Window(), None, T0 + 6)
        assert again is not None
        trail = await store.audit("census")
        assert [entry.action for entry in reversed(trail)] == [
            "run_started",
            "run_finished",
            "run_started",
        ]

    run(lambda: make(store_factory), body)


def test_a_run_s_findings_are_kept_as_json_and_absent_when_none(
    store_factory: StoreFactory,
) -> None:
    findings = {"snapshot": "census-1.csv", "compared": 40, "drifted": 2, "beds": ["4W/1", "ED/2"]}

    async def body(store: FullStore) -> None:
        found = await store.start_run("census", RunTrigger.MANUAL, Window(), None, T0)
        plain = await store.start_run("billing", RunTrigger.MANUAL, Window(), None, T0)
        assert found is not None and plain is not None
        assert (await store.run(found)).findings is None  # type: ignore[union-attr]
        await store.finish_run(found, RunStatus.SUCCEEDED, RunCounts(), T0 + 1, findings=findings)
        await store.finish_run(plain, RunStatus.SUCCEEDED, RunCounts(), T0 + 1)
        record = await store.run(found)
        assert record is not None and record.findings == findings
        (listed,) = await store.runs("census")
        assert listed.findings == findings
        assert (await store.run(plain)).findings is None  # type: ignore[union-attr]

    run(lambda: make(store_factory), body)


def test_finished_run_is_recorded_with_counts_manifests_and_watermark(
    store_factory: StoreFactory,
) -> None:
    checked = Manifest("in.csv", 3, "ab" * 32, T0, "ehr", Window("w0", "w1"))
    written = Manifest("out.ndjson", 2, "cd" * 32, T0 + 1, "census")

    async def body(store: FullStore) -> None:
        run_id = await store.start_run("census", RunTrigger.SCHEDULE, Window("w0"), T0, T0)
        assert run_id is not None
        running = await store.run(run_id)
        assert running is not None and running.status is RunStatus.RUNNING
        assert await store.watermark("census") is None
        counts = RunCounts(read=3, valid=2, rejected=1, written=2, skipped=0)
        await store.finish_run(
            run_id,
            RunStatus.PARTIAL,
            counts,
            T0 + 9,
            manifests_checked=[checked],
            manifests_written=[written],
            next_watermark="w1",
        )
        record = await store.run(run_id)
        assert record is not None
        assert record.status is RunStatus.PARTIAL
        assert record.counts == counts
        assert record.window == Window("w0")
        assert record.manifests_checked == (checked,)
        assert record.manifests_written == (written,)
        assert (record.started_at, record.finished_at, record.scheduled_for) == (T0, T0 + 9, T0)
        assert await store.watermark("census") == "w1"
        assert await store.last_scheduled("census") == T0
        assert [r.run_id for r in await store.runs("census")] == [run_id]
        assert await store.runs("other") == []

    run(lambda: make(store_factory), body)


def test_watermark_moves_only_with_successful_non_rerun_runs(
    store_factory: StoreFactory,
) -> None:
    async def body(store: FullStore) -> None:
        async def one(trigger: RunTrigger, status: RunStatus, mark: str) -> None:
            run_id = await store.start_run("census", trigger, Window(), None, T0)
            assert run_id is not None
            await store.finish_run(run_id, status, RunCounts(), T0, next_watermark=mark)

        await one(RunTrigger.SCHEDULE, RunStatus.SUCCEEDED, "w5")
        await one(RunTrigger.SCHEDULE, RunStatus.FAILED, "w9")
        assert await store.watermark("census") == "w5"
        await one(RunTrigger.RERUN, RunStatus.SUCCEEDED, "w1")
        assert await store.watermark("census") == "w5"
        await one(RunTrigger.MANUAL, RunStatus.PARTIAL, "w6")
        assert await store.watermark("census") == "w6"

    run(lambda: make(store_factory), body)


def test_interrupted_runs_are_recovered_as_failed_after_reopen(
    store_factory: StoreFactory,
) -> None:
    async def first(store: FullStore) -> int:
        run_id = await store.start_run("census", RunTrigger.SCHEDULE, Window(), T0, T0)
        assert run_id is not None
        return run_id

    run_id = run(lambda: make(store_factory), first)

    async def second(store: FullStore) -> None:
        assert await store.recover_runs(T0 + 60) == [run_id]
        record = await store.run(run_id)
        assert record is not None
        assert record.status is RunStatus.FAILED and record.error == "interrupted"
        assert await store.recover_runs(T0 + 61) == []
        assert await store.start_run("census", RunTrigger.MANUAL, Window(), None, T0) is not None

    run(lambda: make(store_factory), second)


def test_skipped_runs_count_for_last_scheduled_and_are_audited(
    store_factory: StoreFactory,
) -> None:
    async def body(store: FullStore) -> None:
        run_id = await store.start_run("census", RunTrigger.MISSED, Window(), T0 + 3600, T0)
        assert run_id is not None
        await store.finish_run(run_id, RunStatus.SKIPPED, RunCounts(), T0)
        manual = await store.start_run("census", RunTrigger.MANUAL, Window(), None, T0 + 1)
        assert manual is not None
        assert await store.last_scheduled("census") == T0 + 3600
        assert await store.last_scheduled("other") is None
        actions = [entry.action for entry in await store.audit("census")]
        assert "run_skipped" in actions

    run(lambda: make(store_factory), body)


def test_rejects_are_kept_listed_and_marked_replayed_with_audit(
    store_factory: StoreFactory,
) -> None:
    async def body(store: FullStore) -> None:
        ids = await store.add_rejects([reject(7, n) for n in range(1, 4)])
        assert len(ids) == 3 and ids == sorted(ids)
        other = await store.add_rejects([reject(8, 9, job="billing")])
        assert await store.add_rejects([]) == []
        listed = await store.row_rejects("census")
        assert [r.reject_id for r in listed] == list(reversed(ids))
        assert [r.reject_id for r in await store.row_rejects(run_id=8)] == other
        assert len(await store.row_rejects()) == 4
        one = await store.row_reject(ids[0])
        assert one is not None
        assert (one.record, one.rule, one.remedy, one.origin) == (
            "row 1",
            "dob.type",
            "fix it",
            "in.csv:line 1",
        )
        assert one.replayed_at is None
        await store.mark_replayed(ids[:2], "alice", T0 + 100)
        await store.mark_replayed(ids[:1], "bob", T0 + 200)
        first = await store.row_reject(ids[0])
        assert first is not None and first.replayed_at == T0 + 100
        trail = await store.audit(f"row_reject:{ids[0]}")
        assert [(e.actor, e.action) for e in reversed(trail)] == [
            ("alice", "replayed"),
            ("bob", "replayed"),
        ]
        assert await store.row_reject(999_999) is None

    run(lambda: make(store_factory), body)


def test_ledger_keeps_the_latest_hash_per_destination_and_key(
    store_factory: StoreFactory,
) -> None:
    async def body(store: FullStore) -> None:
        await store.record_ledger(
            [LedgerEntry("warehouse", "MRN1", "h1", T0), LedgerEntry("warehouse", "MRN2", "h2", T0)]
        )
        await store.record_ledger([LedgerEntry("warehouse", "MRN1", "h1b", T0 + 1)])
        await store.record_ledger([LedgerEntry("registry", "MRN1", "r1", T0)])
        assert await store.ledger("warehouse", ["MRN1", "MRN2", "MRN3"]) == {
            "MRN1": "h1b",
            "MRN2": "h2",
        }
        assert await store.ledger("registry", ["MRN2"]) == {}

    run(lambda: make(store_factory), body)


def test_ledger_keeps_versions_and_pages_every_key_in_code_point_order(
    store_factory: StoreFactory,
) -> None:
    keys = ["b", "a", "Z", "é", "a2", "10", "9"]

    async def body(store: FullStore) -> None:
        await store.record_ledger(
            [LedgerEntry("w", key, f"h-{key}", T0, n) for n, key in enumerate(keys)]
        )
        await store.record_ledger([LedgerEntry("w", "a", "h-a2", T0 + 1, 40)])
        await store.record_ledger([LedgerEntry("other", "a", "x", T0, None)])
        seen: list[LedgerEntry] = []
        after = None
        while True:
            page = await store.ledger_page("w", after, 3)
            seen.extend(page)
            if len(page) < 3:
                break
            after = page[-1].business_key
        assert [entry.business_key for entry in seen] == sorted(keys)
        assert {entry.business_key: entry.version for entry in seen}["a"] == 40
        (entry,) = await store.ledger_entries("w", ["a", "missing"])
        assert (entry.content_hash, entry.version, entry.at) == ("h-a2", 40, T0 + 1)
        assert await store.ledger_entries("other", ["a"]) == [LedgerEntry("other", "a", "x", T0)]

    run(lambda: make(store_factory), body)


def test_flow_deliveries_enter_the_ledger_when_delivered_only(
    store_factory: StoreFactory,
) -> None:
    """Delivered writes (destination, key) -> hash in the same commit; Died and Superseded never.

    The key and hash are kept on the delivery row, so a dead delivery replayed
    and then delivered enters the ledger too.
    """
    received = event()
    keyed = {
        "bed": ("V1", "hash-bed"),
        "dies": ("V2", "hash-dies"),
        "stale": ("V3", "hash-stale"),
    }
    adm = Admission(
        received=received,
        deliveries=(
            *(
                NewDelivery(
                    received.event_id,
                    destination,
                    received.ordering_key,
                    Lane.ROUTINE,
                    business_key=key,
                    content_hash=digest,
                    ledger_version=7,
                )
                for destination, (key, digest) in keyed.items()
            ),
            NewDelivery(received.event_id, "plain", received.ordering_key, Lane.ROUTINE),
        ),
    )

    async def body(store: FullStore) -> None:
        result = await store.admit(adm)
        assert isinstance(result, Admitted)
        bed, dies, stale, plain = result.deliveries
        assert (bed.business_key, bed.content_hash) == ("V1", "hash-bed")
        assert (plain.business_key, plain.content_hash) == (None, None)
        (pending,) = await store.load_pending("dies", 0, 10)
        assert (pending.business_key, pending.content_hash) == ("V2", "hash-dies")
        await store.record(
            [
                Delivered(bed.delivery_id, T0, 1, "bed", bed.ordering_key, None),
                Died(dies.delivery_id, T0, 3, "refused"),
                Superseded(stale.delivery_id, T0, "stale entity version"),
                Delivered(plain.delivery_id, T0, 1, "plain", plain.ordering_key, None),
            ]
        )
        assert await store.ledger("bed", ["V1"]) == {"V1": "hash-bed"}
        assert [e.version for e in await store.ledger_entries("bed", ["V1"])] == [7]
        assert await store.ledger("dies", ["V2"]) == {}
        assert await store.ledger("stale", ["V3"]) == {}
        (replayed,) = (
            await store.replay(DeadLetterFilter(destination_id="dies"), "ops", "fixed")
        ).replayed
        assert (replayed.business_key, replayed.content_hash) == ("V2", "hash-dies")
        await store.record(
            [Delivered(replayed.delivery_id, T0 + 5, 1, "dies", replayed.ordering_key, None)]
        )
        assert await store.ledger("dies", ["V2"]) == {"V2": "hash-dies"}

    run(lambda: make(store_factory), body)


def test_an_alert_is_audited_with_the_job_as_subject_in_the_run_s_finishing_commit(
    store_factory: StoreFactory,
) -> None:
    async def body(store: FullStore) -> None:
        run_id = await store.start_run("census", RunTrigger.MANUAL, Window(), None, T0)
        assert run_id is not None
        await store.finish_run(
            run_id, RunStatus.SUCCEEDED, RunCounts(), T0 + 1, alert="the run read zero records"
        )
        (entry,) = await store.audit("census", action="alert")
        assert (entry.actor, entry.at) == ("thump", T0 + 1)
        assert entry.detail == f"run {run_id}: the run read zero records"
        trail = [entry.action for entry in reversed(await store.audit("census"))]
        assert trail == ["run_started", "run_finished", "alert"]

    run(lambda: make(store_factory), body)


def test_a_reconciled_summary_is_audited_in_the_commit_that_finishes_the_run(
    store_factory: StoreFactory,
) -> None:
    async def body(store: FullStore) -> None:
        run_id = await store.start_run("census-check", RunTrigger.MANUAL, Window(), None, T0)
        assert run_id is not None
        summary = "read 3, matched 1, repairs 2; report census-check-run-1.json"
        await store.finish_run(
            run_id, RunStatus.SUCCEEDED, RunCounts(read=3), T0 + 2, reconciled=summary, alert="late"
        )
        trail = list(reversed(await store.audit("census-check")))
        actions = [entry.action for entry in trail]
        assert actions == ["run_started", "run_finished", "reconciled", "alert"]
        assert (trail[2].detail, trail[2].at) == (f"run {run_id}: {summary}", T0 + 2)
        await store.finish_run(run_id, RunStatus.FAILED, RunCounts(), T0 + 3, reconciled=summary)
        assert len(await store.audit("census-check", action="reconciled")) == 1

    run(lambda: make(store_factory), body)
