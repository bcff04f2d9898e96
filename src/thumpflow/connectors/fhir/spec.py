"""Configuration of the FHIR destination. Pure data: no I/O.

The `auth` models live in `thumpflow.connectors.auth` (shared with the FHIR
Bulk source); they are re-exported here for existing imports.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from thumpflow.connectors.auth import (
    AuthSpec,
    BearerAuth,
    NoAuth,
    SmartBackendAuth,
    no_userinfo,
    plain_headers,
)
from thumpflow.connectors.fields import Duration
from thumpflow.connectors.tls import ClientTls

__all__ = [
    "BearerAuth",
    "FhirBatchDestinationSpec",
    "FhirDestinationSpec",
    "FhirServer",
    "NoAuth",
    "SmartBackendAuth",
]


class FhirServer(BaseModel):
    """Where a FHIR R4 server is and how to reach it (shared by flow and batch destinations)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["fhir"] = Field(description="Destination type.")
    base_url: str = Field(
        pattern=r"^https?://",
        description="FHIR base URL of the server (e.g. `https://ehr.example.org/fhir/R4`).",
    )
    timeout_seconds: Duration = Field(
        default=30.0,
        gt=0,
        description="Time limit of each HTTP request (and of a token request); passing it is "
        "a transient failure.",
    )
    auth: AuthSpec = Field(
        default_factory=lambda: NoAuth(type="none"),
        description="How requests are authorised: `none`, `bearer` or `smart_backend`.",
    )
    tls: ClientTls | None = Field(default=None, description="HTTPS settings (incl. mutual TLS).")
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Extra headers sent with every request (not for secrets: a header whose "
        "name says it carries a credential is refused; use `auth`).",
    )

    _url = field_validator("base_url")(no_userinfo)
    _headers = field_validator("headers")(plain_headers)


class FhirDestinationSpec(FhirServer):
    """Write each delivery's FHIR Bundle to a FHIR R4 server, exactly once in effect."""

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
    max_batch: int = Field(
        default=1,
        ge=1,
        le=256,
        description="Deliveries written concurrently per send; 1 writes one at a time.",
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


class FhirBatchDestinationSpec(FhirServer):
    """Write a run's records (FHIR resources) to a FHIR R4 server in transaction Bundles.

    Each record is one resource, written as an idempotent `PUT`: `Type/id` when
    it has an `id`; else `Type?identifier=system|value` (conditional update) by
    its first identifier with both; else `Type/<id>` with the id derived from
    the job's business key (`thumpflow.fhir.deterministic_id`). Re-running a
    window therefore updates the same resources and never creates a second one.
    """

    chunk_size: int = Field(
        default=100,
        ge=1,
        le=1000,
        description="Resources per transaction Bundle (one all-or-nothing request).",
    )

    example: ClassVar[dict[str, Any]] = {
        "type": "fhir",
        "base_url": "https://ehr.example.org/fhir/R4",
        "chunk_size": 100,
        "auth": {"type": "bearer", "token_env": "EHR_TOKEN"},
    }
