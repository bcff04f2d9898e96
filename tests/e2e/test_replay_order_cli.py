"""`thumpflow dlq replay` respects order per patient, through the engine and in the store.

The engine runs as a real process with its API; the commands run as real
processes. Two patients each have an old message dead (the receiver refused
it) and a newer one delivered. A plain replay is refused with exit 1 and a
line naming the newer delivery, never a message value; `--out-of-order`
replays it, through the running engine (delivered after the newer one) and,
with the engine stopped, in the store. The audit trail lists both as
`replayed.out_of_order`.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.e2e.procs import free_port, send_in_order, start_engine
from tests.e2e.test_flow_guarantees import adt
from tests.e2e.test_operations_cli import CONFIG, cli, wait_for
from tests.e2e.test_replay_order import MARKER, MESSAGE_VALUES, applied
from thumpflow.testing.http_receiver import HttpReceiver


def test_dlq_replay_refuses_an_out_of_order_replay_unless_asked(tmp_path: Path) -> None:
    async def main() -> None:
        receiver = HttpReceiver()
        await receiver.start()
        receiver.set_faults(reject_marker=MARKER)
        port, api = free_port(), free_port()
        config = tmp_path / "ops.yaml"
        config.write_text(
            CONFIG.format(db=tmp_path / "ops.db", api=api, port=port, url=receiver.url)
        )
        loop = asyncio.get_running_loop()
        engine = start_engine(config, port, tmp_path / "engine.out")
        try:
            messages = [
                adt("OLD1", "MRN1", note=MARKER),
                adt("NEW1", "MRN1"),
                adt("OLD2", "MRN2", note=MARKER),
                adt("NEW2", "MRN2"),
            ]
            assert len(await send_in_order(port, messages)) == 4
            await loop.run_in_executor(None, wait_for, lambda: len(receiver.applied) == 2)

            def dead() -> list[int]:
                listing = cli(config, "dlq", "list", "--json")
                return [int(letter["delivery_id"]) for letter in json.loads(listing.stdout)]

            await loop.run_in_executor(None, wait_for, lambda: len(dead()) == 2)
            first, second = dead()
            receiver.set_faults(reject_marker=None)

            def replay(*args: str) -> tuple[int, str]:
                done = cli(config, "dlq", "replay", *args, "--reason", "receiver fixed")
                assert "Traceback" not in done.stderr, done.stderr
                for value in MESSAGE_VALUES:
                    assert value not in done.stdout + done.stderr
                return done.returncode, done.stdout

            code, out = await loop.run_in_executor(None, replay, "--id", str(first))
            assert code == 1, out
            assert "replayed 0 deliveries through the running engine" in out
            assert f"refused: delivery {first} was not replayed: delivery " in out
            assert "add --out-of-order" in out
            assert applied(receiver, "MRN1") == ["NEW1"]

            code, out = await loop.run_in_executor(
                None, replay, "--id", str(first), "--out-of-order"
            )
            assert code == 0, out
            assert "replayed 1 deliveries through the running engine" in out
            assert f"replayed out of order (asked with --out-of-order): {first}" in out
            await loop.run_in_executor(None, wait_for, lambda: len(receiver.applied) == 3)
            assert applied(receiver, "MRN1") == ["NEW1", "OLD1"]
        finally:
            engine.terminate()
            engine.wait(timeout=30)
            await receiver.close()
        assert engine.returncode == 0

        code, out = await loop.run_in_executor(None, replay, "--all")
        assert code == 1, out
        assert "replayed 0 deliveries in the store" in out
        assert f"refused: delivery {second} was not replayed" in out
        code, out = await loop.run_in_executor(None, replay, "--all", "--out-of-order")
        assert code == 0, out
        assert "replayed 1 deliveries in the store" in out and f": {second}" in out
        trail = cli(config, "audit", "list", "--action", "replayed.out_of_order", "--json")
        assert trail.returncode == 0, trail.stderr
        subjects = sorted(entry["subject"] for entry in json.loads(trail.stdout))
        assert subjects == sorted([f"delivery:{first}", f"delivery:{second}"])

    asyncio.run(main())
