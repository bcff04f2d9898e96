"""The storage contract: what every `Store` backend must do (see `core.ports.Store`).

Every test runs against every backend in `conftest.BACKENDS`.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest

from tests.store.support import StepClock, admission, event, run
from thumpflow.core.errors import StoreError
from thumpflow.core.event import (
    Admission,
    Admitted,
    DeadLetterFilter,
    Delivery,
    Duplicate,
    NewDelivery,
    Reject,
    ReplayResult,
)
from thumpflow.core.lanes import Lane
from thumpflow.core.outcome import Delivered, Died, Outcome, Retrying, Superseded
from thumpflow.core.ports import Store

from .conftest import StoreFactory


def admitted(result: Admitted | Duplicate) -> Admitted:
    assert isinstance(result, Admitted), result
    return result


def delivered(d: Delivery, at: float = 1_700_000_100.0, attempts: int = 1) -> Delivered:
    return Delivered(d.delivery_id, at, attempts, d.destination_id, d.ordering_key, d.sequence)


async def admit_one(store: Store, *destinations: str, **fields: Any) -> Admitted:
    return admitted(await store.admit(admission(*destinations, **fields)))


async def kill(store: Store, d: Delivery, reason: str, at: float) -> None:
    await store.record([Died(d.delivery_id, at, 3, reason)])


# --- open / close -------------------------------------------------------------


def test_open_is_idempotent_and_data_survives_reopen(store_factory: StoreFactory) -> None:
    async def first(store: Store) -> Admitted:
        await store.open()
        return await admit_one(store, "fhir")

    result = run(store_factory.make, first)

    async def second(store: Store) -> None:
        stored = await store.event(result.event_id)
        assert stored is not None
        pending = await store.load_pending("fhir", 0, 10)
        assert [d.delivery_id for d in pending] == [result.deliveries[0].delivery_id]

    run(store_factory.make, second)


def test_close_finishes_writes_already_called(store_factory: StoreFactory) -> None:
    async def main() -> list[Admitted | Duplicate]:
        store = store_factory.make()
        await store.open()
        tasks = [asyncio.create_task(store.admit(admission("fhir"))) for _ in range(50)]
        await asyncio.sleep(0)
        await store.close()
        return await asyncio.gather(*tasks)

    results = asyncio.run(main())
    assert all(isinstance(r, Admitted) for r in results)

    async def check(store: Store) -> None:
        assert await store.pending_count("fhir") == 50

    run(store_factory.make, check)


def test_writes_after_close_raise_store_error(store_factory: StoreFactory) -> None:
    async def main() -> None:
        store = store_factory.make()
        await store.open()
        await store.close()
        with pytest.raises(StoreError):
            await store.admit(admission("fhir"))

    asyncio.run(main())


# --- admit ----------------------------------------------------------------------


def test_admit_returns_full_durable_deliveries(store_factory: StoreFactory) -> None:
    received = event(channel="lab-in", event_type="oru.r01", sequence=7, at=1_700_000_050.0)
    derived = event(
        channel="lab-in",
        event_type="lab.result.final",
        body=b'{"resourceType":"Observation"}',
        content_type="application/fhir+json",
        causation_id=received.event_id,
    )
    adm = Admission(
        received=received,
        derived=(derived,),
        deliveries=(
            NewDelivery(received.event_id, "archive", received.ordering_key, Lane.BULK, 7),
            NewDelivery(derived.event_id, "fhir", received.ordering_key, Lane.STAT, 7),
        ),
    )

    async def body(store: Store) -> None:
        result = admitted(await store.admit(adm))
        assert result.event_id == received.event_id
        archive, fhir = result.deliveries
        assert archive.delivery_id < fhir.delivery_id
        assert (archive.body, archive.content_type, archive.event_type) == (
            received.body,
            received.content_type,
            "oru.r01",
        )
        assert (fhir.body, fhir.content_type, fhir.event_type) == (
            derived.body,
            "application/fhir+json",
            "lab.result.final",
        )
        for d in (archive, fhir):
            assert d.channel_id == "lab-in"
            assert d.ordering_key == "Patient/MRN001"
            assert d.sequence == 7
            assert d.created_at == received.received_at
            assert (d.attempts, d.next_attempt_at, d.first_failed_at, d.last_error) == (
                0,
                0.0,
                None,
                None,
            )
        assert archive.lane is Lane.BULK
        assert fhir.lane is Lane.STAT
        assert await store.load_pending("fhir", 0, 10) == [fhir]
        assert await store.load_pending("archive", 0, 10) == [archive]

    run(store_factory.make, body)


def test_event_keeps_every_field_and_raw_bytes_exactly(store_factory: StoreFactory) -> None:
    raw = b"MSH|^~\\&|SIM\r\x00\xff\xfe\x0bbinary\x1c\r\n" + bytes(range(256))
    received = event(body=raw, sequence=3)
    derived = event(body=b"derived body", causation_id=received.event_id)

    async def body(store: Store) -> None:
        await store.admit(Admission(received=received, derived=(derived,)))
        assert await store.event(received.event_id) == received
        assert await store.event(derived.event_id) == derived
        assert await store.event("EVT-UNKNOWN") is None

    run(store_factory.make, body)


def test_admit_audits_received(store_factory: StoreFactory) -> None:
    received = event(channel="adt-in", at=1_700_000_010.0)

    async def body(store: Store) -> None:
        await store.admit(
            Admission(received=received, deliveries=(), audit_detail="parsed ADT^A01")
        )
        [entry] = await store.audit(received.event_id)
        assert (entry.at, entry.actor, entry.action, entry.subject, entry.detail) == (
            1_700_000_010.0,
            "source:adt-in",
            "received",
            received.event_id,
            "parsed ADT^A01",
        )

    run(store_factory.make, body)


def test_duplicate_key_writes_nothing_but_an_audit_entry(store_factory: StoreFactory) -> None:
    first = event(key="SIM|GEN|42")
    again = event(key="SIM|GEN|42", at=1_700_000_500.0)

    async def body(store: Store) -> None:
        original = admitted(await store.admit(admission("fhir", received=first, ack_code="CA")))
        result = await store.admit(admission("fhir", received=again, ack_code="AA"))
        assert result == Duplicate(original_event_id=first.event_id, ack_code="CA")
        assert await store.event(again.event_id) is None
        assert [d.delivery_id for d in await store.load_pending("fhir", 0, 10)] == [
            original.deliveries[0].delivery_id
        ]
        assert await store.pending_count("fhir") == 1
        actions = [(e.action, e.subject, e.at) for e in await store.audit(first.event_id)]
        assert actions == [
            ("duplicate", first.event_id, 1_700_000_500.0),
            ("received", first.event_id, first.received_at),
        ]
        [channel] = await store.stats()
        assert (channel.received, channel.duplicates) == (1, 1)

    run(store_factory.make, body)


def test_same_key_twice_in_one_group_is_admitted_once(store_factory: StoreFactory) -> None:
    one, two = event(key="SIM|GEN|7"), event(key="SIM|GEN|7")

    async def body(store: Store) -> None:
        results = await asyncio.gather(
            store.admit(admission("fhir", received=one)),
            store.admit(admission("fhir", received=two)),
        )
        assert isinstance(results[0], Admitted)
        assert results[1] == Duplicate(one.event_id, "AA")
        assert await store.pending_count("fhir") == 1

    run(store_factory.make, body)


def test_delivery_ids_increase_in_call_order(store_factory: StoreFactory) -> None:
    async def body(store: Store) -> None:
        sequential = [await admit_one(store, "a", "b") for _ in range(3)]
        concurrent = await asyncio.gather(
            *(store.admit(admission("a", "b", "c")) for _ in range(40))
        )
        ids = [d.delivery_id for r in sequential for d in r.deliveries]
        ids += [d.delivery_id for r in concurrent for d in admitted(r).deliveries]
        assert ids == sorted(ids)
        assert len(set(ids)) == len(ids)

    run(store_factory.make, body)


def test_inconsistent_admission_fails_only_its_caller(store_factory: StoreFactory) -> None:
    good = [admission("fhir") for _ in range(5)]
    orphan = Admission(
        received=event(),
        deliveries=(NewDelivery("EVT-NOT-IN-ADMISSION", "fhir", "Patient/X", Lane.ROUTINE),),
    )
    reused = admission("fhir", received=event())

    async def body(store: Store) -> None:
        await store.admit(reused)
        clash = Admission(received=event(), derived=(reused.received,))
        results = await asyncio.gather(
            *(store.admit(a) for a in good[:2]),
            store.admit(orphan),
            store.admit(good[2]),
            store.admit(clash),
            *(store.admit(a) for a in good[3:]),
            return_exceptions=True,
        )
        assert isinstance(results[2], StoreError)
        assert isinstance(results[4], StoreError)
        assert all(isinstance(results[i], Admitted) for i in (0, 1, 3, 5, 6))
        assert await store.event(orphan.received.event_id) is None
        assert await store.event(clash.received.event_id) is None
        assert await store.pending_count("fhir") == 6
        [channel] = await store.stats()
        assert channel.received == 6

    run(store_factory.make, body)


# --- reject ---------------------------------------------------------------------


def test_reject_keeps_raw_input_and_is_audited(store_factory: StoreFactory) -> None:
    raw = b"\x0bNOT HL7 \xff\x00\x1c\r"

    async def body(store: Store) -> None:
        first = await store.reject(
            Reject("adt-in", 1_700_000_001.0, "10.0.0.5:4100", raw, "no MSH")
        )
        second = await store.reject(Reject("lab-in", 1_700_000_002.0, "10.0.0.6:4100", b"x", "bad"))
        third = await store.reject(Reject("adt-in", 1_700_000_003.0, "10.0.0.5:4100", b"y", "EOF"))
        assert first < second < third
        assert [i for i, _ in await store.rejects(None)] == [third, second, first]
        kept = await store.rejects("adt-in")
        assert [i for i, _ in kept] == [third, first]
        assert kept[1][1] == Reject("adt-in", 1_700_000_001.0, "10.0.0.5:4100", raw, "no MSH")
        assert [i for i, _ in await store.rejects("adt-in", limit=1)] == [third]
        assert await store.reject_by_id(first) == kept[1][1]
        assert await store.reject_by_id(third + 1) is None
        [entry] = await store.audit(f"reject:{first}")
        assert (entry.action, entry.actor, entry.detail, entry.at) == (
            "rejected",
            "source:adt-in",
            "no MSH",
            1_700_000_001.0,
        )
        stats = {s.channel_id: s for s in await store.stats()}
        assert (stats["adt-in"].rejected, stats["lab-in"].rejected) == (2, 1)
        assert stats["adt-in"].received == 0

    run(store_factory.make, body)


# --- record ---------------------------------------------------------------------


def test_delivered_leaves_the_outbox_and_raises_the_applied_version(
    store_factory: StoreFactory,
) -> None:
    async def body(store: Store) -> None:
        high = (await admit_one(store, "fhir", entity="MRN9", sequence=5)).deliveries[0]
        low = (await admit_one(store, "fhir", entity="MRN9", sequence=3)).deliveries[0]
        unversioned = (await admit_one(store, "fhir", entity="MRN9")).deliveries[0]
        assert await store.applied_version("fhir", "Patient/MRN9") is None
        await store.record([delivered(high, at=1_700_000_200.0)])
        assert await store.applied_version("fhir", "Patient/MRN9") == 5
        await store.record([delivered(low), delivered(unversioned, at=1_700_000_300.0)])
        assert await store.applied_version("fhir", "Patient/MRN9") == 5
        assert await store.applied_version("other", "Patient/MRN9") is None
        assert await store.load_pending("fhir", 0, 10) == []
        assert await store.pending_count("fhir") == 0
        [entry] = await store.audit(f"delivery:{high.delivery_id}")
        assert (entry.action, entry.actor, entry.at) == ("delivered", "flow", 1_700_000_200.0)
        [channel] = await store.stats()
        [outbox] = channel.outboxes
        assert (outbox.delivered, outbox.pending, outbox.last_delivered_at) == (
            3,
            0,
            1_700_000_300.0,
        )
        assert outbox.oldest_pending_at is None

    run(store_factory.make, body)


def test_retrying_is_persisted_and_stays_pending(store_factory: StoreFactory) -> None:
    async def body(store: Store) -> None:
        d = (await admit_one(store, "fhir")).deliveries[0]
        await store.record(
            [Retrying(d.delivery_id, 1_700_000_010.0, 1, 1_700_000_012.0, "503", 1_700_000_010.0)]
        )
        await store.record(
            [
                Retrying(
                    d.delivery_id, 1_700_000_012.0, 2, 1_700_000_016.0, "timeout", 1_700_000_010.0
                )
            ]
        )
        [pending] = await store.load_pending("fhir", 0, 10)
        assert (
            pending.attempts,
            pending.next_attempt_at,
            pending.first_failed_at,
            pending.last_error,
        ) == (2, 1_700_000_016.0, 1_700_000_010.0, "timeout")
        assert await store.pending_count("fhir") == 1
        entries = await store.audit(f"delivery:{d.delivery_id}")
        assert [(e.action, e.detail, e.actor) for e in entries] == [
            ("retry_scheduled", "timeout", "flow"),
            ("retry_scheduled", "503", "flow"),
        ]

    run(store_factory.make, body)


def test_died_goes_to_dead_letters_oldest_first(store_factory: StoreFactory) -> None:
    async def body(store: Store) -> None:
        a = (await admit_one(store, "fhir", event_type="adt.admit")).deliveries[0]
        b = (await admit_one(store, "fhir", event_type="adt.discharge")).deliveries[0]
        await kill(store, b, "HTTP 422 invalid resource", 1_700_000_100.0)
        await kill(store, a, "HTTP 400 bad request", 1_700_000_200.0)
        letters = await store.dead_letters(DeadLetterFilter())
        assert [x.delivery_id for x in letters] == [b.delivery_id, a.delivery_id]
        first = letters[0]
        assert (first.reason, first.died_at, first.attempts, first.event_type) == (
            "HTTP 422 invalid resource",
            1_700_000_100.0,
            3,
            "adt.discharge",
        )
        assert (first.event_id, first.channel_id, first.ordering_key, first.lane) == (
            b.event_id,
            "adt-in",
            "Patient/MRN001",
            Lane.ROUTINE,
        )
        assert first.created_at == b.created_at
        assert await store.load_pending("fhir", 0, 10) == []
        [entry] = await store.audit(f"delivery:{a.delivery_id}")
        assert (entry.action, entry.detail) == ("dead_lettered", "HTTP 400 bad request")
        [outbox] = (await store.stats())[0].outboxes
        assert (outbox.dead, outbox.pending) == (2, 0)
        assert len(await store.dead_letters(DeadLetterFilter(), limit=1)) == 1

    run(store_factory.make, body)


def test_superseded_is_counted_and_audited(store_factory: StoreFactory) -> None:
    async def body(store: Store) -> None:
        d = (await admit_one(store, "fhir")).deliveries[0]
        await store.record([Superseded(d.delivery_id, 1_700_000_050.0, "stale: version 3 < 5")])
        assert await store.load_pending("fhir", 0, 10) == []
        [entry] = await store.audit(f"delivery:{d.delivery_id}")
        assert (entry.action, entry.detail) == ("superseded", "stale: version 3 < 5")
        [outbox] = (await store.stats())[0].outboxes
        assert (outbox.superseded, outbox.pending, outbox.delivered) == (1, 0, 0)
        assert await store.dead_letters(DeadLetterFilter()) == []

    run(store_factory.make, body)


def test_record_applies_mixed_outcomes_together_and_repeats_harmlessly(
    store_factory: StoreFactory,
) -> None:
    async def body(store: Store) -> None:
        result = await admit_one(store, "a", "b", "c", "d")
        a, b, c, d = result.deliveries
        outcomes: list[Outcome] = [
            Retrying(a.delivery_id, 1.0, 1, 5.0, "503", 1.0),
            delivered(b),
            Died(c.delivery_id, 2.0, 1, "422"),
            Superseded(d.delivery_id, 3.0, "stale"),
        ]
        await store.record(outcomes)
        await store.record(outcomes[1:])
        assert [x.delivery_id for x in await store.load_pending("a", 0, 10)] == [a.delivery_id]
        for destination in "bcd":
            assert await store.load_pending(destination, 0, 10) == []
        outboxes = {o.destination_id: o for o in (await store.stats())[0].outboxes}
        assert (outboxes["a"].pending, outboxes["b"].delivered) == (1, 1)
        assert (outboxes["c"].dead, outboxes["d"].superseded) == (1, 1)
        assert len(await store.audit(f"delivery:{b.delivery_id}")) == 1

    run(store_factory.make, body)


# --- load_pending -----------------------------------------------------------------


def test_load_pending_pages_by_delivery_id(store_factory: StoreFactory) -> None:
    async def body(store: Store) -> None:
        ids = [
            (await admit_one(store, "fhir", "other")).deliveries[0].delivery_id for _ in range(7)
        ]
        page1 = await store.load_pending("fhir", 0, 3)
        page2 = await store.load_pending("fhir", page1[-1].delivery_id, 3)
        page3 = await store.load_pending("fhir", page2[-1].delivery_id, 3)
        assert [d.delivery_id for d in page1 + page2 + page3] == ids
        assert all(d.destination_id == "fhir" for d in page1 + page2 + page3)
        assert await store.load_pending("nowhere", 0, 10) == []

    run(store_factory.make, body)


def test_load_pending_is_ordered_with_admissions(store_factory: StoreFactory) -> None:
    async def body(store: Store) -> None:
        for _ in range(5):
            before = [asyncio.create_task(store.admit(admission("fhir"))) for _ in range(20)]
            load = asyncio.create_task(store.load_pending("fhir", 0, 10_000))
            after = [asyncio.create_task(store.admit(admission("fhir"))) for _ in range(20)]
            seen = {d.delivery_id for d in await load}
            earlier = {admitted(await t).deliveries[0].delivery_id for t in before}
            later = {admitted(await t).deliveries[0].delivery_id for t in after}
            assert earlier <= seen
            assert not later & seen
            await store.record([delivered(d) for d in await store.load_pending("fhir", 0, 10_000)])

    run(store_factory.make, body)


# --- dead letters and replay ------------------------------------------------------


def test_dead_letter_filters_combine(store_factory: StoreFactory) -> None:
    async def body(store: Store) -> None:
        x1 = (await admit_one(store, "fhir", channel="adt", event_type="adt.admit")).deliveries[0]
        x2 = (await admit_one(store, "fhir", channel="lab", event_type="lab.final")).deliveries[0]
        x3 = (await admit_one(store, "bed", channel="adt", event_type="adt.admit")).deliveries[0]
        for i, d in enumerate((x1, x2, x3)):
            await kill(store, d, f"HTTP 4{i}0 Rejected", 100.0 + i)

        async def ids(**fields: object) -> list[int]:
            flt = DeadLetterFilter(**fields)  # type: ignore[arg-type]
            return [x.delivery_id for x in await store.dead_letters(flt)]

        assert await ids() == [x1.delivery_id, x2.delivery_id, x3.delivery_id]
        assert await ids(destination_id="fhir") == [x1.delivery_id, x2.delivery_id]
        assert await ids(channel_id="adt") == [x1.delivery_id, x3.delivery_id]
        assert await ids(channel_id="adt", destination_id="fhir") == [x1.delivery_id]
        assert await ids(event_type="lab.final") == [x2.delivery_id]
        assert await ids(reason_contains="410") == [x2.delivery_id]
        assert await ids(reason_contains="rejected") == []
        assert await ids(delivery_ids=(x3.delivery_id, x1.delivery_id)) == [
            x1.delivery_id,
            x3.delivery_id,
        ]
        assert await ids(delivery_ids=(x3.delivery_id,), channel_id="lab") == []
        assert await ids(delivery_ids=()) == []

    run(store_factory.make, body)


def test_replay_returns_dead_deliveries_to_pending_audited(store_factory: StoreFactory) -> None:
    clock = StepClock(1_700_009_000.0)

    async def body(store: Store) -> None:
        a = (await admit_one(store, "fhir", channel="adt")).deliveries[0]
        b = (await admit_one(store, "fhir", channel="adt")).deliveries[0]
        c = (await admit_one(store, "fhir", channel="lab")).deliveries[0]
        await store.record([Retrying(a.delivery_id, 10.0, 1, 12.0, "503", 10.0)])
        for d in (a, b, c):
            await kill(store, d, "HTTP 422", 20.0)
        result = await store.replay(
            DeadLetterFilter(channel_id="adt", delivery_ids=(a.delivery_id, c.delivery_id)),
            actor="user:alice",
            reason="mapping fixed",
        )
        assert (result.refused, result.out_of_order) == ((), ())
        replayed = result.replayed
        assert [d.delivery_id for d in replayed] == [a.delivery_id]
        [r] = replayed
        assert (r.attempts, r.next_attempt_at, r.first_failed_at, r.last_error) == (
            0,
            0.0,
            None,
            None,
        )
        assert (r.body, r.event_id, r.created_at) == (a.body, a.event_id, a.created_at)
        [pending] = await store.load_pending("fhir", 0, 10)
        assert pending == r
        [entry, *_] = await store.audit(f"delivery:{a.delivery_id}")
        assert (entry.action, entry.actor, entry.detail, entry.at) == (
            "replayed",
            "user:alice",
            "mapping fixed",
            1_700_009_000.0,
        )
        rest = await store.dead_letters(DeadLetterFilter())
        assert [x.delivery_id for x in rest] == [b.delivery_id, c.delivery_id]
        all_rest = (await store.replay(DeadLetterFilter(), "user:bob", "retry all")).replayed
        assert [d.delivery_id for d in all_rest] == [b.delivery_id, c.delivery_id]
        assert await store.dead_letters(DeadLetterFilter()) == []
        assert await store.pending_count("fhir") == 3
        outboxes = {o.channel_id: o for s in await store.stats() for o in s.outboxes}
        assert (outboxes["adt"].pending, outboxes["adt"].dead) == (2, 0)
        assert await store.replay(DeadLetterFilter(), "user:bob", "again") == ReplayResult()

    run(lambda: store_factory.make(clock), body)


# --- stats, counts, audit ---------------------------------------------------------


def test_stats_per_channel_and_outbox(store_factory: StoreFactory) -> None:
    async def body(store: Store) -> None:
        assert await store.stats() == []
        a1 = await admit_one(store, "fhir", "bed", channel="adt", at=100.0)
        a2 = await admit_one(store, "fhir", channel="adt", at=300.0)
        await admit_one(store, "fhir", channel="adt", at=200.0)
        await admit_one(store, "fhir", channel="lab", at=150.0)
        await store.admit(admission("fhir", received=event(channel="adt", key=a1.event_id)))
        await store.admit(admission("fhir", received=event(channel="adt", key="SIM|GEN|CTRL-dup")))
        await store.admit(admission("fhir", received=event(channel="adt", key="SIM|GEN|CTRL-dup")))
        await store.record([delivered(a1.deliveries[0], at=400.0)])
        await store.record([Died(a1.deliveries[1].delivery_id, 401.0, 1, "x")])
        await store.reject(Reject("adt", 500.0, "peer", b"raw", "no MSH"))
        stats = {s.channel_id: s for s in await store.stats()}
        adt = stats["adt"]
        assert (adt.received, adt.duplicates, adt.rejected, adt.last_received_at) == (
            5,
            1,
            1,
            adt.last_received_at,
        )
        assert adt.last_received_at is not None
        assert adt.last_received_at >= 300.0
        outboxes = {o.destination_id: o for o in adt.outboxes}
        fhir, bed = outboxes["fhir"], outboxes["bed"]
        assert (fhir.delivered, fhir.pending, fhir.dead, fhir.superseded) == (1, 4, 0, 0)
        assert fhir.oldest_pending_at == a2.deliveries[0].created_at
        assert fhir.last_delivered_at == 400.0
        assert (bed.delivered, bed.pending, bed.dead, bed.oldest_pending_at) == (0, 0, 1, None)
        lab = stats["lab"]
        assert (lab.received, lab.duplicates, lab.rejected) == (1, 0, 0)
        [lab_fhir] = lab.outboxes
        assert (lab_fhir.pending, lab_fhir.oldest_pending_at) == (1, 150.0)
        assert await store.pending_count("fhir") == 5
        assert await store.pending_count("bed") == 0

    run(store_factory.make, body)


def test_audit_is_newest_first_with_limit(store_factory: StoreFactory) -> None:
    async def body(store: Store) -> None:
        results = [await admit_one(store, "fhir") for _ in range(5)]
        entries = await store.audit(limit=3)
        assert [e.subject for e in entries] == [r.event_id for r in reversed(results[2:])]
        assert entries[0].entry_id > entries[1].entry_id > entries[2].entry_id
        assert len(await store.audit()) == 5
        assert await store.audit("nobody") == []

    run(store_factory.make, body)


def test_a_reused_control_id_with_other_content_is_a_new_event_flagged(
    store_factory: StoreFactory,
) -> None:
    def sent(digest: str | None, at: float) -> Admission:
        return replace(
            admission("fhir", received=event(key="SIM|GEN|77", at=at)), content_digest=digest
        )

    async def body(store: Store) -> None:
        first = admitted(await store.admit(sent("d1", 1_700_000_001.0)))
        assert await store.admit(sent("d1", 1_700_000_002.0)) == Duplicate(first.event_id, "AA")
        reused = admitted(await store.admit(sent("d2", 1_700_000_003.0)))
        assert reused.reused_control_id_of == first.event_id
        assert reused.event_id != first.event_id
        assert await store.admit(sent("d2", 1_700_000_004.0)) == Duplicate(reused.event_id, "AA")
        assert await store.admit(sent(None, 1_700_000_005.0)) == Duplicate(first.event_id, "AA")
        [flag] = await store.audit(reused.event_id, action="control_id_reused")
        assert first.event_id in flag.detail
        assert await store.pending_count("fhir") == 2

    run(store_factory.make, body)
