"""A 202 from HTTP ingest survives SIGKILL: the engine as a real process, killed and restarted."""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from pathlib import Path

from tests.e2e.procs import free_port, start_engine, start_receiver

CONFIG = """\
version: 1
store: {{path: {db}}}
api: {{host: 127.0.0.1, port: {api}}}
channels:
  - id: web
    http_ingest: {{enabled: true}}
    destinations:
      - id: ehr
        type: http
        url: http://127.0.0.1:{receiver}/deliveries
        format: raw
        timeout_seconds: 2
        retry: {{base: 50ms, cap: 200ms, max_attempts: 10000}}
        circuit_breaker: {{failure_threshold: 1000, cooldown: 100ms}}
"""


def post(api: int, token: str, body: bytes, key: str) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{api}/api/channels/web/messages",
        data=body,
        method="POST",
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "x-application/hl7-v2+er7",
            "Idempotency-Key": key,
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read())


def adt(control: str) -> bytes:
    return (
        f"MSH|^~\\&|REG|GEN|ENG|GEN|20261121083000||ADT^A08^ADT_A01|{control}|P|2.5\r"
        f"PID|1||MRN-{control}^^^GEN^MR||Doe^Jane||19800101|F\r"
    ).encode()


def applied_keys(log: Path) -> list[str]:
    if not log.exists():
        return []
    return [json.loads(line)["event_id"] for line in log.read_text().splitlines() if line]


def test_accepted_messages_are_delivered_after_a_sigkill(tmp_path: Path) -> None:
    api, receiver_port = free_port(), free_port()
    config = tmp_path / "thumpflow.yaml"
    config.write_text(CONFIG.format(db=tmp_path / "flow.db", api=api, receiver=receiver_port))
    log = tmp_path / "engine.log"
    engine = start_engine(config, api, log)
    accepted: list[str] = []
    try:
        token = (tmp_path / "admin-token").read_text().strip()
        for n in range(20):
            status, body = post(api, token, adt(f"K{n}"), f"key-{n}")
            assert status == 202
            accepted.append(body["event_id"])
        engine.send_signal(signal.SIGKILL)
        engine.wait(10)
    finally:
        if engine.poll() is None:
            engine.kill()
            engine.wait(10)
    receiver_log = tmp_path / "applied.jsonl"
    receiver = start_receiver(receiver_port, receiver_log, tmp_path / "receiver.out")
    engine = start_engine(config, api, log)
    try:
        status, body = post(api, token, adt("K0"), "key-0")
        assert (status, body["event_id"]) == (202, accepted[0]), "a repeat after restart"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(applied_keys(receiver_log)) < len(accepted):
            time.sleep(0.1)
        delivered = applied_keys(receiver_log)
        assert sorted(delivered) == sorted(accepted)
        assert len(delivered) == len(set(delivered))
    finally:
        for process in (engine, receiver):
            process.terminate()
            process.wait(20)
