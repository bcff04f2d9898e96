"""The contracts connectors implement: flow destinations and sources' ingress, Subscription
notification sources, batch sources and destinations, chunk writers, alert sinks.

`flow`, `thump` and `alerts` see connectors only through these protocols;
only `runtime` names concrete implementations.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from thumpflow.core.batch import BatchItem, Manifest, SourceRecord, Window, WriteResult
from thumpflow.core.event import Delivery
from thumpflow.core.outcome import SendResult


class Destination(Protocol):
    """Where deliveries go. Lifecycle: `start`, then `send` any number of times, `close`.

    `send` gets 1..`max_batch` deliveries, each of a different ordering key or
    in ordering-key order, and returns one `SendResult` per delivery in the
    same order. It may raise only on a bug; every expected failure is a
    result. A destination that can recognise a resend (by `Delivery.key`)
    answers it `Sent` without applying it twice.
    """

    destination_id: str
    max_batch: int

    async def start(self) -> None: ...

    async def send(self, batch: Sequence[Delivery]) -> list[SendResult]: ...

    async def close(self) -> None: ...


class Ingress(Protocol):
    """What a source hands received bytes to (implemented by `flow`).

    `receive` returns the response to send back (an ACK or NAK), or None when
    the sender asked for none; it returns only once the event is durably
    committed or kept as a reject. `framing_error` tells that the source could
    not frame the input cleanly (oversized, truncated); the raw bytes are still
    kept. Sources consult `is_open` before reading more and, when closed, stop
    reading until `wait_open` returns (backpressure).
    """

    async def receive(
        self, raw: bytes, peer: str, framing_error: str | None = None
    ) -> bytes | None: ...

    def is_open(self) -> bool: ...

    async def wait_open(self) -> None: ...


class NotificationSource(Protocol):
    """The server behind a FHIR Subscription, read after it notifies (implemented by connectors).

    Both methods raise `core.errors.SourceReadError` when nothing could be read.
    """

    async def read(self, reference: str) -> dict[str, Any]:
        """The resource a notification's focus reference names (read-after-notify)."""
        ...

    async def events(self, since: int, until: int) -> dict[str, Any]:
        """A notification Bundle with the subscription's events `since`..`until` (`$events`)."""
        ...


class BatchSource(Protocol):
    """Where a run reads from. Lifecycle per run: `read`, then `commit` or `fail`.

    `read` yields the records of the window in source order, in chunks (a
    list of records at a time, so a run pays the asynchronous hand-over per
    chunk, not per record); it raises
    `BatchSourceError` (core.errors) before yielding anything when the input
    must not be imported at all (missing, partial, late, or checksum-failing
    file), naming what is wrong. `manifests` are those it checked.
    `next_watermark` is where the next run should start, known after `read`.
    `commit` marks the input consumed (files moved to processed/ atomically);
    `fail` sets it aside (failed/) with the reason. Both are idempotent.
    """

    source_id: str

    def read(self, window: Window) -> AsyncIterator[list[SourceRecord]]: ...

    def manifests(self) -> list[Manifest]: ...

    def next_watermark(self) -> str | None: ...

    async def commit(self) -> None: ...

    async def fail(self, reason: str) -> None: ...


class DataFileReader(Protocol):
    """Reads a job's local CSV data files beside the engine (in other processes), for a file
    drop source. Both methods block (call them from a worker thread).

    `count` answers the number of records of a file exactly as reading it
    would yield them (for the manifest check), or None when this file is to
    be counted the usual way. `records` answers a file's records in file
    order, the valid ones as `PreparedRecord`s, exactly those (with the same
    origins) a reading in the engine would give, or None for "read it the
    usual way".
    """

    def count(self, path: Path) -> int | None: ...

    def records(self, path: Path, name: str) -> Iterator[SourceRecord] | None: ...


class BatchDestination(Protocol):
    """Where a run writes. Lifecycle per run: `begin`, `write` any number of times, then
    `finish` (commit, returning the manifests written) or `abort`.

    Loads are idempotent: an item whose business key is already present with
    the same content is counted as skipped, a changed one is updated, so a
    re-run of a window (or a run re-done after a crash midway) converges on
    the same destination state without duplicates. File destinations write to
    a temporary name and rename on `finish`, beside a manifest.

    `write` raises when the write as a whole failed (the run fails); a
    destination that can tell one refused item from the rest returns it in
    `WriteResult.rejected` (the run keeps it as a row reject) and writes the
    others.
    """

    destination_id: str

    async def begin(self, job_id: str, run_id: int, window: Window) -> None: ...

    async def write(self, items: Sequence[BatchItem]) -> WriteResult:
        """What happened to these items: written, skipped, refused one by one."""
        ...

    async def finish(self) -> list[Manifest]: ...

    async def abort(self) -> None: ...


class ChunkWriter(Protocol):
    """Writes chunks of items, each as one all-or-nothing request (a FHIR transaction Bundle).

    Lifecycle per run: `start`, `check` and `write_chunk` any number of times,
    `close`. `check` names why an item can never be written (None when it can),
    before anything is sent. `write_chunk` applies every item of the chunk or
    none, idempotently (a chunk applied twice leaves the state one application
    gives), and reports `Sent`, `Transient` (retrying may help) or `Permanent`
    (the receiver refused the chunk; `reason` is what it said). It may raise
    only on a bug. Retrying and splitting are the caller's (`thumpflow.thump.chunked`).
    """

    destination_id: str

    async def start(self) -> None: ...

    def check(self, item: BatchItem) -> str | None: ...

    async def write_chunk(self, items: Sequence[BatchItem]) -> SendResult: ...

    async def close(self) -> None: ...


class AlertSink(Protocol):
    """Where alert notices go besides the store and the log (a webhook)."""

    name: str

    async def send(self, body: dict[str, Any]) -> None:
        """Deliver one notice; raises `OSError` or `TimeoutError` (worth retrying) on failure."""
        ...
