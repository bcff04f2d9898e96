"""A PostgreSQL primary with a synchronous standby on loopback, for failover tests.

`pg_pair()` runs `initdb` for the primary (WAL for replication, every
standby synchronous: `synchronous_standby_names = '*'`), takes the standby
with `pg_basebackup -R` over the primary's Unix socket, starts both, and
waits until the standby is streaming synchronously, so a COMMIT returns only
once the standby has the WAL. `kill_primary` SIGKILLs the primary's whole
process group (postmaster and backends); `promote` promotes the standby.
As root, both run as the `postgres` system user (as in `tests/postgres.py`).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.postgres import PG_PASSWORD, _pg_bin, free_port, stop_process


@dataclass
class PgPair:
    """A running primary and standby; `dsn` reaches whichever accepts writes."""

    primary_port: int
    standby_port: int
    primary: subprocess.Popen[bytes]
    standby: subprocess.Popen[bytes]

    @property
    def dsn(self) -> str:
        """A multi-host DSN (no password) that follows a failover."""
        return (
            f"host=127.0.0.1,127.0.0.1 port={self.primary_port},{self.standby_port} "
            "user=postgres dbname=postgres target_session_attrs=read-write connect_timeout=3"
        )

    def connect(self, port: int) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host="127.0.0.1",
            port=port,
            user="postgres",
            dbname="postgres",
            password=PG_PASSWORD,
            autocommit=True,
            connect_timeout=5,
        )

    def kill_primary(self) -> None:
        os.killpg(self.primary.pid, signal.SIGKILL)
        self.primary.wait(timeout=30)

    def promote(self) -> None:
        with self.connect(self.standby_port) as conn:
            row = conn.execute("SELECT pg_promote(true, 60)").fetchone()
        assert row is not None and row[0] is True, "the standby was promoted"


def _postgres(
    data: Path, socket_dir: Path, port: int, log: Path, user: str | None, *settings: str
) -> subprocess.Popen[bytes]:
    args = [_pg_bin("postgres"), "-D", str(data), "-k", str(socket_dir), "-p", str(port)]
    for setting in ("listen_addresses=127.0.0.1", "fsync=off", *settings):
        args += ["-c", setting]
    with log.open("wb") as handle:
        return subprocess.Popen(
            args,
            user=user,
            cwd=socket_dir,
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=handle,
            start_new_session=True,
        )


def _wait(check: str, pair: PgPair, port: int, log: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with pair.connect(port) as conn:
                row = conn.execute(check).fetchone()
                if row is not None and row[0]:
                    return
        except psycopg.OperationalError:
            pass
        time.sleep(0.1)
    pytest.fail(f"PostgreSQL did not reach `{check}` within {seconds} s:\n{log.read_text()}")


@contextmanager
def pg_pair() -> Iterator[PgPair]:
    user = "postgres" if os.geteuid() == 0 else None
    base = Path(tempfile.mkdtemp(prefix="thumpflow-pgpair-"))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        password_file = base / "password"
        password_file.write_text(PG_PASSWORD + "\n")
        primary_data, standby_data = base / "primary", base / "standby"
        if user is not None:
            shutil.chown(base, user, user)
            shutil.chown(password_file, user, user)
        subprocess.run(
            [
                _pg_bin("initdb"),
                "-D",
                str(primary_data),
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
        primary_port, standby_port = free_port(), free_port()
        primary_log, standby_log = base / "primary.log", base / "standby.log"
        primary = _postgres(
            primary_data,
            base,
            primary_port,
            primary_log,
            user,
            "wal_level=replica",
            "max_wal_senders=4",
            "synchronous_standby_names=*",
            "synchronous_commit=on",
        )
        processes.append(primary)
        pair = PgPair(primary_port, standby_port, primary, primary)
        _wait("SELECT true", pair, primary_port, primary_log)
        subprocess.run(
            [
                _pg_bin("pg_basebackup"),
                "-D",
                str(standby_data),
                "-h",
                str(base),
                "-p",
                str(primary_port),
                "-U",
                "postgres",
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
                "--no-sync",
            ],
            user=user,
            cwd=base,
            check=True,
            capture_output=True,
        )
        standby = _postgres(standby_data, base, standby_port, standby_log, user)
        processes.append(standby)
        pair.standby = standby
        _wait(
            "SELECT count(*) = 1 FROM pg_stat_replication WHERE sync_state = 'sync'",
            pair,
            primary_port,
            primary_log,
        )
        yield pair
    finally:
        for process in processes:
            if process.poll() is None:
                stop_process(process, signal.SIGINT)
        shutil.rmtree(base, ignore_errors=True)
