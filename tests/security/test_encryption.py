"""Payload encryption at rest: nothing of a message is readable in the database file.

A real engine (in this process: real store, MLLP source, HTTP and file
destinations) encrypts with a key from the environment; the test greps the
bytes of the .db and -wal files for what it sent, and proves that delivery,
dead letters (show, replay), rejects and key rotation still work; the CLI
runs as real processes.
"""

from __future__ import annotations

import asyncio
import base64
import os
import sqlite3
from pathlib import Path

import pytest

from tests.e2e.harness import eventually, outbox_drained
from tests.e2e.procs import send_in_order
from tests.security.support import cli, file_bytes, write_config
from thumpflow.config import load_config
from thumpflow.core.event import DeadLetterFilter
from thumpflow.runtime.build import open_store
from thumpflow.runtime.engine import Engine
from thumpflow.testing.http_receiver import HttpReceiver

KEY_OLD = base64.b64encode(bytes(range(32))).decode()
KEY_NEW = base64.b64encode(bytes(range(100, 132))).decode()
NAMES = [f"Zyxwortha{n}^Quillbrand" for n in range(6)]


def message(n: int, note: str = "") -> bytes:
    return (
        f"MSH|^~\\&|REG|GEN|ENG|GEN|20261121083000||ADT^A08^ADT_A01|CTL{n}|P|2.5\r"
        f"EVN|A08|20261121083000\r"
        f"PID|1||MRN{n}^^^GEN^MR||{NAMES[n]}{note}||19800101|F|||42 Larkspur Close\r"
        "PV1|1|I|ICU^12^A\r"
    ).encode()


def destinations(out: Path, url: str) -> str:
    return (
        f"      - {{id: archive, type: file, path: {out}, format: hl7}}\n"
        f"      - id: ehr\n        type: http\n        url: {url}\n        format: raw\n"
        "        retry: {base: 10ms, cap: 50ms, max_attempts: 3}\n"
    )


def keys(*entries: str) -> str:
    return "  encryption:\n    keys:\n" + "".join(entries)


def env_key(key_id: str, var: str) -> str:
    return f"      - {{id: {key_id}, key_env: {var}}}\n"


def test_the_database_holds_no_plaintext_and_flow_still_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TF_TEST_KEY_OLD", KEY_OLD)
    db = tmp_path / "thumpflow.db"

    async def main() -> None:
        receiver = HttpReceiver()
        await receiver.start()
        receiver.set_faults(reject_marker="REJECTME")
        config_path = write_config(
            tmp_path,
            store_extra=keys(env_key("k2025", "TF_TEST_KEY_OLD")),
            destinations=destinations(tmp_path / "out.hl7", receiver.url),
        )
        config = load_config(config_path)
        engine = Engine(config)
        await engine.start()
        try:
            port = engine.source_port("adt")
            sent = [message(0), message(1, note="REJECTME"), message(2), b"MSH|broken\rPID|x"]
            acks = await send_in_order(port, sent)
            assert len(acks) == 4
            await outbox_drained(engine, "archive")
            await outbox_drained(engine, "ehr")
            assert len(receiver.applied) == 2
            (dead,) = await engine.dead_letters(DeadLetterFilter())
            assert "422" in dead.reason
            letters = await engine.dead_letters(DeadLetterFilter(reason_contains="422"))
            assert [letter.delivery_id for letter in letters] == [dead.delivery_id]
            stored = await engine.store.event(dead.event_id)
            assert stored is not None and NAMES[1].encode() in stored.body
            rejects = await engine.store.rejects("adt")
            assert rejects and rejects[0][1].raw == b"MSH|broken\rPID|x"
            receiver.set_faults(reject_marker=None)
            replayed = await engine.replay(
                DeadLetterFilter(delivery_ids=(dead.delivery_id,)), "alice", "receiver fixed"
            )
            assert len(replayed.replayed) == 1
            await eventually(lambda: len(receiver.applied) == 3, what="replayed delivery")
            await outbox_drained(engine, "ehr")
        finally:
            await engine.stop()
            await receiver.close()
        out = (tmp_path / "out.hl7").read_bytes()
        assert NAMES[0].encode() in out, "the destination got the plaintext"
        on_disk = file_bytes(db)
        for secret in [*NAMES[:3], "Larkspur", "MSH|^~", "PID|1||", "MSH|broken"]:
            assert secret.encode() not in on_disk, f"{secret!r} is readable in the database"
        shown = cli(config_path, "dlq", "list", env={**os.environ})
        assert shown.returncode == 0, shown.stderr
        verified = cli(config_path, "audit", "verify", env={**os.environ})
        assert verified.returncode == 0, verified.stdout

    asyncio.run(main())


def test_rotation_rekey_and_clear_key_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "thumpflow.db"
    old_file = tmp_path / "old.key"
    old_file.write_text(KEY_OLD + "\n")
    env = {**os.environ, "TF_TEST_KEY_NEW": KEY_NEW}
    old_only = write_config(
        tmp_path,
        store_extra=keys(f"      - {{id: k2025, key_file: {old_file}}}\n"),
        name="old.yaml",
    )

    async def admit(config_path: Path, n: int) -> None:
        store = open_store(load_config(config_path))
        await store.open()
        try:
            from tests.store.support import admission, event

            await store.admit(admission("archive", received=event(body=message(n), channel="adt")))
        finally:
            await store.close()

    asyncio.run(admit(old_only, 0))
    plain = write_config(tmp_path, name="plain.yaml")
    refused = cli(plain, "status", env=env)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "encrypted with key(s) 'k2025'" in refused.stderr

    both = write_config(
        tmp_path,
        store_extra=keys(
            env_key("k2026", "TF_TEST_KEY_NEW"), f"      - {{id: k2025, key_file: {old_file}}}\n"
        ),
        name="both.yaml",
    )
    monkeypatch.setenv("TF_TEST_KEY_NEW", KEY_NEW)
    asyncio.run(admit(both, 1))
    raw = sqlite3.connect(db).execute("SELECT body FROM events ORDER BY event_seq").fetchall()
    assert [bytes(row[0])[5:10] for row in raw] == [b"k2025", b"k2026"]

    new_only = write_config(
        tmp_path, store_extra=keys(env_key("k2026", "TF_TEST_KEY_NEW")), name="new.yaml"
    )
    early = cli(new_only, "status", env=env)
    assert early.returncode == 1 and "key 'k2025'" in early.stderr and "rekey" in early.stderr

    rekeyed = cli(both, "store", "rekey", env=env)
    assert rekeyed.returncode == 0, rekeyed.stderr
    assert "re-encrypted 1 values (event bodies 1" in rekeyed.stdout
    assert "retired keys: k2025" in rekeyed.stdout
    raw = sqlite3.connect(db).execute("SELECT body FROM events ORDER BY event_seq").fetchall()
    assert [bytes(row[0])[5:10] for row in raw] == [b"k2026", b"k2026"]

    async def read_all(config_path: Path) -> list[bytes]:
        store = open_store(load_config(config_path), read_only=True)
        await store.open()
        try:
            trail = await store.audit(action="received", limit=10)
            events = [await store.event(entry.subject) for entry in trail]
            return [e.body for e in events if e is not None]
        finally:
            await store.close()

    bodies = asyncio.run(read_all(new_only))
    assert sorted(bodies) == [message(0), message(1)]
    assert "retired keys" in cli(new_only, "audit", "list", "--action", "rekeyed", env=env).stdout

    wrong = tmp_path / "wrong.key"
    wrong.write_text(base64.b64encode(bytes(32)).decode())
    impostor = write_config(
        tmp_path, store_extra=keys(f"      - {{id: k2026, key_file: {wrong}}}\n"), name="bad.yaml"
    )
    bad = cli(impostor, "status", env=env)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "key 'k2026' is not the key this store was encrypted with" in bad.stderr

    missing = cli(new_only, "status", env={k: v for k, v in env.items() if k != "TF_TEST_KEY_NEW"})
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert "store > encryption > key 'k2026': environment variable TF_TEST_KEY_NEW is not set" in (
        missing.stderr
    )
    for text in (refused.stderr, early.stderr, bad.stderr, missing.stderr, rekeyed.stdout):
        assert KEY_NEW not in text and KEY_OLD not in text
