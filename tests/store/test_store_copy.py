"""`thumpflow store copy`: an installation moves from its SQLite file to PostgreSQL intact.

A SQLite store with encryption is filled through its own writes with every
kind of state (pending, retrying, delivered, dead and superseded deliveries,
rejects, runs with row rejects and watermarks, the ledger, tokens, alerts,
pauses, Subscription state), copied by the command as a real process, and
then every read of the copy must equal the same read of the original; the
audit chain verifies on the copy with an anchor taken before, through
`thumpflow audit verify` too, and the copy goes on admitting after it.
"""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.postgres import PG_PASSWORD, PgCluster
from tests.store.contract.test_store import admit_one, delivered
from thumpflow.core.access import Role
from thumpflow.core.alerts import AlertKind, Severity
from thumpflow.core.audit import Anchor
from thumpflow.core.batch import LedgerEntry, RowReject, RunCounts, RunStatus, RunTrigger, Window
from thumpflow.core.event import DeadLetterFilter, Reject
from thumpflow.core.outcome import Died, Retrying, Superseded
from thumpflow.core.ports import StateStore
from thumpflow.core.search import DeliveryQuery, EventQuery, PauseKind
from thumpflow.store.crypt import PayloadCipher
from thumpflow.store.postgresql import PostgresStore
from thumpflow.store.sqlite import SqliteStore

T0 = 1_700_000_000.0
CIPHER = PayloadCipher([("k1", b"1" * 32)])
KEY_ENV = "TF_TEST_STORE_KEY"
ENCRYPTION = f"{{keys: [{{id: k1, key_env: {KEY_ENV}}}]}}"
CHANNELS = (
    "channels:\n  - id: adt\n    source: {type: mllp, host: 127.0.0.1, port: 0}\n"
    "    destinations:\n      - {id: ehr, type: http, url: 'http://127.0.0.1:9/'}\n"
)


async def _fill(store: StateStore) -> Anchor:
    done = await admit_one(store, "ehr", "lab", entity="MRN1", sequence=3, at=T0)
    await store.record([delivered(done.deliveries[0], at=T0 + 1)])
    retrying = await admit_one(store, "ehr", entity="MRN2", at=T0 + 2)
    await store.record(
        [Retrying(retrying.deliveries[0].delivery_id, T0 + 3, 1, T0 + 9, "HTTP 503: x", T0 + 3)]
    )
    dead = await admit_one(store, "ehr", entity="MRN3", at=T0 + 4)
    await store.record([Died(dead.deliveries[0].delivery_id, T0 + 5, 3, "HTTP 422: bad PID")])
    stale = await admit_one(store, "lab", entity="MRN1", sequence=1, at=T0 + 6)
    await store.record([Superseded(stale.deliveries[0].delivery_id, T0 + 7, "stale")])
    await store.reject(Reject("adt", T0 + 8, "10.0.0.1:1", b"\x0bjunk\x1c\r", "no MSH"))
    run_id = await store.start_run("census", RunTrigger.SCHEDULE, Window(None, "w1"), T0, T0)
    assert run_id is not None
    await store.add_rejects([RowReject("census", run_id, "a.csv:line 3", "r,3", "dob", "fix", T0)])
    await store.finish_run(
        run_id, RunStatus.PARTIAL, RunCounts(3, 2, 1, 2, 0), T0 + 1, next_watermark="w1"
    )
    await store.record_ledger([LedgerEntry("warehouse", "B1", "h1", T0, 4)])
    await store.add_token("ops", Role.OPERATOR, "t" * 64, "admin:root", T0)
    await store.raise_alert(AlertKind.CIRCUIT_OPEN, "ehr", Severity.CRITICAL, "open", T0)
    await store.set_paused(PauseKind.DESTINATION, "lab", True, actor="u", reason="r", at=T0)
    await store.advance_subscription("subs", "enc-1", frozenset({1, 2, 4, 6}), 7, T0)
    anchor = await store.audit_head()
    assert anchor is not None
    await admit_one(store, "ehr", entity="MRN4", at=T0 + 20)
    return anchor


async def _reads(store: StateStore) -> list[Any]:
    everything = DeadLetterFilter()
    events = await store.search_events(EventQuery(limit=100))
    return [
        await store.stats(),
        await store.load_pending("ehr", 0, 100),
        await store.load_pending("lab", 0, 100),
        await store.dead_letters(everything),
        [await store.event(summary.event_id) for summary in events],
        [await store.timeline(summary.event_id) for summary in events],
        await store.search_deliveries(DeliveryQuery(limit=100)),
        await store.rejects(None),
        await store.runs(),
        await store.row_rejects(),
        await store.watermark("census"),
        await store.ledger_page("warehouse", None, 10),
        await store.applied_version("ehr", "Patient/MRN1"),
        await store.tokens(),
        await store.alerts(),
        await store.pauses(),
        await store.subscription_state("subs", "enc-1"),
        await store.audit(limit=1000),
        await store.audit_head(),
    ]


async def _with(store: StateStore, body: Any) -> Any:
    await store.open()
    try:
        return await body(store)
    finally:
        await store.close()


def _thumpflow(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "thumpflow.cli.main", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, **env},
    )


def test_store_copy_moves_everything_and_the_audit_chain_verifies_on_the_copy(
    pg_cluster: PgCluster, tmp_path: Path
) -> None:
    db = tmp_path / "var" / "thumpflow.db"
    anchor = asyncio.run(_with(SqliteStore(db, cipher=CIPHER), _fill))
    before = asyncio.run(_with(SqliteStore(db, cipher=CIPHER), _reads))
    target = pg_cluster.new_database()
    url_dsn = " ".join(part for part in target.split() if not part.startswith("password="))
    env = {
        "PGPASSWORD": PG_PASSWORD,
        KEY_ENV: base64.b64encode(b"1" * 32).decode(),
    }

    old_config = tmp_path / "sqlite.yaml"
    old_config.write_text(
        f"version: 1\nstore: {{path: {db}, encryption: {ENCRYPTION}}}\n{CHANNELS}"
    )
    copy = ("store", "copy", "--from", str(db), "--to", url_dsn, "--config", str(old_config))
    done = _thumpflow(*copy, env=env)
    assert done.returncode == 0, done.stderr
    assert "events 5" in done.stdout and "audit" in done.stdout

    after = asyncio.run(_with(PostgresStore(target, cipher=CIPHER), _reads))
    for original, copied in zip(before, after, strict=True):
        assert copied == original

    async def go_on(store: StateStore) -> None:
        verdict = await store.verify_audit(anchor)
        assert verdict.intact, verdict.problem
        result = await admit_one(store, "ehr", entity="MRN5", at=T0 + 30)
        highest = max(d.delivery_id for d in before[1] + before[2])
        assert result.deliveries[0].delivery_id > highest
        assert (await store.verify_audit(anchor)).intact

    asyncio.run(_with(PostgresStore(target, cipher=CIPHER), go_on))

    config = tmp_path / "pg.yaml"
    config.write_text(
        "version: 1\n"
        f'store: {{type: postgresql, dsn: "{url_dsn}", password_env: PGPASSWORD,'
        f" encryption: {ENCRYPTION}}}\n{CHANNELS}"
    )
    verified = _thumpflow(
        "audit",
        "verify",
        "--expect",
        f"{anchor.entry_id}:{anchor.hash}",
        "--config",
        str(config),
        env=env,
    )
    assert verified.returncode == 0, verified.stderr + verified.stdout

    again = _thumpflow(*copy, env=env)
    assert again.returncode != 0
    assert "already holds data" in again.stderr
    assert "Traceback" not in again.stderr
