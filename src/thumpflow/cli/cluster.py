"""`thumpflow cluster status`: the nodes sharing the store, their heartbeats, what each holds.

It opens the store read-only, so it works whether or not engines run. Times
are the database's clock. With the embedded SQLite store there is one node,
which holds everything; the command says so.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json

from thumpflow.cli._shared import config_argument, table, when
from thumpflow.config import load_config
from thumpflow.config.model import Config
from thumpflow.core.cluster import ClusterStatus
from thumpflow.runtime.build import open_store
from thumpflow.runtime.cluster import read_status


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the `status` action."""
    actions = parser.add_subparsers(dest="cluster_command", required=True, metavar="ACTION")
    status = actions.add_parser(
        "status", help="nodes, heartbeats, and the partitions and duties each holds"
    )
    status.add_argument("--json", action="store_true", help="print JSON")
    config_argument(status)


def run(args: argparse.Namespace) -> int:
    """Print the cluster's status; see the module docstring."""
    config = load_config(args.config)
    if config.store.type == "sqlite":
        print("embedded SQLite store: one node, which holds every partition and duty")
        return 0
    status = asyncio.run(_read(config))
    if args.json:
        print(json.dumps(dataclasses.asdict(status), indent=2))
        return 0
    print(_render(status, config.cluster.partitions))
    return 0


async def _read(config: Config) -> ClusterStatus:
    store = open_store(config, read_only=True)
    await store.open()
    try:
        return await read_status(store)
    finally:
        await store.close()


def _render(status: ClusterStatus, partitions: int) -> str:
    rows = [["NODE", "STATE", "HOST", "PID", "API", "HEARTBEAT", "PARTITIONS", "DUTIES"]]
    for held in status.nodes:
        node = held.node
        parts = ", ".join(
            f"{destination} {len(ps)}/{partitions}" for destination, ps in held.partitions.items()
        )
        rows.append(
            [
                node.node_id,
                node.state,
                node.host,
                str(node.pid),
                node.api,
                f"{max(0.0, status.at - node.heartbeat_at):.1f} s ago ({when(node.heartbeat_at)})",
                parts or "-",
                ", ".join(held.duties) or "-",
            ]
        )
    text = table(rows)
    if status.unheld:
        text += f"\nnot held now: {', '.join(status.unheld)}"
    return text
