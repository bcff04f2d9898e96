"""Two engine nodes on one PostgreSQL store share each destination's partitions.

In-process engines on the session's throwaway cluster, each with its own MLLP
port, an HTTP receiver out. Each patient's messages alternate between the
nodes (the next sent after the previous ACK), so order across nodes is what
is checked. Then one node stops and the other takes every partition over.
The killed-process and frozen-process cases are `test_failover.py`'s.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.api_support import api_client
from tests.e2e.harness import eventually, outbox_drained
from tests.e2e.procs import ack_code, send_in_order
from tests.store.test_postgresql import adt, check_delivered, config_text
from thumpflow.config import parse_config
from thumpflow.core.access import Role
from thumpflow.core.cluster import NodeInfo, partition_of
from thumpflow.core.errors import ConfigError
from thumpflow.core.event import DeadLetterFilter
from thumpflow.core.search import PauseKind
from thumpflow.hl7v2 import Message
from thumpflow.runtime.engine import Engine
from thumpflow.testing.http_receiver import HttpReceiver

PARTITIONS = 8


def node_config(dsn: str, receiver_url: str, tmp_path: Path, node_id: str) -> str:
    text = config_text(dsn, receiver_url, tmp_path / node_id)
    return text.replace(
        "api: {enabled: false}\n",
        f"api: {{enabled: false}}\ncluster: {{node_id: {node_id}, partitions: {PARTITIONS}, "
        "lease: 1s}\n",
    )


def cluster_status_cli(config: Path) -> subprocess.CompletedProcess[str]:
    """`thumpflow cluster status` as a process."""
    return subprocess.run(
        [sys.executable, "-m", "thumpflow.cli.main", "cluster", "status", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def node_of(owner: str) -> str:
    """The node id of a lease owner (`<node id>/<incarnation>`)."""
    return owner.partition("/")[0]


def owned(engine: Engine) -> list[int]:
    assert engine.cluster is not None
    return engine.cluster.outboxes["ehr"].owned_partitions


async def send_patients(
    nodes: list[Engine], patients: int, per_patient: int, tag: str
) -> dict[str, list[str]]:
    """Each patient's messages in sequence, message k to node (patient + k) % len(nodes)."""
    sent: dict[str, list[str]] = {}
    connections = asyncio.Semaphore(4)

    async def one(p: int) -> None:
        mrn = f"MRN{p}"
        for k in range(per_patient):
            node = nodes[(p + k) % len(nodes)]
            control = f"{tag}-{p}-{k}"
            async with connections:
                [ack] = await send_in_order(node.source_port("adt"), [adt(control, mrn)])
            assert ack_code(ack) == "AA"
            sent.setdefault(f"GEN|{mrn}", []).append(control)

    await asyncio.gather(*(one(p) for p in range(patients)))
    return sent


@asynccontextmanager
async def two_nodes(dsn: str, tmp_path: Path) -> AsyncIterator[tuple[HttpReceiver, Engine, Engine]]:
    """A receiver and two started nodes a and b (b's configuration also in b.yaml), once
    they split the partitions evenly; all stopped after."""
    receiver = HttpReceiver()
    await receiver.start()
    a = Engine(parse_config(node_config(dsn, receiver.url, tmp_path, "a"), "a.yaml"))
    b_text = node_config(dsn, receiver.url, tmp_path, "b")
    (tmp_path / "b.yaml").write_text(b_text)
    b = Engine(parse_config(b_text, "b.yaml"))
    await a.start()
    await b.start()
    try:
        await eventually(
            lambda: len(owned(a)) == len(owned(b)) == PARTITIONS // 2, 15, "an even split"
        )
        yield receiver, a, b
    finally:
        await a.stop()
        await b.stop()
        await receiver.close()


def test_two_nodes_split_the_partitions_keep_order_and_one_takes_over_when_the_other_stops(
    dsn: str, tmp_path: Path
) -> None:

    async def scenario() -> None:
        async with two_nodes(dsn, tmp_path) as (receiver, a, b):
            assert sorted(owned(a) + owned(b)) == list(range(PARTITIONS))
            duties = {r.name: node_of(r.owner) for r in await a.store.leases("duty:") if r.held}
            assert set(duties) == {"duty:alerts", "duty:audit_anchor", "duty:subscriptions"}
            assert set(duties.values()) <= {"a", "b"}
            async with (
                api_client(a, Role.VIEWER) as client,
                client.get("/api/cluster") as response,
            ):
                assert response.status == 200
                view = await response.json()
            assert (view["store"], view["node_id"], view["partitions"]) == ("postgresql", "a", 8)
            shown = {node["node_id"]: node for node in view["nodes"]}
            assert shown["a"]["this_node"] and not shown["b"]["this_node"]
            assert all(node["alive"] and node["heartbeat_age"] < 2 for node in shown.values())
            assert shown["a"]["partitions"] == {"ehr": owned(a)}
            assert shown["b"]["partitions"] == {"ehr": owned(b)}
            assert sorted(shown["a"]["duties"] + shown["b"]["duties"]) == [
                "alerts",
                "audit_anchor",
                "subscriptions",
            ]
            await a.set_paused(PauseKind.DESTINATION, "ehr", True, actor="t", reason="test")
            await b.set_paused(PauseKind.CHANNEL, "adt", True, actor="t", reason="test")
            await eventually(
                lambda: b.outboxes["ehr"].paused and a.channels["adt"].ingress.paused, 10, "shared"
            )
            await b.set_paused(PauseKind.DESTINATION, "ehr", False, actor="t", reason="test")
            await a.set_paused(PauseKind.CHANNEL, "adt", False, actor="t", reason="test")
            await eventually(
                lambda: not a.outboxes["ehr"].paused and not b.channels["adt"].ingress.paused,
                10,
                "resumed everywhere",
            )
            sent = await send_patients([a, b], patients=30, per_patient=4, tag="R1")
            await outbox_drained(b, "ehr")
            assert {partition_of(f"Patient/{key}", PARTITIONS) for key in sent} == set(
                range(PARTITIONS)
            )
            check_delivered(receiver, sent)
            assert [r.status for r in receiver.requests] == [201] * 120, "one send per message"

            await a.stop()
            stopped = time.monotonic()
            await eventually(lambda: len(owned(b)) == PARTITIONS, 15, "b holds every partition")
            assert time.monotonic() - stopped < 5
            duties = {r.name: node_of(r.owner) for r in await b.store.leases("duty:") if r.held}
            assert duties == {
                "duty:alerts": "b",
                "duty:audit_anchor": "b",
                "duty:subscriptions": "b",
            }
            printed = await asyncio.to_thread(cluster_status_cli, tmp_path / "b.yaml")
            assert printed.returncode == 0, printed.stderr
            rows = {line.split()[0]: line for line in printed.stdout.splitlines()[1:]}
            assert "gone" in rows["a"] and rows["a"].rstrip().endswith("-")
            assert "alive" in rows["b"] and f"ehr {PARTITIONS}/{PARTITIONS}" in rows["b"]
            assert "alerts, audit_anchor, subscriptions" in rows["b"]
            more = await send_patients([b], patients=30, per_patient=2, tag="R2")
            await outbox_drained(b, "ehr")
            for key, controls in more.items():
                sent[key] += controls
            check_delivered(receiver, sent)
            assert b.cluster is not None
            nodes = {node.node_id: node.alive for node in await b.store.nodes()}
            assert nodes == {"a": False, "b": True}
            verdict = await b.store.verify_audit()
            assert verdict.intact, verdict.problem

    asyncio.run(scenario())


def test_a_second_live_node_with_the_same_id_is_a_located_error_at_start(
    dsn: str, tmp_path: Path
) -> None:

    async def scenario() -> None:
        url = "http://127.0.0.1:9/"
        first = Engine(parse_config(node_config(dsn, url, tmp_path, "a"), "a.yaml"))
        await first.start()
        try:
            twin = Engine(parse_config(node_config(dsn, url, tmp_path / "twin", "a"), "b.yaml"))
            with pytest.raises(ConfigError) as refused:
                await twin.start()
            [problem] = refused.value.problems
            assert problem.startswith("cluster.node_id: node id 'a' is already in use")
            assert f"pid {os.getpid()}" in problem
        finally:
            await first.stop()
        again = Engine(parse_config(node_config(dsn, url, tmp_path / "twin", "a"), "b.yaml"))
        await again.start()
        await again.stop()

    asyncio.run(scenario())


def test_a_replay_through_one_node_reaches_the_partitions_another_node_sends(
    dsn: str, tmp_path: Path
) -> None:

    async def scenario() -> None:
        async with two_nodes(dsn, tmp_path) as (receiver, a, b):
            receiver.set_faults(reject_marker="REFUSE")
            refused = [adt(f"REFUSE{p}", f"MRN{p}") for p in range(16)]
            acks = await send_in_order(a.source_port("adt"), refused)
            assert [ack_code(ack) for ack in acks] == ["AA"] * 16
            keys = {f"Patient/GEN|MRN{p}" for p in range(16)}
            assert {partition_of(k, PARTITIONS) for k in keys} & set(owned(b)), "b sends some"
            assert {partition_of(k, PARTITIONS) for k in keys} & set(owned(a)), "a sends some"
            await outbox_drained(a, "ehr")
            assert len(await a.store.dead_letters(DeadLetterFilter())) == 16
            receiver.set_faults(reject_marker=None)
            result = await a.replay(DeadLetterFilter(), "ops", "receiver fixed")
            assert len(result.replayed) == 16
            await outbox_drained(a, "ehr")
            applied = sorted(Message.parse(body).control_id for body in receiver.applied.values())
            assert applied == sorted(f"REFUSE{p}" for p in range(16))

    asyncio.run(scenario())


def test_a_node_whose_id_was_taken_over_hands_back_everything(dsn: str, tmp_path: Path) -> None:

    async def scenario() -> None:
        async with two_nodes(dsn, tmp_path) as (_, a, b):
            assert a.cluster is not None
            usurper = NodeInfo("a", "usurper", "elsewhere", 1, "-")
            await b.store.join_node(usurper, 1.0, replace=a.cluster.node.incarnation)
            await eventually(lambda: a.cluster is not None and a.cluster.replaced, 10, "noticed")
            await eventually(lambda: owned(a) == [], 10, "a hands its partitions back")
            await eventually(lambda: len(owned(b)) == PARTITIONS, 15, "b takes them")
            await eventually(
                lambda: all(d.lease is None for d in a.cluster.duties),  # type: ignore[union-attr]
                10,
                "a runs no duty",
            )
            started = time.monotonic()
            while True:
                records = await b.store.leases("duty:")
                if {r.name: node_of(r.owner) for r in records if r.held} == {
                    "duty:alerts": "b",
                    "duty:audit_anchor": "b",
                    "duty:subscriptions": "b",
                }:
                    break
                assert time.monotonic() - started < 15, "b runs every duty"
                await asyncio.sleep(0.1)

    asyncio.run(scenario())
