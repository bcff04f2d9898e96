"""Conversion warnings recorded with their admission (both backends).

An admission carrying `conversion_warnings` gets one `converted_in_part`
audit entry for its received event, right after its `received` entry, in
the same commit; a duplicate resend adds none, and the chain stays intact.
A search for `converted_in_part` events lists those messages, newest first.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from tests.store.support import admission, event, run
from thumpflow.core.event import Admission, Duplicate
from thumpflow.core.ports import Store
from thumpflow.core.search import EventQuery
from thumpflow.store.ops.flow import SHOWN_WARNINGS

from .conftest import StoreFactory
from .test_store import admitted

PV1_MISSING = "ADT^A08 (ADT_A01): required segment PV1 is missing"
NO_MAP = "message type ZZZ^Z01 has no message map; its common segments were converted"


def warned(*warnings: str, key: str | None = None, channel: str = "adt-in") -> Admission:
    sent = admission("fhir", received=event(key=key, channel=channel))
    return replace(sent, conversion_warnings=warnings)


def test_warnings_are_one_audit_entry_after_received(store_factory: StoreFactory) -> None:
    async def body(store: Store) -> None:
        quiet = admitted(await store.admit(admission("fhir")))
        loud = admitted(await store.admit(warned(PV1_MISSING, NO_MAP)))
        assert [e.action for e in await store.audit(quiet.event_id)] == ["received"]
        trail = await store.audit(loud.event_id)
        assert [e.action for e in trail] == ["converted_in_part", "received"]
        flagged, received = trail
        assert flagged.entry_id == received.entry_id + 1
        assert flagged.detail == f"{PV1_MISSING}; {NO_MAP}"
        assert flagged.actor == received.actor
        [found] = await store.audit(action="converted_in_part")
        assert found.subject == loud.event_id
        assert (await store.verify_audit()).intact

    run(store_factory.make, body)


def test_many_warnings_are_listed_up_to_a_bound_then_counted(store_factory: StoreFactory) -> None:
    warnings = tuple(f"ORU^R01 (ORU_R01): warning {n}" for n in range(SHOWN_WARNINGS + 5))

    async def body(store: Store) -> None:
        result = admitted(await store.admit(warned(*warnings)))
        [flagged] = await store.audit(result.event_id, action="converted_in_part")
        assert flagged.detail == "; ".join(warnings[:SHOWN_WARNINGS]) + "; and 5 more"

    run(store_factory.make, body)


def test_a_duplicate_resend_records_no_second_entry(store_factory: StoreFactory) -> None:
    async def body(store: Store) -> None:
        first = admitted(await store.admit(warned(PV1_MISSING, key="SIM|GEN|9")))
        again = await store.admit(warned(PV1_MISSING, key="SIM|GEN|9"))
        assert again == Duplicate(first.event_id, "AA")
        assert len(await store.audit(action="converted_in_part")) == 1

    run(store_factory.make, body)


def test_each_admission_of_one_group_commit_keeps_its_own_entries(
    store_factory: StoreFactory,
) -> None:
    async def body(store: Store) -> None:
        sent = [warned(f"ADT^A0{n} (ADT_A01): required segment PV1 is missing") for n in range(8)]
        sent[3] = admission("fhir")
        results = [admitted(r) for r in await asyncio.gather(*(store.admit(a) for a in sent))]
        for n, result in enumerate(results):
            actions = [e.action for e in await store.audit(result.event_id)]
            if n == 3:
                assert actions == ["received"]
                continue
            assert actions == ["converted_in_part", "received"]
            [flagged] = await store.audit(result.event_id, action="converted_in_part")
            assert flagged.detail == sent[n].conversion_warnings[0]
        assert (await store.verify_audit()).intact

    run(store_factory.make, body)


def test_a_search_finds_the_messages_converted_in_part_page_by_page(
    store_factory: StoreFactory,
) -> None:
    async def body(store: Store) -> None:
        sent = [
            warned(PV1_MISSING),
            admission("fhir"),
            warned(NO_MAP),
            warned(PV1_MISSING, channel="lab-in"),
            admission("fhir"),
        ]
        ids = [admitted(await store.admit(a)).event_id for a in sent]
        newest_first = [ids[3], ids[2], ids[0]]
        found = await store.search_events(EventQuery(converted_in_part=True))
        assert [summary.event_id for summary in found] == newest_first
        page = await store.search_events(EventQuery(converted_in_part=True, limit=2))
        rest = await store.search_events(
            EventQuery(converted_in_part=True, after=page[-1].position)
        )
        assert [s.event_id for s in page + rest] == newest_first
        only = await store.search_events(EventQuery(converted_in_part=True, channel_id="adt-in"))
        assert [summary.event_id for summary in only] == [ids[2], ids[0]]
        assert len(await store.search_events(EventQuery())) == 5

    run(store_factory.make, body)
