"""An alert raised by one node's monitor is cleared by another's (a cluster shares the store).

Each node keeps the alerts it raised in memory; a condition can end on a
node that did not raise it (a Subscription's last gap closed by a
notification another node handled). That node finds the alert in the store
and clears it; with nothing active there, clearing is a no-op.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from thumpflow.alerts.conditions import AlertSettings
from thumpflow.alerts.monitor import AlertMonitor
from thumpflow.core.alerts import AlertKind
from thumpflow.store.sqlite import SqliteStore
from thumpflow.testing.batch import FakeClock


def test_a_monitor_clears_an_alert_another_monitor_raised(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SqliteStore(tmp_path / "a.db")
        await store.open()
        clock = FakeClock(1_800_000_000.0)

        async def nothing() -> object:
            raise AssertionError("no evaluation in this test")

        one, other = (
            AlertMonitor(store, clock, AlertSettings(), nothing)  # type: ignore[arg-type]
            for _ in range(2)
        )
        try:
            assert await other.clear_alert(AlertKind.SUBSCRIPTION_GAP, "subs") is None
            raised = await one.raise_alert(AlertKind.SUBSCRIPTION_GAP, "subs", "3 missed")
            cleared = await other.clear_alert(AlertKind.SUBSCRIPTION_GAP, "subs")
            assert cleared is not None and cleared.alert_id == raised.alert_id
            assert not cleared.active
            assert await store.alerts(active_only=True) == []
        finally:
            await store.close()

    asyncio.run(scenario())
