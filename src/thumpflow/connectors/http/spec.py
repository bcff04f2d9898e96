"""Configuration of the HTTP destination. Pure data: no I/O."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from thumpflow.connectors.auth.spec import SecretRef, no_userinfo, plain_headers
from thumpflow.connectors.fields import Duration
from thumpflow.connectors.tls import ClientTls


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
        description="Extra plain headers sent with every request; a header whose name says it "
        "carries a credential (Authorization, Cookie, *token*, *key*, *secret*...) is refused: "
        "use `secret_headers`.",
    )
    secret_headers: dict[str, SecretRef] = Field(
        default_factory=dict,
        description="Headers whose values are secrets (e.g. `Authorization`, an API key), each "
        "read from `env` or `file` at start, never written in the configuration.",
    )
    timeout_seconds: Duration = Field(
        default=30.0,
        gt=0,
        description="Whole-request time limit; passing it is a transient failure.",
    )
    tls: ClientTls | None = Field(default=None, description="HTTPS settings.")
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
        "secret_headers": {"Authorization": {"env": "WAREHOUSE_AUTHORIZATION"}},
        "timeout_seconds": 30,
    }

    _url = field_validator("url")(no_userinfo)
    _headers = field_validator("headers")(plain_headers)
