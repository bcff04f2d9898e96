"""File destination: records, batches, rotation, and exactly-once across crashes."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from thumpflow.connectors.file.destination import FileDestination
from thumpflow.connectors.file.spec import FileDestinationSpec
from thumpflow.core.event import Delivery
from thumpflow.core.lanes import Lane
from thumpflow.core.outcome import SendResult, Sent, Transient


def delivery(n: int, body: bytes | None = None) -> Delivery:
    return Delivery(
        delivery_id=n,
        event_id=f"EV{n:06d}",
        destination_id="out",
        channel_id="adt",
        ordering_key=f"Patient/{n % 7}",
        lane=Lane.ROUTINE,
        sequence=n,
        created_at=1_700_000_000.0,
        body=body
        if body is not None
        else f"MSH|^~\\&|A|B|C|D|||ADT^A01|{n}|P|2.5\rPID|1\r".encode(),
        content_type="x-application/hl7-v2+er7",
        event_type="adt.admit",
    )


def spec(path: Path, **kw: object) -> FileDestinationSpec:
    return FileDestinationSpec.model_validate({"type": "file", "path": str(path), **kw})


async def send_once(
    path: Path, batches: list[list[Delivery]], **kw: object
) -> list[list[SendResult]]:
    dest = FileDestination("out", spec(path, **kw))
    await dest.start()
    try:
        return [await dest.send(batch) for batch in batches]
    finally:
        await dest.close()


def journal_lines(path: Path) -> list[tuple[str, int]]:
    lines = Path(str(path) + ".journal").read_text().splitlines()
    return [(key, int(end)) for key, end in (line.rsplit(" ", 1) for line in lines)]


def test_hl7_records_one_per_line_with_journal(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "out.hl7"
    body = b"MSH|^~\\&|A\r\nPID|1\nOBX|1\r"
    results = asyncio.run(send_once(path, [[delivery(1, body), delivery(2)]]))
    assert results == [[Sent(), Sent()]]
    lines = path.read_bytes().split(b"\n")
    assert lines[0] == b"MSH|^~\\&|A\rPID|1\rOBX|1"
    assert lines[1].startswith(b"MSH|") and lines[1].endswith(b"PID|1")
    assert lines[2] == b""
    journal = journal_lines(path)
    assert [key for key, _ in journal] == ["EV000001.out", "EV000002.out"]
    assert journal[-1][1] == path.stat().st_size


def test_jsonl_records_carry_metadata_and_base64_for_binary(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    binary = delivery(2, b"\xff\xfe not utf-8")
    asyncio.run(send_once(path, [[delivery(1), binary]], format="jsonl"))
    first, second = (json.loads(line) for line in path.read_text().splitlines())
    assert first["delivery_key"] == "EV000001.out"
    assert first["event_id"] == "EV000001"
    assert first["event_type"] == "adt.admit"
    assert first["ordering_key"] == "Patient/1"
    assert first["delivery_id"] == 1
    assert first["content_type"] == "x-application/hl7-v2+er7"
    assert first["body"].startswith("MSH|")
    assert "body_encoding" not in first
    assert second["body_encoding"] == "base64"
    assert base64.b64decode(second["body"]) == b"\xff\xfe not utf-8"


def test_resend_of_committed_key_is_sent_without_writing(tmp_path: Path) -> None:
    path = tmp_path / "out.hl7"
    asyncio.run(send_once(path, [[delivery(1), delivery(2)]]))
    size = path.stat().st_size
    results = asyncio.run(send_once(path, [[delivery(2), delivery(3), delivery(3)]]))
    assert results == [[Sent("already written"), Sent(), Sent("already written")]]
    assert [key for key, _ in journal_lines(path)] == [
        "EV000001.out",
        "EV000002.out",
        "EV000003.out",
    ]
    assert path.stat().st_size > size
    assert path.read_bytes().count(b"ADT^A01|3|") == 1


def test_uncommitted_data_tail_is_cut_on_start(tmp_path: Path) -> None:
    path = tmp_path / "out.hl7"
    asyncio.run(send_once(path, [[delivery(1)]]))
    committed = path.read_bytes()
    with path.open("ab") as f:
        f.write(b"MSH|half written record without journal line")
    with Path(str(path) + ".journal").open("ab") as f:
        f.write(b"EV000009.out 99")
    results = asyncio.run(send_once(path, [[delivery(2)]]))
    assert results == [[Sent()]]
    data = path.read_bytes()
    assert data.startswith(committed)
    assert b"half written" not in data
    assert [key for key, _ in journal_lines(path)] == ["EV000001.out", "EV000002.out"]
    assert journal_lines(path)[-1][1] == len(data)


def test_size_rotation_starts_new_pairs_and_keeps_keys(tmp_path: Path) -> None:
    path = tmp_path / "out.hl7"
    batches = [[delivery(n)] for n in range(1, 11)]
    asyncio.run(send_once(path, batches, rotate="size", max_bytes=120))
    files = sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".journal"))
    assert len(files) > 3
    assert files[0] == "out.000001.hl7"
    assert all((tmp_path / (name + ".journal")).exists() for name in files)
    again = asyncio.run(
        send_once(path, [[delivery(1), delivery(10), delivery(11)]], rotate="size", max_bytes=120)
    )
    assert again == [[Sent("already written"), Sent("already written"), Sent()]]
    everything = b"".join((tmp_path / name).read_bytes() for name in files)
    everything += b"".join(
        p.read_bytes()
        for p in tmp_path.iterdir()
        if p.name not in files and not p.name.endswith(".journal")
    )
    for n in range(1, 12):
        assert everything.count(f"ADT^A01|{n}|".encode()) == 1


def test_daily_rotation_names_the_utc_date(tmp_path: Path) -> None:
    path = tmp_path / "adt.hl7"
    asyncio.run(send_once(path, [[delivery(1)]], rotate="daily"))
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    assert (tmp_path / f"adt-{day}.hl7").exists()
    assert (tmp_path / f"adt-{day}.hl7.journal").exists()


def test_daily_rotation_remembers_keys_of_earlier_days(tmp_path: Path) -> None:
    path = tmp_path / "adt.hl7"
    old = tmp_path / "adt-2001-01-01.hl7"
    old.write_bytes(b"x\n")
    Path(str(old) + ".journal").write_text("EV000005.out 2\n")
    results = asyncio.run(send_once(path, [[delivery(5), delivery(6)]], rotate="daily"))
    assert results == [[Sent("already written"), Sent()]]


def test_only_recent_keys_are_remembered(tmp_path: Path) -> None:
    path = tmp_path / "out.hl7"
    asyncio.run(send_once(path, [[delivery(n) for n in range(1, 6)]]))
    results = asyncio.run(send_once(path, [[delivery(5), delivery(1)]], remembered_keys=2))
    assert results == [[Sent("already written"), Sent()]]


def test_os_error_is_transient_and_nothing_is_committed(tmp_path: Path) -> None:
    path = tmp_path / "adt.hl7"
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    blocker = tmp_path / f"adt-{day}.hl7"

    async def scenario() -> tuple[list[SendResult], list[SendResult]]:
        dest = FileDestination("out", spec(path, rotate="daily"))
        await dest.start()
        blocker.mkdir()
        failed = await dest.send([delivery(1), delivery(2)])
        blocker.rmdir()
        retried = await dest.send([delivery(1), delivery(2)])
        await dest.close()
        return failed, retried

    failed, retried = asyncio.run(scenario())
    assert all(isinstance(r, Transient) for r in failed)
    reason = failed[0].reason  # type: ignore[union-attr]
    assert "Is a directory" in reason
    assert "MSH" not in reason
    assert retried == [Sent(), Sent()]
    assert blocker.read_bytes().count(b"\n") == 2


CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from tests.connectors.test_file_destination import delivery, spec
    from thumpflow.connectors.file.destination import FileDestination
    from pathlib import Path

    async def main(path, total, size):
        dest = FileDestination("out", spec(Path(path), max_batch=size))
        await dest.start()
        for start in range(1, total + 1, size):
            last = min(start + size, total + 1)
            batch = [delivery(n, b"PID|" + b"x" * 5000 + b"%d" % n) for n in range(start, last)]
            await dest.send(batch)
            print(start, flush=True)
        await dest.close()
        print("done", flush=True)

    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
    """
)


def uncommitted_tail(path: Path) -> bool:
    """Whether the data file holds bytes its journal does not commit (a batch in progress)."""
    try:
        size = path.stat().st_size
        committed = journal_lines(path)
    except (FileNotFoundError, ValueError):
        return False
    return size > (committed[-1][1] if committed else 0)


def test_sigkill_mid_batch_then_resend_everything_writes_each_key_once(tmp_path: Path) -> None:
    path = tmp_path / "crash" / "out.hl7"
    total, size = 2000, 100
    root = Path(__file__).resolve().parents[2]
    rng = random.Random(7)
    kills = torn = 0
    for _ in range(6):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path), str(total), str(size)],
            cwd=root,
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while child.poll() is None and time.monotonic() < deadline:
            if uncommitted_tail(path):
                time.sleep(rng.uniform(0.0, 0.002))
                os.kill(child.pid, signal.SIGKILL)
                kills += 1
                break
        child.wait(timeout=30)
        torn += uncommitted_tail(path)
    assert kills >= 4
    assert torn >= 2, "no kill landed inside a batch"
    final = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(total), str(size)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert final.stdout.strip().endswith("done")
    records = path.read_bytes().split(b"\n")
    assert records[-1] == b""
    keys = [int(r.rsplit(b"x", 1)[1]) for r in records[:-1]]
    assert sorted(keys) == list(range(1, total + 1))
    journal = journal_lines(path)
    assert len(journal) == total
    assert len({key for key, _ in journal}) == total
    assert journal[-1][1] == path.stat().st_size


def test_foreign_file_without_journal_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "out.hl7"
    path.write_bytes(b"someone else's data\n")
    with pytest.raises(OSError, match="without its journal"):
        asyncio.run(send_once(path, [[delivery(1)]]))
    assert path.read_bytes() == b"someone else's data\n"
