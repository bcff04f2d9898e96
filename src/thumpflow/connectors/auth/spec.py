"""How FHIR requests are authorised: the `auth` models shared by the FHIR connectors.

Pure data, no I/O. Secrets are never written in the configuration: it names
the environment variable or file that holds them.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator


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
    def _one_source(self) -> Self:
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
