"""The simulator as a process (`python -m`, `thumpflow simulate ehr`) and persistence with a db."""

from __future__ import annotations

import asyncio
import json
import select
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp

from tests.ehr.support import ClientKey, patient, send, token_form
from thumpflow.testing.ehr import SimulatedEhr

SIMULATE_CLI = (
    "import argparse, sys\n"
    "from thumpflow.cli import simulate\n"
    "parser = argparse.ArgumentParser(prog='thumpflow simulate')\n"
    "simulate.add_arguments(parser)\n"
    "sys.exit(simulate.run(parser.parse_args(sys.argv[1:])))\n"
)


def start(args: list[str]) -> tuple[subprocess.Popen[str], str]:
    """Start a simulator process; returns it and its FHIR base URL once it is listening."""
    proc = subprocess.Popen(
        [sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 20)
    line = proc.stdout.readline() if ready else ""
    if not line.startswith("listening on "):
        proc.kill()
        raise AssertionError(f"no readiness line: {line!r} {proc.communicate()[1]!r}")
    return proc, line.removeprefix("listening on ").strip()


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> int:
    proc.send_signal(sig)
    return proc.wait(timeout=10)


def test_module_process_with_smart_auth_and_persistence_across_restart(tmp_path: Path) -> None:
    key = ClientKey.generate("RS384")
    jwks = tmp_path / "engine.jwks.json"
    jwks.write_text(json.dumps(key.jwks()))
    db = tmp_path / "ehr.sqlite"
    args = ["-m", "thumpflow.testing.ehr", "--port", "0", "--db", str(db), "--auth", "smart"]
    args += ["--client-jwks", str(jwks)]

    async def first_run(base: str) -> str:
        token_url = base.removesuffix("/fhir") + "/auth/token"
        async with aiohttp.ClientSession() as session:
            async with session.post(
                token_url, data=token_form(key.assertion("engine", token_url))
            ) as response:
                assert response.status == 200
                bearer = {"Authorization": f"Bearer {(await response.json())['access_token']}"}
            status, created, _ = await send(
                session, "POST", f"{base}/Patient", patient("P1"), bearer
            )
            assert status == 201
            pid = str(created["id"])
            changed = {**created, "gender": "female"}
            status, _, _ = await send(session, "PUT", f"{base}/Patient/{pid}", changed, bearer)
            assert status == 200
            return pid

    proc, base = start(args)
    try:
        assert base.startswith("http://127.0.0.1:") and base.endswith("/fhir")
        pid = asyncio.run(first_run(base))
    finally:
        assert stop(proc) == 0

    async def second_run(base: str) -> None:
        token_url = base.removesuffix("/fhir") + "/auth/token"
        async with aiohttp.ClientSession() as session:
            async with session.post(
                token_url, data=token_form(key.assertion("engine", token_url))
            ) as response:
                bearer = {"Authorization": f"Bearer {(await response.json())['access_token']}"}
            status, read, _ = await send(session, "GET", f"{base}/Patient/{pid}", headers=bearer)
            assert status == 200
            assert read["gender"] == "female" and read["meta"]["versionId"] == "2"
            status, history, _ = await send(
                session, "GET", f"{base}/Patient/{pid}/_history", headers=bearer
            )
            assert [e["response"]["etag"] for e in history["entry"]] == ['W/"2"', 'W/"1"']
            status, updated, _ = await send(
                session, "PUT", f"{base}/Patient/{pid}", {**read, "gender": "male"}, bearer
            )
            assert updated["meta"]["versionId"] == "3"
            assert updated["meta"]["lastUpdated"] > read["meta"]["lastUpdated"]

    proc, base = start(args)
    try:
        asyncio.run(second_run(base))
    finally:
        assert stop(proc) == 0


def test_thumpflow_simulate_ehr_command(tmp_path: Path) -> None:
    token = tmp_path / "token.txt"
    token.write_text("static-secret\n")
    faults = json.dumps({"throttle": 1, "retry_after": 2})
    options = ["--auth", "bearer", "--static-token-file", str(token), "--faults", faults]
    proc, base = start(["-c", SIMULATE_CLI, "ehr", "--port", "0", *options])

    async def check() -> None:
        bearer = {"Authorization": "Bearer static-secret"}
        async with aiohttp.ClientSession() as session:
            status, _, response = await send(session, "GET", f"{base}/Patient", headers=bearer)
            assert status == 429 and response.headers["Retry-After"] == "2"
            status, _, _ = await send(session, "GET", f"{base}/Patient", headers=bearer)
            assert status == 200
            status, _, _ = await send(session, "GET", f"{base}/Patient")
            assert status == 401

    try:
        asyncio.run(check())
    finally:
        assert stop(proc, signal.SIGINT) == 0


def test_unusable_options_exit_1_with_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    for extra in (["--client-jwks", f"engine={missing}"], ["--faults", '{"bogus": 1}']):
        done = subprocess.run(
            [sys.executable, "-m", "thumpflow.testing.ehr", "--port", "0", *extra],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        assert done.returncode == 1
        assert len(done.stderr.strip().splitlines()) == 1
        assert "Traceback" not in done.stderr


def test_in_process_restart_with_db_keeps_state(tmp_path: Path) -> None:
    db = tmp_path / "ehr.sqlite"

    async def main() -> None:
        async with SimulatedEhr(db=db) as ehr, aiohttp.ClientSession() as session:
            await send(session, "PUT", f"{ehr.base_url}/Patient/a", patient("A", id="a"))
            await send(session, "DELETE", f"{ehr.base_url}/Patient/a")
            await send(session, "PUT", f"{ehr.base_url}/Patient/b", patient("B", id="b"))
            before = ehr.history("Patient", "a")
        async with SimulatedEhr(db=db) as ehr:
            assert ehr.counts() == {"Patient": 1}
            assert ehr.history("Patient", "a") == before
            assert [v.deleted for v in before] == [False, True]
            ehr.reset()
        async with SimulatedEhr(db=db) as ehr:
            assert ehr.counts() == {}

    asyncio.run(main())
