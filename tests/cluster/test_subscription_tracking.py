"""FHIR Subscription tracking across two nodes: one saved state, one heartbeat watch.

Two engine nodes on one PostgreSQL database receive the same Subscription's
notifications (a load balancer spreads them). Each notification is folded
into the saved state on its locked row, so notifications handled at the
same time by both nodes leave no gap open that either of them saw. The
heartbeat watch is a singleton duty, and a notification handled by either
node is a sign of life for it.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from tests.cluster.support import pg_store
from thumpflow.config import parse_config
from thumpflow.core.alerts import AlertKind
from thumpflow.flow.subscription import SubscriptionReceiver
from thumpflow.runtime.engine import Engine
from thumpflow.testing.ehr import SimulatedEhr
from thumpflow.testing.http_receiver import HttpReceiver

TOPIC = "http://example.org/SubscriptionTopic/encounter-start"
EVENTS = 40

CONFIG = """\
version: 1
{store}cluster: {{node_id: {node}, lease: 1s}}
api: {{enabled: false}}
channels:
  - id: subs
    source:
      type: fhir_subscription
      base_url: {base}
      subscription_id: enc-1
      topic: {topic}
      content: full-resource
      heartbeat_period: 1s
    destinations:
      - {{id: out, type: http, url: {url}, format: raw}}
"""


def receiver_of(engine: Engine) -> SubscriptionReceiver:
    return engine.subscriptions["subs"]


def test_two_nodes_fold_notifications_into_one_state_and_share_the_heartbeat_watch(
    dsn: str, tmp_path: Path
) -> None:

    async def scenario() -> None:
        async with SimulatedEhr() as ehr:
            out = HttpReceiver()
            await out.start()
            feed = ehr.subscribe("enc-1", "http://127.0.0.1:9/unset", topic=TOPIC, token=None)
            feed.content = "full-resource"
            nodes = [
                Engine(
                    parse_config(
                        CONFIG.format(
                            store=pg_store(dsn, tmp_path / name),
                            node=name,
                            base=ehr.base_url,
                            topic=TOPIC,
                            url=out.url,
                        ),
                        f"{name}.yaml",
                    )
                )
                for name in ("a", "b")
            ]
            for node in nodes:
                await node.start()
            try:
                a, b = nodes
                await feed.event({"resourceType": "Patient", "id": "p0"}, send=False)
                first = json.dumps(feed.bundle("event-notification", feed.events[:1])).encode()
                assert (await receiver_of(a).notify(first)).status == "ok"
                for n in range(1, EVENTS):
                    await feed.event({"resourceType": "Patient", "id": f"p{n}"}, send=False)
                bundles = [
                    json.dumps(feed.bundle("event-notification", [event])).encode()
                    for event in feed.events[1:]
                ]
                answers = await asyncio.gather(
                    *(
                        receiver_of(nodes[n % 2]).notify(bundle)
                        for n, bundle in enumerate(reversed(bundles))
                    )
                )
                assert {answer.status for answer in answers} == {"ok"}
                saved = await a.store.subscription_state("subs", "enc-1")
                assert saved is not None and (saved.last, saved.missed) == (EVENTS, ())
                gaps = [
                    alert
                    for alert in await a.store.alerts(active_only=True)
                    if alert.kind is AlertKind.SUBSCRIPTION_GAP
                ]
                assert gaps == [], "no gap stays open that either node saw"

                records = await a.store.leases("duty:subscriptions")
                assert len([record for record in records if record.held]) == 1
                watcher = next(
                    node
                    for node in nodes
                    if any(
                        record.held and record.owner.startswith(f"{node.cluster.node.node_id}/")  # type: ignore[union-attr]
                        for record in records
                    )
                )
                other = b if watcher is a else a
                heartbeat = json.dumps(feed.bundle("heartbeat", [])).encode()
                for _ in range(8):
                    assert (await receiver_of(other).notify(heartbeat)).status == "ok"
                    await asyncio.sleep(0.4)
                    assert not await receiver_of(watcher).check_heartbeat(), (
                        "the other node's heartbeats are a sign of life for the watcher"
                    )

                async def missing() -> bool:
                    found = await a.store.alerts(active_only=True)
                    return any(x.kind is AlertKind.HEARTBEAT_MISSING for x in found)

                started = time.monotonic()
                while not await missing():
                    assert time.monotonic() - started < 10, "silence alerted by the watch duty"
                    await asyncio.sleep(0.1)
            finally:
                for node in nodes:
                    await node.stop()
                await out.close()

    asyncio.run(scenario())
