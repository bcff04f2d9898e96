"""SQLite: `delivery_sample` walks only its indexes (the contract is in contract/)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from thumpflow.store.sqlite import SqliteStore, _freshness

from .support import run

T0 = 1_700_000_000.0


def test_delivery_sample_reads_only_indexes(tmp_path: Path) -> None:
    path = tmp_path / "plan.db"
    run(lambda: SqliteStore(path), lambda store: store.pending_count("ehr"))
    conn = sqlite3.connect(path)
    plans = {
        sql: [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
        for sql, params in (
            (_freshness._DELIVERED_COUNT, ("ehr", T0, 10)),
            (_freshness._DELIVERED, ("ehr", T0, 10)),
            (_freshness._DEAD_COUNT, (T0, "ehr", 10)),
            (_freshness._DEAD, (T0, "ehr", 10)),
        )
    }
    conn.close()
    delivered_count, delivered_rows, dead_count, dead_rows = plans.values()
    for steps in (delivered_count, delivered_rows):
        assert any("COVERING INDEX deliveries_delivered" in s for s in steps), steps
    for steps in (dead_count, dead_rows):
        assert any("INDEX deliveries_dead" in s for s in steps), steps
    for steps in plans.values():
        assert not any("TEMP B-TREE" in s for s in steps), steps
