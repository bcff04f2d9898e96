"""Configuration of the FHIR destination. Pure data: no I/O."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from thumpflow.connectors.tls import ClientTls


class NoAuth(BaseModel):
    """Send requests without credentials (or with mutual TLS only)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["none"] = Field(description="Authentication type.")


class BearerAuth(BaseModel):
    """A static bearer token, read from an environment variable or a file at start."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["bearer"] = Field(description="Authentication type.")
    token_env: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Environment variable holding the token (the token is never written in "
        "the configuration).",
    )
    token_file: str | None = Field(
        default=None,
        description="File holding the token; read again after a 401, so a rotated token is "
        "picked up without a restart.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> BearerAuth:
        if (self.token_env is None) == (self.token_file is None):
            raise ValueError("give exactly one of token_env and token_file")
        return self


class SmartBackendAuth(BaseModel):
    """SMART Backend Services: client credentials with a signed JWT assertion (RFC 7523)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["smart_backend"] = Field(description="Authentication type.")
    client_id: str = Field(min_length=1, description="Client id registered with the EHR.")
    token_url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="OAuth token endpoint; discovered from "
        "`<base_url>/.well-known/smart-configuration` when omitted.",
    )
    private_key_file: str = Field(
        description="PEM file with the private key whose public half the EHR holds (read at "
        "start, never logged)."
    )
    key_id: str = Field(
        min_length=1, description="`kid` of the key in the JWKS registered with the EHR."
    )
    algorithm: Literal["RS384", "ES384"] = Field(
        default="RS384",
        description="Signature algorithm: `RS384` (RSA key) or `ES384` (EC P-384 key).",
    )
    scope: str = Field(
        default="system/*.write system/*.read", description="Scopes requested for the token."
    )


AuthSpec = Annotated[NoAuth | BearerAuth | SmartBackendAuth, Field(discriminator="type")]


class FhirDestinationSpec(BaseModel):
    """Write each delivery's FHIR Bundle to a FHIR R4 server, exactly once in effect."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["fhir"] = Field(description="Destination type.")
    base_url: str = Field(
        pattern=r"^https?://",
        description="FHIR base URL of the server (e.g. `https://ehr.example.org/fhir/R4`).",
    )
    mode: Literal["transaction", "batch", "conditional_update"] = Field(
        default="transaction",
        description="`transaction`: POST the Bundle as one atomic transaction. `batch`: POST it "
        "as a batch (entries apply independently). `conditional_update`: write each entry "
        "with its own request: `PUT Type?identifier=system|value` (or the entry's own "
        "conditional URL), `POST` with `If-None-Exist` for create-if-absent entries.",
    )
    version_aware: bool = Field(
        default=False,
        description="Before writing, read the current version of each resource an entry "
        "updates and send it as `If-Match`, so a concurrent change in between is detected "
        "(HTTP 412) instead of overwritten.",
    )
    on_version_conflict: Literal["retry", "dead_letter"] = Field(
        default="retry",
        description="What a version conflict (412 to an `If-Match`, or 409) becomes: `retry` "
        "(transient: the next attempt reads the new version and writes again) or "
        "`dead_letter` (permanent: an operator decides).",
    )
    timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Time limit of each HTTP request (and of a token request); passing it is "
        "a transient failure.",
    )
    max_batch: int = Field(
        default=1,
        ge=1,
        le=256,
        description="Deliveries written concurrently per send; 1 writes one at a time.",
    )
    auth: AuthSpec = Field(
        default_factory=lambda: NoAuth(type="none"),
        description="How requests are authorised: `none`, `bearer` or `smart_backend`.",
    )
    tls: ClientTls | None = Field(default=None, description="HTTPS settings (incl. mutual TLS).")
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Extra headers sent with every request (not for secrets: use `auth`).",
    )

    example: ClassVar[dict[str, Any]] = {
        "type": "fhir",
        "base_url": "https://ehr.example.org/fhir/R4",
        "mode": "transaction",
        "version_aware": False,
        "on_version_conflict": "retry",
        "timeout_seconds": 30,
        "auth": {
            "type": "smart_backend",
            "client_id": "thumpflow",
            "private_key_file": "/etc/thumpflow/ehr-key.pem",
            "key_id": "thumpflow-2024",
            "algorithm": "ES384",
        },
    }
