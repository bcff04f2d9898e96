"""Real servers on loopback for the SQL and SFTP connector tests.

- PostgreSQL: one throwaway cluster per test session (`initdb` into a fresh
  directory under /tmp, then `postgres -D DIR -k DIR -p PORT -c
  listen_addresses=127.0.0.1`). PostgreSQL refuses to run as root, so as root
  both run as the `postgres` system user (the Debian package creates it) and
  the directory is handed to that user. TCP logins need a password (SCRAM);
  each test gets its own schema.
- OpenSSH: one `sshd -D -e -f CONFIG` per session with a generated host key,
  key-only login of the user running the tests, `internal-sftp`.

Missing binaries or a missing `postgres` user fail with what to install
(`scripts/test-deps.sh` installs them); nothing is skipped.
"""

from __future__ import annotations

import contextlib
import getpass
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

import asyncssh
import psycopg
import pytest

PG_PASSWORD = "thumpflow-test-password"
_schemas = itertools.count(1)


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

    def new_schema(self) -> str:
        """A DSN whose tables live in a new, empty schema (cheaper than a database)."""
        name = f"t{next(_schemas)}"
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


def _stop(process: subprocess.Popen[bytes], sig: int) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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
            _stop(process, signal.SIGINT)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@dataclass(frozen=True)
class SshServer:
    """A running sshd: log in as `username` with `client_key`, verify with `known_hosts`."""

    port: int
    username: str
    client_key: Path
    known_hosts: Path
    other_known_hosts: Path


def _write_key(key: asyncssh.SSHKey, path: Path) -> None:
    key.write_private_key(str(path))
    path.chmod(0o600)


@pytest.fixture(scope="session")
def ssh_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    sshd = Path("/usr/sbin/sshd")
    if not sshd.is_file():
        pytest.fail(
            "/usr/sbin/sshd not found; run scripts/test-deps.sh (apt-get install openssh-server)",
            pytrace=False,
        )
    base = tmp_path_factory.mktemp("sshd")
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    stranger_key = asyncssh.generate_private_key("ssh-ed25519")
    _write_key(host_key, base / "host_key")
    _write_key(client_key, base / "client_key")
    authorized = base / "authorized_keys"
    authorized.write_bytes(client_key.export_public_key())
    authorized.chmod(0o600)
    port = free_port()
    known_hosts = base / "known_hosts"
    known_hosts.write_bytes(f"[127.0.0.1]:{port} ".encode() + host_key.export_public_key())
    other_known_hosts = base / "other_known_hosts"
    other_known_hosts.write_bytes(
        f"[127.0.0.1]:{port} ".encode() + stranger_key.export_public_key()
    )
    as_root = os.geteuid() == 0
    if as_root:
        # sshd's compiled-in privilege separation directory; the Debian service creates it.
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    config = base / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {base / 'host_key'}",
                f"PidFile {base / 'sshd.pid'}",
                f"AuthorizedKeysFile {authorized}",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                "StrictModes no",
                f"PermitRootLogin {'prohibit-password' if as_root else 'no'}",
                "Subsystem sftp internal-sftp",
                "LogLevel ERROR",
                "",
            ]
        )
    )
    log = base / "sshd.log"
    with log.open("wb") as handle:
        process = subprocess.Popen(
            [str(sshd), "-D", "-e", "-f", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=handle,
        )
    try:
        deadline = time.monotonic() + 15
        while True:
            if process.poll() is not None:
                pytest.fail(f"sshd exited with {process.returncode}:\n{log.read_text()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if time.monotonic() > deadline:
                pytest.fail(f"sshd not listening within 15 s:\n{log.read_text()}")
            time.sleep(0.05)
        yield SshServer(
            port=port,
            username=getpass.getuser(),
            client_key=base / "client_key",
            known_hosts=known_hosts,
            other_known_hosts=other_known_hosts,
        )
    finally:
        _stop(process, signal.SIGTERM)
