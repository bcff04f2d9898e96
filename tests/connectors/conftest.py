"""Shared helpers for connector tests: a recording ingress and TLS certificates."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from thumpflow.core.errors import MessageError
from thumpflow.hl7v2 import Message, build_ack, build_ack_for_raw


@dataclass
class RecordingIngress:
    """An `Ingress` that records what it gets and answers AA (AR for framing errors)."""

    delay: float = 0.0
    calls: list[tuple[bytes, str, str | None]] = field(default_factory=list)
    open_event: asyncio.Event | None = None
    in_flight: int = 0
    max_in_flight: int = 0

    def close_gate(self) -> None:
        self.open_event = asyncio.Event()

    def open_gate(self) -> None:
        assert self.open_event is not None
        self.open_event.set()
        self.open_event = None

    async def receive(
        self, raw: bytes, peer: str, framing_error: str | None = None
    ) -> bytes | None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            self.calls.append((raw, peer, framing_error))
            if framing_error is not None:
                return build_ack_for_raw(raw, "AR", MessageError(framing_error))
            return build_ack(Message.parse(raw), "AA")
        finally:
            self.in_flight -= 1

    def is_open(self) -> bool:
        return self.open_event is None

    async def wait_open(self) -> None:
        if self.open_event is not None:
            await self.open_event.wait()


def hl7(n: int, marker: str = "") -> bytes:
    return (
        f"MSH|^~\\&|SEND|FAC|RECV|FAC|20240101120000||ADT^A01^ADT_A01|MSG{n:05d}|P|2.5\r"
        f"PID|1||{n}^^^HOSP^MR||DOE^JOHN{marker}\r"
    ).encode()


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_cert: Path
    other_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    if shutil.which("openssl") is None:
        pytest.fail("openssl is not installed: run scripts/test-deps.sh (make test does)")
    d = tmp_path_factory.mktemp("tls")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test ca",
             "-keyout", "ca.key", "-out", "ca.pem", cwd=d)  # fmt: skip
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name, signed_by_ca in (("server", True), ("client", True), ("other", False)):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                 "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)  # fmt: skip
        if signed_by_ca:
            _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                     "-CAcreateserial", "-days", "2", "-extfile", "san.ext",
                     "-out", f"{name}.pem", cwd=d)  # fmt: skip
        else:
            _openssl("x509", "-req", "-in", f"{name}.csr", "-signkey", f"{name}.key",
                     "-days", "2", "-out", f"{name}.pem", cwd=d)  # fmt: skip
    return TlsFiles(
        ca=d / "ca.pem",
        server_cert=d / "server.pem",
        server_key=d / "server.key",
        client_cert=d / "client.pem",
        client_key=d / "client.key",
        other_cert=d / "other.pem",
        other_key=d / "other.key",
    )
