"""A separate engine-like process writing a store, for the crash and concurrency tests.

    python writer_child.py <db> <prefix> <count>

Admits synthetic messages from 8 concurrent callers and prints `opened` once
the store is open, then each admitted event id on its own line, only after
`admit` returned. `count` 0 means forever (until killed); otherwise it
prints `done` after `count` admissions and closes the store.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import time

from thumpflow.core.event import Admission, Admitted, Event, NewDelivery
from thumpflow.core.lanes import Lane
from thumpflow.store.sqlite import SqliteStore

BODY = b"MSH|^~\\&|SIM|GEN|ENGINE|HOSP|20250101||ADT^A01|CTRL|P|2.5.1\r" + b"OBX|1|ST|X||" * 120


async def main(path: str, prefix: str, count: int) -> None:
    store = SqliteStore(path)
    await store.open()
    print("opened", flush=True)
    numbers = itertools.count() if count == 0 else iter(range(count))

    async def caller() -> None:
        for n in numbers:
            event_id = f"{prefix}-{n:012d}"
            now = time.time()
            received = Event(
                event_id=event_id,
                idempotency_key=f"SIM|GEN|{event_id}",
                source_system="SIM",
                channel_id="adt-in",
                event_type="adt.admit",
                entity_type="Patient",
                entity_id=f"SIM{n % 50}",
                occurred_at=now,
                received_at=now,
                body=BODY,
            )
            result = await store.admit(
                Admission(
                    received=received,
                    deliveries=(
                        NewDelivery(event_id, "fhir", received.ordering_key, Lane.ROUTINE),
                        NewDelivery(event_id, "bed", received.ordering_key, Lane.URGENT),
                    ),
                )
            )
            assert isinstance(result, Admitted)
            print(event_id, flush=True)

    await asyncio.gather(*(caller() for _ in range(8)))
    await store.close()
    print("done", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
