"""Configuration of the SFTP drop source and the SFTP destination. Pure data: no I/O.

The fields that do not depend on where files live come from
`thumpflow.connectors.drop`, shared with the local file drop and batch file.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from thumpflow.connectors.drop import BatchFileFields, DropSourceFields
from thumpflow.connectors.fields import Duration, LocalPath


class SftpConnection(BaseModel):
    """Which SFTP server to use and how to log in (shared by the SFTP source and destination)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(min_length=1, description="Server host name or address.")
    port: int = Field(default=22, ge=1, le=65535, description="Server port.")
    username: str = Field(min_length=1, description="User to log in as.")
    private_key_file: LocalPath | None = Field(
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
    connect_timeout_seconds: Duration = Field(
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


class SftpDropSourceSpec(DropSourceFields, SftpConnection):
    """Read batch files dropped in a remote SFTP directory, each checked against its manifest."""

    type: Literal["sftp_drop"] = Field(description="Source type.")
    directory: str = Field(
        min_length=1, description="Remote drop directory; files are taken from it, not below."
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


class SftpDestinationSpec(BatchFileFields, SftpConnection):
    """Upload each run's records as one file to an SFTP directory, atomically, with a manifest."""

    type: Literal["sftp"] = Field(description="Destination type.")
    directory: str = Field(
        min_length=1, description="Remote directory the files go to; created if absent."
    )
    staging_dir: str | None = Field(
        default=None,
        description="Local directory the file is assembled in before the upload (removed "
        "after the run); default the system temporary directory.",
    )

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
