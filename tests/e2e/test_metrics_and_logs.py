"""Metrics agree with what happened, and a whole run's logs hold no patient data.

The engine runs as a real process with `--log-format json` at DEBUG and its
HTTP API on a free port; an in-process HTTP receiver dead-letters one
message (422). Admitted ADT and ORU messages, a resend, a message rejected
at ingress, one whose transform fails with an exception quoting the whole
message, and a dead-lettered one carry distinctive identifiers and names;
`/metrics` must count each, and after the engine stops its whole log output
must be JSON lines that name none of them. Job run figures are scraped
from an in-process engine whose job runs through the HTTP API.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import aiohttp

from tests.api_support import api_client
from tests.e2e.procs import ack_code, free_port, send_in_order, start_engine
from tests.flow.test_metrics import Sample, parse
from tests.thump.support import config_text, csv_rows, drop, now_clock
from thumpflow.config import parse_config
from thumpflow.core.event import Event
from thumpflow.hl7v2 import Message
from thumpflow.runtime.engine import Engine
from thumpflow.testing.http_receiver import HttpReceiver

CONFIG = """\
version: 1
store: {{path: {db}}}
api: {{host: 127.0.0.1, port: {api}}}
channels:
  - id: clinical
    source: {{type: mllp, host: 127.0.0.1, port: {port}}}
    transform: tests.e2e.test_metrics_and_logs:careless_transform
    destinations:
      - id: ehr
        type: http
        url: {url}
        format: raw
        retry: {{base: 10ms, cap: 50ms}}
"""

MARKER = "REJECTME"

# Identifiers and names that must never reach a log line or a metric.
SECRETS = (
    "ZQX9182736",
    "Quetzalcoatlova",
    "Xiuhnel",
    "ZQX5550417",
    "Ixtlilxochitl",
    "Marisolenka",
    "ZQX7733119",
    "Tlahuicolez",
    "ZQX4411902",
    "Tenochtitlanez",
    "8675309",
    "ZQX6060842",
    "Huitzilopochtlina",
    "Tonatiuh",
    "DOE",
    "ZQX2020311",
)

FAILS = "Huitzilopochtlina"


def careless_transform(event: Event, message: Message) -> Iterator[Event]:
    """Passes each event on; fails on one family name with an error quoting the message."""
    if FAILS.encode() in event.body:
        raise ValueError(f"cannot map {event.body.decode()}")
    yield replace(event, event_id=f"{event.event_id}T", causation_id=event.event_id)


def adt(control: str, mrn: str, family: str, given: str, note: str = "") -> bytes:
    return (
        f"MSH|^~\\&|REG|GEN|ENG|GEN|20261121083000||ADT^A01^ADT_A01|{control}|P|2.5\r"
        "EVN|A01|20261121083000\r"
        f"PID|1||{mrn}^^^GEN^MR||{family}^{given}{note}||19800101|F|||"
        "12 Calle Real^^Springfield^IL^62701||(217)867-5309\r"
        "PV1|1|I|ICU^12^A\r"
    ).encode()


def oru(control: str, mrn: str, family: str, given: str) -> bytes:
    return (
        f"MSH|^~\\&|LAB|GEN|ENG|GEN|20261121090000||ORU^R01^ORU_R01|{control}|P|2.5\r"
        f"PID|1||{mrn}^^^GEN^MR||{family}^{given}||19750505|M\r"
        "OBR|1|ORD1|FIL1|2345-7^Glucose^LN|||20261121083000\r"
        "OBX|1|NM|2345-7^Glucose^LN||182|mg/dL|70-99|H|||F\r"
    ).encode()


def broken(control: str, mrn: str, family: str, given: str) -> bytes:
    """An unescaped carriage return splits PID: the name starts a segment of its own."""
    return (
        f"MSH|^~\\&|REG|GEN|ENG|GEN|20261121083000||ADT^A08^ADT_A01|{control}|P|2.5\r"
        f"PID|1||{mrn}^^^GEN^MR||\r{family}^{given}||19900101|M\r"
    ).encode()


async def scrape(api: int, token: str) -> tuple[str, str]:
    """Scrape as Prometheus would, with a bearer token."""
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession(headers=headers) as session,
        session.get(f"http://127.0.0.1:{api}/metrics") as response,
    ):
        assert response.status == 200
        return response.headers["Content-Type"], await response.text()


def value(samples: list[Sample], name: str, **labels: str) -> float:
    found = [v for n, got, v in samples if n == name and got == labels]
    assert len(found) == 1, f"{name}{labels}: {found}"
    return found[0]


def test_metrics_count_what_happened_and_logs_hold_no_patient_data(tmp_path: Path) -> None:
    async def main() -> None:
        receiver = HttpReceiver()
        await receiver.start()
        receiver.set_faults(reject_marker=MARKER)
        port, api = free_port(), free_port()
        config = tmp_path / "metrics.yaml"
        config.write_text(
            CONFIG.format(db=tmp_path / "metrics.db", api=api, port=port, url=receiver.url)
        )
        log = tmp_path / "engine.log"
        engine = start_engine(config, port, log, log_format="json", log_level="DEBUG")
        try:
            admit = adt("ADT1", "ZQX9182736", "Quetzalcoatlova", "Xiuhnel")
            messages = [
                admit,
                oru("ORU1", "ZQX5550417", "Ixtlilxochitl", "Marisolenka"),
                broken("BAD1", "ZQX4411902", "Tenochtitlanez", "Citlali"),
                adt("FAIL1", "ZQX6060842", FAILS, "Tonatiuh"),
                adt("DEAD1", "ZQX7733119", "Tlahuicolez", "Yaretzi", note=MARKER),
                admit,
                b"DOE|JOHN|ZQX2020311\r" + admit,
            ]
            acks = await send_in_order(port, messages)
            assert [ack_code(ack) for ack in acks] == ["AA", "AA", "AE", "AE", "AA", "AA", "AE"]

            ids = {"channel": "clinical", "destination": "ehr"}
            token = (tmp_path / "admin-token").read_text().strip()
            for _ in range(200):
                content_type, text = await scrape(api, token)
                _, _, samples = parse(text)
                done = value(samples, "thumpflow_delivered_total", **ids) == 2
                if done and value(samples, "thumpflow_dead_total", **ids) == 1:
                    break
                await asyncio.sleep(0.05)
            assert content_type.startswith("text/plain; version=0.0.4")
            types, _, samples = parse(text)
            channel = {"channel": "clinical"}
            assert value(samples, "thumpflow_received_total", **channel) == 3
            assert value(samples, "thumpflow_duplicates_total", **channel) == 1
            rejected = "thumpflow_rejected_total"
            assert value(samples, rejected, **channel, reason="structure") == 2
            assert value(samples, rejected, **channel, reason="transform") == 1
            assert value(samples, "thumpflow_delivered_total", **ids) == 2
            assert value(samples, "thumpflow_dead_total", **ids) == 1
            failed = "thumpflow_failed_attempts_total"
            assert value(samples, failed, **ids, kind="permanent") == 1
            assert value(samples, failed, **ids, kind="transient") == 0
            assert value(samples, "thumpflow_superseded_total", **ids) == 0
            assert value(samples, "thumpflow_pending", **ids) == 0
            assert value(samples, "thumpflow_oldest_pending_age_seconds", **ids) == 0
            assert value(samples, "thumpflow_circuit_state", **ids) == 0
            assert value(samples, "thumpflow_delivery_lag_seconds_count", **ids) == 2
            lag_inf = value(samples, "thumpflow_delivery_lag_seconds_bucket", **ids, le="+Inf")
            assert lag_inf == 2
            attempts = value(samples, "thumpflow_attempt_duration_seconds_count", **ids)
            assert attempts >= 3
            assert math.isfinite(value(samples, "thumpflow_attempt_duration_seconds_sum", **ids))
            assert types["thumpflow_delivery_lag_seconds"] == "histogram"
            assert not [secret for secret in SECRETS if secret in text]
        finally:
            engine.terminate()
            engine.wait(timeout=30)
            await receiver.close()
        assert engine.returncode == 0
        assert len(receiver.applied) == 2

        output = log.read_text(encoding="utf-8")
        lines = output.splitlines()
        records = [json.loads(line) for line in lines]
        assert all(isinstance(record, dict) for record in records)
        for record in records:
            assert {"time", "level", "logger", "message"} <= record.keys(), record
        found = [secret for secret in SECRETS if secret in output]
        assert not found, f"patient data in the log: {found}"
        rejects = [record for record in records if "rejected input" in record["message"]]
        assert len(rejects) == 3
        assert "transform failed: ValueError at test_metrics_and_logs.py:" in rejects[1]["message"]
        assert rejects[0]["channel"] == "clinical" and rejects[0]["level"] == "WARNING"
        assert rejects[0]["peer"].startswith("127.0.0.1:")
        assert any(record.get("logger") == "thumpflow.flow.ingress" for record in records)
        assert any(record.get("channel") == "clinical" for record in records)

    asyncio.run(main())


def test_job_run_figures_are_scraped_from_the_recorded_runs(tmp_path: Path) -> None:
    config = parse_config(config_text(tmp_path))
    drop(tmp_path, "census-1.csv", csv_rows(10))

    async def main() -> None:
        engine = Engine(config, clock=now_clock())
        await engine.start()
        try:
            async with api_client(engine) as client:
                _, _, samples = parse(await (await client.get("/metrics")).text())
                assert value(samples, "thumpflow_job_running", job="census") == 0
                assert not [s for s in samples if s[0] == "thumpflow_job_last_run_status"]
                assert (
                    await client.post("/api/jobs/census/runs", json={"reason": "test run"})
                ).status == 202
                job = {"job": "census"}
                for _ in range(500):
                    _, _, samples = parse(await (await client.get("/metrics")).text())
                    finished = "thumpflow_job_last_run_finished_timestamp_seconds"
                    if [s for s in samples if s[0] == finished]:
                        break
                    await asyncio.sleep(0.01)
                status = "thumpflow_job_last_run_status"
                assert value(samples, status, **job, status="succeeded") == 1
                assert value(samples, status, **job, status="failed") == 0
                records = "thumpflow_job_last_run_records"
                assert value(samples, records, **job, count="written") == 10
                assert value(samples, "thumpflow_job_running", **job) == 0
                success = value(samples, "thumpflow_job_last_success_timestamp_seconds", **job)
                assert success == value(samples, finished, **job)
        finally:
            await engine.stop()

    asyncio.run(main())
