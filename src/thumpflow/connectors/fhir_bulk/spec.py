"""Configuration of the FHIR Bulk Data export source. Pure data: no I/O.

The `auth` models live in `thumpflow.connectors.auth` (shared with the FHIR
destination); they are re-exported here for existing imports.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from thumpflow.connectors.auth import AuthSpec, BearerAuth, NoAuth
from thumpflow.connectors.fields import Duration, LocalPath
from thumpflow.connectors.tls import ClientTls

__all__ = ["BearerAuth", "FhirBulkSourceSpec", "NoAuth"]

_TYPE_NAME = re.compile(r"^[A-Z][A-Za-z]{1,63}$")


class FhirBulkSourceSpec(BaseModel):
    """Read a FHIR Bulk Data export (`$export`, NDJSON) as the records of a run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["fhir_bulk"] = Field(description="Source type.")
    base_url: str = Field(
        pattern=r"^https?://",
        description="FHIR base URL of the server (e.g. `https://ehr.example.org/fhir/R4`).",
    )
    level: Literal["system", "patient", "group"] = Field(
        default="system",
        description="Export level: `system` (`[base]/$export`, every resource), `patient` "
        "(`[base]/Patient/$export`, every patient's compartment) or `group` "
        "(`[base]/Group/<group_id>/$export`, the group's members).",
    )
    group_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9\-.]{1,64}$",
        description="Id of the Group to export; required with `level: group`, refused otherwise.",
    )
    types: list[str] = Field(
        default_factory=list,
        description="Resource types to export (`_type`); every type the server exports when empty.",
    )
    since_from_watermark: bool = Field(
        default=True,
        description="Send the run window's start (the `transactionTime` of the last successful "
        "export) as `_since`, so each run exports only what changed; off, every run exports "
        "everything.",
    )
    poll_interval: Duration = Field(
        default=5.0,
        gt=0,
        description="Shortest wait between status polls, seconds; a longer `Retry-After` from "
        "the server is honoured.",
    )
    timeout: Duration = Field(
        default=3600.0,
        gt=0,
        description="Give up (the run fails) when the export has not completed and been "
        "downloaded within this many seconds of the kick-off.",
    )
    request_timeout: Duration = Field(
        default=300.0,
        gt=0,
        description="Time limit of each HTTP request, seconds (a file download included); "
        "passing it counts as a transient failure and is tried again within `timeout`.",
    )
    max_errors: int | None = Field(
        default=None,
        ge=0,
        description="Most OperationOutcomes the export's error files may hold; more fail the "
        "run before any record is read. Unlimited when omitted (they are still counted and "
        "reported).",
    )
    auth: AuthSpec = Field(
        default_factory=lambda: NoAuth(type="none"),
        description="How requests are authorised: `none`, `bearer` or `smart_backend` (whose "
        "`scope` must allow reading the exported types, e.g. `system/*.read`).",
    )
    tls: ClientTls | None = Field(default=None, description="HTTPS settings (incl. mutual TLS).")
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Extra headers sent with every request (not for secrets: use `auth`).",
    )
    spool_dir: LocalPath | None = Field(
        default=None,
        description="Directory where output files are downloaded before they are read; the "
        "system temporary directory when omitted. Files are removed after the read.",
    )

    example: ClassVar[dict[str, Any]] = {
        "type": "fhir_bulk",
        "base_url": "https://ehr.example.org/fhir/R4",
        "level": "group",
        "group_id": "icu-census",
        "types": ["Patient", "Encounter", "Observation"],
        "since_from_watermark": True,
        "poll_interval": 10,
        "timeout": 7200,
        "auth": {"type": "bearer", "token_env": "EHR_BULK_TOKEN"},
    }

    @field_validator("types")
    @classmethod
    def _types(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _TYPE_NAME.match(name):
                raise ValueError(f"not a FHIR resource type name: {name!r}")
        return value

    @model_validator(mode="after")
    def _group(self) -> Self:
        if (self.level == "group") != (self.group_id is not None):
            raise ValueError("group_id goes with level: group, and only with it")
        return self
