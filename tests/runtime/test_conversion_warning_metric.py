"""Conversion warnings are counted per channel and code on /metrics and in /api/channels."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from tests.api_support import api_client
from tests.e2e.harness import outbox_drained, running_engine
from tests.e2e.procs import ack_code, send_in_order
from thumpflow.core.access import Role
from thumpflow.mapping import WARNING_CODES

SAMPLE = re.compile(r"^thumpflow_conversion_warnings_total\{(.*)\} (\S+)$", re.MULTILINE)


def adt(control: str, *, pv1: bool) -> bytes:
    return (
        f"MSH|^~\\&|REG|GEN|ENG|GEN|20261121083000||ADT^A01^ADT_A01|{control}|P|2.5.1\r"
        "EVN|A01|20261121083000\r"
        "PID|1||ZQX77^^^GEN^MR||Zyxwabble^Quorra||19800101|F\r"
        + ("PV1|1|I|ICU^12^A\r" if pv1 else "")
    ).encode()


def unmapped(control: str) -> bytes:
    return (
        f"MSH|^~\\&|REG|GEN|ENG|GEN|20261121083000||ZZZ^Z99^ZZZ_Z99|{control}|P|2.5.1\r"
        "PID|1||ZQX77^^^GEN^MR||Zyxwabble^Quorra||19800101|F\r"
    ).encode()


def untimed(control: str) -> bytes:
    """No MSH-7 and no EVN: the time the engine received it stands in."""
    return (
        f"MSH|^~\\&|REG|GEN|ENG|GEN|||ADT^A01^ADT_A01|{control}|P|2.5.1\r"
        "PID|1||ZQX77^^^GEN^MR||Zyxwabble^Quorra||19800101|F\rPV1|1|I|ICU^12^A\r"
    ).encode()


def samples(text: str) -> dict[str, float]:
    return {labels: float(value) for labels, value in SAMPLE.findall(text)}


def test_a_missing_required_segment_increments_the_channels_counter(tmp_path: Path) -> None:
    destination = f"      - {{id: out, type: file, path: {tmp_path}/out.jsonl, format: jsonl}}"

    async def main() -> None:
        async with running_engine(
            tmp_path, destination, extra="    transform: thumpflow.mapping:to_fhir"
        ) as (engine, port):
            before = samples(await engine.render_metrics())
            assert before == {f'channel="flow",code="{code}"': 0.0 for code in WARNING_CODES}, (
                "every code is shown from 0 once the channel runs"
            )
            messages = [adt("C1", pv1=False), adt("C2", pv1=True), adt("C3", pv1=False)]
            acks = await send_in_order(port, [*messages, unmapped("C4"), untimed("C5")])
            assert [ack_code(ack) for ack in acks] == ["AA"] * 5
            await outbox_drained(engine, "out")
            text = await engine.render_metrics()
            assert samples(text) == {
                'channel="flow",code="missing_segment"': 2.0,
                'channel="flow",code="no_message_map"': 1.0,
                'channel="flow",code="no_reference_target"': 0.0,
                'channel="flow",code="no_message_time"': 1.0,
                'channel="flow",code="charset_fallback"': 0.0,
                'channel="flow",code="group_not_converted"': 0.0,
                'channel="flow",code="repeated_identifier"': 0.0,
                'channel="flow",code="segment_not_converted"': 0.0,
            }
            assert "Zyxwabble" not in text and "ZQX77" not in text and "PV1" not in text
            async with (
                api_client(engine, Role.VIEWER) as viewer,
                viewer.get("/api/channels") as response,
            ):
                assert response.status == 200
                (channel,) = (await response.json())["channels"]
            assert channel["conversion_warnings"] == {
                "missing_segment": 2,
                "no_message_map": 1,
                "no_reference_target": 0,
                "no_message_time": 1,
                "charset_fallback": 0,
                "group_not_converted": 0,
                "repeated_identifier": 0,
                "segment_not_converted": 0,
            }

    asyncio.run(main())
