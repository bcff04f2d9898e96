"""Read processes end with the engine, however it ends (issue 11, defect 9).

A real engine process with a job of `read_processes: 2` is SIGKILLed: none of
the processes it started (forkserver, resource tracker, workers) may remain.
Leftovers of an engine that ended anyway are killed when an engine starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.e2e.procs import free_port, start_engine
from thumpflow.config import parse_config
from thumpflow.runtime.engine import Engine
from thumpflow.runtime.workers import MARK

CONFIG = """
store: {{path: {tmp}/engine.db}}
api: {{enabled: false}}
channels:
  - id: adt
    source: {{type: mllp, host: 127.0.0.1, port: {port}}}
    destinations: [{{id: archive, type: file, path: {tmp}/out.hl7}}]
jobs:
  - id: census
    schedule: {{cron: "0 2 * * *"}}
    read_processes: {processes}
    source: {{type: file_drop, directory: {tmp}/drop, format: csv, manifest: none}}
    schema: [{{name: mrn, required: true}}]
    business_key: [mrn]
    destinations: [{{id: out, type: batch_file, directory: {tmp}/extracts,
                    name: "c-{{date}}.ndjson", format: ndjson, source_system: t}}]
"""


def processes() -> dict[int, tuple[int, int]]:
    """Every process now: pid -> (parent pid, process group)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        found[int(entry.name)] = (int(fields[1]), int(fields[2]))
    return found


def started_by(root: int, table: dict[int, tuple[int, int]]) -> set[int]:
    """The processes whose parent chain or process group leads to `root` (itself excluded)."""
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    found |= {pid for pid, (_, group) in table.items() if group == root}
    return found - {root}


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_sigkill_of_the_engine_leaves_none_of_its_read_processes(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "engine.yaml"
    config.write_text(CONFIG.format(tmp=tmp_path, port=port, processes=2))
    engine = start_engine(config, port, tmp_path / "engine.out", new_session=True)
    seen: set[int] = set()
    try:
        # forkserver, resource tracker and two workers
        wait_for(
            lambda: len(started_by(engine.pid, processes())) >= 4,
            60,
            "the engine never started its read processes",
        )
        seen = started_by(engine.pid, processes())
        engine.send_signal(signal.SIGKILL)
        engine.wait(30)
        wait_for(
            lambda: not seen & set(processes()),
            30,
            "read processes outlived the engine",
        )
    finally:
        engine.kill()
        for pid in seen & set(processes()):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def leftover(mark: str) -> subprocess.Popen[bytes]:
    """A process that looks like a read process of the engine named by `mark`."""
    code = "from multiprocessing.resource_tracker import main; import time; time.sleep(60)"
    return subprocess.Popen(
        [sys.executable, "-c", code], env={**os.environ, MARK: mark}, stdin=subprocess.DEVNULL
    )


def test_an_engine_start_kills_read_processes_whose_engine_has_ended(tmp_path: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(30)
    own = Path(f"/proc/{os.getpid()}/stat").read_text()
    orphan = leftover(f"{gone.pid}:1")
    kept = leftover(f"{os.getpid()}:{own[own.rindex(')') + 2 :].split()[19]}")
    config = parse_config(CONFIG.format(tmp=tmp_path, port=0, processes=0))

    async def main() -> None:
        engine = Engine(config)
        await engine.start()
        await engine.stop()

    try:
        wait_for(
            lambda: b"resource_tracker" in Path(f"/proc/{kept.pid}/cmdline").read_bytes(),
            30,
            "the imitation never started",
        )
        asyncio.run(main())
        assert orphan.wait(30) == -signal.SIGKILL
        assert kept.poll() is None, "a process of a running engine is left alone"
    finally:
        for process in (orphan, kept):
            process.kill()
            process.wait(30)
