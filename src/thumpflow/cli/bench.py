"""`thumpflow bench`: durable ingest and end-to-end speed over MLLP.

For each connection count it starts a fresh engine as a real process (its own
SQLite store, `synchronous=FULL`, a file destination), drives it over
loopback with realistic ~1.8 KB ADT^A01 messages, and reports messages/s,
ACK p50/p99, the engine's peak RSS and the time until the last message was in
the destination file. Every run is bounded by its message count and a deadline.
With `--encrypt` the store encrypts message content at rest (a fresh key in a
key file beside the store), to measure what encryption costs. With
`--postgresql DSN` each run's store is a fresh database `thumpflow_bench_cN`
on that server (created, dropped first if it exists; password from libpq's
`PGPASSWORD`) instead of a SQLite file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from thumpflow.runtime.keys import new_key
from thumpflow.testing.generators import adt_a01
from thumpflow.testing.load import drive

CONFIG = """\
version: 1
store: {{{store}{encryption}}}
cluster: {{enabled: {cluster}}}
api: {{enabled: false}}
channels:
  - id: bench
    source: {{type: mllp, host: 127.0.0.1, port: {port}, max_connections: 256,
              max_connections_per_peer: 256}}
    destinations:
      - id: out
        type: file
        path: {out}
        format: hl7
        memory_capacity: 50000
        high_water: 1000000
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _records(path: Path) -> int:
    try:
        with path.open("rb") as handle:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    except FileNotFoundError:
        return 0


def _wait_listening(port: int, process: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the engine exited during start-up")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the engine did not start listening in time")


def fresh_database(server: str, name: str) -> str:
    """Create (again) database `name` on the PostgreSQL server `server`; its DSN."""
    import psycopg
    from psycopg import conninfo, sql

    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return conninfo.make_conninfo(server, dbname=name)


def _database_bytes(dsn: str) -> int:
    import psycopg

    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    return int(row[0]) if row else 0


def run_once(
    workdir: Path,
    messages: list[bytes],
    connections: int,
    *,
    encrypt: bool = False,
    postgresql: str | None = None,
) -> dict[str, Any]:
    run_dir = workdir / f"c{connections}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    port = _free_port()
    out = run_dir / "out.hl7"
    config = run_dir / "bench.yaml"
    encryption = ""
    if encrypt:
        key_file = run_dir / "bench.key"
        key_file.write_text(new_key())
        encryption = f", encryption: {{keys: [{{id: bench, key_file: {key_file}}}]}}"
    dsn = None
    store = f"path: {run_dir / 'bench.db'}"
    if postgresql is not None:
        dsn = fresh_database(postgresql, f"thumpflow_bench_c{connections}")
        store = f'type: postgresql, dsn: "{dsn}", path: {run_dir / "bench.db"}'
    text = CONFIG.format(store=store, port=port, out=out, encryption=encryption, cluster="false")
    config.write_text(text)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "thumpflow.cli.main",
            "run",
            "--config",
            str(config),
            "--log-level",
            "WARNING",
        ],
        stdin=subprocess.DEVNULL,
    )
    try:
        _wait_listening(port, process, time.monotonic() + 30)
        try:
            import uvloop

            result = uvloop.run(drive("127.0.0.1", port, messages, connections))
        except ImportError:
            result = asyncio.run(drive("127.0.0.1", port, messages, connections))
        started = time.monotonic()
        deadline = started + 300
        while _records(out) < result.acked and time.monotonic() < deadline:
            time.sleep(0.02)
        drained = _records(out)
        end_to_end = result.elapsed + (time.monotonic() - started)
        rss = _peak_rss_mb(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=60)
    return {
        "connections": connections,
        "messages": len(messages),
        "acked": result.acked,
        "negative_acks": result.negative,
        "errors": result.errors[:3],
        "ingest_per_second": round(result.rate),
        "ack_p50_ms": round(result.percentile(0.50) * 1000, 2),
        "ack_p99_ms": round(result.percentile(0.99) * 1000, 2),
        "delivered": drained,
        "end_to_end_seconds": round(end_to_end, 2),
        "end_to_end_per_second": round(drained / end_to_end) if end_to_end > 0 else 0,
        "peak_rss_mb": round(rss, 1),
        "db_bytes_per_message": round(
            (_database_bytes(dsn) if dsn else (run_dir / "bench.db").stat().st_size)
            / max(1, len(messages))
        ),
    }


def bench(args: argparse.Namespace) -> int:
    workdir = Path(args.workdir).resolve()
    counts = [int(part) for part in args.connections.split(",") if part.strip()]
    messages = [
        adt_a01(patient_id=f"MRN{index % 5000:06d}", control_id=f"B{index:09d}", seed=index)
        for index in range(args.messages)
    ]
    size = sum(len(message) for message in messages) / len(messages)
    report: dict[str, Any] = {
        "interpreter": (
            f"{sys.executable} ({platform.python_implementation()} {platform.python_version()})"
        ),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d"),
        "message_bytes": round(size),
        "encrypted": bool(args.encrypt),
        "store": "postgresql" if args.postgresql else "sqlite",
        "runs": [
            run_once(workdir, messages, count, encrypt=args.encrypt, postgresql=args.postgresql)
            for count in counts
        ],
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"interpreter {report['interpreter']}; {report['machine']}; {report['date']}")
    print(
        f"{len(messages)} ADT^A01 messages of about {report['message_bytes']} bytes per run"
        + f", {report['store']} store"
        + (", encrypted" if args.encrypt else "")
    )
    print(
        f"{'conns':>5} {'ingest/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'e2e/s':>7} {'e2e s':>7} "
        f"{'RSS MB':>7} {'B/msg':>6}"
    )
    for run in report["runs"]:
        print(
            f"{run['connections']:>5} {run['ingest_per_second']:>9} {run['ack_p50_ms']:>7} "
            f"{run['ack_p99_ms']:>7} {run['end_to_end_per_second']:>7} "
            f"{run['end_to_end_seconds']:>7} {run['peak_rss_mb']:>7} "
            f"{run['db_bytes_per_message']:>6}"
        )
        if run["errors"] or run["negative_acks"] or run["delivered"] != run["acked"]:
            print(
                f"      problems: {run['errors']} negative={run['negative_acks']} "
                f"delivered={run['delivered']}"
            )
    return 0
