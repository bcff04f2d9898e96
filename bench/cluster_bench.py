"""Throughput of 1, 2 and 3 engine nodes on one PostgreSQL database, and CPU per message.

    PGPASSWORD=... .venv/bin/python bench/cluster_bench.py \\
        --postgresql "host=127.0.0.1 port=5432 user=postgres dbname=postgres" [--nodes 1 2 3]

For each node count: a fresh database `thumpflow_cluster_bench_<n>` on that
server (dropped first if it exists), an HTTP receiver process (the test
receiver: records Idempotency-Keys, fsyncs what it applies), and `n`
`thumpflow run` processes in cluster mode (default settings: 16 partitions,
5 s leases), each with its own MLLP port. `--messages` ADT^A01 messages
(about 1.9 KB, 2,000 patients) are sent over `--connections` MLLP
connections spread evenly over the nodes, each connection sending its next
message after the previous ACK. Reported: ingest (ACKs/s, ACK only after
COMMIT), end to end (until the receiver applied every message), and for
each node the CPU seconds it used (user + system, from /proc) per 1,000
messages. The load client, the receiver and PostgreSQL run on the same
machine, so on a small machine the figures are shares of the same cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

from thumpflow.testing.generators import adt_a01
from thumpflow.testing.load import LoadResult, drive

CONFIG = """\
version: 1
store: {{type: postgresql, dsn: "{dsn}", path: {home}/thumpflow.db}}
cluster: {{node_id: n{index}, enabled: {clustered}}}
api: {{enabled: false}}
channels:
  - id: bench
    source: {{type: mllp, host: 127.0.0.1, port: {port}, max_connections: 256,
              max_connections_per_peer: 256}}
    destinations:
      - id: out
        type: http
        url: http://127.0.0.1:{receiver}/deliveries
        format: raw
        concurrency: 8
        timeout_seconds: 10
        memory_capacity: 50000
        high_water: 1000000
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"a process exited with {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listening on {port}")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _fresh_database(server: str, name: str) -> str:
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    return " ".join(p for p in server.split() if not p.startswith("dbname=")) + f" dbname={name}"


def _held_partitions(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM leases WHERE name LIKE 'partition:%'"
            " AND expires_at > extract(epoch FROM clock_timestamp())"
        ).fetchone()
    return int(row[0]) if row else 0


def _applied(log: Path) -> int:
    return sum(1 for _ in log.open("rb")) if log.exists() else 0


def run_once(
    workdir: Path,
    server: str,
    nodes: int,
    messages: list[bytes],
    connections: int,
    *,
    alone: bool = False,
) -> dict[str, Any]:
    run_dir = workdir / f"n{nodes}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    dsn = _fresh_database(server, f"thumpflow_cluster_bench_{nodes}")
    receiver_port = _free_port()
    log = run_dir / "applied.jsonl"
    processes: list[subprocess.Popen[bytes]] = []
    receive = ["thumpflow.testing.http_receiver", "--port", str(receiver_port), "--log", str(log)]
    receiver = subprocess.Popen(
        [sys.executable, "-m", *receive],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    try:
        _wait_listening(receiver_port, receiver)
        ports = [_free_port() for _ in range(nodes)]
        for index, port in enumerate(ports):
            home = run_dir / f"n{index}"
            home.mkdir()
            config = home / "node.yaml"
            config.write_text(
                CONFIG.format(
                    dsn=dsn,
                    home=home,
                    index=index,
                    port=port,
                    receiver=receiver_port,
                    clustered="false" if alone else "true",
                )
            )
            run = ["thumpflow.cli.main", "run", "--config", str(config), "--log-level", "WARNING"]
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", *run],
                    stdin=subprocess.DEVNULL,
                )
            )
        for port, process in zip(ports, processes, strict=True):
            _wait_listening(port, process)
        deadline = time.monotonic() + 60
        while not alone and _held_partitions(dsn) < 16 and time.monotonic() < deadline:
            time.sleep(0.2)
        cpu_before = [_cpu_seconds(p.pid) for p in processes]

        async def load() -> list[LoadResult]:
            share = max(1, connections // nodes)
            return await asyncio.gather(
                *(
                    drive("127.0.0.1", port, messages[index::nodes], share)
                    for index, port in enumerate(ports)
                )
            )

        results = asyncio.run(load())
        ingest_elapsed = max(result.elapsed for result in results)
        acked = sum(result.acked for result in results)
        started = time.monotonic()
        while _applied(log) < acked and time.monotonic() - started < 600:
            time.sleep(0.05)
        end_to_end = ingest_elapsed + (time.monotonic() - started)
        cpu = [
            _cpu_seconds(p.pid) - before for p, before in zip(processes, cpu_before, strict=True)
        ]
        latencies = sorted(latency for result in results for latency in result.latencies)
        return {
            "nodes": nodes,
            "cluster": not alone,
            "messages": len(messages),
            "acked": acked,
            "applied": _applied(log),
            "ingest_per_second": round(acked / ingest_elapsed, 1),
            "ack_p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
            "ack_p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
            "end_to_end_per_second": round(acked / end_to_end, 1),
            "cpu_seconds_per_1000_messages_by_node": [
                round(seconds * 1000 / max(1, acked), 3) for seconds in cpu
            ],
        }
    finally:
        for process in [*processes, receiver]:
            process.terminate()
        for process in [*processes, receiver]:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgresql", required=True, help="DSN of a database on the server")
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--messages", type=int, default=6000)
    parser.add_argument("--connections", type=int, default=12)
    parser.add_argument(
        "--alone",
        action="store_true",
        help="one node with `cluster: {enabled: false}` (the plain outbox), for comparison",
    )
    args = parser.parse_args()
    messages = [
        adt_a01(patient_id=f"MRN{n % 2000:05d}", control_id=f"CB{n:07d}", seed=n)
        for n in range(args.messages)
    ]
    with tempfile.TemporaryDirectory(prefix="thumpflow-cluster-bench-") as tmp:
        for nodes in [1] if args.alone else args.nodes:
            figures = run_once(
                Path(tmp), args.postgresql, nodes, messages, args.connections, alone=args.alone
            )
            print(json.dumps(figures))


if __name__ == "__main__":
    main()
