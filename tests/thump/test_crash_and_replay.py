"""A run SIGKILLed midway, then re-run, gives the same destination state; reject replay."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from thumpflow.cli.main import main
from thumpflow.core.batch import RunStatus
from thumpflow.store.sqlite import SqliteStore

from .support import config_text, csv_rows, drop, with_store
from .transforms import SENTINEL_VARIABLE

CHILD = Path(__file__).with_name("run_child.py")
ROOT = Path(__file__).parents[2]


def setup(tmp: Path, rows: list[str], *, pause: bool) -> Path:
    extra = "    transform: tests.thump.transforms:pause_midway\n" if pause else ""
    config = tmp / "thumpflow.yaml"
    tmp.mkdir(parents=True, exist_ok=True)
    config.write_text(config_text(tmp, extra_job=extra), encoding="utf-8")
    drop(tmp, "census-1.csv", rows)
    return config


def run_child(config: Path) -> subprocess.Popen[bytes]:
    sentinel = config.with_name("midway")
    env = {**os.environ, "PYTHONPATH": str(ROOT), SENTINEL_VARIABLE: str(sentinel)}
    return subprocess.Popen([sys.executable, str(CHILD), str(config)], cwd=ROOT, env=env)


def outputs(tmp: Path) -> dict[str, bytes]:
    out = tmp / "out"
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if not p.name.endswith(".json")}


@pytest.mark.slow
def test_a_run_killed_midway_then_rerun_gives_the_same_destination_state(
    tmp_path: Path,
) -> None:
    rows = csv_rows(1500)
    reference = tmp_path / "reference"
    crashed = tmp_path / "crashed"
    assert run_child(setup(reference, rows, pause=False)).wait(60) == 0

    config = setup(crashed, rows, pause=True)
    child = run_child(config)
    deadline = time.monotonic() + 60
    # The transform creates the sentinel at record 750 of 1500 (batches of 50: the first
    # 700 records are already written to the destination's temporary) and then blocks
    # until killed, so the kill lands midway whatever the machine's load.
    while not config.with_name("midway").exists():
        assert child.poll() is None, "the child ended before it reached the middle"
        assert time.monotonic() < deadline, "the child never reached the middle of the run"
        time.sleep(0.01)
    assert [p for p in (crashed / "out").iterdir() if p.name.endswith(".tmp")]
    os.kill(child.pid, signal.SIGKILL)
    child.wait(30)
    assert not [p for p in (crashed / "out").iterdir() if p.suffix == ".ndjson"]

    assert run_child(config).wait(60) == 0
    assert outputs(crashed) == outputs(reference)
    assert not [p for p in (crashed / "out").iterdir() if p.name.endswith(".tmp")]

    async def check(store: SqliteStore) -> None:
        second, first = await store.runs("census")
        assert first.status is RunStatus.FAILED and first.error == "interrupted"
        assert second.status is RunStatus.SUCCEEDED and second.counts.written == 1500

    with_store(crashed / "db" / "thumpflow.db", check, read_only=True)


def test_rejects_are_listed_shown_and_replayed_from_a_corrected_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = csv_rows(3)
    rows[1] = "MRN000002,Bad,1970-13-01,ICU,,"
    config = setup(tmp_path, rows, pause=False)
    assert main(["runs", "start", "census", "-c", str(config)]) == 0
    assert "partial" in capsys.readouterr().out
    assert main(["runs", "list", "-c", str(config)]) == 0
    assert "partial" in capsys.readouterr().out
    assert main(["runs", "show", "1", "-c", str(config)]) == 0
    assert "rejected 1" in capsys.readouterr().out
    assert main(["rejects", "list", "--job", "census", "-c", str(config)]) == 0
    listed = capsys.readouterr().out
    assert "dob.type" in listed and "Bad" not in listed
    assert main(["rejects", "show", "1", "-c", str(config)]) == 0
    assert "Bad" in capsys.readouterr().out

    # Replaying the kept record fails again: the reject stays open, a new one says why.
    assert main(["rejects", "replay", "1", "-c", str(config)]) == 1
    capsys.readouterr()
    corrected = tmp_path / "fixed.csv"
    corrected.write_text(
        "mrn,family,dob,ward,admitted_at,discharged_at\nMRN000002,Bad,1970-12-01,ICU,,\n",
        encoding="utf-8",
    )
    code = main(["rejects", "replay", "1", "--file", str(corrected), "-c", str(config)])
    assert code == 0, capsys.readouterr().out
    assert "marked replayed: 1" in capsys.readouterr().out

    async def check(store: SqliteStore) -> None:
        reject = await store.row_reject(1)
        assert reject is not None and reject.replayed_at is not None
        assert any(e.action == "replayed" for e in await store.audit("row_reject:1"))

    with_store(tmp_path / "db" / "thumpflow.db", check, read_only=True)
    files = [p for p in (tmp_path / "out").iterdir() if p.suffix == ".ndjson"]
    replayed = [json.loads(line) for p in files for line in p.read_text().splitlines()]
    assert any(r["mrn"] == "MRN000002" and r["dob"] == "1970-12-01" for r in replayed)
