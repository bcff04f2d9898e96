"""A single engine on the PostgreSQL store, end to end, and its start-up errors.

The engine runs in-process on the session's throwaway cluster: MLLP in, an
HTTP receiver out (with throttling, unavailability and dropped connections),
stopped and started again on the same database. Bad store configurations are
tried through `thumpflow` as a real process: each gets one clear line naming
what and where, never a traceback.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import psycopg
import pytest

from tests.e2e.harness import outbox_drained
from tests.e2e.procs import ack_code, send_in_order
from tests.postgres import PASSWORD_ENV, PG_PASSWORD, PgCluster, free_port
from thumpflow.config import parse_config
from thumpflow.core.errors import ConfigError
from thumpflow.core.ports import StateStore
from thumpflow.hl7v2 import Message
from thumpflow.runtime.build import open_store
from thumpflow.runtime.engine import Engine
from thumpflow.store.postgresql import PostgresStore, _schema
from thumpflow.testing.http_receiver import HttpReceiver


def _dsn_without_password(dsn: str) -> str:
    return " ".join(part for part in dsn.split() if not part.startswith("password="))


def config_text(dsn: str, receiver_url: str, tmp_path: Path) -> str:
    return f"""\
version: 1
store:
  type: postgresql
  dsn: "{_dsn_without_password(dsn)}"
  password_env: {PASSWORD_ENV}
  path: {tmp_path / "var" / "thumpflow.db"}
api: {{enabled: false}}
channels:
  - id: adt
    source: {{type: mllp, host: 127.0.0.1, port: 0}}
    destinations:
      - id: ehr
        type: http
        url: {receiver_url}
        format: raw
        concurrency: 4
        timeout_seconds: 2
        retry: {{base: 20ms, cap: 200ms, max_attempts: 200}}
        circuit_breaker: {{failure_threshold: 5, cooldown: 300ms}}
"""


def adt(control: str, mrn: str) -> bytes:
    return (
        f"MSH|^~\\&|REG|GEN|ENG|GEN|20261205083000||ADT^A08^ADT_A01|{control}|P|2.5\r"
        "EVN|A08|20261205083000\r"
        f"PID|1||{mrn}^^^GEN^MR||Doe^Jane||19800101|F\r"
        "PV1|1|I|ICU^12^A\r"
    ).encode()


def check_delivered(receiver: HttpReceiver, sent: dict[str, list[str]]) -> None:
    """Every sent control id applied once, each patient's in the order sent."""
    applied = [Message.parse(body).control_id for body in receiver.applied.values()]
    assert max(Counter(applied).values()) == 1
    assert sorted(applied) == sorted(c for cs in sent.values() for c in cs)
    for key, expected in sent.items():
        order = [
            Message.parse(receiver.applied[k]).control_id
            for k in receiver.applied_order(f"Patient/{key}")
        ]
        assert order == expected, key


def test_one_engine_on_postgresql_delivers_every_message_once_in_order_across_a_restart(
    dsn: str, tmp_path: Path
) -> None:

    async def scenario() -> None:
        receiver = HttpReceiver()
        await receiver.start()
        receiver.set_faults(throttle=3, retry_after=0.1, unavailable=3, drop_after_apply=3)
        config = parse_config(config_text(dsn, receiver.url, tmp_path), "pg.yaml")
        sent: dict[str, list[str]] = defaultdict(list)
        for round_ in range(2):
            engine = Engine(config)
            await engine.start()
            try:
                port = engine.source_port("adt")
                batches: list[list[bytes]] = [[] for _ in range(4)]
                for n in range(60):
                    mrn = f"MRN{n % 12}"
                    control = f"R{round_}-{n}"
                    batches[(n % 12) % 4].append(adt(control, mrn))
                    sent[f"GEN|{mrn}"].append(control)
                results = await asyncio.gather(*(send_in_order(port, b) for b in batches))
                assert [ack_code(a) for acks in results for a in acks] == ["AA"] * 60
                again = await send_in_order(port, [adt(f"R{round_}-0", "MRN0")])
                assert [ack_code(a) for a in again] == ["AA"]
                await outbox_drained(engine, "ehr", 60)
                [stats] = await engine.stats()
                assert (stats.received, stats.duplicates) == (60 * (round_ + 1), round_ + 1)
                assert stats.outboxes[0].delivered == 60 * (round_ + 1)
                verdict = await engine.store.verify_audit()
                assert verdict.intact, verdict.problem
            finally:
                await engine.stop()
        check_delivered(receiver, sent)
        await receiver.close()

    asyncio.run(scenario())


def _run_check(config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`thumpflow status`: opens the store read-only, so every start-up check runs."""
    return subprocess.run(
        [sys.executable, "-m", "thumpflow.cli.main", "status", "--config", str(config)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, **env},
    )


def _write(tmp_path: Path, dsn: str, name: str = "bad.yaml") -> Path:
    path = tmp_path / name
    path.write_text(config_text(dsn, "http://127.0.0.1:9/", tmp_path))
    return path


def test_bad_store_settings_are_clear_errors_at_start_never_tracebacks(
    pg_cluster: PgCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = pg_cluster.new_database()
    env = {PASSWORD_ENV: PG_PASSWORD}
    with psycopg.connect(good) as conn:
        conn.execute("SELECT 1")
    nowhere = good.replace(f"port={pg_cluster.port}", f"port={free_port()}")
    wrong_password = {PASSWORD_ENV: "not-the-password"}
    cases = [
        (_write(tmp_path, nowhere, "down.yaml"), env, "unreachable"),
        (_write(tmp_path, good, "pw.yaml"), wrong_password, "refused the user or password"),
        (_write(tmp_path, good, "noenv.yaml"), {PASSWORD_ENV: ""}, f"{PASSWORD_ENV} is not set"),
    ]
    for config, extra, words in cases:
        done = _run_check(config, extra)
        assert done.returncode != 0
        assert words in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
        assert PG_PASSWORD not in done.stderr + done.stdout
    # A schema written by a newer thumpflow is refused by name.
    monkeypatch.setenv(PASSWORD_ENV, PG_PASSWORD)
    store = open_store(parse_config(_write(tmp_path, good).read_text(), "x.yaml"))
    asyncio.run(_open_close(store))
    with psycopg.connect(good) as conn:
        conn.execute("INSERT INTO schema_version VALUES (%s, 0)", (_schema.LATEST_VERSION + 1,))
    done = _run_check(_write(tmp_path, good, "newer.yaml"), env)
    assert done.returncode != 0
    assert "newer than this thumpflow supports" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


async def _open_close(store: StateStore) -> None:
    await store.open()
    await store.close()


@pytest.mark.parametrize(
    ("store", "words"),
    [
        ("{type: postgresql}", "type postgresql needs dsn"),
        ('{type: postgresql, dsn: "host=db password=x"}', "dsn must not contain a password"),
        ('{type: postgresql, dsn: "postgresql://u:secret@db/x"}', "must not contain a password"),
        ('{type: sqlite, dsn: "host=db"}', "are for type postgresql"),
    ],
)
def test_store_settings_are_validated_with_their_location(store: str, words: str) -> None:
    text = (
        f"version: 1\nstore: {store}\nchannels:\n  - id: adt\n"
        "    source: {type: mllp, host: 127.0.0.1, port: 0}\n"
        "    destinations:\n      - {id: f, type: file, path: out}\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "cluster.yaml")
    [problem] = caught.value.problems
    assert problem.startswith("cluster.yaml:2:")
    assert words in problem
    assert "secret" not in problem


def test_message_payloads_are_compressed_with_lz4(dsn: str) -> None:
    """pglz costs the server more CPU per admission than lz4 (docs/benchmarks.md)."""
    asyncio.run(_open_close(PostgresStore(dsn)))
    with psycopg.connect(dsn) as conn:
        columns = conn.execute(
            "SELECT attrelid::regclass::text || '.' || attname FROM pg_attribute"
            " WHERE attcompression = 'l' ORDER BY 1"
        ).fetchall()
        assert [c[0] for c in columns] == ["events.body", "rejects.raw", "row_rejects.record"]
        conn.execute(
            "INSERT INTO rejects (channel_id, received_at, peer, reason, raw)"
            " VALUES ('adt', 0, 'peer', 'reason',"
            " convert_to(repeat('PID|1||123^^^GEN^MR|', 400), 'UTF8'))"
        )
        row = conn.execute("SELECT pg_column_compression(raw) FROM rejects").fetchone()
        assert row is not None and row[0] == "lz4"
