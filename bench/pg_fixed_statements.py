"""Server CPU of the PostgreSQL writer's fixed statements a transaction: inlined or prepared.

Run: `PGPASSWORD=... .venv/bin/python bench/pg_fixed_statements.py --postgresql DSN`.
On a fresh database `thumpflow_fixed_bench` of that server (dropped first if
it exists, migrated by the store), one connection runs `--transactions`
transactions shaped as the writer's: BEGIN with the chain head's read and
the key-sequence upsert of eight deliveries (one round trip), then the
channel and outbox counters, the head's update, the pending notice and
COMMIT (the second). Once with the statements inlined (`ScriptDb` without
prepared statements), once prepared as the writer prepares them
(`_writer._PREPARED`), alternating in `--rounds` rounds. Printed per
transaction: the server backend's CPU (`/proc/<pid>/schedstat`, so the
server must run on this machine) and this process's.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from thumpflow.cli.bench import fresh_database
from thumpflow.store.postgresql import PostgresStore
from thumpflow.store.postgresql import _writer as writer
from thumpflow.store.postgresql._db import connect
from thumpflow.store.postgresql._script import ScriptDb

DATABASE = "thumpflow_fixed_bench"


def migrated_database(server: str) -> str:
    """A fresh database on `server` with the store's schema; its DSN."""
    dsn = fresh_database(server, DATABASE)

    async def migrate() -> None:
        store = PostgresStore(dsn)
        await store.open()
        await store.close()

    asyncio.run(migrate())
    return dsn


def backend_ns(pid: int) -> int:
    with open(f"/proc/{pid}/schedstat") as stat:
        return int(stat.read().split()[0])


def run(dsn: str, prepared: bool, transactions: int) -> tuple[float, float]:
    """(server µs, client µs) a transaction."""
    db = ScriptDb(connect(dsn, None), writer._PREPARED if prepared else ())
    row = db.conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    pid = row[0]
    server, client = backend_ns(pid), time.process_time()
    for n in range(transactions):
        read: list[object] = []
        db.defer_statement("BEGIN")
        db.defer_read(writer._HEAD, (), read.extend)
        keys = [f"MRN{n * 8 + k}" for k in range(8)]
        db.defer_read(writer._KEY_SEQUENCES, (["out"] * 8, keys, [1] * 8), read.extend)
        db.flush()
        db.defer(writer._UPSERT_CHANNEL, [("bench", 8, 0, 0, 1.7e9 + n)])
        db.defer(writer._UPSERT_OUTBOX, [("out", "bench", 0, 8, 0, 0, None)])
        db.defer(writer._SET_HEAD, [(n, "ab" * 32, n * 8, n * 8)])
        db.defer(writer._NOTIFY_PENDING, [(["out"],)])
        db.execute("COMMIT")
    server, client = backend_ns(pid) - server, time.process_time() - client
    db.conn.close()
    return server / transactions / 1000, client / transactions * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgresql", metavar="DSN", required=True)
    parser.add_argument("--transactions", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    dsn = migrated_database(args.postgresql)
    for round_ in range(args.rounds):
        forms = (False, True) if round_ % 2 == 0 else (True, False)
        for prepared in forms:
            server, client = run(dsn, prepared, args.transactions)
            name = "prepared" if prepared else "inlined"
            print(f"round {round_ + 1} {name:8} server {server:6.1f} µs  client {client:6.1f} µs")


if __name__ == "__main__":
    main()
