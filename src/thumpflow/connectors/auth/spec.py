"""How FHIR requests are authorised: the `auth` models shared by the FHIR connectors.

Pure data, no I/O. Secrets are never written in the configuration: it names
the environment variable or file that holds them.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from thumpflow.connectors.fields import LocalPath

_CREDENTIAL_HEADER = re.compile(
    r"authorization|cookie|token|secret|password|passwd|api[-_]?key|credential|signature",
    re.IGNORECASE,
)
_USERINFO = re.compile(r"^[a-z][a-z0-9+.-]*://[^/?#@]*@", re.IGNORECASE)


class SecretRef(BaseModel):
    """Where a secret value is read from when connecting: an environment variable or a file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Environment variable holding the value.",
    )
    file: LocalPath | None = Field(
        default=None, description="File holding the value (trailing newline ignored)."
    )

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of env and file")
        return self


def plain_headers(headers: dict[str, str]) -> dict[str, str]:
    """Refuse headers whose name says they carry a credential (`headers` are plain text).

    The remedy names `secret_headers`, whose values come from the
    environment or a file and are never written in the configuration.
    """
    for name in headers:
        if _CREDENTIAL_HEADER.search(name):
            raise ValueError(
                f"header {name!r} carries a credential, which must not be written in the "
                f"configuration; give it as `secret_headers: {{{name}: {{env: VARIABLE}}}}` "
                "(or `file: PATH`)"
            )
    return headers


def no_userinfo(url: str) -> str:
    """Refuse a URL with a user name or password in it (`https://user:secret@host`)."""
    if _USERINFO.match(url):
        raise ValueError(
            "the URL must not contain a user name or password; use `auth` or `secret_headers`"
        )
    return url


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
    token_file: LocalPath | None = Field(
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
    private_key_file: LocalPath = Field(
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
