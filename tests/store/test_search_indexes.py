"""Searches stay index reads on a large store, and keyset pages are exact.

A real store is migrated, then filled directly through SQLite with 200,000
events and their deliveries (bulk insert: the writer path is not what is
measured here). Every search shape the API offers is checked with `EXPLAIN
QUERY PLAN`: the events and deliveries tables are only ever searched through
an index, never scanned. No timings are asserted.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from thumpflow.core.event import DeliveryStatus
from thumpflow.core.search import DeliveryQuery, EventQuery
from thumpflow.store.sqlite import SqliteStore
from thumpflow.store.sqlite._search import deliveries_sql, events_sql

EVENTS = 200_000
PATIENTS = 20_000
BASE = 1_800_000_000.0


def _status(i: int) -> int:
    if i % 200 == 0:
        return 2  # dead
    if i % 97 == 0:
        return 0  # pending
    if i % 89 == 0:
        return 3  # superseded
    return 1  # delivered


@pytest.fixture(scope="module")
def big_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("search") / "big.db"

    async def migrate() -> None:
        store = SqliteStore(path)
        await store.open()
        await store.close()

    asyncio.run(migrate())
    conn = sqlite3.connect(path)
    with conn:
        conn.executemany(
            "INSERT INTO events (event_seq, event_id, idempotency_key, source_system, channel_id,"
            " event_type, entity_type, entity_id, occurred_at, received_at, content_type, lane,"
            " correlation_id, body) VALUES (?, ?, ?, 'REG@GEN', ?, ?, 'Patient', ?, ?, ?,"
            " 'x-application/hl7-v2+er7', 2, ?, x'00')",
            (
                (
                    i,
                    f"E{i:012d}",
                    f"REG@GEN|C{i}",
                    f"ch{i % 5}",
                    f"adt.a{i % 8:02d}",
                    f"MRN{i % PATIENTS}",
                    BASE + i // 2,
                    BASE + i // 2,
                    f"C{i}",
                )
                for i in range(1, EVENTS + 1)
            ),
        )
        conn.executemany(
            "INSERT INTO deliveries (delivery_id, event_seq, destination_id, channel_id,"
            " ordering_key, lane, created_at, status, attempts, next_attempt_at)"
            " VALUES (?, ?, ?, ?, ?, 2, ?, ?, 1, 0)",
            (
                (
                    i,
                    i,
                    f"dest{i % 5}",
                    f"ch{i % 5}",
                    f"Patient/MRN{i % PATIENTS}",
                    BASE + i // 2,
                    _status(i),
                )
                for i in range(1, EVENTS + 1)
            ),
        )
    conn.close()
    yield path


EVENT_SHAPES = {
    "newest": EventQuery(),
    "patient": EventQuery(entity_id="MRN17"),
    "control id": EventQuery(control_id="C4242"),
    "event type": EventQuery(event_type="adt.a03"),
    "channel": EventQuery(channel_id="ch2"),
    "time range": EventQuery(since=BASE + 1000, until=BASE + 2000),
    "dead": EventQuery(status=DeliveryStatus.DEAD),
    "pending": EventQuery(status=DeliveryStatus.PENDING),
    "delivered": EventQuery(status=DeliveryStatus.DELIVERED),
    "superseded in a channel": EventQuery(status=DeliveryStatus.SUPERSEDED, channel_id="ch1"),
    "patient, type, channel, time": EventQuery(
        entity_id="MRN17", event_type="adt.a01", channel_id="ch2", since=BASE, until=BASE + 1e6
    ),
    "type, channel": EventQuery(event_type="adt.a01", channel_id="ch1"),
    "patient, next page": EventQuery(entity_id="MRN17", after=(BASE + 50_000, 100_017)),
    "next page": EventQuery(after=(BASE + 50_000, 100_001)),
    "converted in part": EventQuery(converted_in_part=True),
    "converted in part, channel, time": EventQuery(
        converted_in_part=True, channel_id="ch2", since=BASE, until=BASE + 1e6
    ),
}

DELIVERY_SHAPES = {
    "newest": DeliveryQuery(),
    "destination": DeliveryQuery(destination_id="dest3"),
    "destination, dead": DeliveryQuery(destination_id="dest3", status=DeliveryStatus.DEAD),
    "pending": DeliveryQuery(status=DeliveryStatus.PENDING),
    "delivered": DeliveryQuery(status=DeliveryStatus.DELIVERED),
    "destination, delivered": DeliveryQuery(
        destination_id="dest2", status=DeliveryStatus.DELIVERED
    ),
    "superseded": DeliveryQuery(status=DeliveryStatus.SUPERSEDED, channel_id="ch3"),
    "channel": DeliveryQuery(channel_id="ch4"),
    "channel, dead": DeliveryQuery(channel_id="ch4", status=DeliveryStatus.DEAD),
    "time range": DeliveryQuery(since=BASE + 10, until=BASE + 20),
    "event": DeliveryQuery(event_id="E000000000042"),
    "destination, time, next page": DeliveryQuery(
        destination_id="dest1", since=BASE, after=(BASE + 70_000, 140_001)
    ),
}

# A table read without an index: "SCAN e" / "SCAN deliveries" with nothing after it.
FULL_SCAN = re.compile(r"^SCAN \w+$")


def _plan(conn: sqlite3.Connection, sql: str, params: list[object]) -> list[str]:
    return [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]


@pytest.mark.parametrize("shape", sorted(EVENT_SHAPES))
def test_event_searches_use_an_index(big_store: Path, shape: str) -> None:
    conn = sqlite3.connect(big_store)
    assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == EVENTS
    plan = _plan(conn, *events_sql(EVENT_SHAPES[shape]))
    assert not [line for line in plan if FULL_SCAN.match(line)], plan
    assert any("USING INDEX" in line or "PRIMARY KEY" in line for line in plan), plan
    conn.close()


@pytest.mark.parametrize("shape", sorted(DELIVERY_SHAPES))
def test_delivery_searches_use_an_index(big_store: Path, shape: str) -> None:
    conn = sqlite3.connect(big_store)
    plan = _plan(conn, *deliveries_sql(DELIVERY_SHAPES[shape]))
    assert not [line for line in plan if FULL_SCAN.match(line)], plan
    assert any("USING INDEX" in line for line in plan), plan
    conn.close()


def test_converted_in_part_is_probed_per_event_through_the_audit_subject_index(
    big_store: Path,
) -> None:
    conn = sqlite3.connect(big_store)
    plan = _plan(conn, *events_sql(EVENT_SHAPES["converted in part"]))
    assert any("audit_subject" in line for line in plan), plan
    assert not [line for line in plan if FULL_SCAN.match(line) or line == "SCAN a"], plan
    conn.close()


def test_the_most_selective_filter_picks_the_index(big_store: Path) -> None:
    conn = sqlite3.connect(big_store)
    plan = _plan(conn, *events_sql(EVENT_SHAPES["patient, type, channel, time"]))
    assert any("events_patient" in line for line in plan), plan
    plan = _plan(conn, *deliveries_sql(DELIVERY_SHAPES["destination, dead"]))
    assert any("deliveries_dead_time" in line for line in plan), plan
    conn.close()


def test_keyset_pages_list_every_match_once_newest_first(big_store: Path) -> None:
    async def main() -> None:
        store = SqliteStore(big_store, read_only=True)
        await store.open()
        try:
            seen: list[str] = []
            after = None
            while True:
                page = await store.search_events(
                    EventQuery(entity_id="MRN17", event_type="adt.a01", after=after, limit=3)
                )
                seen += [event.event_id for event in page]
                if len(page) < 3:
                    break
                after = page[-1].position
            expected = [
                f"E{i:012d}" for i in range(EVENTS, 0, -1) if i % PATIENTS == 17 and i % 8 == 1
            ]
            assert expected and seen == expected
            dead = await store.search_deliveries(
                DeliveryQuery(destination_id="dest0", status=DeliveryStatus.DEAD, limit=500)
            )
            assert [d.delivery_id for d in dead] == list(range(EVENTS, 0, -200))[:500]
            assert {d.status for d in dead} == {DeliveryStatus.DEAD}
            window = await store.search_events(
                EventQuery(since=BASE + 10, until=BASE + 12, limit=500)
            )
            assert [e.event_id for e in window] == [f"E{i:012d}" for i in range(23, 19, -1)]
            assert window[0].statuses == {DeliveryStatus.DELIVERED: 1}
        finally:
            await store.close()

    asyncio.run(main())
