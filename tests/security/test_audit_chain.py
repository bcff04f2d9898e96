"""The audit trail is append-only and hash chained; every kind of tampering is named.

Real SQLite files, real store writes (admissions, outcomes, replays, runs),
then an attacker's raw `sqlite3` connection: triggers dropped, a row edited,
deleted, swapped, the tail cut. `thumpflow audit verify` runs as a process.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from tests.security.support import cli, write_config
from tests.store.support import admission
from thumpflow.core.audit import Anchor, Breach
from thumpflow.core.batch import RunCounts, RunStatus, RunTrigger, Window
from thumpflow.core.event import AuditEntry, DeadLetterFilter
from thumpflow.core.outcome import Delivered, Died, Retrying
from thumpflow.store.sqlite import SqliteStore
from thumpflow.store.sqlite._schema import migrations


def fill(db: Path) -> Anchor:
    """Write a realistic trail (about 20 entries); return its head anchor."""

    async def main() -> Anchor:
        store = SqliteStore(db)
        await store.open()
        try:
            ids = []
            for n in range(5):
                admitted = await store.admit(admission("out", entity=f"MRN{n}"))
                ids.append(admitted.deliveries[0].delivery_id)  # type: ignore[union-attr]
            await store.record([Retrying(ids[0], 1.0, 1, 2.0, "HTTP 503", 1.0)])
            await store.record([Delivered(ids[0], 3.0, 2, "out", "Patient/MRN0", None, "HTTP 201")])
            await store.record([Died(ids[1], 4.0, 1, "HTTP 422: bad")])
            await store.replay(DeadLetterFilter(delivery_ids=(ids[1],)), "alice", "fixed")
            run_id = await store.start_run(
                "nightly", RunTrigger.SCHEDULE, Window(None, "w1"), 5.0, 5.0
            )
            assert run_id is not None
            await store.finish_run(
                run_id, RunStatus.SUCCEEDED, RunCounts(3, 3, 0, 3, 0), 6.0, alert="zero records"
            )
            head = await store.audit_head()
            assert head is not None
            return head
        finally:
            await store.close()

    return asyncio.run(main())


def attacker(db: Path) -> sqlite3.Connection:
    """A raw connection with the append-only triggers dropped, as someone editing the file would."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("DROP TRIGGER audit_no_update")
    conn.execute("DROP TRIGGER audit_no_delete")
    return conn


def verify(config: Path, *extra: str) -> tuple[int, str]:
    done = cli(config, "audit", "verify", *extra)
    assert "Traceback" not in done.stderr
    return done.returncode, done.stdout + done.stderr


def test_an_intact_trail_verifies_and_prints_count_and_head(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    head = fill(tmp_path / "thumpflow.db")
    code, out = verify(config)
    assert code == 0, out
    assert f"head {head}" in out and f"{head.entry_id} entries" in out
    code, out = verify(config, "--expect", str(head))
    assert code == 0, out


def test_the_triggers_refuse_update_and_delete(tmp_path: Path) -> None:
    db = tmp_path / "thumpflow.db"
    fill(db)
    conn = sqlite3.connect(db, isolation_level=None)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE audit SET detail = 'x' WHERE entry_id = 3")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM audit WHERE entry_id = 3")
    conn.close()


def test_an_edited_entry_is_named(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    fill(tmp_path / "thumpflow.db")
    conn = attacker(tmp_path / "thumpflow.db")
    conn.execute("UPDATE audit SET detail = 'nothing to see' WHERE entry_id = 7")
    conn.close()
    code, out = verify(config)
    assert code == 1
    assert "BROKEN (edited): entry 7 edited" in out


def test_a_deleted_middle_entry_is_named(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    fill(tmp_path / "thumpflow.db")
    conn = attacker(tmp_path / "thumpflow.db")
    conn.execute("DELETE FROM audit WHERE entry_id = 4")
    conn.close()
    code, out = verify(config)
    assert code == 1
    assert "BROKEN (deleted): entry 4 deleted" in out


def test_swapped_entries_are_named_reordered(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    fill(tmp_path / "thumpflow.db")
    conn = attacker(tmp_path / "thumpflow.db")
    columns = "at, actor, action, subject, detail, prev_hash, hash"
    five = conn.execute(f"SELECT {columns} FROM audit WHERE entry_id = 5").fetchone()
    six = conn.execute(f"SELECT {columns} FROM audit WHERE entry_id = 6").fetchone()
    sets = ", ".join(f"{name.strip()} = ?" for name in columns.split(","))
    conn.execute(f"UPDATE audit SET {sets} WHERE entry_id = 5", six)
    conn.execute(f"UPDATE audit SET {sets} WHERE entry_id = 6", five)
    conn.close()
    code, out = verify(config)
    assert code == 1
    assert "BROKEN (reordered): entry 5 out of order" in out


def test_a_relinked_entry_is_a_bad_link(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    fill(tmp_path / "thumpflow.db")
    conn = attacker(tmp_path / "thumpflow.db")
    conn.execute("UPDATE audit SET prev_hash = ? WHERE entry_id = 9", ("ab" * 32,))
    conn.close()
    code, out = verify(config)
    assert code == 1
    assert "BROKEN (bad link): entry 9 bad link" in out


def test_tail_truncation_is_caught_by_the_anchor(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    head = fill(tmp_path / "thumpflow.db")
    conn = attacker(tmp_path / "thumpflow.db")
    conn.execute("DELETE FROM audit WHERE entry_id > ?", (head.entry_id - 3,))
    conn.close()
    code, out = verify(config)
    assert code == 0, "without an anchor a cut tail looks like a shorter trail"
    code, out = verify(config, "--expect", str(head))
    assert code == 1
    assert f"BROKEN (truncated): entry {head.entry_id} is missing" in out
    assert f"ends at entry {head.entry_id - 3}" in out


def test_a_rewritten_chain_does_not_match_the_anchor(tmp_path: Path) -> None:
    db = tmp_path / "thumpflow.db"
    config = write_config(tmp_path)
    head = fill(db)
    conn = attacker(db)
    conn.execute("DELETE FROM audit WHERE entry_id >= ?", (head.entry_id - 1,))
    conn.execute("CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT 1; END")
    conn.close()

    async def forge() -> None:
        store = SqliteStore(db)
        await store.open()
        try:
            await store.append_audit(AuditEntry(8.0, "thump", "alert", "nightly", "forged"))
            await store.append_audit(AuditEntry(9.0, "thump", "alert", "nightly", "forged"))
        finally:
            await store.close()

    asyncio.run(forge())
    code, out = verify(config, "--expect", str(head))
    assert code == 1
    assert f"BROKEN (anchor mismatch): entry {head.entry_id} does not match" in out


def test_bad_expect_is_a_usage_error_not_a_traceback(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    fill(tmp_path / "thumpflow.db")
    code, out = verify(config, "--expect", "12:nothex")
    assert code == 2 and "64 hex digits" in out


def test_entries_written_before_the_chain_are_chained_on_first_open(tmp_path: Path) -> None:
    """A database from before the chain migration, with audit rows, is chained on open."""
    db = tmp_path / "thumpflow.db"
    config = write_config(tmp_path)
    chain_version = next(v for v, sql in migrations() if "prev_hash" in sql)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at REAL)")
    for version, sql in migrations():
        if version < chain_version:
            conn.executescript(sql)
            conn.execute("INSERT INTO schema_version VALUES (?, 0)", (version,))
    conn.executemany(
        "INSERT INTO audit (at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?)",
        [(1_700_000_000.0 + i, "alice", "replayed", f"delivery:{i}", "fixed") for i in range(40)],
    )
    conn.close()

    async def reopen() -> None:
        store = SqliteStore(db)
        await store.open()
        await store.close()

    asyncio.run(reopen())
    code, out = verify(config)
    assert code == 0, out
    assert "40 entries" in out


def test_audit_list_filters_by_subject_and_action(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    fill(tmp_path / "thumpflow.db")
    done = cli(config, "audit", "list", "--action", "replayed", "--json")
    assert done.returncode == 0, done.stderr
    assert '"actor": "alice"' in done.stdout and '"action": "replayed"' in done.stdout
    assert '"received"' not in done.stdout
    table = cli(config, "audit", "list", "--subject", "nightly", "--limit", "2")
    lines = table.stdout.splitlines()
    assert lines[0].split()[:4] == ["ID", "AT", "ACTOR", "ACTION"] and len(lines) == 3
    assert all("nightly" in line for line in lines[1:])


def test_check_chain_names_a_deleted_first_entry() -> None:
    from thumpflow.core.audit import GENESIS, check_chain, entry_hash

    first = entry_hash(GENESIS, (1, 1.0, "a", "b", "c", "d"))
    second = entry_hash(first, (2, 2.0, "a", "b", "c", "d"))
    verdict = check_chain([(2, 2.0, "a", "b", "c", "d", first, second)], lambda _: None)
    assert not verdict.intact and verdict.breach is Breach.DELETED and verdict.entry_id == 1


def test_the_engine_logs_an_anchor_at_shutdown_that_verify_accepts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.e2e.procs import send_in_order
    from tests.security.test_encryption import message
    from thumpflow.config import load_config
    from thumpflow.runtime.engine import Engine

    config = write_config(tmp_path)

    async def main() -> None:
        engine = Engine(load_config(config))
        await engine.start()
        try:
            assert len(await send_in_order(engine.source_port("adt"), [message(0)])) == 1
        finally:
            await engine.stop()

    with caplog.at_level("INFO", logger="thumpflow.runtime"):
        asyncio.run(main())
    anchors = [r for r in caplog.records if r.getMessage().startswith("audit.anchor ")]
    assert anchors, "an anchor is logged at shutdown"
    last = anchors[-1].__dict__["audit_anchor"]
    assert Anchor.parse(last).entry_id >= 1
    assert "MRN0" not in anchors[-1].getMessage()
    code, out = verify(config, "--expect", last)
    assert code == 0, out


def test_canonical_encoding_is_compact_utf8_json() -> None:
    """The bytes a hash covers, pinned: chains written by earlier versions must still verify."""
    from thumpflow.core.audit import canonical

    assert canonical((7, 1_700_000_000.25, "source:adt", "received", "E1", 'ü "x"')) == (
        '[7,1700000000.25,"source:adt","received","E1","ü \\"x\\""]'.encode()
    )
