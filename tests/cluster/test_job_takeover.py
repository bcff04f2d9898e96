"""A node SIGKILLed in the middle of a scheduled batch run: another node finishes the work.

Two engine processes (`thumpflow run`) on one PostgreSQL database, a job due
every two seconds reading a census CSV from a shared drop folder into an
SQLite warehouse table and an NDJSON extract (both in the shared folder).
The node holding the scheduler duty starts the run; its transform blocks at
record 750 of 1,500 (after 700 records were written), and the test SIGKILLs
it there. The other node takes the scheduler duty over once the dead node's
lease expired, closes the dead node's run as interrupted (its node is gone),
and runs the next window, which reads the same file again. The end state is
what one clean run gives: 1,500 rows in the warehouse, each once, an
extract of 1,500 lines, the file moved to `processed/`, and `thumpflow audit
verify` passes on the shared store.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.cluster.support import pg_store
from tests.cluster.test_failover import until
from tests.e2e.procs import free_port, start_engine
from tests.postgres import PASSWORD_ENV, PG_PASSWORD, PgCluster
from tests.thump.support import HEADER, csv_rows
from tests.thump.transforms import SENTINEL_VARIABLE

ROOT = Path(__file__).parents[2]
ROWS = 1500

CONFIG = """\
version: 1
{store}cluster: {{node_id: {node}, lease: 2s, shared_folders: [{shared}]}}
api: {{enabled: false}}
channels:
  - id: adt
    source: {{type: mllp, host: 127.0.0.1, port: {port}}}
    destinations:
      - {{id: ehr, type: http, url: "http://127.0.0.1:9/"}}
jobs:
  - id: census
    schedule: {{interval: 2s}}
    missed_runs: run_once
    source: {{type: file_drop, directory: {shared}/drop, pattern: '*.csv', format: csv,
              manifest: none, settle_seconds: 0}}
    schema:
      - {{name: mrn, required: true}}
      - {{name: family}}
      - {{name: dob, type: date, required: true}}
      - {{name: ward}}
      - {{name: admitted_at, type: datetime}}
      - {{name: discharged_at, type: datetime}}
    business_key: [mrn]
    batch_size: 50
    transform: tests.thump.transforms:pause_midway
    destinations:
      - id: warehouse
        type: sql_upsert
        dialect: sqlite
        database: {shared}/warehouse.db
        table: census
        key_columns: [mrn]
        columns: {{mrn: mrn, family: family, dob: dob, ward: ward}}
        create_table: true
      - {{id: extract, type: batch_file, directory: {shared}/out, name: 'census-{{run}}.ndjson',
          format: ndjson, source_system: thumpflow}}
"""


class Shared:
    """What the test reads from the shared database."""

    def __init__(self, dsn: str) -> None:
        self.conn = psycopg.connect(dsn, autocommit=True)

    def scheduler_holder(self) -> str | None:
        row = self.conn.execute(
            "SELECT owner FROM leases WHERE name = 'duty:scheduler'"
            " AND expires_at > extract(epoch FROM clock_timestamp())"
        ).fetchone()
        return str(row[0]).partition("/")[0] if row else None

    def runs(self) -> list[tuple[int, str, str | None, int]]:
        """(run id, status, error, records read and valid) of every census run, oldest first."""
        rows = self.conn.execute(
            "SELECT run_id, status, error, valid_count FROM runs WHERE job_id = 'census'"
            " ORDER BY run_id"
        ).fetchall()
        return [(int(r[0]), str(r[1]), r[2], int(r[3])) for r in rows]


def start_node(tmp_path: Path, dsn: str, node: str) -> tuple[subprocess.Popen[bytes], Path]:
    home = tmp_path / node
    home.mkdir()
    port = free_port()
    config = home / "cluster.yaml"
    config.write_text(
        CONFIG.format(
            store=pg_store(dsn, home),
            node=node,
            shared=tmp_path / "shared",
            port=port,
        )
    )
    return start_engine(config, port, home / "engine.log"), config


@pytest.mark.slow
def test_a_node_killed_midway_through_a_scheduled_run_leaves_the_work_to_another(
    pg_cluster: PgCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dsn = pg_cluster.new_database()
    monkeypatch.setenv(PASSWORD_ENV, PG_PASSWORD)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv(SENTINEL_VARIABLE, str(tmp_path / "midway"))
    drop = tmp_path / "shared" / "drop"
    drop.mkdir(parents=True)
    (drop / "census-1.csv").write_text("\n".join([HEADER, *csv_rows(ROWS)]) + "\n")
    shared = Shared(dsn)
    first, first_config = start_node(tmp_path, dsn, "a")
    second: subprocess.Popen[bytes] | None = None
    try:
        asyncio.run(until(lambda: shared.scheduler_holder() == "a", 30, "a schedules"))
        second, _ = start_node(tmp_path, dsn, "b")
        asyncio.run(until((tmp_path / "midway").exists, 60, "a's run reaches record 750"))
        [(killed_run, status, _, _)] = shared.runs()
        assert status == "running"
        first.send_signal(signal.SIGKILL)
        first.wait(30)
        asyncio.run(until(lambda: shared.scheduler_holder() == "b", 30, "b takes the scheduler"))

        def finished() -> bool:
            return any(status == "succeeded" for _, status, _, _ in shared.runs())

        asyncio.run(until(finished, 60, "a run by b succeeds"))
        runs = shared.runs()
        assert runs[0][:3] == (killed_run, "failed", "interrupted")
        done = [run for run in runs if run[1] == "succeeded" and run[3]]
        assert [run[3] for run in done] == [ROWS], "one run read every record, once"
        assert not [run for run in runs if run[1] == "running" and run[0] == killed_run]

        with sqlite3.connect(tmp_path / "shared" / "warehouse.db") as warehouse:
            rows = warehouse.execute("SELECT mrn, family FROM census ORDER BY mrn").fetchall()
        assert [mrn for mrn, _ in rows] == [f"MRN{n:06d}" for n in range(1, ROWS + 1)]
        assert all(family == f"Family{int(mrn[3:])}" for mrn, family in rows)
        extracts = sorted((tmp_path / "shared" / "out").glob("census-*.ndjson"))
        lines = [json.loads(line) for path in extracts for line in path.read_text().splitlines()]
        assert sorted(record["mrn"] for record in lines) == [mrn for mrn, _ in rows]
        assert not list(drop.glob("*.csv")), "the file was taken"
        assert list((drop / "processed").glob("census-1.csv*"))
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(timeout=60)
    verify = subprocess.run(
        [sys.executable, "-m", "thumpflow.cli.main", "audit", "verify", "--config", first_config],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
