"""One SFTP session per operation, with host key verification and clear failures."""

from __future__ import annotations

import contextlib
import os
import posixpath
from collections.abc import AsyncIterator
from typing import Any

import asyncssh

from thumpflow.connectors.sftp.spec import SftpConnection
from thumpflow.core.errors import ThumpflowError


class SftpError(ThumpflowError):
    """An SFTP server could not be reached, logged in to, trusted, or used."""


def where(spec: SftpConnection) -> str:
    return f"sftp://{spec.username}@{spec.host}:{spec.port}"


@contextlib.asynccontextmanager
async def session(spec: SftpConnection) -> AsyncIterator[asyncssh.SFTPClient]:
    """An SFTP client over a fresh SSH connection, closed on exit.

    The host key must be in `known_hosts` (unless the spec turns the check
    off); only the configured key or password is offered (no agent, no
    `~/.ssh` keys or config). Failures to connect, verify the host or log in
    raise SftpError naming the server and what failed.
    """
    options: dict[str, Any] = {
        "username": spec.username,
        "known_hosts": None if spec.insecure_skip_host_key_check else spec.known_hosts,
        "config": None,
        "agent_path": None,
        "connect_timeout": spec.connect_timeout_seconds,
        "login_timeout": spec.connect_timeout_seconds,
    }
    if spec.private_key_file is not None:
        options["client_keys"] = [spec.private_key_file]
        options["password"] = None
    else:
        assert spec.password_env is not None
        secret = os.environ.get(spec.password_env)
        if not secret:
            raise SftpError(f"{where(spec)}: environment variable {spec.password_env} is not set")
        options["client_keys"] = None
        options["password"] = secret
    try:
        conn = await asyncssh.connect(spec.host, spec.port, **options)
    except asyncssh.HostKeyNotVerifiable as exc:
        raise SftpError(
            f"{where(spec)}: host key verification failed: the server's key is not the one "
            f"listed for it in {spec.known_hosts} ({exc.reason})"
        ) from None
    except asyncssh.PermissionDenied:
        raise SftpError(f"{where(spec)}: login refused for user {spec.username}") from None
    except (OSError, asyncssh.Error, TimeoutError) as exc:
        raise SftpError(f"{where(spec)}: cannot connect: {exc}") from None
    try:
        async with conn, conn.start_sftp_client() as sftp:
            yield sftp
    except asyncssh.SFTPError as exc:
        raise SftpError(f"{where(spec)}: {exc.reason}") from None


def join(directory: str, name: str) -> str:
    """A remote path (always POSIX)."""
    return posixpath.join(directory, name)


async def replace(sftp: asyncssh.SFTPClient, source: str, target: str) -> None:
    """Rename `source` to `target`, replacing it atomically (posix-rename extension).

    Servers without the extension get remove-then-rename: for a moment there
    is no file under `target`, but never a partial one.
    """
    try:
        await sftp.posix_rename(source, target)
    except asyncssh.SFTPOpUnsupported:
        with contextlib.suppress(asyncssh.SFTPNoSuchFile):
            await sftp.remove(target)
        await sftp.rename(source, target)
