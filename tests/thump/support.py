"""Shared builders for the thump tests (synthetic data only)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from thumpflow.config import parse_config
from thumpflow.config.jobs import Job
from thumpflow.store.sqlite import SqliteStore
from thumpflow.testing.batch import FakeClock

T = TypeVar("T")

HEADER = "mrn,family,dob,ward,admitted_at,discharged_at"


def csv_rows(count: int, *, start: int = 1) -> list[str]:
    return [
        f"MRN{n:06d},Family{n},19{50 + n % 50:02d}-0{1 + n % 9}-1{n % 10},"
        f"{'ICU' if n % 2 else 'MED'},2024-01-0{1 + n % 9}T08:00:00Z,"
        for n in range(start, start + count)
    ]


def config_text(
    tmp: Path,
    *,
    extra_job: str = "",
    destination: str | None = None,
    schedule: str = "cron: '0 2 * * *'\n      timezone: America/New_York",
    name: str = "census-{date}.ndjson",
) -> str:
    destination = destination or (
        f"- id: warehouse\n        type: batch_file\n        directory: {tmp / 'out'}\n"
        f"        name: '{name}'\n        format: ndjson\n"
        "        source_system: thumpflow"
    )
    return f"""
store:
  path: {tmp / "db" / "thumpflow.db"}
api:
  enabled: false
channels:
  - id: adt
    source: {{type: mllp, port: 0}}
    destinations:
      - {{id: adt-file, type: file, path: {tmp / "flow.hl7"}}}
jobs:
  - id: census
    schedule:
      {schedule}
    source:
      type: file_drop
      directory: {tmp / "drop"}
      pattern: '*.csv'
      format: csv
      manifest: none
      settle_seconds: 0
    schema:
      - {{name: mrn, required: true, pattern: 'MRN[0-9]+'}}
      - {{name: family, max_length: 40}}
      - {{name: dob, type: date, required: true}}
      - {{name: ward, type: code, allowed: [ICU, MED, SURG]}}
      - {{name: admitted_at, type: datetime}}
      - {{name: discharged_at, type: datetime}}
    rules:
      - {{id: discharge-after-admit, field: discharged_at, op: ge, other: admitted_at}}
    business_key: [mrn]
    batch_size: 50
{extra_job}    destinations:
      {destination}
"""


def now_clock() -> FakeClock:
    """A fake clock starting at the real time (file ages are compared with it)."""
    return FakeClock(time.time())


def job_of(text: str) -> Job:
    (job,) = parse_config(text).jobs
    return job


def drop(tmp: Path, name: str, rows: list[str], header: str = HEADER) -> Path:
    directory = tmp / "drop"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    old = time.time() - 60
    os.utime(path, (old, old))
    return path


def with_store(path: Path, body: Callable[[SqliteStore], Awaitable[T]], **kw: Any) -> T:
    async def main() -> T:
        store = SqliteStore(path, **kw)
        await store.open()
        try:
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(main())
