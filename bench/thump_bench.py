"""Batch throughput: a 1,000,000-row CSV through a real job run into a SQLite upsert and an
NDJSON file with manifest. Target (issue 4): 100,000 rows/s.

Run: `.venv/bin/python bench/thump_bench.py [ROWS] [--legs ndjson,sqlite]`. The CSV (12
columns of synthetic patient encounters, no real data) and its manifest are generated in a
temporary directory first (not timed). The timed part is one run of a job through
`thumpflow.thump.runner.JobRunner` exactly as the engine runs it, recorded in a SQLite store:
the file drop source (manifest count and SHA-256 checked before reading), every row read and
validated by the job's schema (`thumpflow.thump.validate`: dates, datetimes, a decimal, a
code, required fields), business key and content hash (`thumpflow.core.records`), then
written in batches of `batch_size` to each destination of `--legs`: `ndjson` (the batch file
destination: NDJSON, atomic rename, manifest) and `sqlite` (the SQL upsert destination:
multi-row `INSERT ... VALUES (...), ... ON CONFLICT DO UPDATE ... WHERE changed` statements,
one transaction per batch, into a fresh SQLite file). `--read-processes N` sets the job's
`read_processes` (0 by default): the file is then counted and read in N worker processes,
started before the timed run as the engine starts them, and their CPU time is printed too.
The start-up heap is frozen first, as
`thumpflow run` does. `--profile FILE` writes a cProfile of the run (main thread only).
"""

from __future__ import annotations

import asyncio
import csv
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

from thumpflow.batch import sha256_of, write_manifest
from thumpflow.batch.manifest import manifest_name
from thumpflow.config import parse_config
from thumpflow.core.batch import Manifest, RunTrigger, Window
from thumpflow.core.clock import SystemClock
from thumpflow.runtime.build import job_runner
from thumpflow.runtime.heap import freeze_startup_heap
from thumpflow.runtime.workers import close_read_processes, read_executor, start_read_processes
from thumpflow.store.sqlite import SqliteStore
from thumpflow.thump.runner import RunOutcome

COLUMNS = (
    "encounter_id",
    "mrn",
    "family",
    "given",
    "birth_date",
    "sex",
    "admit_at",
    "discharge_at",
    "ward",
    "attending",
    "diagnosis",
    "charge",
)
WINDOW = Window("2024-03-01T00:00:00Z", "2024-03-02T00:00:00Z")


def generate(path: Path, rows: int) -> None:
    rng = random.Random(7)
    families = ["Smith", "O'Brien", "García", "Nguyen", "Müller", "Okafor", "Kowalski", "Lee"]
    givens = ["Ana", "Ben", "Chloé", "Dmitri", "Eve", "Femi", "Grace", "Hiro"]
    wards = ["ICU", "MED-3", "SURG, 2", "PEDS", "ONC"]
    codes = ["I21.4", "J18.9", "E11.9", "N39.0", "K35.80"]
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        for n in range(rows):
            day = 1 + n % 28
            writer.writerow(
                (
                    f"E{n:09d}",
                    f"MRN{rng.randrange(10**7):07d}",
                    rng.choice(families),
                    rng.choice(givens),
                    f"19{rng.randrange(30, 99)}-0{rng.randrange(1, 9)}-1{rng.randrange(0, 9)}",
                    rng.choice("MFU"),
                    f"2024-02-{day:02d}T0{n % 10}:15:00Z",
                    "" if n % 7 == 0 else f"2024-03-01T1{n % 10}:40:00Z",
                    rng.choice(wards),
                    f"Dr {rng.choice(families)}",
                    rng.choice(codes),
                    f"{rng.randrange(100, 99999)}.{rng.randrange(100):02d}",
                )
            )


LEGS = {
    "ndjson": """
      - {{id: warehouse-file, type: batch_file, directory: {out}, name: "{{job}}-{{date}}.ndjson",
         format: ndjson, source_system: thumpflow}}""",
    "sqlite": """
      - id: warehouse-db
        type: sql_upsert
        dialect: sqlite
        database: {out}/warehouse.db
        table: encounters
        create_table: true
        key_columns: [encounter_id]
        columns: {{{columns}}}""",
}

JOB = """
store: {{path: {tmp}/store/thumpflow.db}}
api: {{enabled: false}}
channels:
  - id: unused
    source: {{type: mllp, port: 0}}
    destinations: [{{id: unused-file, type: file, path: {tmp}/unused.hl7}}]
jobs:
  - id: encounters
    schedule: {{cron: "0 2 * * *"}}
    source: {{type: file_drop, directory: {drop}, pattern: "*.csv", format: csv,
             manifest: required, source_system: registration, settle_seconds: 0}}
    schema:
      - {{name: encounter_id, required: true}}
      - {{name: mrn, required: true}}
      - {{name: family}}
      - {{name: given}}
      - {{name: birth_date, type: date}}
      - {{name: sex, type: code, allowed: [M, F, U]}}
      - {{name: admit_at, type: datetime}}
      - {{name: discharge_at, type: datetime}}
      - {{name: ward}}
      - {{name: attending}}
      - {{name: diagnosis}}
      - {{name: charge, type: decimal}}
    business_key: [encounter_id]
    batch_size: 5000
    read_processes: {processes}
    destinations:{destinations}
"""


def job_config(tmp: Path, legs: list[str], processes: int = 0) -> str:
    columns = ", ".join(f"{c}: {c}" for c in COLUMNS)
    out = tmp / "out"
    destinations = "".join(LEGS[leg].format(out=out, columns=columns) for leg in legs)
    return JOB.format(tmp=tmp, drop=tmp / "drop", destinations=destinations, processes=processes)


async def run(text: str) -> RunOutcome:
    config = parse_config(text, "thump_bench.yaml")
    (job,) = config.jobs
    store = SqliteStore(Path(config.store.path))
    await store.open()
    if job.read_processes:
        start_read_processes(job.read_processes)  # as the engine does at start
    freeze_startup_heap()  # as `thumpflow run` does once the engine has started
    try:
        outcome = await job_runner(job, store, SystemClock()).run(RunTrigger.MANUAL, window=WINDOW)
    finally:
        await store.close()
        if job.read_processes:
            WORKER_CPU.append(_pool_cpu())
            close_read_processes()
    assert outcome is not None
    return outcome


WORKER_CPU: list[float] = []


def _pool_cpu() -> float:
    """CPU seconds (user + system) the read processes have used so far (Linux `/proc`)."""
    pool = read_executor(1)
    total = 0.0
    for pid in getattr(pool, "_processes", None) or {}:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def option(name: str, default: str) -> str:
    for n, arg in enumerate(sys.argv):
        if arg == name and n + 1 < len(sys.argv):
            return sys.argv[n + 1]
    return default


def main() -> None:
    args = [
        a
        for n, a in enumerate(sys.argv[1:])
        if not a.startswith("--") and not sys.argv[n].startswith("--")
    ]
    rows = int(args[0]) if args else 1_000_000
    legs = option("--legs", "ndjson,sqlite").split(",")
    processes = int(option("--read-processes", "0"))
    profile = option("--profile", "")
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        drop = tmp / "drop"
        drop.mkdir()
        (tmp / "out").mkdir()
        data = drop / "encounters-2024-03-02.csv"
        started = time.perf_counter()
        generate(data, rows)
        write_manifest(
            drop / manifest_name(data.name),
            Manifest(
                name=data.name,
                record_count=rows,
                sha256=sha256_of(data),
                created_at=time.time(),
                source="registration",
                window=WINDOW,
            ),
        )
        size = data.stat().st_size
        print(f"python {platform.python_version()} ({sys.executable}), {os.cpu_count()} CPUs")
        print(
            f"generated {rows:,} rows, {size / 1e6:.0f} MB in {time.perf_counter() - started:.1f} s"
        )
        print(f"destinations: {', '.join(legs)}")
        print(f"read processes: {processes}")
        text = job_config(tmp, legs, processes)
        started = time.perf_counter()
        cpu = time.process_time()
        if profile:
            import cProfile

            with cProfile.Profile() as profiler:
                outcome = asyncio.run(run(text))
            profiler.dump_stats(profile)
        else:
            outcome = asyncio.run(run(text))
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu
        counts = outcome.counts
        print(
            f"run {outcome.status.value}: read {counts.read:,}  valid {counts.valid:,}  "
            f"rejected {counts.rejected:,}  written {counts.written:,}  skipped {counts.skipped:,}"
            f"  manifests {[m.record_count for m in outcome.manifests_written]}"
        )
        rate = counts.read / elapsed
        verdict = "meets" if rate >= 100_000 else "MISSES"
        print(f"{elapsed:.2f} s, {rate:,.0f} rows/s ({verdict} the 100,000 rows/s target)")
        print(
            f"CPU ({'engine process, not its read processes' if processes else 'all threads'}) "
            f"{cpu:.2f} s, {cpu / counts.read * 1e6:.1f} µs per row"
            + (
                f"; read processes {WORKER_CPU[0]:.2f} s, "
                f"{WORKER_CPU[0] / counts.read * 1e6:.1f} µs per row; "
                if processes
                else "; "
            )
            + f"load average {' '.join(f'{n:.2f}' for n in os.getloadavg())}"
        )


if __name__ == "__main__":
    main()
