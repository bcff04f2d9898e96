"""A node that has joined but not opened its outboxes yet holds no partitions back.

A restarted node joins the node table early in its start (it proves its
predecessor dead and releases that process's leases), then builds and opens
its channels; on a loaded machine that takes seconds, and a node can also hang
there. Until it says it is ready, the running nodes must not keep partitions
free for it: they take them within a beat, and share them out with it only
once it is ready. (Before, node a handed half the partitions back for b and
nothing sent them until b had started.)
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.api_support import api_client
from tests.cluster.test_partitions import PARTITIONS, node_config, owned
from tests.e2e.harness import eventually
from thumpflow.config import parse_config
from thumpflow.core.access import Role
from thumpflow.runtime.engine import Engine
from thumpflow.testing.http_receiver import HttpReceiver

LEASE = 1.0  # node_config's `cluster.lease`


def test_a_node_still_starting_takes_no_share_and_gets_one_once_ready(
    dsn: str, tmp_path: Path
) -> None:

    async def scenario() -> None:
        receiver = HttpReceiver()
        await receiver.start()
        a = Engine(parse_config(node_config(dsn, receiver.url, tmp_path, "a"), "a.yaml"))
        b_text = node_config(dsn, receiver.url, tmp_path, "b")
        starting = Engine(parse_config(b_text, "b.yaml"))
        ready = Engine(parse_config(b_text, "b.yaml"))
        await a.start()
        try:
            await eventually(lambda: len(owned(a)) == PARTITIONS, 15, "a holds every partition")
            # b joins and beats, but its channels and outboxes are not opened.
            await starting.store.open()
            assert starting.cluster is not None
            await starting.cluster.start()
            joined = await a.store.db_now()
            nodes = {node.node_id: node for node in await a.store.nodes()}
            assert nodes["b"].alive and not nodes["b"].ready
            assert nodes["b"].state == "starting" and nodes["a"].state == "alive"

            # Renewed twice since b joined: a full beat of a's saw b alive.
            for _ in range(300):
                held = [r for r in await a.store.leases("partition:") if r.held]
                if all(r.expires_at >= joined + LEASE + LEASE / 3 for r in held):
                    break
                await asyncio.sleep(0.02)
            else:
                raise AssertionError("a did not renew its leases after b joined")
            assert len(held) == PARTITIONS, "nothing is handed back to a node still starting"
            assert len(owned(a)) == PARTITIONS
            async with (
                api_client(a, Role.VIEWER) as client,
                client.get("/api/cluster") as response,
            ):
                view = {node["node_id"]: node for node in (await response.json())["nodes"]}
            assert (view["b"]["alive"], view["b"]["ready"]) == (True, False)
            assert view["b"]["partitions"] == {} and view["a"]["ready"]

            await starting.cluster.stop()
            await starting.store.close()
            await ready.start()
            await eventually(
                lambda: len(owned(a)) == len(owned(ready)) == PARTITIONS // 2,
                15,
                "an even split once b is ready",
            )
            nodes = {node.node_id: node for node in await a.store.nodes()}
            assert ready.cluster is not None
            assert nodes["b"].ready and nodes["b"].incarnation == ready.cluster.node.incarnation
        finally:
            await a.stop()
            await ready.stop()
            await receiver.close()

    asyncio.run(scenario())
