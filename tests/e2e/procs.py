"""Real processes for end-to-end proofs: the engine and the HTTP receiver, on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

START, END = b"\x0b", b"\x1c\r"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_listening(port: int, process: subprocess.Popen[bytes], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"process exited with {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listening on {port} after {seconds}s")


def start_engine(
    config: Path,
    port: int,
    log: Path,
    *,
    log_format: str = "text",
    log_level: str = "INFO",
    new_session: bool = False,
) -> subprocess.Popen[bytes]:
    handle = log.open("ab")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "thumpflow.cli.main",
            "run",
            "--config",
            str(config),
            "--log-level",
            log_level,
            "--log-format",
            log_format,
        ],
        stdin=subprocess.DEVNULL,
        stdout=handle,
        stderr=handle,
        start_new_session=new_session,
    )
    wait_listening(port, process)
    return process


def start_receiver(port: int, log: Path, out: Path) -> subprocess.Popen[bytes]:
    handle = out.open("ab")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "thumpflow.testing.http_receiver",
            "--port",
            str(port),
            "--log",
            str(log),
        ],
        stdin=subprocess.DEVNULL,
        stdout=handle,
        stderr=handle,
    )
    wait_listening(port, process)
    return process


async def send_in_order(
    port: int, messages: Sequence[bytes], *, timeout: float = 10.0
) -> list[bytes]:
    """Send messages one at a time on one connection; stop at the first failure.

    Returns the ACKs received, in order (so `len(result)` messages were acknowledged
    or answered).
    """
    acks: list[bytes] = []
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    except (OSError, TimeoutError):
        return acks
    try:
        for message in messages:
            writer.write(START + message + END)
            await writer.drain()
            frame = await asyncio.wait_for(reader.readuntil(END), timeout)
            acks.append(frame.lstrip(START)[: -len(END)])
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return acks


def ack_code(ack: bytes) -> str:
    for segment in ack.replace(b"\n", b"\r").split(b"\r"):
        if segment.startswith(b"MSA"):
            return segment.split(b"|")[1].decode()
    return ""
