"""Deliveries admitted on one node reach the node sending their partition by a notice;
the listener comes back when its connection is ended.

Every node's writer notifies PostgreSQL's `thumpflow_pending` channel at
COMMIT with the destinations that got new deliveries; each node LISTENs and
wakes that destination's tail reader. Here the partitions' polling is set to
30 s, so only the notice can make node b send, within seconds, what node a
admitted for b's partitions.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from pathlib import Path

import psycopg
import pytest

from tests.cluster.test_partitions import PARTITIONS, owned, two_nodes
from tests.e2e.harness import eventually
from tests.e2e.procs import ack_code, send_in_order
from tests.postgres import PASSWORD_ENV, PG_PASSWORD, PgCluster
from tests.store.support import admission
from tests.store.test_postgresql import adt
from thumpflow.core.cluster import partition_of
from thumpflow.flow.partitions import PartitionSettings
from thumpflow.runtime import cluster as cluster_module
from thumpflow.store.postgresql import PostgresStore

POLL = 30.0


def test_a_delivery_admitted_on_one_node_is_sent_by_its_owner_without_waiting_for_a_poll(
    pg_cluster: PgCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PG_PASSWORD)
    monkeypatch.setattr(
        cluster_module,
        "PartitionSettings",
        functools.partial(PartitionSettings, poll_seconds=POLL),
    )
    dsn = pg_cluster.new_database()

    async def scenario() -> None:
        async with two_nodes(dsn, tmp_path) as (receiver, a, b):
            assert b.cluster is not None
            assert b.cluster.outboxes["ehr"]._part.poll_seconds == POLL
            theirs = [
                p
                for p in range(200)
                if partition_of(f"Patient/GEN|MRN{p}", PARTITIONS) in set(owned(b))
            ][:5]
            # The tail readers' first passes are behind them: from now on only a poll
            # (every 30 s) or a notice wakes them.
            await asyncio.sleep(0.5)
            started = time.monotonic()
            for p in theirs:
                [ack] = await send_in_order(a.source_port("adt"), [adt(f"N{p}", f"MRN{p}")])
                assert ack_code(ack) == "AA"
            await eventually(lambda: len(receiver.applied) == len(theirs), 10, "b sends them")
            assert time.monotonic() - started < POLL / 3, "sent on the notice, not a poll"

    asyncio.run(scenario())


def test_the_listener_reconnects_after_its_connection_is_ended(
    pg_cluster: PgCluster, tmp_path: Path
) -> None:
    dsn = pg_cluster.new_database()

    async def scenario() -> None:
        store = PostgresStore(dsn)
        await store.open()
        woken: list[str] = []
        listening = asyncio.create_task(store.follow_pending(woken.append))
        try:
            await eventually(lambda: listeners(dsn) == 1, 10, "the listener is connected")
            await store.admit(admission("ehr", entity="MRN1"))
            await eventually(lambda: "ehr" in woken, 10, "woken by the first admission")
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE query LIKE 'LISTEN%%' AND pid <> pg_backend_pid()"
                )
            woken.clear()
            await eventually(lambda: listeners(dsn) == 1, 15, "the listener reconnected")
            await store.admit(admission("lab", entity="MRN2"))
            await eventually(lambda: "lab" in woken, 10, "woken again after reconnecting")
        finally:
            listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listening
            await store.close()

    asyncio.run(scenario())


def listeners(dsn: str) -> int:
    """Sessions of this database whose last statement was a LISTEN (the listener's)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query LIKE 'LISTEN%%'"
        ).fetchone()
    return int(row[0]) if row else 0
