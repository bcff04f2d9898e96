"""The cluster: nodes, their heartbeats, and the partitions and duties each holds."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from thumpflow.api.auth import Reader
from thumpflow.api.auth_first import AuthFirstRoute
from thumpflow.api.deps import EngineDep
from thumpflow.core.cluster import NodeStatus
from thumpflow.runtime.cluster import read_status

router = APIRouter(tags=["cluster"], route_class=AuthFirstRoute)


class NodeView(BaseModel):
    """One node (engine process) and what it holds; times on the database's clock."""

    node_id: str
    host: str
    pid: int
    api: str
    alive: bool
    ready: bool = Field(
        description="The node has opened its channels and outboxes and takes its share of "
        "partitions; a node alive but not ready is still starting."
    )
    started_at: float
    heartbeat_at: float
    heartbeat_age: float = Field(description="Seconds since its last heartbeat.")
    partitions: dict[str, list[int]] = Field(description="Held partitions by destination id.")
    duties: list[str] = Field(description="Singleton duties it runs (scheduler, alerts, ...).")
    this_node: bool


class ClusterView(BaseModel):
    """The cluster; `store` is `sqlite` for an embedded store (one node, holding everything)."""

    store: str
    node_id: str | None
    partitions: int
    lease_seconds: float
    nodes: list[NodeView]
    unheld: list[str] = Field(description="Leases nobody holds now (waiting for a taker).")


def _node(status: NodeStatus, at: float, me: str | None) -> NodeView:
    node = status.node
    return NodeView(
        node_id=node.node_id,
        host=node.host,
        pid=node.pid,
        api=node.api,
        alive=node.alive,
        ready=node.ready,
        started_at=node.started_at,
        heartbeat_at=node.heartbeat_at,
        heartbeat_age=max(0.0, at - node.heartbeat_at),
        partitions=status.partitions,
        duties=status.duties,
        this_node=node.node_id == me,
    )


@router.get("/api/cluster")
async def cluster(engine: EngineDep, _: Reader) -> ClusterView:
    """Every node with its heartbeat and the partitions and duties it holds."""
    spec = engine.config.cluster
    me = engine.cluster.node.node_id if engine.cluster is not None else None
    status = await read_status(engine.store)
    return ClusterView(
        store=engine.config.store.type,
        node_id=me,
        partitions=spec.partitions,
        lease_seconds=spec.lease,
        nodes=[_node(node, status.at, me) for node in status.nodes],
        unheld=status.unheld,
    )
