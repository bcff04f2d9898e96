"""The `connection_limit` alert: raised when a channel's MLLP listener reaches a
connection limit (or is full), cleared after `connection_limit_window`; the
listener's counters in `/metrics`."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.alerts.test_alerts_engine import more_evaluations
from tests.connectors.test_mllp_source import read_frames
from tests.e2e.harness import eventually
from tests.e2e.procs import ack_code
from tests.e2e.test_flow_guarantees import adt
from thumpflow.alerts import AlertSettings, CountTrend, ListenerReading, Reading, conditions
from thumpflow.config import parse_config
from thumpflow.connectors.mllp.framing import frame
from thumpflow.core.alerts import AlertKind
from thumpflow.runtime.engine import Engine

CONFIG = """\
version: 1
store: {{path: {db}}}
api: {{enabled: false}}
alerts: {{interval: 50ms, connection_limit_window: 400ms}}
channels:
  - id: adt
    source: {{type: mllp, host: 127.0.0.1, port: 0, max_connections: 4,
              max_connections_per_peer: 1}}
    destinations:
      - {{id: out, type: file, path: {out}, format: hl7}}
"""


def limit_alerts(engine: Engine) -> list[str]:
    return [a.message for a in engine.alerts.active if a.kind is AlertKind.CONNECTION_LIMIT]


def test_reaching_a_connection_limit_raises_an_alert_that_clears_after_the_window(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        config = parse_config(CONFIG.format(db=tmp_path / "a.db", out=tmp_path / "out.hl7"))
        engine = Engine(config)
        await engine.start()
        try:
            port = engine.source_port("adt")
            source = engine.channels["adt"].source
            assert source is not None
            await more_evaluations(engine, 3)
            assert limit_alerts(engine) == []

            first_reader, first = await asyncio.open_connection("127.0.0.1", port)
            await eventually(lambda: source.connection_count == 1, 5, "first connection")
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(frame(adt("L1", "MRN1")))
            acks = await asyncio.wait_for(read_frames(reader, 1), 5)
            assert [ack_code(a) for a in acks] == ["AA"]
            assert await asyncio.wait_for(first_reader.read(100), 5) == b""

            await eventually(lambda: bool(limit_alerts(engine)), 10, "connection_limit alert")
            (message,) = limit_alerts(engine)
            assert message.startswith("channel adt: MLLP listener at its connection limit")
            assert "max_connections_per_peer last reached" in message
            assert "0 refused and 1 closed to make room" in message
            alert = next(a for a in engine.alerts.active if a.kind is AlertKind.CONNECTION_LIMIT)
            assert alert.subject == "adt"

            metrics = (await engine.render_metrics()).splitlines()
            assert 'thumpflow_mllp_connections{channel="adt"} 1' in metrics
            assert (
                'thumpflow_mllp_connections_closed_total{channel="adt",reason="evicted"} 1'
                in metrics
            )
            assert 'thumpflow_alerts_active{kind="connection_limit"} 1' in metrics

            writer.close()
            first.close()
            await eventually(lambda: not limit_alerts(engine), 10, "alert cleared")
            cleared = await engine.store.alerts(active_only=False)
            assert [a.kind for a in cleared if a.kind is AlertKind.CONNECTION_LIMIT] == [
                AlertKind.CONNECTION_LIMIT
            ]
        finally:
            await engine.stop()

    asyncio.run(main())


def test_a_full_listener_holds_the_condition_and_a_limit_reached_long_ago_does_not() -> None:
    settings = AlertSettings(connection_limit_window=300)

    def holding(connections: int, reached_at: float | None) -> list[str]:
        listener = ListenerReading("adt", connections, 64, "max_connections", reached_at, 0, 0)
        reading = Reading(at=1000.0, listeners=[listener])
        return [
            c.subject
            for c in conditions(reading, settings, CountTrend(300))
            if c.kind is AlertKind.CONNECTION_LIMIT
        ]

    assert holding(64, None) == ["adt"]
    assert holding(63, 800.0) == ["adt"]
    assert holding(63, 650.0) == []
    assert holding(10, None) == []
