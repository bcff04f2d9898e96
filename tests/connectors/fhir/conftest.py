"""Helpers for FHIR destination tests: deliveries, keys, JWKS, certificates, a settable clock."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from thumpflow.connectors.auth._jose import b64url
from thumpflow.core.event import Delivery
from thumpflow.core.lanes import Lane

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def delivery(body: dict[str, Any], n: int = 1, event_id: str | None = None) -> Delivery:
    return Delivery(
        delivery_id=n,
        event_id=event_id or f"EV{n}",
        destination_id="ehr",
        channel_id="adt",
        ordering_key=f"Patient/{n}",
        lane=Lane.ROUTINE,
        sequence=n,
        created_at=1_700_000_000.0,
        body=json.dumps(body).encode(),
        content_type="application/fhir+json",
        event_type="adt.admit",
    )


def write_key(path: Path, key: PrivateKey) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def _int_b64(value: int, length: int | None = None) -> str:
    size = length if length is not None else (value.bit_length() + 7) // 8
    return b64url(value.to_bytes(size, "big"))


def jwks(key: PrivateKey, kid: str) -> dict[str, Any]:
    """The public JWK Set of `key`, as a client registers it with the EHR."""
    if isinstance(key, rsa.RSAPrivateKey):
        numbers = key.public_key().public_numbers()
        jwk = {"kty": "RSA", "alg": "RS384", "n": _int_b64(numbers.n), "e": _int_b64(numbers.e)}
    else:
        point = key.public_key().public_numbers()
        jwk = {
            "kty": "EC",
            "alg": "ES384",
            "crv": "P-384",
            "x": _int_b64(point.x, 48),
            "y": _int_b64(point.y, 48),
        }
    return {"keys": [{**jwk, "kid": kid, "use": "sig"}]}


@dataclass
class ShiftedClock:
    """The system clock whose monotonic reading a test moves by `offset` seconds.

    Wall time stays real, so JWT assertions stay acceptable to the EHR.
    """

    offset: float = 0.0

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic() + self.offset

    async def sleep(self, seconds: float) -> None:
        raise AssertionError("the FHIR destination must not sleep: waiting is the flow core's job")


@dataclass(frozen=True)
class Certs:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_certs(directory: Path) -> Certs:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by it."""
    now = dt.datetime.now(dt.UTC)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("test ca"))
        .issuer_name(name("test ca"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    (directory / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths = {}
    for role in ("server", "client"):
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(role))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
        )
        if role == "server":
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
        cert = builder.sign(ca_key, hashes.SHA256())
        (directory / f"{role}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        paths[role] = (directory / f"{role}.pem", write_key(directory / f"{role}.key", key))
    return Certs(
        ca=directory / "ca.pem",
        server_cert=paths["server"][0],
        server_key=paths["server"][1],
        client_cert=paths["client"][0],
        client_key=paths["client"][1],
    )
