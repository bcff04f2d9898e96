"""A throwaway PostgreSQL cluster on loopback for the tests that need one.

One cluster per test session (`initdb` into a fresh directory under /tmp, then
`postgres -D DIR -k DIR -p PORT -c listen_addresses=127.0.0.1`). PostgreSQL
refuses to run as root, so as root it runs as the `postgres` system user (the
Debian package creates it) and the directory is handed to that user. TCP logins
need a password (SCRAM). Each test takes a new schema (`new_schema`) or a new
database (`new_database`), so tests never see each other's tables.

Missing binaries or a missing `postgres` user fail with what to install
(`scripts/test-deps.sh` installs them); nothing is skipped. The fixture
`pg_cluster` is registered for the whole suite by `tests/conftest.py`.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

PG_PASSWORD = "thumpflow-test-password"
_names = itertools.count(1)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found is not None:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if candidates:
        return str(candidates[-1])
    pytest.fail(
        f"PostgreSQL binary {name!r} not found on PATH or under /usr/lib/postgresql/*/bin; "
        "run scripts/test-deps.sh (apt-get install postgresql)",
        pytrace=False,
    )


@dataclass(frozen=True)
class PgCluster:
    """A running throwaway cluster: connect over TCP as `postgres` with `PG_PASSWORD`."""

    port: int
    password_file: Path

    def dsn(self, schema: str = "public") -> str:
        return (
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres "
            f"options='-c search_path={schema}'"
        )

    def new_database(self) -> str:
        """A DSN (password in it) of a new, empty database."""
        name = f"db{next(_names)}"
        with psycopg.connect(self.dsn(), password=PG_PASSWORD, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={name} password={PG_PASSWORD}"

    def new_schema(self) -> str:
        """A DSN whose tables live in a new, empty schema (cheaper than a database)."""
        name = f"t{next(_names)}"
        with psycopg.connect(self.dsn(), password=PG_PASSWORD, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {name}")
        return self.dsn(name)


def _wait_for_postgres(cluster: PgCluster, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"postgres exited with {process.returncode}:\n{log.read_text()}")
        try:
            with psycopg.connect(cluster.dsn(), password=PG_PASSWORD, connect_timeout=2):
                return
        except psycopg.OperationalError:
            time.sleep(0.1)
    pytest.fail(f"postgres did not accept connections within 30 s:\n{log.read_text()}")


def stop_process(process: subprocess.Popen[bytes], sig: int) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# The environment variable the test engines' configurations name as their
# store's `password_env`.
PASSWORD_ENV = "TF_TEST_PG_PASSWORD"


@pytest.fixture
def dsn(pg_cluster: PgCluster, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh database on the session's cluster for an engine: its DSN, with the
    password in `PASSWORD_ENV` for the test's duration."""
    monkeypatch.setenv(PASSWORD_ENV, PG_PASSWORD)
    return pg_cluster.new_database()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    initdb, postgres = _pg_bin("initdb"), _pg_bin("postgres")
    as_root = os.geteuid() == 0
    user: str | None = None
    if as_root:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail(
                "running as root but there is no `postgres` system user to run PostgreSQL as; "
                "run scripts/test-deps.sh (apt-get install postgresql creates it)",
                pytrace=False,
            )
        user = owner.pw_name
    base = Path(tempfile.mkdtemp(prefix="thumpflow-pg-"))
    try:
        data = base / "data"
        password_file = base / "password"
        password_file.write_text(PG_PASSWORD + "\n")
        if as_root:
            os.chown(base, owner.pw_uid, owner.pw_gid)
            os.chown(password_file, owner.pw_uid, owner.pw_gid)
        subprocess.run(
            [
                initdb,
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                f"--pwfile={password_file}",
                "--no-sync",
                "--encoding=UTF8",
                "--locale=C",
            ],
            user=user,
            cwd=base,
            check=True,
            capture_output=True,
        )
        port = free_port()
        log = base / "postgres.log"
        with log.open("wb") as handle:
            process = subprocess.Popen(
                [
                    postgres,
                    "-D",
                    str(data),
                    "-k",
                    str(base),
                    "-p",
                    str(port),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",
                    "-c",
                    "full_page_writes=off",
                ],
                user=user,
                cwd=base,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=handle,
            )
        cluster = PgCluster(port=port, password_file=password_file)
        try:
            _wait_for_postgres(cluster, process, log)
            yield cluster
        finally:
            stop_process(process, signal.SIGINT)
    finally:
        shutil.rmtree(base, ignore_errors=True)
