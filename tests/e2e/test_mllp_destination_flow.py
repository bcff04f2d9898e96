"""The engine forwarding over MLLP: AR and dropped connections retry, AE dead-letters."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.e2e.harness import outbox_drained, running_engine
from tests.e2e.procs import send_in_order
from tests.e2e.test_flow_guarantees import adt
from thumpflow.core.event import DeadLetterFilter
from thumpflow.testing.mllp_peer import Drop, MllpPeer, Reply


def test_ar_and_drops_are_retried_ae_is_dead_lettered_order_kept(tmp_path: Path) -> None:
    async def scenario() -> None:
        peer = MllpPeer()
        await peer.start()
        peer.on_message(1, Reply("AR", "busy"))
        peer.on_message(3, Drop())
        peer.on_marker(b"POISON", Reply("AE", "unknown patient class"))
        destination = (
            f"      - id: lab\n        type: mllp\n        host: 127.0.0.1\n"
            f"        port: {peer.port}\n        ack_timeout_seconds: 2\n"
            "        retry: {base: 10ms, cap: 50ms}\n"
        )
        async with running_engine(tmp_path, destination) as (engine, port):
            messages = [adt(f"L{n}", "MRN1") for n in range(5)] + [adt("LX", "MRN2", note="POISON")]
            assert len(await send_in_order(port, messages)) == 6
            await outbox_drained(engine, "lab")
            (dead,) = await engine.dead_letters(DeadLetterFilter(destination_id="lab"))
            assert dead.attempts == 1
            assert "AE" in dead.reason and "unknown patient class" in dead.reason
        received = [c for c in peer.control_ids() if c != "LX"]
        assert list(dict.fromkeys(received)) == [f"L{n}" for n in range(5)], "order kept"
        assert received.count("L0") >= 2, "the AR'd message was sent again"
        assert len(received) in {6, 7}, "one more for the AR, one more for the drop"
        await peer.close()

    asyncio.run(scenario())
