"""A batch destination that writes in all-or-nothing chunks, retrying and splitting them.

`ChunkedDestination` implements `BatchDestination` over a `ChunkWriter` (e.g.
the FHIR transaction writer). For each `write`:

- items repeating a business key already in the same write are left out,
  the last one wins (counted as skipped);
- an item the writer's `check` refuses becomes an `ItemReject` at once;
- the rest go in chunks of `chunk_size`, one after another. A chunk answered
  `Transient` is sent again after a backoff (`Backoff.delay`: exponential
  with full jitter, never shorter than the receiver's `Retry-After`), up to
  `max_attempts` sends; exhausted, `write` raises `BatchDestinationError`
  (destination, counts and the kind of failure only) and the run fails
  without moving its watermark. A chunk answered `Permanent` is split in
  halves, each sent on its own, until the refused items stand alone; each
  refused item becomes an `ItemReject` whose remedy quotes what the receiver
  said, and every other item is written.

Chunks are idempotent (see the writer), so a chunk sent twice, a window
re-run, or a run re-done after a crash midway converges on the state of one
complete run; chunks applied before a failure stay applied. A refused item
costs about log2(chunk_size) extra requests. `finish` writes no manifest.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Protocol

from thumpflow.core.batch import BatchItem, ItemReject, Manifest, Window, WriteResult
from thumpflow.core.clock import Clock
from thumpflow.core.errors import BatchDestinationError
from thumpflow.core.outcome import Permanent, Sent
from thumpflow.core.ports import ChunkWriter

REFUSED_RULE = "refused"
UNWRITABLE_RULE = "unwritable"


class Backoff(Protocol):
    """How long to wait before the next attempt (e.g. `thumpflow.flow.retry.RetryPolicy`)."""

    @property
    def max_attempts(self) -> int: ...

    def delay(self, attempts: int, retry_after: float | None, rng: random.Random) -> float: ...


def _kind(reason: str) -> str:
    """The kind of a failure without what the receiver said (which could quote a record)."""
    return reason.split(":", 1)[0]


class ChunkedDestination:
    """Chunks, retries and splits over a `ChunkWriter`; see the module docstring."""

    def __init__(
        self,
        writer: ChunkWriter,
        chunk_size: int,
        backoff: Backoff,
        clock: Clock,
        rng: random.Random | None = None,
    ) -> None:
        self.destination_id = writer.destination_id
        self._writer = writer
        self._chunk_size = chunk_size
        self._backoff = backoff
        self._clock = clock
        self._rng = rng or random.Random()
        self._started = False

    async def begin(self, job_id: str, run_id: int, window: Window) -> None:
        """Start the writer (connect, read credentials)."""
        await self.abort()
        await self._writer.start()
        self._started = True

    async def write(self, items: Sequence[BatchItem]) -> WriteResult:
        if not self._started:
            raise RuntimeError(f"destination {self.destination_id}: write before begin")
        last = {item.business_key: item for item in items}
        skipped = len(items) - len(last)
        rejected: list[ItemReject] = []
        ready: list[BatchItem] = []
        for item in last.values():
            problem = self._writer.check(item)
            if problem is None:
                ready.append(item)
            else:
                remedy = f"{problem}; correct the record or the job's transform, then replay"
                rejected.append(ItemReject(item, UNWRITABLE_RULE, remedy))
        written = 0
        for start in range(0, len(ready), self._chunk_size):
            written += await self._send(ready[start : start + self._chunk_size], rejected)
        return WriteResult(written, skipped, tuple(rejected))

    async def _send(self, chunk: list[BatchItem], rejected: list[ItemReject]) -> int:
        """Write one chunk (retrying, splitting); how many of its items were written."""
        attempts = 0
        while True:
            result = await self._writer.write_chunk(chunk)
            attempts += 1
            if isinstance(result, Sent):
                return len(chunk)
            if isinstance(result, Permanent):
                if len(chunk) == 1:
                    remedy = (
                        f"the receiver refused it: {result.reason}; correct the record or the "
                        "job's transform, then replay"
                    )
                    rejected.append(ItemReject(chunk[0], REFUSED_RULE, remedy))
                    return 0
                half = len(chunk) // 2
                return await self._send(chunk[:half], rejected) + await self._send(
                    chunk[half:], rejected
                )
            if attempts >= self._backoff.max_attempts:
                raise BatchDestinationError(
                    f"destination {self.destination_id}: a chunk of {len(chunk)} failed "
                    f"{attempts} times ({_kind(result.reason)}); re-run the window"
                )
            await self._clock.sleep(self._backoff.delay(attempts, result.retry_after, self._rng))

    async def finish(self) -> list[Manifest]:
        """Close the writer (every chunk is already applied); no manifests."""
        await self.abort()
        return []

    async def abort(self) -> None:
        """Close the writer; chunks applied stay (re-running converges). Idempotent."""
        if self._started:
            self._started = False
            await self._writer.close()
