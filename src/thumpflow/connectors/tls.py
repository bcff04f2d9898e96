"""TLS settings and contexts shared by every connector: TLS 1.2 or later, PEM files.

This is a shared helper, not a connector: connectors import it, never each
other. Specs are pure data; the context builders read the PEM files and raise
`OSError`/`ssl.SSLError` when they are missing or unreadable.
"""

from __future__ import annotations

import ipaddress
import ssl
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from thumpflow.connectors.fields import LocalPath


class ClientTls(BaseModel):
    """TLS for outgoing connections: server verification and optional mutual TLS."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ca_file: LocalPath | None = Field(
        default=None,
        description="PEM file with the CAs the server certificate is verified against; "
        "the system trust store when omitted.",
    )
    cert_file: LocalPath | None = Field(
        default=None, description="PEM file with a client certificate chain, for mutual TLS."
    )
    key_file: LocalPath | None = Field(
        default=None, description="PEM file with the client private key, for mutual TLS."
    )
    verify: bool = Field(
        default=True,
        description="Verify the server certificate and host name. Turn off only in tests.",
    )

    @model_validator(mode="after")
    def _cert_and_key(self) -> Self:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self


class ServerTls(BaseModel):
    """TLS for a listener, optionally verifying client certificates."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cert_file: LocalPath = Field(description="PEM file with the server certificate chain.")
    key_file: LocalPath = Field(description="PEM file with the server private key.")
    ca_file: LocalPath | None = Field(
        default=None,
        description="PEM file with the CAs that client certificates are verified against.",
    )
    require_client_cert: bool = Field(
        default=False,
        description="Refuse clients that present no certificate signed by `ca_file` (mutual TLS).",
    )
    min_version: Literal["1.2", "1.3"] = Field(
        default="1.2", description="Oldest TLS version accepted."
    )

    @model_validator(mode="after")
    def _client_cert_needs_ca(self) -> Self:
        if self.require_client_cert and self.ca_file is None:
            raise ValueError("require_client_cert needs ca_file")
        return self


_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}

PLAINTEXT_WARNING = (
    "`allow_plaintext: true` lets anyone on the network read and alter what passes (patient "
    "data, credentials); use it only behind a TLS-terminating proxy or on an isolated network."
)


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def plaintext_problem(host: str, tls: ServerTls | None, allow_plaintext: bool) -> str | None:
    """Why a listener may not be configured so, or None: no plaintext beyond loopback."""
    if tls is not None or allow_plaintext or is_loopback(host):
        return None
    return (
        f"listening on {host} without TLS exposes the traffic to the network: add `tls` "
        "(cert_file, key_file) or, knowingly, `allow_plaintext: true`"
    )


def client_context(tls: ClientTls) -> ssl.SSLContext:
    """A client context; verifies the server unless `verify` is off."""
    ctx = ssl.create_default_context(cafile=tls.ca_file)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if not tls.verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if tls.cert_file is not None and tls.key_file is not None:
        ctx.load_cert_chain(tls.cert_file, tls.key_file)
    return ctx


def server_context(tls: ServerTls) -> ssl.SSLContext:
    """A server context; verifies client certificates against `ca_file` when given."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = _VERSIONS[tls.min_version]
    ctx.load_cert_chain(tls.cert_file, tls.key_file)
    if tls.ca_file is not None:
        ctx.load_verify_locations(cafile=tls.ca_file)
        ctx.verify_mode = ssl.CERT_REQUIRED if tls.require_client_cert else ssl.CERT_OPTIONAL
    return ctx
