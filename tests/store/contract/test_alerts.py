"""`AlertStore`: one active alert per (kind, subject), transitions audited, kept across opens."""

from __future__ import annotations

from tests.store.support import run
from thumpflow.core.alerts import AlertKind, Severity
from thumpflow.core.ports import StateStore

from .conftest import StoreFactory

T0 = 1_700_000_000.0


def test_alert_raised_once_cleared_acknowledged_and_listed(store_factory: StoreFactory) -> None:
    async def raise_them(store: StateStore) -> tuple[int, int]:
        circuit, new = await store.raise_alert(
            AlertKind.CIRCUIT_OPEN, "ehr", Severity.CRITICAL, "circuit open", T0
        )
        assert new
        again, new = await store.raise_alert(
            AlertKind.CIRCUIT_OPEN, "ehr", Severity.CRITICAL, "still open", T0 + 5
        )
        assert (new, again) == (False, circuit)
        dead, new = await store.raise_alert(
            AlertKind.DEAD_LETTER_GROWTH, "ehr", Severity.WARNING, "3 dead", T0 + 1
        )
        assert new and dead.alert_id != circuit.alert_id
        return circuit.alert_id, dead.alert_id

    circuit_id, dead_id = run(store_factory.make, raise_them)

    async def later(store: StateStore) -> None:
        assert [a.alert_id for a in await store.alerts(active_only=True)] == [dead_id, circuit_id]
        cleared = await store.clear_alert(circuit_id, T0 + 10)
        assert cleared is not None
        assert (cleared.cleared_at, cleared.kind, cleared.message) == (
            T0 + 10,
            AlertKind.CIRCUIT_OPEN,
            "circuit open",
        )
        assert await store.clear_alert(circuit_id, T0 + 11) is None
        acked = await store.acknowledge_alert(dead_id, "user:bob", "looking", T0 + 12)
        assert acked is not None
        assert (acked.acknowledged_by, acked.acknowledged_at, acked.ack_reason) == (
            "user:bob",
            T0 + 12,
            "looking",
        )
        assert await store.acknowledge_alert(9999, "user:bob", "nothing", T0 + 12) is None
        listed = await store.alerts()
        assert [a.alert_id for a in listed] == [dead_id, circuit_id]
        assert [a.alert_id for a in await store.alerts(active_only=True)] == [dead_id]
        assert len(await store.alerts(limit=1)) == 1
        reopened, new = await store.raise_alert(
            AlertKind.CIRCUIT_OPEN, "ehr", Severity.CRITICAL, "open again", T0 + 20
        )
        assert new and reopened.alert_id not in (circuit_id, dead_id)
        actions = [e.action for e in await store.audit(f"alert:{circuit_id}")]
        assert actions == ["alert.cleared", "alert.raised"]
        [ack] = await store.audit(f"alert:{dead_id}", action="alert.acknowledged")
        assert (ack.actor, ack.detail) == ("user:bob", "looking")

    run(store_factory.make, later)
