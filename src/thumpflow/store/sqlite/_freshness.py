"""Reads for the dashboard's freshness figures: recent deliveries of one destination.

Every query names the index it walks over a time range (`INDEXED BY`, so an
index added later for other searches cannot take its place) and is bounded: the samples by
the caller's limit, the counts by `COUNT_CAP` rows.
"""

from __future__ import annotations

import sqlite3

from thumpflow.core.health import DeliverySample

COUNT_CAP = 1_000_000

_DELIVERED_COUNT = (
    "SELECT count(*) FROM (SELECT 1 FROM deliveries INDEXED BY deliveries_delivered"
    " WHERE destination_id = ? AND status = 1 AND delivered_at >= ? LIMIT ?)"
)
_DELIVERED = (
    "SELECT delivered_at, delivered_at - created_at FROM deliveries"
    " INDEXED BY deliveries_delivered"
    " WHERE destination_id = ? AND status = 1 AND delivered_at >= ?"
    " ORDER BY delivered_at DESC LIMIT ?"
)
_DEAD_COUNT = (
    "SELECT count(*) FROM (SELECT 1 FROM deliveries INDEXED BY deliveries_dead"
    " WHERE status = 2 AND died_at >= ? AND destination_id = ? LIMIT ?)"
)
_DEAD = (
    "SELECT died_at FROM deliveries INDEXED BY deliveries_dead"
    " WHERE status = 2 AND died_at >= ? AND destination_id = ?"
    " ORDER BY died_at DESC LIMIT ?"
)


def delivery_sample(
    conn: sqlite3.Connection, destination_id: str, since: float, limit: int
) -> DeliverySample:
    """See `core.ports.FreshnessStore.delivery_sample`; run in one read transaction."""
    delivered = conn.execute(_DELIVERED_COUNT, (destination_id, since, COUNT_CAP)).fetchone()[0]
    dead = conn.execute(_DEAD_COUNT, (since, destination_id, COUNT_CAP)).fetchone()[0]
    recent = tuple(
        (float(at), float(lag))
        for at, lag in conn.execute(_DELIVERED, (destination_id, since, limit))
    )
    died = tuple(float(row[0]) for row in conn.execute(_DEAD, (since, destination_id, limit)))
    return DeliverySample(
        destination_id=destination_id,
        since=since,
        delivered=int(delivered),
        dead=int(dead),
        recent=recent,
        died=died,
        complete=len(recent) == delivered and len(died) == dead,
    )
