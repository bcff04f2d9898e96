"""Test doubles for scheduled batches: a fake clock, an in-memory source and destination.

`FakeClock` stands still until `advance` moves it, waking sleepers in due
order. `MemorySource` serves given records (or refuses its input with a
`BatchSourceError`) and remembers whether it was committed or failed.
`MemoryDestination` upserts items by business key like a real batch
destination: writes are staged and become visible only on `finish`; `abort`
drops them; an item already present with the same content hash is skipped.
It can be told to fail after some writes, to prove abort and re-run.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any

from thumpflow.core.batch import BatchItem, Manifest, SourceRecord, Window, WriteResult
from thumpflow.core.errors import BatchSourceError


class FakeClock:
    """A clock that moves only when told; `sleep` waits until `advance` passes its deadline."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._now

    @property
    def sleepers(self) -> int:
        """How many sleeps are waiting (cancelled ones excluded)."""
        return sum(1 for _, _, future in self._sleepers if not future.done())

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._order), future))
        await future

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking each sleeper at its deadline, in order."""
        target = self._now + seconds
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, future = heapq.heappop(self._sleepers)
            self._now = max(self._now, deadline)
            if not future.done():
                future.set_result(None)
                for _ in range(5):
                    await asyncio.sleep(0)
        self._now = target
        await asyncio.sleep(0)

    async def wait_sleepers(self, count: int, timeout: float = 5.0) -> None:
        """Wait (real time) until at least `count` sleeps are waiting; TimeoutError otherwise."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.sleepers < count:
            if loop.time() > deadline:
                raise TimeoutError(f"{self.sleepers} sleepers, expected {count}")
            await asyncio.sleep(0.002)


class MemorySource:
    """A `BatchSource` over records given in advance.

    `refuse` makes `read` raise `BatchSourceError` with that reason before
    yielding anything. `next_watermark` is the given one. Records come in
    chunks of `chunk` records; `gate`, if given, is awaited before each
    record, and each record is then a chunk of its own (to hold a run midway
    in a test).
    """

    def __init__(
        self,
        source_id: str,
        records: Iterable[Mapping[str, Any] | SourceRecord],
        *,
        next_watermark: str | None = None,
        manifests: Sequence[Manifest] = (),
        refuse: str | None = None,
        gate: asyncio.Event | None = None,
        chunk: int = 1000,
    ) -> None:
        self.source_id = source_id
        self.records = [
            record
            if isinstance(record, SourceRecord)
            else SourceRecord(dict(record), f"{source_id}:record {number}")
            for number, record in enumerate(records, start=1)
        ]
        self._next_watermark = next_watermark
        self._manifests = list(manifests)
        self._refuse = refuse
        self._gate = gate
        self._chunk = 1 if gate is not None else max(1, chunk)
        self.windows: list[Window] = []
        self.committed = False
        self.failed: str | None = None

    async def read(self, window: Window) -> AsyncIterator[list[SourceRecord]]:
        self.windows.append(window)
        if self._refuse is not None:
            raise BatchSourceError(self._refuse)
        size = self._chunk
        for start in range(0, len(self.records), size):
            if self._gate is not None:
                await self._gate.wait()
            yield self.records[start : start + size]

    def manifests(self) -> list[Manifest]:
        return list(self._manifests)

    def next_watermark(self) -> str | None:
        return self._next_watermark

    async def commit(self) -> None:
        self.committed = True

    async def fail(self, reason: str) -> None:
        self.failed = reason


class DestinationFailedError(Exception):
    """Raised by a `MemoryDestination` told to fail."""


class MemoryDestination:
    """A `BatchDestination` that upserts into `rows` (business key -> data) on `finish`.

    `rows` and `hashes` persist across runs when the same instance (or the
    same `store` dict) is reused. `fail_on_write` makes that write (1-based,
    counted per run) raise `DestinationFailedError`.
    """

    def __init__(
        self,
        destination_id: str,
        store: dict[str, tuple[str, Mapping[str, Any]]] | None = None,
        *,
        fail_on_write: int | None = None,
    ) -> None:
        self.destination_id = destination_id
        self.store: dict[str, tuple[str, Mapping[str, Any]]] = store if store is not None else {}
        self._fail_on_write = fail_on_write
        self._staged: dict[str, tuple[str, Mapping[str, Any]]] = {}
        self._writes = 0
        self.begun: list[tuple[str, int, Window]] = []
        self.finished = 0
        self.aborted = 0

    @property
    def rows(self) -> dict[str, Mapping[str, Any]]:
        return {key: data for key, (_, data) in self.store.items()}

    async def begin(self, job_id: str, run_id: int, window: Window) -> None:
        self.begun.append((job_id, run_id, window))
        self._staged = {}
        self._writes = 0

    async def write(self, items: Sequence[BatchItem]) -> WriteResult:
        self._writes += 1
        if self._fail_on_write is not None and self._writes >= self._fail_on_write:
            raise DestinationFailedError(f"write {self._writes} failed as told")
        written = skipped = 0
        for item in items:
            current = self._staged.get(item.business_key) or self.store.get(item.business_key)
            if current is not None and current[0] == item.content_hash:
                skipped += 1
                continue
            self._staged[item.business_key] = (item.content_hash, dict(item.data))
            written += 1
        return WriteResult(written, skipped)

    async def finish(self) -> list[Manifest]:
        self.store.update(self._staged)
        count = len(self._staged)
        self._staged = {}
        self.finished += 1
        return [Manifest(f"{self.destination_id}.memory", count, "", 0.0, self.destination_id)]

    async def abort(self) -> None:
        self._staged = {}
        self.aborted += 1
