"""Bad input over MLLP: a clear NAK (or silence for noise), the raw bytes kept, the engine up."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.e2e.harness import running_engine
from tests.e2e.procs import ack_code
from thumpflow.hl7v2 import parse_ack

START, END = b"\x0b", b"\x1c\r"
GOOD = b"MSH|^~\\&|REG|GEN|ENG|GEN|20261121||ADT^A08^ADT_A01|GOOD1|P|2.5\rPID|1||MRN1^^^GEN^MR\r"
DESTINATION = "      - {id: out, type: file, path: %s}\n"


async def exchange(port: int, data: bytes, expect: int, timeout: float = 5.0) -> list[bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    frames = []
    try:
        for _ in range(expect):
            frame = await asyncio.wait_for(reader.readuntil(END), timeout)
            frames.append(frame[1:-2])
    finally:
        writer.close()
    return frames


def test_bad_input_is_answered_kept_and_the_engine_stays_up(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_engine(
            tmp_path, DESTINATION % (tmp_path / "out.hl7"), max_bytes=4096
        ) as (engine, port):
            cases = {
                "missing MSH": b"PID|1||MRN1\rPV1|1|I\r",
                "wrong delimiters": b"MSH|^^\\&|A|B|C|D|2026||ADT^A01|W1|P|2.5\r",
                "no control id": b"MSH|^~\\&|A|B|C|D|2026||ADT^A01||P|2.5\r",
                "oversized": b"MSH|^~\\&|A|B|C|D|2026||ADT^A01|BIG|P|2.5\r"
                + b"NTE|1||"
                + b"x" * 8000
                + b"\r",
            }
            for name, payload in cases.items():
                (nak,) = await exchange(port, START + payload + END, 1)
                info = parse_ack(nak)
                assert info.code == "AE", name
                assert info.error_text, f"{name}: the NAK says what is wrong"
            (nak,) = await exchange(port, START + cases["wrong delimiters"] + END, 1)
            assert "MSH" in parse_ack(nak).error_text

            truncated = START + b"MSH|^~\\&|A|B|C|D|2026||ADT^A01|T1|P|2.5\rPID|1"
            answers = await exchange(port, truncated + START + GOOD + END, 2)
            assert [ack_code(a) for a in answers] == ["AE", "AA"]
            garbage = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
            (ack,) = await exchange(
                port, garbage + START + GOOD.replace(b"GOOD1", b"GOOD2") + END, 1
            )
            assert ack_code(ack) == "AA"

            newline = GOOD.replace(b"\r", b"\n").replace(b"GOOD1", b"NL1")
            (ack,) = await exchange(port, START + newline + END, 1)
            assert ack_code(ack) == "AA"

            kept = await engine.store.rejects("flow", 100)
            raws = [reject.raw for _, reject in kept]
            assert cases["missing MSH"] in raws
            assert cases["wrong delimiters"] in raws
            assert any(raw.startswith(b"MSH|^~\\&|A|B|C|D|2026||ADT^A01|BIG") for raw in raws)
            assert any(raw.startswith(b"GET / HTTP") for raw in raws)
            assert all(
                "x" * 20 not in reject.reason and "MRN1" not in reject.reason for _, reject in kept
            )
            stats = (await engine.stats())[0]
            assert stats.received == 3
            assert stats.rejected == len(kept) >= 6

    asyncio.run(scenario())
