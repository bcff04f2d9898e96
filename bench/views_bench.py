"""The views: how fresh they stay under ADT load, and how fast they rebuild from the log.

    .venv/bin/python bench/views_bench.py [--rate 2000] [--seconds 5] [--events 1000000]

1. live: ADT from the simulated hospital (`thumpflow.testing.hospital`) is
   admitted into a fresh SQLite store at `--rate` per second for
   `--seconds` by `--senders` concurrent senders (each paced, one admission
   at a time as an MLLP connection would, `synchronous=FULL`), with
   `LiveViews` following the log and notified after each commit, as the
   engine does. Reported: seconds from each
   event's receipt (stamped just before its commit) to its application to
   the bed board, p50/p99/max (an upper bound of commit-to-view).
2. rebuild: `--events` events (the same traffic; bed-status JSON included)
   are admitted first (not timed), then `LiveViews.rebuild()` reads them
   back in commit order and projects them (timed: wall and CPU time of the
   process, all threads).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections import deque
from pathlib import Path

from thumpflow.config.views import ViewsSpec
from thumpflow.core.clock import SystemClock
from thumpflow.core.event import Admission, Event
from thumpflow.core.ids import new_ulid
from thumpflow.store.sqlite import SqliteStore
from thumpflow.testing.hospital import Hospital, Traffic
from thumpflow.views.live import LiveViews

UNITS = {"ED": [f"{n:02d}" for n in range(1, 41)]} | {
    ward: [f"{room}-{bed}" for room in range(1, 21) for bed in "AB"]
    for ward in ("4W", "5E", "6N", "ICU")
}
SPEC = ViewsSpec.model_validate(
    {
        "systems": [{"id": "ehr", "channels": ["adt-in"]}, {"id": "evs", "channels": ["evs-in"]}],
        "units": [
            {"id": unit, "kind": "ed" if unit == "ED" else "inpatient", "beds": beds}
            for unit, beds in UNITS.items()
        ],
        "ownership": {"patient": {"location": {"owners": ["ehr"], "precedence": "owner_only"}}},
    }
)


def admission(item: Traffic, n: int, received_at: float) -> Admission:
    event = Event(
        event_id=new_ulid(int(received_at * 1000)),
        idempotency_key=f"bench|{n}",
        source_system="SIM@HOSP",
        channel_id=item.channel,
        event_type="adt" if item.channel == "adt-in" else "bed.status",
        entity_type="Patient",
        entity_id=str(n % 5000),
        occurred_at=item.at,
        received_at=received_at,
        body=item.body,
        content_type=item.content_type,
    )
    return Admission(received=event)


async def live(rate: float, seconds: float, senders: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "views.db")
        await store.open()
        views = LiveViews(SPEC, store, SystemClock())
        views.delays = deque(maxlen=int(rate * seconds) + 10)
        await views.start()
        traffic = list(Hospital(UNITS, "ED", seed=3).traffic(int(rate * seconds), rate))
        started = time.perf_counter()

        async def sender(first: int) -> None:
            for n in range(first, len(traffic), senders):
                due = started + n / rate
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                await store.admit(admission(traffic[n], n, time.time()))
                views.notify()

        await asyncio.gather(*(sender(first) for first in range(senders)))
        elapsed = time.perf_counter() - started
        await asyncio.sleep(0.2)
        await views.stop()
        await store.close()
    delays = sorted(views.delays)
    p = lambda q: delays[min(len(delays) - 1, int(q * len(delays)))] * 1000  # noqa: E731
    print(
        f"live: {len(traffic)} events in {elapsed:.1f}s ({len(traffic) / elapsed:,.0f}/s); "
        f"receipt to bed board p50 {p(0.5):.2f} ms, p99 {p(0.99):.2f} ms, "
        f"max {delays[-1] * 1000:.2f} ms; position {views.projection.position}"
    )


async def rebuild(events: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "views.db")
        await store.open()
        filling = time.perf_counter()
        batch: list[asyncio.Task[object]] = []
        for n, item in enumerate(Hospital(UNITS, "ED", seed=5).traffic(events, 50.0)):
            batch.append(asyncio.ensure_future(store.admit(admission(item, n, item.at))))
            if len(batch) >= 256:
                await asyncio.gather(*batch)
                batch.clear()
        await asyncio.gather(*batch)
        print(f"filled {events} events in {time.perf_counter() - filling:.0f}s (not timed)")
        views = LiveViews(SPEC, store, SystemClock(), batch=5000)
        started, cpu = time.perf_counter(), time.process_time()
        applied = await views.rebuild()
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        await store.close()
    print(
        f"rebuild: {applied} events in {elapsed:.1f}s ({applied / elapsed:,.0f}/s), CPU "
        f"{cpu:.1f}s ({cpu / applied * 1e6:.0f} µs/event); "
        f"{len(views.projection.patients)} patients, {len(views.projection.beds)} beds"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--senders", type=int, default=16)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--skip-live", action="store_true")
    parser.add_argument("--skip-rebuild", action="store_true")
    args = parser.parse_args()
    if not args.skip_live:
        asyncio.run(live(args.rate, args.seconds, args.senders))
    if not args.skip_rebuild:
        asyncio.run(rebuild(args.events))


if __name__ == "__main__":
    main()
