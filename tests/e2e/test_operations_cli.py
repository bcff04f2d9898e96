"""Operating from the command line: status, dlq list/show/replay, against a running engine.

The engine runs as a real process with its HTTP API; the commands run as
real processes too, reading the store read-only and replaying through the API
(or through the store when the engine is stopped).
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.procs import free_port, send_in_order, start_engine
from tests.e2e.test_flow_guarantees import adt
from thumpflow.testing.http_receiver import HttpReceiver

CONFIG = """\
version: 1
store: {{path: {db}}}
api: {{host: 127.0.0.1, port: {api}}}
channels:
  - id: ops
    source: {{type: mllp, host: 127.0.0.1, port: {port}}}
    destinations:
      - id: ehr
        type: http
        url: {url}
        format: raw
        retry: {{base: 10ms, cap: 50ms}}
"""


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "thumpflow.cli.main", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def wait_for(check, seconds: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached")


def test_status_and_dead_letter_operations(tmp_path: Path) -> None:
    async def main() -> None:
        receiver = HttpReceiver()
        await receiver.start()
        receiver.set_faults(reject_marker="REJECTME")
        port, api = free_port(), free_port()
        config = tmp_path / "ops.yaml"
        config.write_text(
            CONFIG.format(db=tmp_path / "ops.db", api=api, port=port, url=receiver.url)
        )
        engine = start_engine(config, port, tmp_path / "engine.out")
        loop = asyncio.get_running_loop()
        try:
            messages = [
                adt("OK1", "MRN1"),
                adt("BAD1", "MRN2", note="REJECTME"),
                adt("OK2", "MRN3"),
            ]
            assert len(await send_in_order(port, messages)) == 3

            def listed() -> bool:
                return "422" in cli(config, "dlq", "list").stdout

            await loop.run_in_executor(None, wait_for, listed)
            listing = await loop.run_in_executor(None, cli, config, "dlq", "list", "--json")
            assert listing.returncode == 0, listing.stderr
            (letter,) = json.loads(listing.stdout)
            assert letter["destination_id"] == "ehr" and "422" in letter["reason"]
            for given, found in (("422", 1), ("nothing like this", 0)):
                narrowed = await loop.run_in_executor(
                    None, cli, config, "dlq", "list", "--reason-contains", given, "--json"
                )
                assert len(json.loads(narrowed.stdout)) == found, given
            shown = await loop.run_in_executor(
                None, cli, config, "dlq", "show", str(letter["delivery_id"])
            )
            assert shown.returncode == 0
            assert "dead_lettered" in shown.stdout and "reject marker" in shown.stdout
            status = await loop.run_in_executor(None, cli, config, "status")
            lines = status.stdout.splitlines()
            assert lines[0].split()[:4] == ["CHANNEL", "DESTINATION", "RECEIVED", "DELIVERED"]
            assert lines[1].split() == ["ops", "3"]
            assert lines[2].split()[:4] == ["ehr", "2", "0", "1"]

            refused = await loop.run_in_executor(
                None, cli, config, "dlq", "replay", "--reason", "x"
            )
            assert refused.returncode == 2, "a replay must name what it replays"
            receiver.set_faults(reject_marker=None)
            replay = await loop.run_in_executor(
                None,
                cli,
                config,
                "dlq",
                "replay",
                "--id",
                str(letter["delivery_id"]),
                "--reason",
                "receiver fixed",
                "--actor",
                "alice",
            )
            assert replay.returncode == 0, replay.stderr
            assert "replayed 1 deliveries through the running engine" in replay.stdout
            for _ in range(100):
                if len(receiver.applied) == 3:
                    break
                await asyncio.sleep(0.1)
            assert len(receiver.applied) == 3
            shown = await loop.run_in_executor(
                None, cli, config, "dlq", "show", str(letter["delivery_id"])
            )
            assert "not on the dead-letter list" in shown.stdout
        finally:
            engine.terminate()
            engine.wait(timeout=30)
            await receiver.close()
        assert engine.returncode == 0, "SIGTERM stops the engine cleanly"

    asyncio.run(main())


def test_replay_while_the_engine_is_stopped_is_sent_when_it_starts(tmp_path: Path) -> None:
    async def main() -> None:
        receiver = HttpReceiver()
        await receiver.start()
        receiver.set_faults(reject_marker="REJECTME")
        port, api = free_port(), free_port()
        config = tmp_path / "ops.yaml"
        config.write_text(
            CONFIG.format(db=tmp_path / "ops.db", api=api, port=port, url=receiver.url)
        )
        loop = asyncio.get_running_loop()
        engine = start_engine(config, port, tmp_path / "engine.out")
        try:
            assert len(await send_in_order(port, [adt("BAD1", "MRN2", note="REJECTME")])) == 1
            await loop.run_in_executor(
                None, wait_for, lambda: "422" in cli(config, "dlq", "list").stdout
            )
        finally:
            engine.terminate()
            engine.wait(timeout=30)
        receiver.set_faults(reject_marker=None)
        replay = await loop.run_in_executor(
            None, cli, config, "dlq", "replay", "--all", "--reason", "fixed"
        )
        assert replay.returncode == 0, replay.stderr
        assert "replayed 1 deliveries in the store" in replay.stdout
        engine = start_engine(config, port, tmp_path / "engine.out")
        try:
            for _ in range(100):
                if receiver.applied:
                    break
                await asyncio.sleep(0.1)
            assert len(receiver.applied) == 1
        finally:
            engine.terminate()
            engine.wait(timeout=30)
            await receiver.close()

    asyncio.run(main())


def test_a_port_in_use_is_one_clear_line_not_a_traceback(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "ops.yaml"
    config.write_text(
        CONFIG.format(
            db=tmp_path / "ops.db", api=free_port(), port=port, url="http://127.0.0.1:9/x"
        )
    )
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        done = cli(config, "run")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert f"channel 'ops': cannot listen on 127.0.0.1:{port}" in done.stderr
