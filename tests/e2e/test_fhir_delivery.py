"""HL7 v2 in, FHIR out: a burst of ADT and ORU converted and written to a simulated EHR.

Real processes: the engine (SQLite store, MLLP source, the v2→FHIR transform,
the FHIR destination with SMART Backend Services auth) and the simulated EHR
(its own SQLite file) with faults injected over its admin endpoint: 429 with
Retry-After, 503, latency, dropped connections before and after the write is
applied, a slow token endpoint, and 422 validation errors for one patient. The
engine is killed with SIGKILL once mid-run and restarted; senders resend what
was not acknowledged. Then the EHR holds no duplicate resource, every patient
carries the state of its last message, every result is there, and only the
rejected patient's deliveries are dead-lettered, with the EHR's reason.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.connectors.fhir.conftest import jwks, write_key
from tests.e2e.procs import ack_code, free_port, send_in_order, start_engine, wait_listening
from thumpflow.core.event import DeadLetterFilter
from thumpflow.hl7v2 import Message
from thumpflow.store.sqlite import SqliteStore
from thumpflow.testing.ehr import SimulatedEhr
from thumpflow.testing.generators import adt_a01, adt_a08, oru_r01

PATIENTS = 24
CONNECTIONS = 4
REJECTED = "MRN00005"

CONFIG = """\
version: 1
store: {{path: {db}}}
api: {{enabled: false}}
channels:
  - id: to-ehr
    source: {{type: mllp, host: 127.0.0.1, port: {port}}}
    transform: thumpflow.mapping:to_fhir
    destinations:
      - id: ehr
        type: fhir
        base_url: {base}
        mode: transaction
        timeout_seconds: 3
        concurrency: 4
        retry: {{base: 50ms, cap: 500ms, max_attempts: 200}}
        circuit_breaker: {{failure_threshold: 5, cooldown: 300ms}}
        auth:
          type: smart_backend
          client_id: thumpflow-engine
          private_key_file: {key}
          key_id: engine-key
          algorithm: ES384
"""


def admin(base: str, path: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{base}/_admin/{path}", data=data, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def messages_for(patient: int) -> list[bytes]:
    """Admission, a result, then an update that renames: the last word on the patient."""
    mrn = f"MRN{patient:05d}"
    messages = [
        adt_a01(patient_id=mrn, control_id=f"A{patient:05d}", seed=patient),
        oru_r01(patient_id=mrn, control_id=f"R{patient:05d}", seed=patient, n_obx=3),
        adt_a08(patient_id=mrn, control_id=f"U{patient:05d}", seed=patient),
    ]
    edited = []
    for number, raw in enumerate(messages):
        message = Message.parse(raw)
        if number == 2:
            message.set("PID-5.2", "Finalname")
        if mrn == REJECTED:
            message.set("PID-5.1", "REJECTME")
        edited.append(message.to_bytes())
    return edited


async def current_patients(db: Path) -> list[dict[str, Any]]:
    ehr = SimulatedEhr(db=db)
    await ehr.start()
    try:
        return ehr.resources("Patient")
    finally:
        await ehr.close()


@pytest.mark.slow
def test_burst_to_simulated_ehr_under_faults_and_a_crash(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    key_file = write_key(tmp_path / "engine-key.pem", key)
    jwks_file = tmp_path / "thumpflow-engine.json"
    jwks_file.write_text(json.dumps(jwks(key, "engine-key")))
    ehr_port, port = free_port(), free_port()
    ehr = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "thumpflow.testing.ehr",
            "--port",
            str(ehr_port),
            "--db",
            str(tmp_path / "ehr.db"),
            "--auth",
            "smart",
            "--client-jwks",
            str(jwks_file),
        ],
        stdin=subprocess.DEVNULL,
        stdout=(tmp_path / "ehr.out").open("wb"),
        stderr=subprocess.STDOUT,
    )
    wait_listening(ehr_port, ehr)
    base = f"http://127.0.0.1:{ehr_port}"
    config = tmp_path / "engine.yaml"
    config.write_text(
        CONFIG.format(db=tmp_path / "engine.db", port=port, base=f"{base}/fhir", key=key_file)
    )
    admin(
        base,
        "faults",
        {
            "throttle": 3,
            "retry_after": 0.2,
            "server_errors": 3,
            "delay_seconds": 0.01,
            "drop": 3,
            "drop_after_apply": 4,
            "token_delay_seconds": 0.3,
            "reject_types": ["Patient"],
            "reject_marker": "REJECTME",
        },
    )
    queues: list[list[bytes]] = [[] for _ in range(CONNECTIONS)]
    for patient in range(PATIENTS):
        queues[patient % CONNECTIONS].extend(messages_for(patient))

    async def drive(kill_after: float | None, engine: subprocess.Popen[bytes]) -> None:
        async def one(queue: list[bytes]) -> None:
            acks = await send_in_order(port, queue)
            assert all(ack_code(ack) in {"AA", "CA"} for ack in acks)
            del queue[: len(acks)]

        task = asyncio.gather(*(one(queue) for queue in queues))
        if kill_after is not None:
            await asyncio.sleep(kill_after)
            engine.kill()
        await task

    async def settled() -> tuple[int, int]:
        store = SqliteStore(tmp_path / "engine.db", read_only=True)
        await store.open()
        try:
            (channel,) = await store.stats()
            (outbox,) = channel.outboxes
            return outbox.pending, outbox.dead
        finally:
            await store.close()

    engine = start_engine(config, port, tmp_path / "engine.out")
    try:
        asyncio.run(drive(0.4, engine))
        engine.wait(timeout=30)
        pending, _ = asyncio.run(settled())
        assert any(queues) or pending > 0, "the kill landed mid-run"
        engine = start_engine(config, port, tmp_path / "engine.out")
        asyncio.run(drive(None, engine))
        assert not any(queues)

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            pending, _ = asyncio.run(settled())
            if pending == 0:
                break
            time.sleep(0.3)
        assert pending == 0

        state = admin(base, "state")
        statuses = Counter(request["status"] for request in admin(base, "requests"))
        assert statuses[429] == 3 and statuses[503] >= 3, "throttling and outages happened"
        assert statuses[0] == 3 + 4, "connections dropped before and after applying"
        assert statuses[422] >= 3, "validation errors answered"
        assert admin(base, "duplicates")["count"] == 0, "no resource was written twice"
        counts = state["resources"]
        assert counts["Patient"] == PATIENTS - 1
        assert counts["DiagnosticReport"] == PATIENTS - 1
        # Three results per patient, plus the two vital-sign OBX of the A01 and
        # of the A08 (the IG maps OBX in ADT to Observation; OBX-14 differs).
        assert counts["Observation"] == (PATIENTS - 1) * (3 + 2 + 2)

        async def dead_letters() -> list[Any]:
            store = SqliteStore(tmp_path / "engine.db", read_only=True)
            await store.open()
            try:
                return await store.dead_letters(DeadLetterFilter())
            finally:
                await store.close()

        letters = asyncio.run(dead_letters())
        assert len(letters) == 3, "the rejected patient's three messages, and only those"
        assert all("422" in letter.reason for letter in letters)

        ehr.terminate()
        ehr.wait(timeout=30)
        patients = asyncio.run(current_patients(tmp_path / "ehr.db"))
        assert len(patients) == PATIENTS - 1
        assert all(p["name"][0]["given"][0] == "Finalname" for p in patients), (
            "each patient holds its last message's state: order held through faults and a crash"
        )
    finally:
        if engine.poll() is None:
            engine.terminate()
            engine.wait(timeout=30)
        ehr.terminate()
        ehr.wait(timeout=30)
