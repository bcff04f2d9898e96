"""The writer handlers every backend runs the same way, wired to one backend's differences.

A backend's writer adds only what is its own (admission, with its way of
handing out ids) and, for SQLite, reclaiming space after a purge. What the
shared handlers need to know of a backend is `BackendSql`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from thumpflow.core.clock import Clock
from thumpflow.core.outcome import Outcome
from thumpflow.core.retention import PurgeCounts, RekeyCounts
from thumpflow.store.cluster_handlers import cluster_handlers
from thumpflow.store.crypt import PayloadCipher
from thumpflow.store.group import Deltas, Handler, Kind, LoadPending, Replay, common_handlers
from thumpflow.store.ops import Dialect, WriteContext
from thumpflow.store.ops import upkeep as _upkeep
from thumpflow.store.ops.flow import DeadFilter, reject_inputs, replay_dead
from thumpflow.store.ops.outcomes import STATE_COLUMNS, record_outcomes, states_of
from thumpflow.store.rows import DELIVERY_COLUMNS, delivery_from_row

_SELECT_PENDING = (
    f"SELECT {DELIVERY_COLUMNS} FROM deliveries d JOIN events e ON e.event_seq = d.event_seq"
    " WHERE d.destination_id = ? AND d.status = 0 AND d.delivery_id > ?"
    " ORDER BY d.delivery_id LIMIT ?"
)


@dataclass(slots=True, frozen=True)
class BackendSql:
    """A backend's dialect, dead-letter filter, the row lock its replays and outcomes take
    (`" FOR UPDATE ..."` or nothing), its applied-version upsert, and `newer_delivered`:
    for dead delivery `?`, one row (id, delivered_at) of the latest delivery to the same
    destination with the same ordering key, committed after it and delivered (the order
    check of a replay; no row, or a NULL id, when there is none)."""

    dialect: Dialect
    dead_filter: DeadFilter
    replay_lock: str
    newer_delivered: str
    states_lock: str
    upsert_version: str
    clock_sql: str | None = None


def shared_handlers(context: WriteContext, sql: BackendSql, clock: Clock) -> dict[Kind, Handler]:
    """Every handler but admission's (see the module docstring)."""
    db, codec, dialect = context.conn, context.codec, sql.dialect

    def record_states(calls: list[Sequence[Outcome]], deltas: Deltas) -> None:
        ids = [outcome.delivery_id for outcomes in calls for outcome in outcomes]
        rows = db.execute(
            f"SELECT {STATE_COLUMNS} FROM deliveries WHERE delivery_id {dialect.in_ids}"
            f" ORDER BY delivery_id{sql.states_lock}",
            (dialect.ids(ids),),
        ).fetchall()
        record_outcomes(context, calls, deltas, states_of(rows), sql.upsert_version)

    def record(calls: list[Sequence[Outcome]], deltas: Deltas) -> list[Any]:
        record_states(calls, deltas)
        return [None] * len(calls)

    def load_pending(loads: list[LoadPending], deltas: Deltas) -> list[Any]:
        return [
            [
                delivery_from_row(row, codec)
                for row in db.execute(
                    _SELECT_PENDING, (load.destination_id, load.after_delivery_id, load.limit)
                )
            ]
            for load in loads
        ]

    def replay(replays: list[Replay], deltas: Deltas) -> list[Any]:
        return replay_dead(
            context,
            replays,
            deltas,
            dead_filter=sql.dead_filter,
            lock=sql.replay_lock,
            newer_delivered=sql.newer_delivered,
            at=clock.now(),
        )

    def purge(steps: list[_upkeep.PurgeBatch], deltas: Deltas) -> list[Any]:
        return [_upkeep.purge_batch(db, dialect, step) for step in steps]

    def purge_done(totals: list[PurgeCounts], deltas: Deltas) -> list[Any]:
        return _upkeep.audit_purges(context, totals, clock.now())

    def rekey(steps: list[_upkeep.RekeyBatch], deltas: Deltas) -> list[Any]:
        return [_upkeep.rekey_batch(db, cipher(), step) for step in steps]

    def rekey_done(totals: list[RekeyCounts], deltas: Deltas) -> list[Any]:
        return _upkeep.finish_rekeys(context, dialect, totals, clock.now())

    def cipher() -> PayloadCipher:
        return _upkeep.cipher_of(codec)

    return {
        **common_handlers(context),
        Kind.REJECT: lambda rejects, deltas: reject_inputs(context, rejects, deltas),
        Kind.RECORD: record,
        Kind.LOAD_PENDING: load_pending,
        Kind.REPLAY: replay,
        Kind.PURGE: purge,
        Kind.PURGE_DONE: purge_done,
        Kind.REKEY: rekey,
        Kind.REKEY_DONE: rekey_done,
        **cluster_handlers(context, sql.clock_sql, sql.states_lock, clock, record_states),
    }
