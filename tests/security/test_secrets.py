"""Secrets never reach the store: only `*_env`/`*_file` references are accepted, and a
running engine writes none of their values into the database file.

Every example configuration, and one with every secret-bearing option, runs
in a real engine (real store, MLLP source, destinations trying to use their
credentials); then the bytes of the .db and -wal files are searched.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.e2e.harness import eventually
from tests.e2e.procs import free_port, send_in_order
from tests.security.support import cli, file_bytes
from tests.security.test_encryption import message
from thumpflow.config import parse_config
from thumpflow.runtime.engine import Engine
from thumpflow.testing.http_receiver import HttpReceiver

ROOT = Path(__file__).resolve().parents[2]
SECRETS = {
    "TF_SECRET_AUTH": "Bearer tf-header-secret-8d1f",
    "TF_SECRET_TOKEN": "tf-bearer-secret-55aa",
    "TF_SECRET_PG": "tf-pg-secret-7c7c",
    "TF_SECRET_SFTP": "tf-sftp-secret-3e3e",
}

EVERY_SECRET = """\
version: 1
store: {{path: {db}}}
api: {{enabled: false}}
channels:
  - id: adt
    source: {{type: mllp, host: 127.0.0.1, port: 0}}
    destinations:
      - id: http-out
        type: http
        url: {url}
        format: raw
        secret_headers: {{Authorization: {{env: TF_SECRET_AUTH}}}}
      - id: fhir-bearer
        type: fhir
        base_url: {url}/fhir
        auth: {{type: bearer, token_env: TF_SECRET_TOKEN}}
        retry: {{base: 10ms, cap: 50ms, max_attempts: 2}}
      - id: fhir-smart
        type: fhir
        base_url: {url}/fhir
        auth: {{type: smart_backend, client_id: thumpflow, key_id: k1, private_key_file: {pem},
                token_url: {url}/token}}
        retry: {{base: 10ms, cap: 50ms, max_attempts: 2}}
jobs:
  - id: from-pg
    schedule: {{cron: "0 3 1 1 *"}}
    source: {{type: sql, dialect: postgresql, dsn: "host=127.0.0.1 dbname=ehr user=tf",
              password_env: TF_SECRET_PG, query: "SELECT 1 AS mrn"}}
    schema: [{{name: mrn, type: string}}]
    business_key: [mrn]
    destinations:
      - {{id: out-pg, type: batch_file, directory: {out}, name: "pg-{{date}}.ndjson",
          format: ndjson, source_system: TF}}
  - id: from-sftp
    schedule: {{cron: "0 3 1 1 *"}}
    source: {{type: sftp_drop, host: 127.0.0.1, username: tf, password_env: TF_SECRET_SFTP,
              insecure_skip_host_key_check: true, directory: /in, format: csv}}
    schema: [{{name: mrn, type: string}}]
    business_key: [mrn]
    destinations:
      - {{id: out-sftp, type: batch_file, directory: {out}, name: "s-{{date}}.ndjson",
          format: ndjson, source_system: TF}}
"""


def private_key(path: Path) -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.write_bytes(pem)
    return pem


def test_no_secret_value_reaches_the_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    pem = private_key(tmp_path / "smart.pem")
    db = tmp_path / "secrets.db"

    async def main() -> None:
        receiver = HttpReceiver()
        await receiver.start()
        text = EVERY_SECRET.format(
            db=db, url=receiver.url, pem=tmp_path / "smart.pem", out=tmp_path / "out"
        )
        engine = Engine(parse_config(text, "secrets.yaml"))
        await engine.start()
        try:
            port = engine.source_port("adt")
            assert len(await send_in_order(port, [message(0), message(2)])) == 2
            await eventually(lambda: len(receiver.applied) >= 2, what="HTTP deliveries")
            await eventually(
                lambda: engine.outboxes["fhir-smart"].pending == 0, what="FHIR attempts ended"
            )
            await eventually(
                lambda: engine.outboxes["fhir-bearer"].pending == 0, what="FHIR attempts ended"
            )
        finally:
            await engine.stop()
            await receiver.close()

    asyncio.run(main())
    on_disk = file_bytes(db)
    body = b"".join(pem.splitlines()[1:-1])
    for value in [*SECRETS.values(), "tf-header-secret-8d1f"]:
        assert value.encode() not in on_disk, f"{value!r} is in the store"
    assert body[:40] not in on_disk and pem.splitlines()[1] not in on_disk


@pytest.mark.parametrize("example", sorted((ROOT / "examples").glob("*.yaml")), ids=str)
def test_every_example_runs_without_writing_a_secret(
    example: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    text = re.sub(r"\bport: \d+", lambda _: f"port: {free_port()}", example.read_text())
    config = parse_config(text, example.name)
    secrets = [
        value
        for value in re.findall(r"(?:password|token|secret|key)\w*:\s*(\S+)", text)
        if not value.startswith(("{", "["))
    ]

    async def main() -> None:
        engine = Engine(config)
        await engine.start()
        try:
            await asyncio.sleep(0.2)
        finally:
            await engine.stop()

    asyncio.run(main())
    on_disk = file_bytes(tmp_path / config.store.path)
    for value in secrets:
        assert value.encode() not in on_disk


def test_a_plain_text_secret_is_a_located_error_with_a_remedy(tmp_path: Path) -> None:
    config = tmp_path / "plain.yaml"
    config.write_text(
        "version: 1\n"
        "channels:\n"
        "  - id: adt\n"
        "    source: {type: mllp, port: 2575}\n"
        "    destinations:\n"
        "      - id: out\n"
        "        type: http\n"
        "        url: https://user:hunter2@warehouse.example.org/in\n"
        "        headers: {X-Api-Key: hunter2}\n"
    )
    done = cli(config, "check")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "plain.yaml:8" in done.stderr and "must not contain a user name or password" in (
        done.stderr
    )
    assert "plain.yaml:9" in done.stderr and "secret_headers: {X-Api-Key: {env: VARIABLE}}" in (
        done.stderr
    )
    assert "hunter2" not in done.stderr
