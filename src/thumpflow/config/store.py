"""Where the engine keeps its data and how nodes share it: the `store` section (SQLite or
PostgreSQL, payload encryption, retention) and the `cluster` section."""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal, Self

from pydantic import Field, field_validator, model_validator

from thumpflow.config._base import _Model
from thumpflow.connectors.fields import Duration, LocalPath

_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class EncryptionKey(_Model):
    """One payload encryption key: 32 random bytes, base64-encoded, from the environment or a file.

    The key itself is never written in the configuration. Generate one with
    `thumpflow store keygen`.
    """

    id: str = Field(
        pattern=r"^[A-Za-z0-9._-]{1,64}$",
        description="Key id, stored beside every value it encrypts (never the key itself).",
    )
    key_env: str | None = Field(
        default=None, pattern=_ENV_NAME, description="Environment variable holding the key."
    )
    key_file: LocalPath | None = Field(
        default=None, description="File holding the key (trailing newline ignored)."
    )

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.key_env is None) == (self.key_file is None):
            raise ValueError("give exactly one of key_env and key_file")
        return self


class Encryption(_Model):
    """Encrypt message content at rest (AES-256-GCM, a random 96-bit nonce per value).

    Event bodies, rejected input, batch row rejects and delivery errors and
    reasons are encrypted. The first key encrypts; every listed key decrypts,
    so rotation is: put the new key first, restart, run `thumpflow store
    rekey`, then remove the old key. Ids, times, ordering keys and the audit
    trail stay readable (they route and order messages; they hold no
    message content beyond the entity id).
    """

    keys: list[EncryptionKey] = Field(
        min_length=1, description="Keys, the current (encrypting) one first."
    )

    example: ClassVar[dict[str, Any]] = {
        "keys": [
            {"id": "2026-05", "key_env": "THUMPFLOW_STORE_KEY"},
            {"id": "2025-11", "key_file": "/run/secrets/thumpflow-store-key-2025-11"},
        ]
    }

    @field_validator("keys")
    @classmethod
    def _unique(cls, value: list[EncryptionKey]) -> list[EncryptionKey]:
        ids = [key.id for key in value]
        for key_id in ids:
            if ids.count(key_id) > 1:
                raise ValueError(f"key id {key_id!r} is listed twice")
        return value


class Retention(_Model):
    """How long finished records are kept; the engine purges periodically.

    An event goes once it is older than `events_days` and every delivery of
    it is delivered or superseded, with its deliveries and idempotency key
    (a resend after that is accepted as new). Pending and dead deliveries
    are kept (dead letters wait for a replay). The audit trail is never
    purged: it is the tamper-evident record. Each purge is audited (counts)
    and the database file shrinks.
    """

    events_days: float | None = Field(
        default=None, gt=0, description="Purge finished events older than this; none: keep."
    )
    rejects_days: float | None = Field(
        default=None, gt=0, description="Purge rejected input older than this; none: keep."
    )
    runs_days: float | None = Field(
        default=None,
        gt=0,
        description="Purge batch row rejects and finished runs older than this (each job's "
        "newest run is kept); none: keep.",
    )
    audit: Literal["keep"] = Field(
        default="keep", description="The audit trail is always kept (the only value)."
    )
    interval: Duration = Field(
        default=3600.0, gt=0, description="How often the engine purges (e.g. `1h`)."
    )

    example: ClassVar[dict[str, Any]] = {
        "events_days": 30,
        "rejects_days": 90,
        "runs_days": 365,
        "audit": "keep",
    }


class StoreSpec(_Model):
    """The durable store: embedded SQLite (the default) or a shared PostgreSQL database.

    SQLite: one file in WAL mode, one writer, group commit; one engine process.
    PostgreSQL: `dsn` names the database (without a password: the password
    comes from `password_env` or `password_file`); every engine process
    configured with the same database shares its state (see docs/deployment.md).
    """

    type: Literal["sqlite", "postgresql"] = Field(
        default="sqlite", description="Store type: `sqlite` (embedded) or `postgresql`."
    )
    path: LocalPath = Field(
        default="var/thumpflow.db",
        description="SQLite: the database file. PostgreSQL: the admin token is still written "
        "beside it, and the disk alert watches its directory.",
    )
    dsn: str | None = Field(
        default=None,
        description="PostgreSQL: libpq connection string or `postgresql://` URI, without a "
        "password (required for postgresql; a password in it is refused). Several hosts with "
        "`target_session_attrs=read-write` follow a failover.",
    )
    password_env: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="PostgreSQL: environment variable holding the password, read at start.",
    )
    password_file: LocalPath | None = Field(
        default=None,
        description="PostgreSQL: file holding the password (trailing newline ignored), read at "
        "start.",
    )
    encryption: Encryption | None = Field(
        default=None, description="Optional: encrypt message content at rest."
    )
    retention: Retention | None = Field(
        default=None, description="Optional: purge finished records after a time."
    )
    audit_anchor_interval: Duration = Field(
        default=3600.0,
        gt=0,
        description="How often the engine logs an `audit.anchor` line (newest audit entry id "
        "and hash; also logged at shutdown). Keep those lines outside this machine: "
        "`thumpflow audit verify --expect ID:HASH` proves no entry up to it was removed.",
    )

    @model_validator(mode="after")
    def _backend_fields(self) -> Self:
        if self.type == "sqlite":
            if self.dsn is not None or self.password_env or self.password_file:
                raise ValueError("dsn, password_env and password_file are for type postgresql")
            return self
        if self.dsn is None:
            raise ValueError("type postgresql needs dsn (which database to use)")
        if _PASSWORD_IN_DSN.search(self.dsn):
            raise ValueError("dsn must not contain a password; use password_env or password_file")
        if self.password_env is not None and self.password_file is not None:
            raise ValueError("give at most one of password_env and password_file")
        return self


_PASSWORD_IN_DSN = re.compile(r"password\s*=|^postgres(?:ql)?://[^@/?#]*:[^@/?#]*@", re.IGNORECASE)


class ClusterSpec(_Model):
    """How this engine takes part in a cluster of nodes sharing one PostgreSQL store.

    Each destination's deliveries are split into `partitions` by a hash of the
    ordering key; each partition is sent by the one node holding its lease,
    renewed against the database's clock every third of `lease`. A node that
    cannot renew stops sending before its lease ends; another node takes a
    dead node's partitions over once its leases expired (within about
    `lease` + `lease`/3). With the SQLite store there is one node, which
    holds everything, and this section changes nothing. File destinations
    cannot be part of a cluster (their journal is on one host's disk). A
    job runs on whichever node holds the scheduler duty, so the folders and
    files it reads and writes (a `file_drop` or `batch_file` directory, a
    `report_dir`, an SQLite `database`) must be inside `shared_folders`.
    """

    enabled: bool = Field(
        default=True,
        description="PostgreSQL: run as a node of a cluster (partitions, leases, duties). "
        "`false`: this engine is the only one on its database (nothing guards against a "
        "second one), sends every partition itself, and may have file destinations.",
    )
    node_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$",
        description="This node's id, unique in the cluster. Default: generated once and kept "
        "in the file `node-id` beside `store.path`.",
    )
    partitions: int = Field(
        default=16,
        ge=1,
        le=1024,
        description="Partitions per destination (the same on every node of a cluster).",
    )
    lease: Duration = Field(
        default=5.0,
        ge=1.0,
        le=300.0,
        description="How long a node's heartbeat and its partition and duty leases last "
        "unrenewed (renewed every third of it); a dead node's work moves after about this "
        "long.",
    )
    shared_folders: list[LocalPath] = Field(
        default_factory=list,
        description="Folders on shared storage, mounted at the same path on every node (NFS, "
        "SMB, a cluster file system). In a cluster, every folder or file a job reads or "
        "writes must be inside one of them: the scheduler duty moves to another node when "
        "its node stops, and the job must find its files (and the files it left) there.",
    )
