"""`EventLog` on SQLite: committed events of the asked channels, in commit order, by position."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from tests.views.support import event
from thumpflow.core.event import Admission
from thumpflow.store.sqlite import PayloadCipher, SqliteStore


def test_events_after_pages_in_commit_order_with_bodies_decrypted(tmp_path: Path) -> None:
    async def main() -> None:
        store = SqliteStore(tmp_path / "log.db", cipher=PayloadCipher([("k1", os.urandom(32))]))
        await store.open()
        try:
            assert await store.last_position() == 0
            assert await store.events_after(0, ["a"], 10) == []
            for n in range(1, 8):
                channel = "b" if n % 3 == 0 else "a"
                await store.admit(
                    Admission(received=event(f"body {n}".encode(), n, channel=channel))
                )
            last = await store.last_position()
            first = await store.events_after(0, ["a"], 3)
            assert [e.body for _, e in first] == [b"body 1", b"body 2", b"body 4"]
            rest = await store.events_after(first[-1][0], ["a"], 100)
            assert [e.body for _, e in rest] == [b"body 5", b"body 7"]
            positions = [p for p, _ in first + rest]
            assert positions == sorted(positions) and positions[-1] == last
            both = await store.events_after(0, ["a", "b"], 100)
            assert [e.event_id for _, e in both] == [f"E{n:06d}" for n in range(1, 8)]
            assert await store.events_after(0, [], 100) == []
        finally:
            await store.close()

    asyncio.run(main())
