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
        default=64,
        ge=1,
        description="Most connections open at once. At the limit a new connection closes "
        "the slowest one (a partial frame arriving below `min_frame_bytes_per_second`) or else "
        "the one idle longest; one whose message is being processed or whose frame is arriving "
        "fast enough is never closed. Only when none can be closed is the new one refused.",
    )
    max_connections_per_peer: int = Field(
        default=16,
        ge=1,
        description="Most connections from one remote address (at most `max_connections`), "
        "so one sender cannot take every slot. Beyond it, that address's own slowest or "
        "longest idle connection is closed as above, or else the new one is refused.",
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
    frame_grace_seconds: Duration = Field(
        default=10.0,
        gt=0,
        description="Time a frame may take before `min_frame_bytes_per_second` applies to it.",
    )
    min_frame_bytes_per_second: float = Field(
        default=1024.0,
        ge=0,
        description="Past the grace, a frame not yet complete must have arrived at least this "
        "fast on average since its first byte, or the connection is closed; the part received "
        "is kept as a truncated frame (a reject, answered AR). 0 turns the check off.",
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
        "max_connections_per_peer": 16,
        "idle_timeout_seconds": 600,
        "frame_grace_seconds": 10,
        "min_frame_bytes_per_second": 1024,
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
