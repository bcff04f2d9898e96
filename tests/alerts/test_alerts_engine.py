"""Alerts from a real engine: real MLLP in, a real HTTP destination broken on purpose,
a real HTTP receiver as the webhook, the real API for listing and acknowledging."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.api_support import api_client
from tests.e2e.harness import eventually
from tests.e2e.procs import ack_code, send_in_order
from tests.e2e.test_flow_guarantees import adt
from thumpflow.config import parse_config
from thumpflow.core.access import Role
from thumpflow.core.alerts import AlertKind
from thumpflow.runtime.engine import Engine
from thumpflow.testing.http_receiver import HttpReceiver

CONFIG = """\
version: 1
store: {{path: {db}}}
api: {{enabled: false}}
alerts:
  interval: 50ms
  webhook_backoff: 50ms
  webhook_attempts: 20
  disk_free_min_percent: {disk}
  dead_letter_growth: {{count: 3, window: {window}}}
  webhooks:
    - url: {hook}
      headers: {{X-Hook-Key: {{env: THUMPFLOW_TEST_HOOK_KEY}}}}
      timeout_seconds: 2
channels:
  - id: adt
    latency_budget: 0.5
    source: {{type: mllp, host: 127.0.0.1, port: 0}}
    destinations:
      - id: ehr
        type: http
        url: {url}
        format: raw
        timeout_seconds: 2
        retry: {{base: 20ms, cap: 100ms, max_attempts: {attempts}}}
        circuit_breaker: {{failure_threshold: {threshold}, cooldown: 200ms}}
"""

MRN, NAME = "MRN4417", "Doe^Jane"


def notices(hook: HttpReceiver, kind: AlertKind | None = None) -> list[dict[str, Any]]:
    bodies = [json.loads(r.body) for r in hook.requests if r.status < 300]
    return [b for b in bodies if kind is None or b["kind"] == kind.value]


@asynccontextmanager
async def engine_with(
    tmp_path: Path,
    hook: HttpReceiver,
    destination: HttpReceiver,
    *,
    disk: float = 0,
    window: str = "60s",
    attempts: int = 1000,
    threshold: int = 1000,
) -> AsyncIterator[Engine]:
    text = CONFIG.format(
        db=tmp_path / "a.db",
        disk=disk,
        window=window,
        hook=hook.url,
        url=destination.url,
        attempts=attempts,
        threshold=threshold,
    )
    engine = Engine(parse_config(text, "alerts.yaml"))
    await engine.start()
    try:
        yield engine
    finally:
        await engine.stop()


async def receivers() -> tuple[HttpReceiver, HttpReceiver]:
    hook, destination = HttpReceiver(), HttpReceiver()
    await hook.start()
    await destination.start()
    return hook, destination


async def more_evaluations(engine: Engine, count: int = 10) -> None:
    target = engine.alerts.evaluations + count
    await eventually(lambda: engine.alerts.evaluations >= target, 30, "evaluations")


@pytest.fixture(autouse=True)
def hook_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THUMPFLOW_TEST_HOOK_KEY", "s3cret-hook-key")


def test_broken_destination_raises_latency_and_circuit_alerts_once_and_clears_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)

    async def main() -> None:
        hook, destination = await receivers()
        destination.set_faults(unavailable=10**9, retry_after=0.05)
        try:
            async with engine_with(tmp_path, hook, destination, threshold=2) as engine:
                acks = await send_in_order(engine.source_port("adt"), [adt("C1", MRN)])
                assert [ack_code(a) for a in acks] == ["AA"]
                await eventually(
                    lambda: notices(hook, AlertKind.LATENCY_BUDGET), 30, "latency alert"
                )
                await eventually(lambda: notices(hook, AlertKind.CIRCUIT_OPEN), 30, "circuit alert")
                await more_evaluations(engine)
                latency = notices(hook, AlertKind.LATENCY_BUDGET)
                assert [(n["transition"], n["subject"]) for n in latency] == [("raised", "ehr")]
                assert [n["transition"] for n in notices(hook, AlertKind.CIRCUIT_OPEN)] == [
                    "raised"
                ]
                assert hook.requests[0].body and all(r.path == "/deliveries" for r in hook.requests)

                async with api_client(engine, Role.VIEWER) as viewer:
                    listed = (await (await viewer.get("/api/alerts?active=true")).json())["alerts"]
                    assert {(a["kind"], a["subject"]) for a in listed} == {
                        ("latency_budget", "ehr"),
                        ("circuit_open", "ehr"),
                    }
                    metrics = await (await viewer.get("/metrics")).text()
                    assert 'thumpflow_alerts_active{kind="latency_budget"} 1' in metrics
                    assert 'thumpflow_alerts_active{kind="circuit_open"} 1' in metrics

                destination.set_faults(unavailable=0)
                await eventually(
                    lambda: len(notices(hook, AlertKind.LATENCY_BUDGET)) == 2, 30, "cleared"
                )
                await eventually(
                    lambda: len(notices(hook, AlertKind.CIRCUIT_OPEN)) == 2, 30, "cleared"
                )
                await more_evaluations(engine)
                assert [n["transition"] for n in notices(hook, AlertKind.LATENCY_BUDGET)] == [
                    "raised",
                    "cleared",
                ]
                assert not engine.alerts.active
                audit = await engine.store.audit(None, 100)
                actions = [e.action for e in audit if e.subject.startswith("alert:")]
                assert sorted(actions) == sorted(["alert.raised", "alert.cleared"] * 2)
        finally:
            await hook.close()
            await destination.close()
        # No patient data reached the webhook or the log.
        sent = b"".join(r.body for r in hook.requests)
        for secret in (MRN.encode(), b"Doe", b"Jane"):
            assert secret not in sent
        warnings = [r.getMessage() for r in caplog.records if "ALERT" in r.getMessage()]
        assert len(warnings) == 4
        assert all(r.levelno == logging.WARNING for r in caplog.records if "ALERT" in r.msg)
        assert not any(MRN in m or "Jane" in m for m in warnings)

    asyncio.run(main())


def test_dead_letter_growth_raises_and_clears_after_the_window(tmp_path: Path) -> None:
    async def main() -> None:
        hook, destination = await receivers()
        destination.set_faults(reject_marker="REJECTME")
        try:
            async with engine_with(tmp_path, hook, destination, window="1s", attempts=1) as engine:
                messages = [adt(f"D{i}", f"M{i}", note="REJECTME") for i in range(3)]
                acks = await send_in_order(engine.source_port("adt"), messages)
                assert [ack_code(a) for a in acks] == ["AA"] * 3
                await eventually(
                    lambda: notices(hook, AlertKind.DEAD_LETTER_GROWTH), 30, "growth alert"
                )
                raised = notices(hook, AlertKind.DEAD_LETTER_GROWTH)[0]
                assert raised["subject"] == "ehr" and "3 deliveries went dead" in raised["message"]
                await eventually(
                    lambda: len(notices(hook, AlertKind.DEAD_LETTER_GROWTH)) == 2, 30, "cleared"
                )
                assert notices(hook, AlertKind.DEAD_LETTER_GROWTH)[1]["transition"] == "cleared"
        finally:
            await hook.close()
            await destination.close()

    asyncio.run(main())


def test_disk_alert_acknowledged_through_the_api_and_kept_across_a_restart(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        hook, destination = await receivers()
        try:
            async with engine_with(tmp_path, hook, destination, disk=100) as engine:
                await eventually(lambda: notices(hook, AlertKind.DISK_NEARLY_FULL), 30, "disk")
                alert = notices(hook, AlertKind.DISK_NEARLY_FULL)[0]
                assert alert["subject"] == "store" and alert["severity"] == "critical"
                assert hook.requests[0].body
                alert_id = alert["alert_id"]
                async with api_client(engine, Role.VIEWER) as viewer:
                    body = {"reason": "looking"}
                    denied = await viewer.post(f"/api/alerts/{alert_id}/ack", json=body)
                    assert denied.status == 403
                async with api_client(engine, Role.OPERATOR) as operator:
                    no_reason = await operator.post(f"/api/alerts/{alert_id}/ack", json={})
                    assert no_reason.status == 422
                    unknown = await operator.post("/api/alerts/9999/ack", json=body)
                    assert unknown.status == 404
                    acked = await operator.post(
                        f"/api/alerts/{alert_id}/ack", json={"reason": "cleaning old exports"}
                    )
                    assert acked.status == 200
                    view = await acked.json()
                    assert view["acknowledged_by"] == "test-operator" and view["active"]
                audit = await engine.store.audit(f"alert:{alert_id}")
                ack = [e for e in audit if e.action == "alert.acknowledged"]
                assert [(e.actor, e.detail) for e in ack] == [
                    ("test-operator", "cleaning old exports")
                ]
            # A restart keeps the active alert: no second alert, no second notice.
            async with engine_with(tmp_path, hook, destination, disk=100) as engine:
                await more_evaluations(engine)
                assert [a.alert_id for a in engine.alerts.active] == [alert_id]
                assert len(notices(hook, AlertKind.DISK_NEARLY_FULL)) == 1
            # With the threshold at 0 the condition stops and the alert clears.
            async with engine_with(tmp_path, hook, destination, disk=0) as engine:
                await eventually(
                    lambda: len(notices(hook, AlertKind.DISK_NEARLY_FULL)) == 2, 30, "cleared"
                )
        finally:
            await hook.close()
            await destination.close()

    asyncio.run(main())


def test_a_failing_webhook_is_retried_and_the_alert_stays_recorded(tmp_path: Path) -> None:
    async def main() -> None:
        hook, destination = await receivers()
        hook.set_faults(unavailable=4, retry_after=0.01)
        try:
            async with engine_with(tmp_path, hook, destination, disk=100) as engine:
                await eventually(lambda: [a for a in engine.alerts.active], 30, "raised")
                recorded = await engine.store.alerts(active_only=True)
                assert [a.kind for a in recorded] == [AlertKind.DISK_NEARLY_FULL]
                await eventually(lambda: notices(hook), 30, "delivered after retries")
                failed = [r for r in hook.requests if r.status == 503]
                assert len(failed) == 4
                assert all(r.body == hook.requests[-1].body for r in failed)
                assert len(notices(hook)) == 1
        finally:
            await hook.close()
            await destination.close()

    asyncio.run(main())


def test_heartbeat_alerts_are_raised_and_cleared_by_their_caller(tmp_path: Path) -> None:
    async def main() -> None:
        hook, destination = await receivers()
        try:
            async with engine_with(tmp_path, hook, destination) as engine:
                first = await engine.alerts.raise_alert(
                    AlertKind.HEARTBEAT_MISSING, "subscription.lab", "no heartbeat for 120s"
                )
                again = await engine.alerts.raise_alert(
                    AlertKind.HEARTBEAT_MISSING, "subscription.lab", "no heartbeat for 180s"
                )
                assert again.alert_id == first.alert_id
                await more_evaluations(engine)
                assert [a.kind for a in engine.alerts.active] == [AlertKind.HEARTBEAT_MISSING]
                cleared = await engine.alerts.clear_alert(
                    AlertKind.HEARTBEAT_MISSING, "subscription.lab"
                )
                assert cleared is not None and cleared.cleared_at is not None
                assert (
                    await engine.alerts.clear_alert(AlertKind.HEARTBEAT_MISSING, "subscription.lab")
                    is None
                )
                await eventually(lambda: len(notices(hook)) == 2, 30, "both notices")
                assert [n["transition"] for n in notices(hook)] == ["raised", "cleared"]
                assert all(r.body for r in hook.requests)
        finally:
            await hook.close()
            await destination.close()

    asyncio.run(main())
