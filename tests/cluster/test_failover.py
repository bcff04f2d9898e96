"""Proof: three engine processes on one PostgreSQL, nodes killed and frozen under load.

Three `thumpflow run` processes (nodes n0, n1, n2, each its own MLLP port)
share one PostgreSQL database with default cluster settings (16 partitions,
5 s leases); an HTTP receiver process records Idempotency-Keys and fsyncs
what it applies. 200 patients send ADT messages, each patient's next message
only after the previous ACK, to the nodes in turn, moving to the next node
when one does not answer (as a sender behind a load balancer does). Meanwhile
a random node is SIGKILLed ten times and restarted: eight times at once (the
restarted node proves its predecessor dead and releases its leases), twice
only after the other nodes took its partitions over when its leases expired.
Then one node is SIGSTOPped until its partitions moved, and SIGCONTed
(fencing: it may neither record nor send for them). Then: every acknowledged
message was applied exactly once, each patient's in the order sent, and
`thumpflow audit verify` passes. The failover times are printed:
`pytest -s` shows them (docs/benchmarks.md records a run).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import psycopg
import pytest

from tests.cluster.support import pg_store
from tests.e2e.procs import ack_code, free_port, send_in_order, start_engine, start_receiver
from thumpflow.testing.generators import adt_a01

NODES = 3
PATIENTS = 200
AT_LEAST = 4
AT_MOST = 100
CONCURRENT = 24
QUICK_KILLS = 8
SLOW_KILLS = 2

CONFIG = """\
version: 1
{store}cluster: {{node_id: n{index}}}
api: {{enabled: false}}
channels:
  - id: adt
    source: {{type: mllp, host: 127.0.0.1, port: {port}, max_connections: 64,
              max_connections_per_peer: 64}}
    destinations:
      - id: ehr
        type: http
        url: {url}
        format: raw
        concurrency: 4
        timeout_seconds: 5
        retry: {{base: 50ms, cap: 1s, max_attempts: 10000}}
"""

_CONTROL = re.compile(rb"^MSH\|[^|]*\|(?:[^|]*\|){7}([^|]*)\|", re.M)
_MRN = re.compile(rb"PID\|[^|]*\|[^|]*\|(MRN\d+)")


def control_id(body: bytes) -> str:
    match = _CONTROL.search(body.replace(b"\r", b"\n"))
    assert match is not None
    return match.group(1).decode()


class Database:
    """What the test reads from the shared database (leases, pending deliveries)."""

    def __init__(self, dsn: str) -> None:
        self.conn = psycopg.connect(dsn, autocommit=True)

    def partitions_of(self, node_id: str) -> dict[str, int]:
        """Partition leases `node_id` holds now: name -> epoch."""
        rows = self.conn.execute(
            "SELECT name, epoch FROM leases WHERE name LIKE 'partition:%%' AND owner LIKE %s"
            " AND expires_at > extract(epoch FROM clock_timestamp())",
            (f"{node_id}/%",),
        ).fetchall()
        return {name: int(epoch) for name, epoch in rows}

    def moved(self, held: dict[str, int]) -> bool:
        """Every lease of `held` was acquired again since (a higher epoch)."""
        if not held:
            return True
        rows = self.conn.execute(
            "SELECT name, epoch FROM leases WHERE name = ANY(%s)", (list(held),)
        ).fetchall()
        return all(int(epoch) > held[name] for name, epoch in rows)

    def unfinished(self) -> int:
        row = self.conn.execute("SELECT count(*) FROM deliveries WHERE status <> 1").fetchone()
        return int(row[0]) if row else -1


async def until(check: object, seconds: float, what: str) -> float:
    """Poll `check()` until true; the seconds it took (AssertionError after `seconds`)."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if await asyncio.to_thread(check):  # type: ignore[arg-type]
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} not within {seconds}s")


@pytest.mark.slow
def test_three_nodes_lose_nothing_and_keep_order_through_kills_and_a_freeze(
    dsn: str, tmp_path: Path
) -> None:
    plain_dsn = " ".join(part for part in dsn.split() if not part.startswith("password="))
    receiver_port = free_port()
    applied_log = tmp_path / "applied.jsonl"
    ports = [free_port() for _ in range(NODES)]
    configs = []
    for index in range(NODES):
        home = tmp_path / f"n{index}"
        home.mkdir()
        config = home / "node.yaml"
        config.write_text(
            CONFIG.format(
                store=pg_store(plain_dsn, home),
                index=index,
                port=ports[index],
                url=f"http://127.0.0.1:{receiver_port}/deliveries",
            )
        )
        configs.append(config)
    receiver = start_receiver(receiver_port, applied_log, tmp_path / "receiver.out")
    nodes: list[subprocess.Popen[bytes]] = []
    db = Database(dsn)
    rng = random.Random(20261205)
    sent: dict[str, list[str]] = defaultdict(list)
    acked: set[str] = set()
    failovers: list[tuple[str, float]] = []
    measures: list[asyncio.Future[None]] = []
    kills = 0

    def start(index: int) -> subprocess.Popen[bytes]:
        return start_engine(configs[index], ports[index], tmp_path / f"n{index}.out")

    async def patient(p: int, connections: asyncio.Semaphore, chaos: asyncio.Event) -> None:
        mrn = f"MRN{p:05d}"
        for k in range(AT_MOST):
            if k >= AT_LEAST and chaos.is_set():
                return
            assert k < AT_MOST - 1, "the load lasts as long as the kills and the freeze"
            control = f"P{p:03d}-{k:02d}"
            message = adt_a01(patient_id=mrn, control_id=control, seed=p * 100 + k)
            sent[mrn].append(control)
            for attempt in range(400):
                port = ports[(p + k + attempt) % NODES]
                async with connections:
                    acks = await send_in_order(port, [message], timeout=2.0)
                if acks and ack_code(acks[0]) in {"AA", "CA"}:
                    acked.add(control)
                    break
                await asyncio.sleep(0.02)
            else:
                raise AssertionError(f"{control} never acknowledged")
            await asyncio.sleep(rng.uniform(0.5, 1.5))

    async def kill(index: int, *, wait_for_takeover: bool) -> None:
        nonlocal kills
        held = await asyncio.to_thread(db.partitions_of, f"n{index}")
        nodes[index].kill()
        killed = time.monotonic()
        await asyncio.to_thread(nodes[index].wait, 30)
        kills += 1
        if wait_for_takeover:
            await until(lambda: db.moved(held), 30, f"n{index}'s partitions taken over")
            if held:
                failovers.append(("expired", time.monotonic() - killed))
            nodes[index] = await asyncio.to_thread(start, index)
            return
        nodes[index] = await asyncio.to_thread(start, index)

        async def measure() -> None:
            await until(lambda: db.moved(held), 30, f"n{index}'s partitions taken again")
            if held:
                failovers.append(("restarted", time.monotonic() - killed))

        measures.append(asyncio.ensure_future(measure()))

    async def freeze(index: int) -> None:
        held = await asyncio.to_thread(db.partitions_of, f"n{index}")
        os.kill(nodes[index].pid, signal.SIGSTOP)
        frozen = time.monotonic()
        try:
            await until(lambda: db.moved(held), 30, f"frozen n{index}'s partitions taken over")
            failovers.append(("frozen", time.monotonic() - frozen))
            await asyncio.sleep(1.0)
        finally:
            os.kill(nodes[index].pid, signal.SIGCONT)

    async def chaos(done: asyncio.Event) -> None:
        try:
            slow = set(rng.sample(range(QUICK_KILLS + SLOW_KILLS), SLOW_KILLS))
            for n in range(QUICK_KILLS + SLOW_KILLS):
                await asyncio.sleep(rng.uniform(0.3, 1.0))
                victim = rng.randrange(NODES)
                if n in slow:
                    held = [
                        len(await asyncio.to_thread(db.partitions_of, f"n{i}"))
                        for i in range(NODES)
                    ]
                    victim = held.index(max(held))
                await kill(victim, wait_for_takeover=n in slow)
            await freeze(rng.randrange(NODES))
            await asyncio.gather(*measures)
        finally:
            done.set()

    async def scenario() -> None:
        connections = asyncio.Semaphore(CONCURRENT)
        done = asyncio.Event()
        await asyncio.gather(chaos(done), *(patient(p, connections, done) for p in range(PATIENTS)))

    try:
        for index in range(NODES):
            nodes.append(start(index))
        asyncio.run(scenario())
        assert kills >= QUICK_KILLS + SLOW_KILLS
        assert acked == {c for cs in sent.values() for c in cs}

        deadline = time.monotonic() + 90
        applied: list[dict[str, str]] = []
        while time.monotonic() < deadline:
            applied = [json.loads(line) for line in applied_log.read_text().splitlines() if line]
            if len(applied) >= len(acked) and db.unfinished() == 0:
                break
            time.sleep(0.2)
        by_control = Counter(control_id(record["body"].encode()) for record in applied)
        assert set(by_control) == acked, "every acknowledged message was delivered"
        assert max(by_control.values()) == 1, "no message was applied twice"
        arrived: dict[str, list[str]] = defaultdict(list)
        for record in applied:
            body = record["body"].encode()
            found = _MRN.search(body)
            assert found is not None
            arrived[found.group(1).decode()].append(control_id(body))
        assert arrived == sent, "each patient's messages arrived in send order"
        command = ["audit", "verify", "--config", str(configs[0])]
        verify = subprocess.run(
            [sys.executable, "-m", "thumpflow.cli.main", *command],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert verify.returncode == 0, verify.stdout + verify.stderr
        print(
            f"\n{len(acked)} messages, {kills} kills; failover seconds (kill or stop until "
            "every partition of the node was acquired again): "
            + ", ".join(f"{kind} {seconds:.2f}" for kind, seconds in failovers)
        )
        # The takeover times are a measurement (docs/benchmarks.md, target under
        # 10 s), not asserted here: on a loaded machine they stretch. A takeover
        # that does not happen fails above, at the 30 s waits.
        assert len(failovers) >= 3, "takeovers were measured"
    finally:
        for process in nodes:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGCONT)
                process.terminate()
        for process in nodes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        receiver.terminate()
        receiver.wait(timeout=30)
        db.conn.close()
