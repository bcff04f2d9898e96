"""Configuration of an alert webhook. Pure data: no I/O.

Header values that are secrets (an API key, a bearer token) are not written
in the configuration: `{env: NAME}` or `{file: PATH}` names where they are,
read when the engine starts.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from thumpflow.connectors.fields import Duration, LocalPath
from thumpflow.connectors.tls import ClientTls


class HeaderSecret(BaseModel):
    """A header value read from an environment variable or a file (trailing newline dropped)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: str | None = Field(
        default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Environment variable."
    )
    file: LocalPath | None = Field(default=None, description="File holding the value.")

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of env and file")
        return self


class WebhookSpec(BaseModel):
    """POST each alert raised or cleared, as JSON, to a URL (chat bridge, pager, ticketing)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(pattern=r"^https?://", description="Where notices are POSTed.")
    headers: dict[str, str | HeaderSecret] = Field(
        default_factory=dict,
        description="Extra headers: a plain value, or `{env: NAME}` / `{file: PATH}` for a secret.",
    )
    timeout_seconds: Duration = Field(
        default=10.0, gt=0, description="Whole-request time limit; passing it is retried."
    )
    tls: ClientTls | None = Field(default=None, description="HTTPS settings.")

    example: ClassVar[dict[str, Any]] = {
        "url": "https://alerts.example.org/hooks/thumpflow",
        "headers": {"Authorization": {"env": "ALERT_HOOK_TOKEN"}},
        "timeout_seconds": 10,
    }
