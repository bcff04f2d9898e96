"""`OperationsStore`: keyset-paged searches, timelines, the audit pages, durable pauses."""

from __future__ import annotations

from dataclasses import replace

from tests.store.support import event, run
from thumpflow.core.event import Admission, DeliveryStatus, NewDelivery
from thumpflow.core.lanes import Lane
from thumpflow.core.modes import ModeOrigin, ModeState, OperatingMode
from thumpflow.core.outcome import Died, Retrying
from thumpflow.core.ports import StateStore
from thumpflow.core.search import DeliveryQuery, EventQuery, PauseKind

from .conftest import StoreFactory
from .test_store import admit_one, delivered

T0 = 1_700_000_000.0


async def _fill(store: StateStore) -> list[str]:
    """Six events a second apart: patients GEN|MRN1 / OTH|MRN1 / MRN2, two channels."""
    ids = []
    for n in range(6):
        entity = ("GEN|MRN1", "OTH|MRN1", "MRN2")[n % 3]
        result = await admit_one(
            store,
            "ehr",
            channel="adt" if n < 4 else "lab",
            entity=entity,
            event_type="adt.admit" if n % 2 == 0 else "adt.discharge",
            at=T0 + n,
        )
        ids.append(result.event_id)
        if n == 1:
            await store.record([delivered(result.deliveries[0], at=T0 + 10)])
        if n == 2:
            await store.record([Died(result.deliveries[0].delivery_id, T0 + 11, 2, "HTTP 422")])
    return ids


def test_event_searches_filter_and_page_newest_first(store_factory: StoreFactory) -> None:
    async def body(store: StateStore) -> None:
        ids = await _fill(store)

        async def found(**fields: object) -> list[str]:
            query = EventQuery(**fields)  # type: ignore[arg-type]
            return [summary.event_id for summary in await store.search_events(query)]

        assert await found() == ids[::-1]
        assert await found(entity_id="MRN1") == [ids[4], ids[3], ids[1], ids[0]]
        assert await found(entity_id="GEN|MRN1") == [ids[3], ids[0]]
        assert await found(channel_id="lab") == [ids[5], ids[4]]
        assert await found(event_type="adt.discharge", channel_id="adt") == [ids[3], ids[1]]
        assert await found(status=DeliveryStatus.DEAD) == [ids[2]]
        assert await found(status=DeliveryStatus.DELIVERED) == [ids[1]]
        assert await found(since=T0 + 2, until=T0 + 4) == [ids[3], ids[2]]
        first = await store.search_events(EventQuery(limit=4))
        rest = await store.search_events(
            EventQuery(limit=4, after=(first[-1].received_at, first[-1].event_seq))
        )
        assert [s.event_id for s in first + rest] == ids[::-1]
        summary = first[-1]
        assert (summary.channel_id, summary.entity_id, summary.lane) == (
            "adt",
            "MRN2",
            Lane.ROUTINE,
        )
        assert summary.statuses == {DeliveryStatus.DEAD: 1}

    run(store_factory.make, body)


def test_control_id_search_uses_the_correlation_id(store_factory: StoreFactory) -> None:
    async def body(store: StateStore) -> None:
        tagged = replace(event(at=T0), correlation_id="CTRL-77")
        await store.admit(Admission(received=tagged))
        await admit_one(store, "ehr", at=T0 + 1)
        [summary] = await store.search_events(EventQuery(control_id="CTRL-77"))
        assert (summary.event_id, summary.control_id) == (tagged.event_id, "CTRL-77")

    run(store_factory.make, body)


def test_delivery_searches_filter_and_page(store_factory: StoreFactory) -> None:
    async def body(store: StateStore) -> None:
        ids = await _fill(store)
        every = await store.search_deliveries(DeliveryQuery())
        assert [d.event_id for d in every] == ids[::-1]
        [dead] = await store.search_deliveries(DeliveryQuery(status=DeliveryStatus.DEAD))
        assert (dead.event_id, dead.status, dead.reason, dead.died_at, dead.attempts) == (
            ids[2],
            DeliveryStatus.DEAD,
            "HTTP 422",
            T0 + 11,
            2,
        )
        pending = await store.search_deliveries(
            DeliveryQuery(status=DeliveryStatus.PENDING, channel_id="adt")
        )
        assert [d.event_id for d in pending] == [ids[3], ids[0]]
        [one] = await store.search_deliveries(DeliveryQuery(event_id=ids[1]))
        assert (one.status, one.delivered_at, one.destination_id) == (
            DeliveryStatus.DELIVERED,
            T0 + 10,
            "ehr",
        )
        page = await store.search_deliveries(DeliveryQuery(limit=2))
        after = (page[-1].created_at, page[-1].delivery_id)
        more = await store.search_deliveries(DeliveryQuery(limit=10, after=after))
        assert [d.event_id for d in page + more] == ids[::-1]
        assert await store.search_deliveries(DeliveryQuery(destination_id="nowhere")) == []

    run(store_factory.make, body)


def test_timeline_holds_derived_events_deliveries_attempts_and_audit(
    store_factory: StoreFactory,
) -> None:
    received = event(at=T0)
    derived = event(at=T0, causation_id=received.event_id, body=b"{}")
    adm = Admission(
        received=received,
        derived=(derived,),
        deliveries=(
            NewDelivery(derived.event_id, "ehr", received.ordering_key, Lane.ROUTINE, None),
        ),
    )

    async def body(store: StateStore) -> None:
        await store.admit(adm)
        [d] = await store.load_pending("ehr", 0, 10)
        await store.record([Retrying(d.delivery_id, T0 + 1, 1, T0 + 2, "HTTP 503", T0 + 1)])
        await store.record([replace(delivered(d, at=T0 + 3, attempts=2), detail="201 Created")])
        timeline = await store.timeline(received.event_id)
        assert timeline is not None
        assert timeline.event.event_id == received.event_id
        assert [s.event_id for s in timeline.derived] == [derived.event_id]
        [record] = timeline.deliveries
        assert (record.delivery_id, record.status) == (d.delivery_id, DeliveryStatus.DELIVERED)
        assert [(a.attempt, a.at, a.outcome, a.detail) for a in record.attempt_log] == [
            (1, T0 + 1, "failed", "HTTP 503"),
            (2, T0 + 3, "delivered", "201 Created"),
        ]
        assert [e.action for e in timeline.audit] == ["received", "retry_scheduled", "delivered"]
        assert await store.timeline("EVT-UNKNOWN") is None

    run(store_factory.make, body)


def test_audit_pages_go_back_by_entry_id(store_factory: StoreFactory) -> None:
    async def body(store: StateStore) -> None:
        for n in range(5):
            await admit_one(store, "ehr", at=T0 + n)
        newest = await store.audit_page(None, 2)
        older = await store.audit_page(newest[-1].entry_id, 10)
        ids = [e.entry_id for e in newest + older]
        assert len(ids) == 5
        assert ids == sorted(ids, reverse=True)
        assert await store.audit_page(None, 10, "received") == newest + older
        assert await store.audit_page(ids[1], 10, "received") == (newest + older)[2:]
        assert await store.audit_page(None, 10, "delivered") == []

    run(store_factory.make, body)


def test_pauses_are_durable_audited_and_idempotent(store_factory: StoreFactory) -> None:
    async def pause(store: StateStore) -> None:
        assert await store.pauses() == []
        assert await store.set_paused(
            PauseKind.DESTINATION, "ehr", True, actor="user:ann", reason="maintenance", at=T0
        )
        assert not await store.set_paused(
            PauseKind.DESTINATION, "ehr", True, actor="user:ann", reason="again", at=T0 + 1
        )
        assert await store.set_paused(
            PauseKind.CHANNEL, "adt", True, actor="user:ann", reason="sender noisy", at=T0 + 2
        )

    run(store_factory.make, pause)

    async def resume(store: StateStore) -> None:
        paused = await store.pauses()
        assert [(p.kind, p.target_id, p.paused_at, p.actor, p.reason) for p in paused] == [
            (PauseKind.CHANNEL, "adt", T0 + 2, "user:ann", "sender noisy"),
            (PauseKind.DESTINATION, "ehr", T0, "user:ann", "maintenance"),
        ]
        assert await store.set_paused(
            PauseKind.DESTINATION, "ehr", False, actor="user:bob", reason="done", at=T0 + 3
        )
        assert not await store.set_paused(
            PauseKind.DESTINATION, "ehr", False, actor="user:bob", reason="done", at=T0 + 4
        )
        assert [p.target_id for p in await store.pauses()] == ["adt"]
        entries = await store.audit("destination:ehr")
        assert [(e.action, e.actor, e.detail) for e in entries] == [
            ("resumed", "user:bob", "done"),
            ("paused", "user:ann", "maintenance"),
        ]

    run(store_factory.make, resume)


def test_the_operating_mode_is_durable_audited_and_idempotent(
    store_factory: StoreFactory,
) -> None:
    surge = ModeState(
        OperatingMode.SURGE, T0, ModeOrigin.RULE, "thumpflow", "ed_boarding 12 >= 12", "ed"
    )

    async def declare(store: StateStore) -> None:
        assert await store.operating_mode() is None
        assert await store.set_operating_mode(surge)
        assert not await store.set_operating_mode(replace(surge, since=T0 + 1, reason="again"))
        act = ModeState(OperatingMode.SURGE, T0 + 5, ModeOrigin.ACT, "user:ann", "mass casualty")
        assert await store.set_operating_mode(act)

    run(store_factory.make, declare)

    async def after_restart(store: StateStore) -> None:
        found = await store.operating_mode()
        # the mode did not change, so it is in force since the rule declared it
        assert found == ModeState(
            OperatingMode.SURGE, T0, ModeOrigin.ACT, "user:ann", "mass casualty"
        )
        normal = ModeState(OperatingMode.NORMAL, T0 + 9, ModeOrigin.ACT, "user:bob", "over")
        assert await store.set_operating_mode(normal)
        assert await store.operating_mode() == normal
        entries = await store.audit_page(None, 10)
        assert [(e.action, e.subject, e.actor, e.detail) for e in entries[:3]] == [
            ("mode.changed", "mode:normal", "user:bob", "declared by an operator: over"),
            ("mode.changed", "mode:surge", "user:ann", "declared by an operator: mass casualty"),
            ("mode.changed", "mode:surge", "thumpflow", "rule ed: ed_boarding 12 >= 12"),
        ]

    run(store_factory.make, after_restart)
