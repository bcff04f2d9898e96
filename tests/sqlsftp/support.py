"""A minimal run for the connector tests: read a window, key each record, upsert in chunks."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from thumpflow.core.batch import BatchItem, Window
from thumpflow.core.ports import BatchDestination, BatchSource


def item(data: Mapping[str, Any], key_field: str, origin: str = "test") -> BatchItem:
    digest = hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()
    return BatchItem(
        business_key=str(data.get(key_field)), data=data, content_hash=digest, origin=origin
    )


async def run_once(
    source: BatchSource,
    destination: BatchDestination,
    window: Window,
    *,
    key_field: str,
    chunk: int = 100,
    after_write: Callable[[int], None] | None = None,
) -> tuple[int, int, int]:
    """(read, written, skipped) of one run; `after_write(n)` is told after the n-th write."""
    read = written = skipped = writes = 0
    await destination.begin("job", 1, window)
    pending: list[BatchItem] = []

    async def flush() -> None:
        nonlocal written, skipped, writes
        result = await destination.write(pending)
        written += result.written
        skipped += result.skipped
        writes += 1
        pending.clear()
        if after_write is not None:
            after_write(writes)

    async for records in source.read(window):
        for record in records:
            read += 1
            pending.append(item(record.data, key_field, record.origin))
            if len(pending) >= chunk:
                await flush()
    if pending:
        await flush()
    await destination.finish()
    await source.commit()
    return read, written, skipped
