"""Nodes and leases: the writer operations every backend runs the same way.

Each runs inside its backend writer's transaction (see `thumpflow.store.ops`),
which on PostgreSQL holds the `audit_head` row lock from its first statement:
lease changes of all nodes are serialised, so two callers never both get an
epoch. `now` is the database's clock (PostgreSQL `clock_timestamp()`; the
embedded SQLite store's own clock), read once per operation. Joins,
takeovers and leaves are audited; heartbeats and renewals are not.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from thumpflow.core.cluster import (
    Lease,
    LeaseLostError,
    NodeConflictError,
    NodeInfo,
    NodeRecord,
)
from thumpflow.store.ops import Db, WriteContext

Now = Callable[[], float]

NODE_COLUMNS = "node_id, incarnation, host, pid, api, started_at, heartbeat_at, expires_at, ready"


@dataclass(slots=True, frozen=True)
class Join:
    node: NodeInfo
    ttl: float
    replace: str | None


@dataclass(slots=True, frozen=True)
class Beat:
    node_id: str
    incarnation: str
    ttl: float
    ready: bool


@dataclass(slots=True, frozen=True)
class Leave:
    node_id: str
    incarnation: str


@dataclass(slots=True, frozen=True)
class Acquire:
    name: str
    owner: str
    ttl: float


@dataclass(slots=True, frozen=True)
class Renew:
    lease: Lease
    ttl: float


def node_record(row: Any, now: float) -> NodeRecord:
    node_id, incarnation, host, pid, api, started, beat, expires, ready = row
    alive = expires > now
    return NodeRecord(
        node_id, incarnation, host, int(pid), api, started, beat, expires, alive, bool(ready)
    )


def join_nodes(context: WriteContext, now: Now, joins: list[Join]) -> list[Any]:
    """Enter each node (see `ClusterStore.join_node`); a conflict is that caller's answer."""
    db = context.conn
    answers: list[Any] = []
    for join in joins:
        at = now()
        node = join.node
        row = db.execute(
            f"SELECT {NODE_COLUMNS} FROM nodes WHERE node_id = ?", (node.node_id,)
        ).fetchone()
        if row is not None:
            holder = node_record(row, at)
            if holder.alive and holder.incarnation not in (node.incarnation, join.replace):
                answers.append(
                    NodeConflictError(
                        f"node id {node.node_id!r} is already in use by a running node "
                        f"(host {holder.host}, pid {holder.pid}, last heartbeat "
                        f"{max(0.0, at - holder.heartbeat_at):.1f} s ago); give each node its "
                        "own cluster.node_id",
                        holder,
                    )
                )
                continue
        db.execute("DELETE FROM nodes WHERE node_id = ?", (node.node_id,))
        db.execute(
            f"INSERT INTO nodes ({NODE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)",
            (node.node_id, node.incarnation, node.host, node.pid, node.api, at, at, at + join.ttl),
        )
        context.audit.append(
            [(at, f"node:{node.node_id}", "node.joined", f"node:{node.node_id}", "joined")]
        )
        answers.append(None)
    return answers


def heartbeats(context: WriteContext, now: Now, beats: list[Beat]) -> list[Any]:
    at = now()
    return [
        context.conn.execute(
            "UPDATE nodes SET heartbeat_at = ?, expires_at = ?, ready = ?"
            " WHERE node_id = ? AND incarnation = ?",
            (at, at + beat.ttl, int(beat.ready), beat.node_id, beat.incarnation),
        ).rowcount
        > 0
        for beat in beats
    ]


def leave_nodes(context: WriteContext, now: Now, leaves: list[Leave]) -> list[Any]:
    at = now()
    for leave in leaves:
        left = context.conn.execute(
            "UPDATE nodes SET expires_at = ? WHERE node_id = ? AND incarnation = ?",
            (at, leave.node_id, leave.incarnation),
        ).rowcount
        if left:
            context.audit.append(
                [(at, f"node:{leave.node_id}", "node.left", f"node:{leave.node_id}", "left")]
            )
    return [None] * len(leaves)


def acquire_leases(context: WriteContext, now: Now, calls: list[Acquire]) -> list[Any]:
    """Take each lease when it is free, expired, released or the caller's (see `ClusterStore`)."""
    db = context.conn
    answers: list[Any] = []
    for call in calls:
        at = now()
        row = db.execute(
            "SELECT owner, epoch, expires_at FROM leases WHERE name = ?", (call.name,)
        ).fetchone()
        if row is None:
            epoch = 1
            db.execute(
                "INSERT INTO leases (name, owner, epoch, acquired_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (call.name, call.owner, epoch, at, at + call.ttl),
            )
        else:
            owner, held_epoch, expires_at = row
            if expires_at > at and owner != call.owner:
                answers.append(None)
                continue
            epoch = int(held_epoch) if expires_at > at else int(held_epoch) + 1
            db.execute(
                "UPDATE leases SET owner = ?, epoch = ?, acquired_at = ?, expires_at = ?"
                " WHERE name = ?",
                (call.owner, epoch, at, at + call.ttl, call.name),
            )
            if epoch == held_epoch:
                answers.append(Lease(call.name, call.owner, epoch, at, at + call.ttl))
                continue
        context.audit.append(
            [(at, call.owner, "lease.acquired", f"lease:{call.name}", f"epoch {epoch}")]
        )
        answers.append(Lease(call.name, call.owner, epoch, at, at + call.ttl))
    return answers


def renew_leases(context: WriteContext, now: Now, calls: list[Renew]) -> list[Any]:
    answers: list[Any] = []
    for call in calls:
        at = now()
        lease = call.lease
        renewed = context.conn.execute(
            "UPDATE leases SET expires_at = ? WHERE name = ? AND owner = ? AND epoch = ?"
            " AND expires_at > ?",
            (at + call.ttl, lease.name, lease.owner, lease.epoch, at),
        ).rowcount
        answers.append(
            Lease(lease.name, lease.owner, lease.epoch, at, at + call.ttl) if renewed else None
        )
    return answers


def release_leases(context: WriteContext, now: Now, leases: list[Lease]) -> list[Any]:
    answers: list[Any] = []
    for lease in leases:
        at = now()
        released = context.conn.execute(
            "UPDATE leases SET expires_at = ? WHERE name = ? AND owner = ? AND epoch = ?"
            " AND expires_at > ?",
            (at, lease.name, lease.owner, lease.epoch, at),
        ).rowcount
        answers.append(released > 0)
    return answers


def check_fences(db: Db, fences: Sequence[Lease], lock: str) -> list[LeaseLostError | None]:
    """For each of `fences`, in one read: None while it (owner and epoch) is its
    lease's current holder; the refusal otherwise.

    `lock` is the backend's row lock clause (" FOR UPDATE" or nothing), so
    that no takeover commits between this check and the fenced writes.
    """
    names = sorted({fence.name for fence in fences})
    held = {
        row[0]: (row[1], int(row[2]))
        for row in db.execute(
            f"SELECT name, owner, epoch FROM leases WHERE name IN ({', '.join('?' * len(names))})"
            f" ORDER BY name{lock}",
            names,
        )
    }
    return [
        None
        if held.get(fence.name) == (fence.owner, fence.epoch)
        else LeaseLostError(
            f"lease {fence.name} epoch {fence.epoch} of {fence.owner} is no longer held; "
            "the write was refused"
        )
        for fence in fences
    ]
