"""Configuration of the HTTP destination. Pure data: no I/O."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class HttpTls(BaseModel):
    """TLS settings for HTTPS requests (certificate verification and mutual TLS)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ca_file: str | None = Field(
        default=None,
        description="PEM file with the CAs the server certificate is verified against; "
        "the system trust store when omitted.",
    )
    cert_file: str | None = Field(
        default=None, description="PEM file with a client certificate chain, for mutual TLS."
    )
    key_file: str | None = Field(
        default=None, description="PEM file with the client private key, for mutual TLS."
    )
    verify: bool = Field(
        default=True,
        description="Verify the server certificate and host name. Turn off only in tests.",
    )

    @model_validator(mode="after")
    def _cert_and_key(self) -> HttpTls:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self


class HttpDestinationSpec(BaseModel):
    """POST each delivery to a URL with an `Idempotency-Key` header; 2xx means delivered."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["http"] = Field(description="Destination type.")
    url: str = Field(
        pattern=r"^https?://", description="Endpoint every delivery is POSTed to (http or https)."
    )
    format: Literal["json", "raw"] = Field(
        default="json",
        description="`json`: a JSON envelope with the event metadata and the message as text. "
        "`raw`: the message bytes, with the delivery's content type.",
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Extra headers sent with every request (e.g. an API key).",
    )
    timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Whole-request time limit; passing it is a transient failure.",
    )
    tls: HttpTls | None = Field(default=None, description="HTTPS settings.")
    max_batch: int = Field(
        default=1,
        ge=1,
        le=256,
        description="Deliveries sent concurrently (one request each); 1 sends one at a time.",
    )

    example: ClassVar[dict[str, Any]] = {
        "type": "http",
        "url": "https://warehouse.example.org/ingest",
        "format": "json",
        "headers": {"Authorization": "Bearer ${WAREHOUSE_TOKEN}"},
        "timeout_seconds": 30,
    }
