"""Configuration of the MLLP source and destination. Pure data: no I/O."""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from thumpflow.connectors.fields import Duration
from thumpflow.connectors.tls import PLAINTEXT_WARNING, ClientTls, ServerTls, plaintext_problem


class MllpClientTls(ClientTls):
    """TLS for an MLLP connection to a receiver (TLS 1.2 or later)."""

    server_name: str | None = Field(
        default=None,
        description="Host name expected in the receiver's certificate; `host` when omitted.",
    )


class MllpSourceSpec(BaseModel):
    """Listen for HL7 v2 messages over MLLP and acknowledge each after it is durably committed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["mllp"] = Field(description="Source type.")
    host: str = Field(
        default="127.0.0.1",
        description="Address to listen on; beyond loopback it needs `tls` or `allow_plaintext`.",
    )
    port: int = Field(
        ge=0, le=65535, description="TCP port to listen on; 0 picks a free port (tests)."
    )
    max_connections: int = Field(
        default=64, ge=1, description="Connections beyond this many are closed at once."
    )
    max_message_bytes: int = Field(
        default=1_048_576,
        ge=64,
        description="Largest accepted message; a longer frame is kept (truncated) as a reject.",
    )
    idle_timeout_seconds: Duration = Field(
        default=600.0,
        gt=0,
        description="A connection that sends nothing for this long, with nothing in progress, "
        "is closed.",
    )
    tls: ServerTls | None = Field(default=None, description="Serve MLLP over TLS.")
    allow_plaintext: bool = Field(
        default=False,
        description="Listen without TLS on a non-loopback address. " + PLAINTEXT_WARNING,
    )

    example: ClassVar[dict[str, Any]] = {
        "type": "mllp",
        "host": "0.0.0.0",
        "port": 2575,
        "max_connections": 64,
        "idle_timeout_seconds": 600,
        "tls": {"cert_file": "/etc/thumpflow/mllp.pem", "key_file": "/etc/thumpflow/mllp.key"},
    }

    @model_validator(mode="after")
    def _no_plaintext_beyond_loopback(self) -> Self:
        problem = plaintext_problem(self.host, self.tls, self.allow_plaintext)
        if problem is not None:
            raise ValueError(problem)
        return self


class MllpDestinationSpec(BaseModel):
    """Send each delivery as one HL7 v2 message over MLLP and wait for its ACK."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["mllp"] = Field(description="Destination type.")
    host: str = Field(description="Receiver host name or address.")
    port: int = Field(ge=1, le=65535, description="Receiver TCP port.")
    connect_timeout_seconds: Duration = Field(
        default=10.0, gt=0, description="Give up connecting after this long (a transient failure)."
    )
    ack_timeout_seconds: Duration = Field(
        default=30.0,
        gt=0,
        description="Give up waiting for the ACK after this long (a transient failure; the "
        "connection is dropped).",
    )
    max_message_bytes: int = Field(
        default=1_048_576, ge=64, description="Largest ACK accepted from the receiver."
    )
    tls: MllpClientTls | None = Field(default=None, description="Connect over TLS.")

    example: ClassVar[dict[str, Any]] = {
        "type": "mllp",
        "host": "lab.example.org",
        "port": 2575,
        "ack_timeout_seconds": 30,
    }
