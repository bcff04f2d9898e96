"""In-process engine harness: a real engine (real store, sockets, connectors) in the test's loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from thumpflow.config import parse_config
from thumpflow.runtime.engine import Engine

CHANNEL = """\
version: 1
store: {{path: {db}}}
api: {{enabled: false}}
channels:
  - id: flow
    source: {{type: mllp, host: 127.0.0.1, port: 0, max_message_bytes: {max_bytes}}}
{extra}
    destinations:
{destinations}
"""


@asynccontextmanager
async def running_engine(
    tmp_path: Path, destinations: str, extra: str = "", max_bytes: int = 65536
) -> AsyncIterator[tuple[Engine, int]]:
    text = CHANNEL.format(
        db=tmp_path / "flow.db", destinations=destinations, extra=extra, max_bytes=max_bytes
    )
    engine = Engine(parse_config(text, "test.yaml"))
    await engine.start()
    try:
        yield engine, engine.source_port("flow")
    finally:
        await engine.stop()


async def eventually(
    check: Callable[[], bool], seconds: float = 20.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{what} not reached within {seconds}s")


async def outbox_drained(engine: Engine, destination: str, seconds: float = 30.0) -> None:
    """Wait until nothing is pending for `destination`, in memory and in the store.

    Outcomes are recorded a few milliseconds after the send (they are batched),
    so the store's counters lag the outbox's own count briefly.
    """
    outbox = engine.outboxes[destination]
    await eventually(lambda: outbox.pending == 0, seconds, f"{destination} drained")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        stats = await engine.store.stats()
        pending = [o.pending for c in stats for o in c.outboxes if o.destination_id == destination]
        if sum(pending) == 0:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{destination} outcomes not recorded within {seconds}s")
