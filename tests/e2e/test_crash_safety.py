"""Proof of no loss, exactly-once effects and per-patient order across SIGKILLs.

The engine runs as a real process with its SQLite store, an HTTP destination
(a real receiver process that records Idempotency-Keys and fsyncs what it
applies) and a file destination. Many MLLP connections drive a few thousand
messages; the engine is killed with SIGKILL at random moments and restarted,
and senders resend whatever was not acknowledged, as real senders do. Then:
every acknowledged message reached each destination exactly once in effect,
and each patient's messages arrived in the order they were sent.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import subprocess
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from tests.e2e.harness import eventually
from tests.e2e.procs import ack_code, free_port, send_in_order, start_engine, start_receiver
from thumpflow.testing.generators import adt_a01

MESSAGES = 6000
CONNECTIONS = 12
PATIENTS = 240
KILLS = 3

CONFIG = """\
version: 1
store: {{path: {db}}}
api: {{enabled: false}}
channels:
  - id: crash
    source: {{type: mllp, host: 127.0.0.1, port: {port}, max_connections: 64}}
    destinations:
      - id: receiver
        type: http
        url: {url}
        format: raw
        concurrency: 4
        timeout_seconds: 5
        retry: {{base: 50ms, cap: 1s, max_attempts: 1000}}
      - id: archive
        type: file
        path: {out}
        format: hl7
"""

_CONTROL = re.compile(rb"^MSH\|[^|]*\|(?:[^|]*\|){7}([^|]*)\|", re.M)


def control_id(body: bytes) -> str:
    match = _CONTROL.search(body.replace(b"\r", b"\n"))
    assert match is not None
    return match.group(1).decode()


@pytest.mark.slow
def test_acknowledged_messages_survive_sigkill_exactly_once_in_order(tmp_path: Path) -> None:
    port, receiver_port = free_port(), free_port()
    applied_log = tmp_path / "applied.jsonl"
    archive = tmp_path / "out" / "archive.hl7"
    config = tmp_path / "engine.yaml"
    config.write_text(
        CONFIG.format(
            db=tmp_path / "engine.db",
            port=port,
            url=f"http://127.0.0.1:{receiver_port}/deliveries",
            out=archive,
        )
    )
    receiver = start_receiver(receiver_port, applied_log, tmp_path / "receiver.out")
    # Patient p always goes over connection p % CONNECTIONS, so per-patient order is the send order.
    queues: list[list[tuple[str, str, bytes]]] = [[] for _ in range(CONNECTIONS)]
    sent_order: dict[str, list[str]] = defaultdict(list)
    for n in range(MESSAGES):
        patient = n % PATIENTS
        mrn, control = f"MRN{patient:05d}", f"CRASH{n:07d}"
        queues[patient % CONNECTIONS].append(
            (control, mrn, adt_a01(patient_id=mrn, control_id=control, seed=n))
        )
        sent_order[mrn].append(control)
    acked: set[str] = set()

    def applied_count() -> int:
        return applied_log.read_bytes().count(b"\n") if applied_log.exists() else 0

    rng = random.Random(20261121)
    engine = None
    kills: list[int] = []
    try:
        for round_number in range(KILLS + 1):
            engine = start_engine(config, port, tmp_path / "engine.out")

            async def drive() -> None:
                async def one(queue: list[tuple[str, str, bytes]]) -> None:
                    acks = await send_in_order(port, [message for _, _, message in queue])
                    for (control, _, _), ack in zip(queue, acks, strict=False):
                        assert ack_code(ack) in {"AA", "CA"}, ack
                        acked.add(control)
                    del queue[: len(acks)]

                await asyncio.gather(*(one(queue) for queue in queues))

            async def drive_then_kill(process: subprocess.Popen[bytes], deliveries: int) -> None:
                """Kill once `deliveries` more messages reached the receiver (so some were
                acknowledged in this round, and others are in flight)."""
                task = asyncio.ensure_future(drive())
                target = applied_count() + deliveries
                try:
                    await eventually(lambda: applied_count() >= target, 60, "deliveries")
                finally:
                    process.kill()
                    await task

            if round_number < KILLS:
                before = len(acked)
                asyncio.run(drive_then_kill(engine, rng.randint(20, 300)))
                engine.wait(timeout=30)
                assert before < len(acked) < MESSAGES, "the kill landed mid-traffic"
                kills.append(len(acked) - before)
            else:
                asyncio.run(drive())
        assert len(kills) == KILLS
        assert all(not queue for queue in queues), "every message was acknowledged in the end"
        assert len(acked) == MESSAGES

        deadline = time.monotonic() + 120
        applied: list[dict[str, str]] = []
        while time.monotonic() < deadline:
            applied = [json.loads(line) for line in applied_log.read_text().splitlines() if line]
            if len(applied) >= MESSAGES:
                break
            time.sleep(0.2)
        by_control = Counter(control_id(record["body"].encode()) for record in applied)
        assert set(by_control) == acked
        assert max(by_control.values()) == 1, "no message was applied twice"
        arrived: dict[str, list[str]] = defaultdict(list)
        for record in applied:
            body = record["body"].encode()
            arrived[re.search(rb"PID\|[^|]*\|[^|]*\|(MRN\d+)", body).group(1).decode()].append(
                control_id(body)
            )  # type: ignore[union-attr]
        assert arrived == sent_order, "each patient's messages arrived in send order"

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            records = archive.read_bytes().split(b"\n")[:-1] if archive.exists() else []
            if len(records) >= MESSAGES:
                break
            time.sleep(0.2)
        in_file = Counter(control_id(record) for record in records)
        assert set(in_file) == acked and max(in_file.values()) == 1
    finally:
        if engine is not None and engine.poll() is None:
            engine.terminate()
            engine.wait(timeout=30)
        receiver.terminate()
        receiver.wait(timeout=30)
