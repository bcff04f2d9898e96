"""An HL7 batch (FHS/BHS … BTS/FTS) in one MLLP frame: each message admitted, one batch ACK."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.e2e.harness import running_engine
from tests.e2e.test_bad_input import END, START, exchange
from tests.e2e.test_flow_guarantees import adt
from thumpflow.hl7v2 import parse_ack


def batch(messages: list[bytes], count: int, file: bool = True) -> bytes:
    body = b"BHS|^~\\&|LAB|GEN\r" + b"".join(messages) + b"BTS|%d\r" % count
    return b"FHS|^~\\&|LAB|GEN\r" + body + b"FTS|1\r" if file else body


def test_batch_frame_is_split_admitted_and_acknowledged_as_a_batch(tmp_path: Path) -> None:
    async def scenario() -> None:
        destination = f"      - {{id: out, type: file, path: {tmp_path / 'out.hl7'}}}\n"
        async with running_engine(tmp_path, destination) as (engine, port):
            messages = [adt(f"B{n}", f"MRN{n}") for n in range(3)]
            (answer,) = await exchange(port, START + batch(messages, 3) + END, 1)
            lines = answer.rstrip(b"\r").split(b"\r")
            assert lines[0].startswith(b"FHS|") and lines[1].startswith(b"BHS|")
            assert lines[-2:] == [b"BTS|3", b"FTS|1"]
            acks = [line for line in lines if line.startswith(b"MSA|")]
            assert [ack.split(b"|")[1:3] for ack in acks] == [
                [b"AA", b"B0"],
                [b"AA", b"B1"],
                [b"AA", b"B2"],
            ]
            (resent,) = await exchange(port, START + batch(messages[:1], 1, file=False) + END, 1)
            assert resent.split(b"\r")[0].startswith(b"BHS|") and b"MSA|AA|B0" in resent
            stats = (await engine.stats())[0]
            assert (stats.received, stats.duplicates) == (3, 1)

            (nak,) = await exchange(port, START + batch(messages, 5) + END, 1)
            info = parse_ack(nak)
            assert info.code == "AE" and "BTS" in info.error_text
            kept = await engine.store.rejects("flow", 10)
            assert any(reject.raw.startswith(b"FHS|") for _, reject in kept)

    asyncio.run(scenario())
