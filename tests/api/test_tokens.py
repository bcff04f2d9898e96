"""Token management and sign-in through the real API, and the `thumpflow tokens` command."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import aiohttp

from tests.api_support import api_client, issue
from tests.e2e.procs import free_port
from thumpflow.api.server import start_api
from thumpflow.config import parse_config
from thumpflow.config.model import Config
from thumpflow.core.access import Role
from thumpflow.runtime.build import open_store
from thumpflow.runtime.engine import Engine

CONFIG = """\
version: 1
store: {{path: {db}}}
api: {{host: 127.0.0.1, port: {api}}}
channels:
  - id: tok
    source: {{type: mllp, host: 127.0.0.1, port: 0}}
    destinations:
      - {{id: out, type: file, path: {out}}}
"""


def config_text(tmp_path: Path, api_port: int = 0) -> str:
    return CONFIG.format(db=tmp_path / "t.db", api=api_port, out=tmp_path / "out")


def test_issue_list_revoke_and_sign_in(tmp_path: Path) -> None:
    async def main() -> None:
        engine = Engine(parse_config(config_text(tmp_path), "t.yaml"))
        await engine.start()
        try:
            async with api_client(engine, Role.ADMIN) as admin:
                base = str(admin._base_url)
                missing_reason = await admin.post(
                    "/api/tokens", json={"name": "x", "role": "viewer"}
                )
                assert missing_reason.status == 422
                created = await admin.post(
                    "/api/tokens",
                    json={"name": "night desk", "role": "operator", "reason": "on call"},
                )
                assert created.status == 201
                issued = await created.json()
                token = issued["token"]
                assert token.startswith("tf_") and issued["role"] == "operator"

                listing = await (await admin.get("/api/tokens")).json()
                text = str(listing)
                assert "night desk" in text and token not in text
                assert all(
                    set(t) == {"token_id", "name", "role", "created_at", "created_by", "revoked_at"}
                    for t in listing["tokens"]
                )

                async with aiohttp.ClientSession(
                    base_url=base, headers={"Authorization": f"Bearer {token}"}
                ) as operator:
                    session = await operator.post("/api/session")
                    assert session.status == 200
                    assert await session.json() == {
                        "name": "night desk",
                        "role": "operator",
                        "via": "token",
                    }
                    assert (await operator.get("/api/tokens")).status == 403
                    assert (await operator.get("/api/status")).status == 200

                    revoked = await admin.post(
                        f"/api/tokens/{issued['token_id']}/revoke", json={"reason": "left"}
                    )
                    assert revoked.status == 200
                    assert (await operator.get("/api/status")).status == 401
                    again = await admin.post(
                        f"/api/tokens/{issued['token_id']}/revoke", json={"reason": "again"}
                    )
                    assert again.status == 404

            audit = sorted(
                await engine.store.audit(f"token:{issued['token_id']}"), key=lambda e: e.entry_id
            )
            assert [(e.action, e.actor) for e in audit] == [
                ("token.issued", "test-admin"),
                ("token.revoked", "test-admin"),
            ]
            assert "on call" in audit[0].detail and audit[1].detail == "left"
            logins = await engine.store.audit("principal:night desk")
            assert [(e.action, e.actor, e.detail) for e in logins] == [
                ("login", "night desk", "via token as operator")
            ]
        finally:
            await engine.stop()
        assert token.encode() not in (tmp_path / "t.db").read_bytes()
        wal = tmp_path / "t.db-wal"
        assert not wal.exists() or token.encode() not in wal.read_bytes()

    asyncio.run(main())


def test_viewer_and_sender_may_not_manage_tokens(tmp_path: Path) -> None:
    async def main() -> None:
        engine = Engine(parse_config(config_text(tmp_path), "t.yaml"))
        await engine.start()
        try:
            async with api_client(engine, Role.VIEWER) as viewer:
                body = {"name": "x", "role": "admin", "reason": "escalate"}
                assert (await viewer.post("/api/tokens", json=body)).status == 403
                sender = await issue(engine, Role.SENDER)
                headers = {"Authorization": f"Bearer {sender}"}
                answer = await viewer.post("/api/session", headers=headers)
                assert (await answer.json())["role"] == "sender"
                assert (
                    await viewer.post("/api/session", headers={"Authorization": "Bearer no"})
                ).status == 401
        finally:
            await engine.stop()

    asyncio.run(main())


async def tokens_cli(config: Path, *args: str, token: str = "") -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "thumpflow.cli.main",
        "tokens",
        *args,
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "THUMPFLOW_TOKEN": token},
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def test_cli_on_the_stopped_store_then_through_the_running_engine(tmp_path: Path) -> None:
    async def main() -> None:
        port = free_port()
        config = tmp_path / "t.yaml"
        config.write_text(config_text(tmp_path, port))
        # Engine stopped: the command works on the store (lost admin token recovery).
        code, out, err = await tokens_cli(
            config,
            "create",
            "rescue",
            "--role",
            "admin",
            "--reason",
            "lost the admin token",
            "--actor",
            "alice",
        )
        assert code == 0, err
        token = out.strip().splitlines()[-1]
        assert token.startswith("tf_")
        code, out, _ = await tokens_cli(config, "list")
        assert code == 0 and "rescue" in out and "admin" in out and token not in out

        engine = Engine(parse_config(config.read_text(), "t.yaml"))
        await engine.start()
        server = await start_api(engine)
        try:
            async with aiohttp.ClientSession(
                base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}
            ) as rescued:
                assert (await rescued.get("/api/tokens")).status == 200
            code, out, err = await tokens_cli(
                config,
                "create",
                "etl",
                "--role",
                "viewer",
                "--reason",
                "dashboard wall",
                token=token,
            )
            assert code == 0, err
            viewer_token = out.strip().splitlines()[-1]
            etl_id = int(out.split()[1])
            code, out, err = await tokens_cli(
                config, "revoke", str(etl_id), "--reason", "done", token=token
            )
            assert code == 0, err
            code, _, err = await tokens_cli(
                config, "revoke", "999", "--reason", "typo", token=token
            )
            assert code == 1 and "999" in err
            audit = sorted(await engine.store.audit(f"token:{etl_id}"), key=lambda e: e.entry_id)
            # Through the engine the audit names the API caller (the rescue token).
            assert [(e.action, e.actor) for e in audit] == [
                ("token.issued", "rescue"),
                ("token.revoked", "rescue"),
            ]
            async with aiohttp.ClientSession(
                base_url=f"http://127.0.0.1:{port}",
                headers={"Authorization": f"Bearer {viewer_token}"},
            ) as gone:
                assert (await gone.get("/api/status")).status == 401
        finally:
            await server.close()
            await engine.stop()
        issued_by = [
            actor for actor, action in await _audit(engine.config) if action == "token.issued"
        ]
        assert "alice" in issued_by
        for name in ("t.db", "t.db-wal"):
            path = tmp_path / name
            if path.exists():
                data = path.read_bytes()
                assert token.encode() not in data and viewer_token.encode() not in data

    asyncio.run(main())


async def _audit(config: Config) -> list[tuple[str, str]]:
    store = open_store(config, read_only=True)
    await store.open()
    try:
        return [(e.actor, e.action) for e in await store.audit(None, 100)]
    finally:
        await store.close()
