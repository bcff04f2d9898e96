"""Batch throughput: a 1,000,000-row CSV through the file drop source, a per-row type
check and the batch file destination (NDJSON with manifest). Target: 100,000 rows/s.

Run: `.venv/bin/python bench/thump_bench.py [ROWS]`. The CSV (12 columns of
synthetic patient encounters, no real data) and its manifest are generated in
a temporary directory first (not timed). The timed part is the whole run:
manifest check (count + SHA-256 pass), reading every row, validating it,
building `BatchItem`s (business key, content hash) and writing the NDJSON
file and its manifest. Validation is `thumpflow.thump.validate` (typed
fields: dates, datetimes, a decimal, a code) when it can be imported, else
(or with `--simple-check`) a compiled per-field pattern check.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import os
import platform
import random
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from thumpflow.batch import sha256_of, write_manifest
from thumpflow.batch.manifest import manifest_name
from thumpflow.connectors.batchfile import (
    BatchFileDestination,
    BatchFileDestinationSpec,
    FileDropSource,
    FileDropSourceSpec,
)
from thumpflow.core.batch import BatchItem, Manifest, SourceRecord, Window

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


def real_validator() -> Callable[[Mapping[str, Any]], Any] | None:
    """`thumpflow.thump.validate` for these columns, or None when it is not available."""
    try:
        from thumpflow.config.jobs import FieldSpec
        from thumpflow.thump.validate import RecordValidator
    except ImportError:
        return None
    types = {"birth_date": "date", "admit_at": "datetime", "discharge_at": "datetime"}
    fields = [
        FieldSpec(name=c, type=types.get(c, "string"), required=c in ("encounter_id", "mrn"))
        for c in COLUMNS
        if c != "charge"
    ]
    fields.append(FieldSpec(name="charge", type="decimal"))
    fields.append(FieldSpec(name="sex", type="code", allowed=["M", "F", "U"]))
    fields = [f for f in fields if not (f.name == "sex" and f.type == "string")]
    validator = RecordValidator(fields)

    def check(d: Mapping[str, Any]) -> Any:
        result = validator.validate(d)
        return result if isinstance(result, dict) else None

    return check


def compiled_check() -> Callable[[Mapping[str, Any]], str | None]:
    """A per-field type check compiled once: the rule name that fails, or None."""
    import re

    date = re.compile(r"\d{4}-\d{2}-\d{2}\Z").match
    instant = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z\Z").match
    money = re.compile(r"\d+\.\d{2}\Z").match
    sexes = frozenset("MFU")

    def check(d: Mapping[str, Any]) -> str | None:
        if not d["encounter_id"]:
            return "encounter_id required"
        if not d["mrn"]:
            return "mrn required"
        if not date(d["birth_date"]):
            return "birth_date is a date"
        if d["sex"] not in sexes:
            return "sex in M|F|U"
        if not instant(d["admit_at"]):
            return "admit_at is an instant"
        discharge = d["discharge_at"]
        if discharge and not instant(discharge):
            return "discharge_at is an instant"
        if not money(d["charge"]):
            return "charge is money"
        return None

    return check


async def run(
    directory: Path, out: Path, use_real: bool
) -> tuple[int, int, int, int, list[Manifest]]:
    source = FileDropSource(
        "drop",
        FileDropSourceSpec(
            type="file_drop",
            directory=str(directory),
            pattern="*.csv",
            format="csv",
            source_system="registration",
            settle_seconds=0,
        ),
    )
    destination = BatchFileDestination(
        "warehouse",
        BatchFileDestinationSpec(
            type="batch_file",
            directory=str(out),
            name="{job}-{date}.ndjson",
            format="ndjson",
            source_system="thumpflow",
        ),
    )
    real = real_validator() if use_real else None
    check = compiled_check()
    blake = hashlib.blake2b
    read = rejected = written = skipped = 0
    await destination.begin("encounters", 1, WINDOW)
    batch: list[BatchItem] = []
    record: SourceRecord
    async for record in source.read(WINDOW):
        read += 1
        data = record.data
        if real is not None:
            typed = real(data) if data else None
            if typed is None:
                rejected += 1
                continue
            data = typed
        elif not data or check(data) is not None:
            rejected += 1
            continue
        digest = blake(record.raw.encode(), digest_size=16).hexdigest()
        batch.append(BatchItem(data["encounter_id"], data, digest, record.origin))
        if len(batch) >= 5000:
            result = await destination.write(batch)
            written += result.written
            skipped += result.skipped
            batch = []
    result = await destination.write(batch)
    manifests = await destination.finish()
    await source.commit()
    return read, rejected, written + result.written, skipped + result.skipped, manifests


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    rows = int(args[0]) if args else 1_000_000
    use_real = "--simple-check" not in sys.argv
    with tempfile.TemporaryDirectory() as tmp:
        drop, out = Path(tmp) / "drop", Path(tmp) / "out"
        drop.mkdir()
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
        check = "thumpflow.thump.validate" if use_real and real_validator() else "compiled check"
        print(f"validation: {check}")
        print(f"python {platform.python_version()} ({sys.executable}), {os.cpu_count()} CPUs")
        print(
            f"generated {rows:,} rows, {size / 1e6:.0f} MB in {time.perf_counter() - started:.1f} s"
        )
        started = time.perf_counter()
        read, rejected, written, skipped, manifests = asyncio.run(run(drop, out, use_real))
        elapsed = time.perf_counter() - started
        print(
            f"read {read:,}  rejected {rejected:,}  written {written:,}  skipped {skipped:,}  "
            f"manifest count {manifests[0].record_count:,}"
        )
        rate = read / elapsed
        verdict = "meets" if rate >= 100_000 else "MISSES"
        print(f"{elapsed:.2f} s, {rate:,.0f} rows/s ({verdict} the 100,000 rows/s target)")


if __name__ == "__main__":
    main()
