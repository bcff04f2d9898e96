"""Reads for the dashboard's freshness figures: recent deliveries of one destination.

Every query names the index it walks over a time range (`INDEXED BY`, so an
index added later for other searches cannot take its place) and is bounded: the samples by
the caller's limit, the counts by `reads.COUNT_CAP` rows (`thumpflow.store.reads.delivery_sample`).
"""

from __future__ import annotations

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


STATEMENTS = (_DELIVERED_COUNT, _DEAD_COUNT, _DELIVERED, _DEAD)
