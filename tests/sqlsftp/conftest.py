"""Real servers on loopback for the SQL and SFTP connector tests.

- PostgreSQL: the session's throwaway cluster (`tests/postgres.py`, fixture
  `pg_cluster` from `tests/conftest.py`); each test gets its own schema.
- OpenSSH: one `sshd -D -e -f CONFIG` per session with a generated host key,
  key-only login of the user running the tests, `internal-sftp`.

A missing sshd fails with what to install (`scripts/test-deps.sh` installs
it); nothing is skipped.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import pytest

from tests.postgres import free_port, stop_process


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
        stop_process(process, signal.SIGTERM)
