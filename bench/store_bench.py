"""Throughput of the store (SQLite, or PostgreSQL): admissions/s and Delivered records/s.

Run with the project's virtualenv (the system interpreter lacks the
dependencies):

    .venv/bin/python bench/store_bench.py [--admissions 100000] [--uvloop]
    PGPASSWORD=... .venv/bin/python bench/store_bench.py --postgresql "host=... dbname=postgres"

With `--postgresql DSN` the store is a fresh database `thumpflow_store_bench`
on that server (dropped first if it exists) instead of a SQLite file.

Three phases on a fresh database in a temporary directory:

1. admit: `--callers` concurrent coroutines admit `--admissions` messages
   (one ~1.8 KB synthetic HL7 v2 body each, 1-3 deliveries).
2. record: the deliveries of phase 1 are recorded `Delivered` in batches of
   `--record-batch` by 4 concurrent callers.
3. mixed: admissions and Delivered records of those admissions at the same
   time, as a running engine does.

Admissions are built before the clock starts: the figures are the store's.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from thumpflow.cli.bench import fresh_database
from thumpflow.core.event import Admission, Admitted, Delivery, Event, NewDelivery
from thumpflow.core.lanes import Lane
from thumpflow.core.outcome import Delivered
from thumpflow.core.ports import StateStore
from thumpflow.store.postgresql import PostgresStore
from thumpflow.store.sqlite import SqliteStore

DESTINATIONS = ("fhir-server", "bed-board", "warehouse")


def synthetic_body(n: int) -> bytes:
    segments = [
        f"MSH|^~\\&|SIM|GEN|ENGINE|HOSP|20250101120000||ADT^A01|BENCH{n:09d}|P|2.5.1",
        "EVN|A01|20250101120000",
        f"PID|1||SIM{n % 10000:06d}^^^GEN^MR||SYNTHETIC^PERSON||19700101|U",
        "PV1|1|I|WARD^101^A|||||||MED||||||||V" + "0" * 12,
    ]
    segments += [f"OBX|{i}|ST|CODE{i}^SYNTHETIC||{'x' * 120}||||||F" for i in range(1, 12)]
    return ("\r".join(segments) + "\r").encode()[:1800].ljust(1800, b"Z")


def make_admissions(count: int, offset: int) -> list[Admission]:
    now = time.time()
    admissions = []
    for i in range(offset, offset + count):
        event_id = f"E{i:025d}"
        entity_id = f"SIM{i % 10000:06d}"
        event = Event(
            event_id=event_id,
            idempotency_key=f"SIM|GEN|BENCH{i:09d}",
            source_system="SIM",
            channel_id="adt-in",
            event_type="adt.admit",
            entity_type="Patient",
            entity_id=entity_id,
            occurred_at=now,
            received_at=now,
            body=synthetic_body(i),
            sequence=i,
        )
        deliveries = tuple(
            NewDelivery(event_id, destination, f"Patient/{entity_id}", Lane.ROUTINE, i)
            for destination in DESTINATIONS[: 1 + i % 3]
        )
        admissions.append(Admission(received=event, deliveries=deliveries))
    return admissions


def delivered(delivery: Delivery) -> Delivered:
    return Delivered(
        delivery_id=delivery.delivery_id,
        at=time.time(),
        attempts=1,
        destination_id=delivery.destination_id,
        ordering_key=delivery.ordering_key,
        sequence=delivery.sequence,
    )


async def admit_all(
    store: StateStore, admissions: list[Admission], callers: int, out: list[Delivery]
) -> None:
    source: Iterator[Admission] = iter(admissions)

    async def caller() -> None:
        for admission in source:
            result = await store.admit(admission)
            assert isinstance(result, Admitted)
            out.extend(result.deliveries)

    await asyncio.gather(*(caller() for _ in range(callers)))


async def record_all(store: StateStore, deliveries: list[Delivery], batch: int) -> int:
    chunks = iter(range(0, len(deliveries), batch))

    async def caller() -> None:
        for start in chunks:
            await store.record([delivered(d) for d in deliveries[start : start + batch]])

    await asyncio.gather(*(caller() for _ in range(4)))
    return len(deliveries)


async def mixed(
    store: StateStore, admissions: list[Admission], callers: int, batch: int
) -> tuple[float, int]:
    """Admit while recording Delivered for what was admitted; return (seconds, recorded)."""
    ready: list[Delivery] = []
    done = asyncio.Event()
    recorded = 0

    async def recorder() -> None:
        nonlocal recorded
        while not (done.is_set() and not ready):
            if len(ready) < batch and not done.is_set():
                await asyncio.sleep(0.002)
                continue
            chunk = ready[:batch]
            del ready[:batch]
            await store.record([delivered(d) for d in chunk])
            recorded += len(chunk)

    async def admitter() -> None:
        await admit_all(store, admissions, callers, ready)
        done.set()

    started = time.perf_counter()
    await asyncio.gather(admitter(), *(recorder() for _ in range(2)))
    return time.perf_counter() - started, recorded


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        store: SqliteStore | PostgresStore = SqliteStore(Path(tmp) / "bench.db")
        if args.postgresql:
            store = PostgresStore(fresh_database(args.postgresql, "thumpflow_store_bench"))
        await store.open()
        n = args.admissions
        first = make_admissions(n, 0)
        deliveries: list[Delivery] = []
        started = time.perf_counter()
        await admit_all(store, first, args.callers, deliveries)
        seconds = time.perf_counter() - started
        stats = store.writer_stats()
        print(
            f"admit:  {n} admissions ({len(deliveries)} deliveries) in {seconds:.2f}s"
            f" = {n / seconds:,.0f} admissions/s"
            f" (avg group commit {stats.operations / max(stats.commits, 1):.0f} ops)"
        )

        deliveries.sort(key=lambda d: d.delivery_id)
        started = time.perf_counter()
        count = await record_all(store, deliveries, args.record_batch)
        seconds = time.perf_counter() - started
        print(
            f"record: {count} Delivered in batches of {args.record_batch} in {seconds:.2f}s"
            f" = {count / seconds:,.0f} records/s"
        )

        second = make_admissions(n, n)
        seconds, recorded = await mixed(store, second, args.callers, args.record_batch)
        print(
            f"mixed:  {n} admissions and {recorded} Delivered in {seconds:.2f}s"
            f" = {n / seconds:,.0f} admissions/s + {recorded / seconds:,.0f} records/s"
        )
        started = time.perf_counter()
        await store.stats()
        print(f"stats:  {1000 * (time.perf_counter() - started):.1f} ms")
        await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--admissions", type=int, default=100_000)
    parser.add_argument("--callers", type=int, default=64)
    parser.add_argument("--record-batch", type=int, default=200)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop")
    parser.add_argument("--dir", default=None, help="directory for the temporary database")
    parser.add_argument("--postgresql", metavar="DSN", help="measure a PostgreSQL store")
    arguments = parser.parse_args()
    if arguments.uvloop:
        import uvloop

        uvloop.install()
    asyncio.run(main(arguments))
