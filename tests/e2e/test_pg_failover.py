"""Database failover: the engine on a PostgreSQL primary with a synchronous standby.

A real engine process stores on a primary whose standby is synchronous, and
reaches the database through a multi-host DSN with
`target_session_attrs=read-write`. Under MLLP load the primary is SIGKILLed.
While no primary is reachable, MLLP answers AR (CE in enhanced mode) and HTTP ingest 503 with
Retry-After; nothing is half-written. The standby is then promoted and the
engine resumes by itself: every message it acknowledged, before or after
the failover, is in the database and delivered, and the audit chain
verifies on the promoted server.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.e2e.harness import eventually
from tests.e2e.procs import END, START, ack_code, free_port, start_engine, start_receiver
from tests.pg_pair import PgPair, pg_pair
from tests.postgres import PG_PASSWORD
from thumpflow.testing.generators import adt_a01

MESSAGES = 240
CONNECTIONS = 3
KILL_AFTER = 80

CONFIG = """\
version: 1
store:
  type: postgresql
  path: {folder}/thumpflow.db
  dsn: "{dsn}"
  password_env: THUMPFLOW_TEST_PG_PASSWORD
api: {{host: 127.0.0.1, port: {api}}}
channels:
  - id: adt
    source: {{type: mllp, host: 127.0.0.1, port: {port}}}
    http_ingest: {{enabled: true}}
    destinations:
      - id: ehr
        type: http
        url: http://127.0.0.1:{receiver}/deliveries
        format: raw
        timeout_seconds: 5
        retry: {{base: 50ms, cap: 500ms, max_attempts: 100000}}
        circuit_breaker: {{failure_threshold: 100000, cooldown: 100ms}}
"""


async def exchange(port: int, message: bytes) -> str:
    """One message on a new connection: the ACK code, or '' when the connection failed."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    except (OSError, TimeoutError):
        return ""
    try:
        writer.write(START + message + END)
        await writer.drain()
        frame = await asyncio.wait_for(reader.readuntil(END), 30)
        return ack_code(frame)
    except (OSError, asyncio.IncompleteReadError, TimeoutError):
        return ""
    finally:
        writer.close()


async def send_until_accepted(
    port: int, queue: list[tuple[str, bytes]], acked: set[str], answers: list[str]
) -> None:
    """Send each message until it is acknowledged (AA/CA), as a sender resends after AR."""
    for control, message in queue:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            code = await exchange(port, message)
            answers.append(code)
            if code in {"AA", "CA"}:
                acked.add(control)
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"{control} was never acknowledged")


def ingest(api: int, token: str, body: bytes) -> tuple[int, str | None]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{api}/api/channels/adt/messages",
        data=body,
        method="POST",
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "x-application/hl7-v2+er7",
            "Idempotency-Key": "probe-while-down",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers.get("Retry-After")
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Retry-After")


def stored_keys(pair: PgPair) -> list[str]:
    with pair.connect(pair.standby_port) as conn:
        return [str(row[0]) for row in conn.execute("SELECT idempotency_key FROM events")]


def test_the_engine_follows_a_promoted_standby_and_loses_nothing_acknowledged(
    tmp_path: Path,
) -> None:
    os.environ["THUMPFLOW_TEST_PG_PASSWORD"] = PG_PASSWORD
    port, api, receiver_port = free_port(), free_port(), free_port()
    applied_log = tmp_path / "applied.jsonl"
    receiver = start_receiver(receiver_port, applied_log, tmp_path / "receiver.out")
    queues: list[list[tuple[str, bytes]]] = [[] for _ in range(CONNECTIONS)]
    for n in range(MESSAGES):
        control = f"FAIL{n:05d}"
        message = adt_a01(patient_id=f"MRN{n % 60:04d}", control_id=control, seed=n)
        queues[n % CONNECTIONS].append((control, message))
    acked: set[str] = set()
    answers: list[str] = []
    with pg_pair() as pair:
        config = tmp_path / "cluster.yaml"
        config.write_text(
            CONFIG.format(folder=tmp_path, dsn=pair.dsn, api=api, port=port, receiver=receiver_port)
        )
        engine = start_engine(config, port, tmp_path / "engine.log")
        try:
            token_file = tmp_path / "admin-token"
            asyncio.run(eventually(token_file.exists, 30, "the admin token"))
            token = token_file.read_text().strip()

            async def scenario() -> None:
                senders = asyncio.gather(
                    *(send_until_accepted(port, queue, acked, answers) for queue in queues)
                )
                await eventually(lambda: len(acked) >= KILL_AFTER, 60, "acks before the kill")
                pair.kill_primary()
                down = await exchange(port, adt_a01(patient_id="MRN9999", control_id="DOWN1"))
                assert down in {"AR", "CE"}, "a refusal to resend later while no primary is up"
                status, retry_after = await asyncio.to_thread(
                    ingest, api, token, adt_a01(patient_id="MRN9998", control_id="DOWN2")
                )
                assert (status, retry_after is not None) == (503, True)
                await asyncio.to_thread(pair.promote)
                await senders

            asyncio.run(scenario())
            assert len(acked) == MESSAGES
            assert {"AR", "CE"} & set(answers), "the senders met the outage"

            def delivered() -> set[str]:
                lines = applied_log.read_text().splitlines() if applied_log.exists() else []
                return {
                    body.split("|")[9]
                    for line in lines
                    if (body := json.loads(line)["body"]).startswith("MSH")
                }

            asyncio.run(eventually(lambda: delivered() >= acked, 90, "every ack delivered"))
            keys = stored_keys(pair)
            assert len(keys) == len(set(keys)), "each message stored once"
            assert {key.rsplit("|", 1)[-1] for key in keys} >= acked
            assert not any("DOWN" in key for key in keys), "nothing written while down"
            verify = subprocess.run(
                [sys.executable, "-m", "thumpflow.cli.main", "audit", "verify", "--config", config],
                check=False,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert verify.returncode == 0, verify.stdout + verify.stderr
        finally:
            engine.terminate()
            engine.wait(timeout=60)
            receiver.terminate()
            receiver.wait(timeout=30)
