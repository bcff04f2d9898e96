"""Files the engine creates hold patient data: none is readable by other users, whatever the umask.

The store, its WAL and shared-memory files are 0600; file destinations'
data and journals, batch extracts, manifests, reconciliation reports and
the reasons beside failed input files are 0640 at most. Each is created
here under umask 000, the worst case.
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.batch.test_batchfile import CSV, collect, dest, drop, item, source, write_run
from tests.connectors.test_file_destination import delivery, send_once
from thumpflow.batch.files import write_atomically
from thumpflow.core.event import Admission, Event
from thumpflow.store.sqlite import SqliteStore


@pytest.fixture
def open_umask() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def event(n: int) -> Event:
    return Event(
        event_id=f"01J{n:023d}",
        idempotency_key=f"k{n}",
        source_system="s",
        channel_id="c",
        event_type="adt.admit",
        entity_type="Patient",
        entity_id="1",
        occurred_at=1.0,
        received_at=1.0,
        body=b"MSH|^~\\&|A\rPID|1||SECRET\r",
    )


@pytest.mark.usefixtures("open_umask")
def test_the_store_and_its_wal_are_0600_and_looser_files_are_tightened(tmp_path: Path) -> None:
    path = tmp_path / "var" / "thumpflow.db"

    async def admit_one(n: int) -> None:
        store = SqliteStore(path)
        await store.open()
        try:
            await store.admit(Admission(received=event(n)))
            companions = [path.with_name(path.name + s) for s in ("", "-wal", "-shm")]
            assert {p.name: mode(p) for p in companions} == {p.name: 0o600 for p in companions}
        finally:
            await store.close()

    asyncio.run(admit_one(1))
    path.chmod(0o644)
    asyncio.run(admit_one(2))
    assert mode(path) == 0o600


@pytest.mark.usefixtures("open_umask")
def test_destination_files_extracts_manifests_reports_and_reasons_are_0640(
    tmp_path: Path,
) -> None:
    out = tmp_path / "flow" / "out.hl7"
    asyncio.run(send_once(out, [[delivery(1)]]))
    assert mode(out) == 0o640
    assert mode(Path(str(out) + ".journal")) == 0o640

    extracts = tmp_path / "extracts"
    asyncio.run(write_run(dest(extracts), [[item("1", "a")]]))
    written = sorted(p for p in extracts.iterdir())
    assert written and {p.name: mode(p) for p in written} == {p.name: 0o640 for p in written}

    report = tmp_path / "report.json"
    write_atomically(report, b"{}\n")
    assert mode(report) == 0o640

    drops = tmp_path / "drops"
    drops.mkdir()
    drop(drops, "a.csv", CSV, count=2)
    src = source(drops, manifest="optional")
    asyncio.run(collect(src))
    asyncio.run(src.fail("destination full"))
    assert mode(drops / "failed" / "a.csv.reason") == 0o640
