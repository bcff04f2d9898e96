"""File drop source (checks before import, processed/failed moves) and batch file
destination (atomic write, manifest, idempotence, SIGKILL mid-write)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from thumpflow.batch import read_manifest, sha256_of
from thumpflow.batch.files import manifest_path
from thumpflow.connectors.batchfile import (
    BatchFileDestination,
    BatchFileDestinationSpec,
    FileDropSource,
    FileDropSourceSpec,
)
from thumpflow.core.batch import BatchItem, SourceRecord, Window
from thumpflow.core.errors import BatchSourceError

from .helpers import NOW, WINDOW, Clock, drop

CSV = b"id,v\r\n1,a\r\n2,b\r\n"


def source(directory: Path, **fields: object) -> FileDropSource:
    spec = FileDropSourceSpec.model_validate(
        {
            "type": "file_drop",
            "directory": str(directory),
            "pattern": "*.csv",
            "format": "csv",
            "source_system": "lab",
            "max_age": 86400,
            **fields,
        }
    )
    return FileDropSource("drop", spec, clock=Clock())


async def collect(src: FileDropSource, window: Window = WINDOW) -> list[SourceRecord]:
    return [record async for chunk in src.read(window) for record in chunk]


def test_good_files_are_read_in_order_then_moved_to_processed(tmp_path: Path) -> None:
    drop(tmp_path, "b.csv", CSV, count=2)
    drop(tmp_path, "a.csv", b"id,v\r\n9,z\r\n", count=1)
    src = source(tmp_path)
    records = asyncio.run(collect(src))
    assert [r.origin for r in records] == ["a.csv:line 2", "b.csv:line 2", "b.csv:line 3"]
    assert [m.name for m in src.manifests()] == ["a.csv", "b.csv"]
    assert src.next_watermark() == WINDOW.end
    asyncio.run(src.commit())
    asyncio.run(src.commit())
    processed = tmp_path / "processed"
    assert sorted(p.name for p in processed.iterdir()) == [
        "a.csv",
        "a.csv.manifest.json",
        "b.csv",
        "b.csv.manifest.json",
    ]
    assert not (tmp_path / "a.csv").exists()


@pytest.mark.parametrize(
    ("kwargs", "kind"),
    [
        ({"manifest": False}, "missing"),
        ({"count": 3}, "count"),
        ({"sha256": "0" * 64}, "checksum"),
        (
            {
                "created_at": NOW - 10,
                "window": Window("2024-02-01T00:00:00Z", "2024-02-02T00:00:00Z"),
            },
            "late",
        ),
        ({"source": "billing"}, "source"),
        ({"mtime": NOW - 1}, "partial"),
    ],
)
def test_a_bad_file_blocks_the_run_and_is_set_aside(
    tmp_path: Path, kwargs: dict[str, object], kind: str
) -> None:
    count = kwargs.pop("count", 2)
    drop(tmp_path, "good.csv", CSV, count=2)
    drop(tmp_path, "bad.csv", CSV, count=count, **kwargs)  # type: ignore[arg-type]
    src = source(tmp_path)
    with pytest.raises(BatchSourceError) as caught:
        asyncio.run(collect(src, Window(None, None)))
    assert f"bad.csv: {kind}:" in str(caught.value)
    assert "good.csv" not in str(caught.value)
    asyncio.run(src.fail("manifest check failed"))
    asyncio.run(src.fail("manifest check failed"))
    assert (tmp_path / "good.csv").exists()
    if kind == "partial":
        assert (tmp_path / "bad.csv").exists()
        return
    reason = (tmp_path / "failed" / "bad.csv.reason").read_text()
    assert reason.startswith("manifest check failed\n") and f"{kind}:" in reason
    assert (tmp_path / "failed" / "bad.csv").exists()
    assert not (tmp_path / "bad.csv").exists()
    again = source(tmp_path)
    assert len(asyncio.run(collect(again, Window(None, None)))) == 2


def test_failing_after_read_moves_files_to_failed_with_the_reason(tmp_path: Path) -> None:
    drop(tmp_path, "a.csv", CSV, count=2)
    src = source(tmp_path, manifest="optional")
    assert len(asyncio.run(collect(src))) == 2
    asyncio.run(src.fail("destination full"))
    assert (tmp_path / "failed" / "a.csv.reason").read_text() == "destination full\n"
    assert (tmp_path / "failed" / "a.csv.manifest.json").exists()


def settle(directory: Path) -> None:
    """Date the files written by a destination back to just before the test clock."""
    for path in directory.iterdir():
        os.utime(path, (NOW - 60, NOW - 60))


def dest(directory: Path, fmt: str = "ndjson", **fields: object) -> BatchFileDestination:
    spec = BatchFileDestinationSpec.model_validate(
        {
            "type": "batch_file",
            "directory": str(directory),
            "name": "{job}-{date}.out",
            "format": fmt,
            "source_system": "thumpflow",
            **fields,
        }
    )
    return BatchFileDestination("out", spec, clock=Clock())


def item(key: str, value: str) -> BatchItem:
    return BatchItem(key, {"id": key, "value": value}, value, "t")


async def write_run(d: BatchFileDestination, batches: list[list[BatchItem]]) -> list[object]:
    await d.begin("job", 1, WINDOW)
    results = [await d.write(b) for b in batches]
    counts = [(r.written, r.skipped) for r in results]
    return [counts, await d.finish()]


def test_destination_writes_atomically_with_manifest_and_last_wins(tmp_path: Path) -> None:
    d = dest(tmp_path)
    counts, manifests = asyncio.run(
        write_run(d, [[item("1", "a"), item("2", "b"), item("1", "a")], [item("2", "c")]])
    )
    assert counts == [(2, 1), (1, 0)]
    path = tmp_path / "job-2024-03-02.out"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == [{"id": "1", "value": "a"}, {"id": "2", "value": "c"}]
    manifest = read_manifest(manifest_path(path))
    assert manifests == [manifest]
    assert (manifest.record_count, manifest.sha256) == (2, sha256_of(path))
    assert manifest.window == WINDOW and manifest.source == "thumpflow"
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name, path.name + ".manifest.json"]


def test_csv_and_hl7_destinations_round_trip_through_the_source(tmp_path: Path) -> None:
    d = dest(tmp_path, "csv", columns=["id", "value"], name="x.csv")
    asyncio.run(write_run(d, [[item("1", 'q"uo,te'), item("2", "line\nbreak")]]))
    settle(tmp_path)
    src = source(tmp_path, source_system="thumpflow", settle_seconds=0)
    records = asyncio.run(collect(src))
    assert [dict(r.data) for r in records] == [
        {"id": "1", "value": 'q"uo,te'},
        {"id": "2", "value": "line\nbreak"},
    ]
    h = dest(tmp_path / "h", "hl7_batch", name="r.hl7")
    msg = "MSH|^~\\&|A|B|C|D|20240101||ADT^A01|{n}|P|2.5\rPID|1||X"
    items = [BatchItem(str(n), {"message": msg.format(n=n)}, str(n), "t") for n in range(3)]
    asyncio.run(write_run(h, [items]))
    settle(tmp_path / "h")
    data = (tmp_path / "h" / "r.hl7").read_bytes()
    assert data.startswith(b"FHS|") and data.endswith(b"BTS|3\rFTS|1\r")
    for written in (tmp_path / "x.csv", tmp_path / "h" / "r.hl7"):
        # header and trailer are in the SHA-256 computed while writing
        assert read_manifest(manifest_path(written)).sha256 == sha256_of(written)
    hsrc = source(
        tmp_path / "h",
        pattern="*.hl7",
        format="hl7_batch",
        source_system="thumpflow",
        settle_seconds=0,
    )
    assert [r.data["control_id"] for r in asyncio.run(collect(hsrc))] == ["0", "1", "2"]


def test_abort_leaves_nothing_and_keeps_the_previous_file(tmp_path: Path) -> None:
    d = dest(tmp_path)
    asyncio.run(write_run(d, [[item("1", "a")]]))
    before = sorted(p.name for p in tmp_path.iterdir())

    async def aborted() -> None:
        await d.begin("job", 2, WINDOW)
        await d.write([item("1", "changed")])
        await d.abort()
        await d.abort()

    asyncio.run(aborted())
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert "changed" not in (tmp_path / "job-2024-03-02.out").read_text()


CHILD = """
import asyncio, sys
from thumpflow.connectors.batchfile import BatchFileDestination, BatchFileDestinationSpec
from thumpflow.core.batch import BatchItem, Window

async def main(directory, rows, pause):
    spec = BatchFileDestinationSpec(type="batch_file", directory=directory,
        name="{job}-{window_end}.ndjson", format="ndjson", source_system="t")
    d = BatchFileDestination("out", spec)
    await d.begin("job", 1, Window("a", "2024-03-02T00:00:00Z"))
    for start in range(0, rows, 1000):
        batch = range(start, start + 1000)
        await d.write([BatchItem(str(n), {"n": n}, str(n), "t") for n in batch])
        if pause:
            print("wrote", flush=True)
            await asyncio.sleep(0.05)
    await d.finish()
    print("done", flush=True)

asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"))
"""


def run_child(directory: Path, pause: bool) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(directory), "20000", "1" if pause else "0"],
        stdout=subprocess.PIPE,
        text=True,
    )


def test_sigkill_mid_write_leaves_no_partial_file_and_a_rerun_converges(tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    child = run_child(reference, pause=False)
    assert child.wait(timeout=60) == 0
    expected = (reference / "job-2024-03-02T00-00-00Z.ndjson").read_bytes()

    target = tmp_path / "target"
    child = run_child(target, pause=True)
    assert child.stdout is not None
    for _ in range(3):
        assert child.stdout.readline() == "wrote\n"
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    visible = [p.name for p in target.iterdir() if not p.name.startswith(".")]
    assert visible == []
    assert any(p.name.endswith(".tmp") for p in target.iterdir())

    child = run_child(target, pause=False)
    assert child.wait(timeout=60) == 0
    names = sorted(p.name for p in target.iterdir())
    assert names == [
        "job-2024-03-02T00-00-00Z.ndjson",
        "job-2024-03-02T00-00-00Z.ndjson.manifest.json",
    ]
    data = (target / names[0]).read_bytes()
    assert data == expected
    assert read_manifest(target / names[1]).record_count == 20000
    assert read_manifest(target / names[1]).sha256 == sha256_of(target / names[0])
