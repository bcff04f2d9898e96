"""Configuration of the SFTP drop source and the SFTP destination. Pure data: no I/O."""

from __future__ import annotations

import string
from typing import Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from thumpflow.connectors.csv import CsvSpec

NAME_FIELDS = frozenset({"job", "run", "window_end", "date"})


class SftpConnection(BaseModel):
    """Which SFTP server to use and how to log in (shared by the SFTP source and destination)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(min_length=1, description="Server host name or address.")
    port: int = Field(default=22, ge=1, le=65535, description="Server port.")
    username: str = Field(min_length=1, description="User to log in as.")
    private_key_file: str | None = Field(
        default=None,
        description="File with the (unencrypted) private key to log in with, in OpenSSH or "
        "PEM form; read when connecting, never logged.",
    )
    password_env: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Environment variable holding the password (instead of a key).",
    )
    known_hosts: str | None = Field(
        default=None,
        description="OpenSSH known_hosts file the server's host key must be listed in; "
        "required unless `insecure_skip_host_key_check`.",
    )
    insecure_skip_host_key_check: bool = Field(
        default=False,
        description="Accept any host key (no protection against a man in the middle). "
        "For tests only.",
    )
    connect_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Time limit for connecting and logging in."
    )

    @model_validator(mode="after")
    def _credentials_and_host_key(self) -> Self:
        if (self.private_key_file is None) == (self.password_env is None):
            raise ValueError("give exactly one of private_key_file and password_env")
        if self.insecure_skip_host_key_check:
            if self.known_hosts is not None:
                raise ValueError("known_hosts and insecure_skip_host_key_check exclude each other")
        elif self.known_hosts is None:
            raise ValueError(
                "known_hosts is required (host keys are verified); "
                "insecure_skip_host_key_check: true turns that off, for tests only"
            )
        return self


class SftpDropSourceSpec(SftpConnection):
    """Read batch files dropped in a remote SFTP directory, each checked against its manifest."""

    type: Literal["sftp_drop"] = Field(description="Source type.")
    directory: str = Field(
        min_length=1, description="Remote drop directory; files are taken from it, not below."
    )
    pattern: str = Field(
        default="*",
        description="Glob matched against file names (e.g. `census-*.csv`). Hidden files, "
        "manifests (`*.manifest.json`) and reason files are never taken.",
    )
    format: Literal["csv", "ndjson", "hl7_batch"] = Field(
        description="Record format: CSV with a header row, NDJSON (one JSON object per line), "
        "or an HL7 v2 batch file (FHS/BHS..BTS/FTS, one record per message)."
    )
    csv: CsvSpec = Field(default_factory=CsvSpec, description="CSV dialect (format `csv`).")
    manifest: Literal["required", "optional", "none"] = Field(
        default="required",
        description="`required`: a file without `<file>.manifest.json` is not imported. "
        "`optional`: a manifest is checked when present. `none`: manifests are ignored.",
    )
    source_system: str | None = Field(
        default=None,
        description="The source system id a manifest must name; unset, any is accepted.",
    )
    max_age: float | None = Field(
        default=None,
        gt=0,
        description="Seconds: a file whose window ended longer ago than this (or, when its "
        "window end is not a timestamp, that was created longer ago) is late and not imported.",
    )
    processed_dir: str | None = Field(
        default=None,
        description="Remote directory imported files and their manifests are renamed into; "
        "default `<directory>/processed`; created if absent.",
    )
    failed_dir: str | None = Field(
        default=None,
        description="Remote directory refused files are renamed into, with a `<file>.reason` "
        "text beside them; default `<directory>/failed`; created if absent.",
    )
    settle_seconds: float = Field(
        default=5.0,
        ge=0,
        description="A file (or its manifest) modified less than this many seconds ago, by the "
        "server's clock as seen from here, is still being written: it is reported as partial "
        "and left where it is.",
    )
    staging_dir: str | None = Field(
        default=None,
        description="Local directory remote files are downloaded into to be checked and read "
        "(removed after the run); default the system temporary directory.",
    )

    example: ClassVar[dict[str, Any]] = {
        "type": "sftp_drop",
        "host": "sftp.lab.example.org",
        "username": "thumpflow",
        "private_key_file": "/etc/thumpflow/sftp-key",
        "known_hosts": "/etc/thumpflow/known_hosts",
        "directory": "/outbound/results",
        "pattern": "results-*.csv",
        "format": "csv",
        "manifest": "required",
        "source_system": "lab-system",
    }


class SftpDestinationSpec(SftpConnection):
    """Upload each run's records as one file to an SFTP directory, atomically, with a manifest."""

    type: Literal["sftp"] = Field(description="Destination type.")
    directory: str = Field(
        min_length=1, description="Remote directory the files go to; created if absent."
    )
    name: str = Field(
        description="File name template with `{job}`, `{run}`, `{window_end}` (characters other "
        "than letters, digits, `.`, `_` and `-` become `-`; `unbounded` when open) and `{date}` "
        "(the window end's UTC date, else the date the run began). Without `{run}`, a re-run of "
        "the same window replaces the file instead of adding one."
    )
    format: Literal["csv", "ndjson", "hl7_batch"] = Field(
        description="`csv` (header row, then `columns`), `ndjson` (one JSON object per line), "
        "or `hl7_batch` (each record's `message` text inside FHS/BHS..BTS/FTS with counts)."
    )
    csv: CsvSpec = Field(default_factory=CsvSpec, description="CSV dialect (format `csv`).")
    columns: list[str] | None = Field(
        default=None,
        min_length=1,
        description="CSV column order; unset, the keys of the run's first record. "
        "Keys not listed are not written; missing ones are empty.",
    )
    source_system: str = Field(
        description="The source system id written into each manifest (and FHS-3/BHS-3)."
    )
    staging_dir: str | None = Field(
        default=None,
        description="Local directory the file is assembled in before the upload (removed "
        "after the run); default the system temporary directory.",
    )

    @field_validator("name")
    @classmethod
    def _known_fields(cls, value: str) -> str:
        try:
            parsed = list(string.Formatter().parse(value))
        except ValueError as exc:
            raise ValueError(f"not a valid name template: {exc}") from None
        for _, field, spec, conversion in parsed:
            if field is None:
                continue
            if field not in NAME_FIELDS or spec or conversion:
                known = ", ".join(f"{{{n}}}" for n in sorted(NAME_FIELDS))
                raise ValueError(f"unknown placeholder {{{field}}}; use {known}")
        if "/" in value or "\\" in value or value.startswith("."):
            raise ValueError("must be a plain file name (no directories, not hidden)")
        return value

    example: ClassVar[dict[str, Any]] = {
        "type": "sftp",
        "host": "sftp.registry.example.org",
        "username": "hospital-42",
        "private_key_file": "/etc/thumpflow/registry-key",
        "known_hosts": "/etc/thumpflow/known_hosts",
        "directory": "/inbound",
        "name": "immunizations-{date}.hl7",
        "format": "hl7_batch",
        "source_system": "thumpflow",
    }
