"""The configuration model: one definition drives validation, JSON Schema and the reference.

A configuration file is YAML that lives in git. It names the store, the
HTTP API and the channels; each channel has one source, an optional
filter, lane rules, an optional transform and one or more destinations.
Connector fields come from each connector's own spec; delivery fields
(retry, rate limit, circuit breaker, concurrency, high-water mark, routing
condition) are the flow core's and are the same for every destination type.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from thumpflow.connectors.fhir.spec import FhirDestinationSpec
from thumpflow.connectors.fhir_subscription.spec import FhirSubscriptionSourceSpec
from thumpflow.connectors.fields import Duration, LocalPath
from thumpflow.connectors.file.spec import FileDestinationSpec
from thumpflow.connectors.http.spec import HttpDestinationSpec
from thumpflow.connectors.mllp.spec import MllpDestinationSpec, MllpSourceSpec
from thumpflow.connectors.tls import PLAINTEXT_WARNING, ServerTls, plaintext_problem
from thumpflow.connectors.webhook.spec import WebhookSpec
from thumpflow.core.access import Role
from thumpflow.core.lanes import Lane
from thumpflow.hl7v2 import compile_path

ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _check_path(path: str) -> str:
    try:
        compile_path(path)
    except ValueError as err:
        raise ValueError(f"not an HL7 v2 path: {err}") from None
    return path


def check_regex(value: str | None) -> str | None:
    """`value` unchanged if it is None or a valid regular expression; else ValueError."""
    if value is not None:
        try:
            re.compile(value)
        except re.error as err:
            raise ValueError(f"not a regular expression: {err}") from None
    return value


class Condition(_Model):
    """A test on one HL7 v2 field (by path), or `any` of several conditions.

    Exactly one of `equals`, `in`, `not_in`, `prefix`, `matches`, `exists`
    goes with `path`. A list of conditions holds when all hold.
    """

    path: str | None = Field(
        default=None, description="HL7 v2 path, e.g. `MSH-9.1`, `PID-3[1].4`, `OBX[2]-8`."
    )
    equals: str | None = Field(default=None, description="The field equals this text.")
    in_: list[str] | None = Field(
        default=None, alias="in", description="The field is one of these."
    )
    not_in: list[str] | None = Field(default=None, description="The field is none of these.")
    prefix: str | None = Field(default=None, description="The field starts with this text.")
    matches: str | None = Field(
        default=None, description="The field matches this regular expression (search)."
    )
    exists: bool | None = Field(
        default=None, description="The field is valued (true) or empty (false)."
    )
    any: list[Condition] | None = Field(default=None, description="Holds when any of these holds.")

    example: ClassVar[dict[str, Any]] = {"path": "MSH-9.1", "in": ["ADT", "ORU"]}

    @field_validator("path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        return None if value is None else _check_path(value)

    @field_validator("matches")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        return check_regex(value)

    @model_validator(mode="after")
    def _one_operator(self) -> Self:
        operators = [
            name
            for name in ("equals", "in_", "not_in", "prefix", "matches", "exists")
            if getattr(self, name) is not None
        ]
        if self.any is not None:
            if self.path is not None or operators:
                raise ValueError("`any` stands alone: no `path` or operator beside it")
            return self
        if self.path is None:
            raise ValueError("a condition needs `path` (or `any`)")
        if len(operators) != 1:
            raise ValueError(
                "a condition needs exactly one of equals, in, not_in, prefix, matches, exists"
            )
        return self


class LaneRule(_Model):
    """Messages matching `when` go to `lane`. The first matching rule wins."""

    lane: Lane = Field(description="stat, urgent, routine or bulk.")
    when: list[Condition] = Field(min_length=1, description="All of these hold.")

    @field_validator("lane", mode="before")
    @classmethod
    def _lane(cls, value: Any) -> Any:
        return Lane.parse(value) if isinstance(value, str) else value


class Lanes(_Model):
    """How a channel picks each message's lane."""

    default: Lane = Field(default=Lane.ROUTINE, description="Lane when no rule matches.")
    rules: list[LaneRule] = Field(default_factory=list, description="Checked in order.")

    example: ClassVar[dict[str, Any]] = {
        "default": "routine",
        "rules": [{"lane": "stat", "when": [{"path": "OBX-8", "in": ["HH", "LL", "AA"]}]}],
    }

    @field_validator("default", mode="before")
    @classmethod
    def _lane(cls, value: Any) -> Any:
        return Lane.parse(value) if isinstance(value, str) else value


class OrderingKey(_Model):
    """The entity whose messages must arrive in order: `entity_type`/value at `path`."""

    entity_type: str = Field(default="Patient", description="Entity type of the key.")
    path: str = Field(default="PID-3[1].1", description="HL7 v2 path of the entity id.")
    authority_path: str | None = Field(
        default="PID-3[1].4.1",
        description="Optional path of the id's assigning authority, prefixed to the id "
        "when valued.",
    )

    @field_validator("path", "authority_path")
    @classmethod
    def _paths(cls, value: str | None) -> str | None:
        return None if value is None else _check_path(value)


class Ledger(_Model):
    """What a channel records in the delivery ledger, so a reconciling job skips what flow sent.

    Each message is projected into the record the partner job (the job with
    `reconciles: <this channel>`) loads: `record` names each field and the
    HL7 v2 path it comes from. A field the job's `schema` declares gets that
    type (HL7 dates and times are read as such, so `20261120` is the same
    date as a CSV's `2026-11-20`); an empty value is null, as in the job. The
    business key and content hash are computed exactly as the job computes
    them, and written to the ledger when the delivery is delivered, under the
    flow destination's id. A message whose key is empty or whose value does
    not fit its type is left out of the ledger (the job then writes it).
    """

    business_key: list[str] = Field(
        min_length=1,
        description="Fields of `record` that identify it (the partner job's `business_key`, "
        "in the same order).",
    )
    record: dict[str, str] = Field(
        min_length=1,
        description="Field name -> HL7 v2 path of its value, e.g. `{visit: PV1-19.1, "
        "birth_date: PID-7}`; the fields of the record the partner job loads.",
    )

    example: ClassVar[dict[str, Any]] = {
        "business_key": ["visit"],
        "record": {"visit": "PV1-19.1", "mrn": "PID-3[1].1", "birth_date": "PID-7"},
    }

    @field_validator("record")
    @classmethod
    def _paths(cls, value: dict[str, str]) -> dict[str, str]:
        for path in value.values():
            _check_path(path)
        return value

    @model_validator(mode="after")
    def _key_in_record(self) -> Self:
        for name in self.business_key:
            if name not in self.record:
                raise ValueError(f"business_key field {name!r} is not a field of `record`")
        if len(set(self.business_key)) != len(self.business_key):
            raise ValueError("business_key names a field twice")
        return self


class Retry(_Model):
    """Exponential backoff with full jitter, bounded by attempts and age."""

    base: Duration = Field(
        default=0.5, gt=0, description="First backoff ceiling, seconds (or `500ms`)."
    )
    cap: Duration = Field(default=300.0, gt=0, description="Largest backoff ceiling.")
    max_attempts: int = Field(default=50, ge=1, description="Dead-letter after this many attempts.")
    max_age: Duration = Field(
        default=86_400.0, gt=0, description="Dead-letter once failing this long."
    )
    max_retry_after: Duration = Field(
        default=3_600.0, ge=0, description="Largest Retry-After honoured."
    )


class RateLimit(_Model):
    """At most `per_second` sends per second on average, bursts of `burst`."""

    per_second: float = Field(gt=0, description="Average sends per second.")
    burst: int = Field(default=1, ge=1, description="Sends allowed back to back.")


class CircuitBreakerSpec(_Model):
    """Pause a failing destination, then probe it."""

    failure_threshold: int = Field(
        default=5, ge=1, description="Consecutive failures that open it."
    )
    cooldown: Duration = Field(default=30.0, gt=0, description="Seconds open before one probe.")


class DeliveryOptions(_Model):
    """Delivery settings the flow core applies to every destination type."""

    id: str = Field(pattern=ID_PATTERN, description="Stable destination id (unique in the file).")
    when: list[Condition] = Field(
        default_factory=list, description="Route to this destination only when all hold."
    )
    transform: str | None = Field(
        default=None,
        description="Optional pure function `module:function(event, message)` run as each "
        "delivery to this destination is sent, returning the one event it receives (made with "
        "`thumpflow.transform.derive`); `message` is None for content other than HL7 v2. A "
        "failure dead-letters this delivery only, with its reason; the sender is still "
        "acknowledged and other destinations proceed.",
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
    )
    retry: Retry = Field(default_factory=Retry, description="Retry policy.")
    rate_limit: RateLimit | None = Field(default=None, description="Optional rate limit.")
    circuit_breaker: CircuitBreakerSpec = Field(
        default_factory=CircuitBreakerSpec, description="Circuit breaker."
    )
    concurrency: int = Field(default=1, ge=1, le=256, description="Sends in flight at once.")
    receiver_deduplicates: bool = Field(
        default=False,
        description="The receiver recognises a resent message (by MSH-10 or the "
        "`Idempotency-Key` header) and does not apply it twice; states the exactly-once "
        "argument for MLLP and raw HTTP destinations and silences lint rule `no-dedup`.",
    )
    high_water: int = Field(
        default=100_000, ge=10, description="Durable pending deliveries at which ingress slows."
    )
    batch_linger: Duration = Field(
        default=0.01,
        ge=0,
        description="For destinations that send batches (file): wait up to this long to fill "
        "a batch, so one fsync serves many messages; 0 sends at once.",
    )
    memory_capacity: int = Field(
        default=20_000,
        ge=10,
        description="Pending deliveries held in memory; the rest stay on disk.",
    )


class FileDestination(DeliveryOptions, FileDestinationSpec):
    """Append each delivery as one record to a local file, durably and exactly once."""


class HttpDestination(DeliveryOptions, HttpDestinationSpec):
    """POST each delivery to an HTTP endpoint with an `Idempotency-Key` header."""


class MllpDestination(DeliveryOptions, MllpDestinationSpec):
    """Send each delivery as one HL7 v2 message over MLLP and wait for its ACK."""


class FhirDestination(DeliveryOptions, FhirDestinationSpec):
    """Write each delivery's FHIR Bundle to a FHIR R4 server, exactly once in effect."""


DestinationSpec = Annotated[
    FileDestination | HttpDestination | MllpDestination | FhirDestination,
    Field(discriminator="type"),
]
SourceSpec = MllpSourceSpec | FhirSubscriptionSourceSpec


class HttpIngest(_Model):
    """Accept messages over HTTP: `POST /api/channels/<channel>/messages` (role `sender`).

    Beside the channel's `source`, or instead of one. The body is an HL7 v2
    message or a FHIR R4 resource or Bundle; the answer is `202 Accepted`
    only after the durable commit, `429` with `Retry-After` while the
    channel's outboxes are past their high-water mark.
    """

    enabled: bool = Field(default=False, description="Accept messages over HTTP.")
    retry_after: Duration = Field(
        default=5.0,
        gt=0,
        description="Seconds a sender is told to wait (`Retry-After`) when answered 429 under "
        "backpressure.",
    )
    max_body_bytes: int = Field(
        default=1_048_576, ge=64, description="Largest accepted body; a longer one is answered 413."
    )

    example: ClassVar[dict[str, Any]] = {"enabled": True, "retry_after": 5}


class Channel(_Model):
    """One integration: a source, a pipeline and one or more destinations."""

    id: str = Field(pattern=ID_PATTERN, description="Stable channel id (unique in the file).")
    description: str = Field(default="", description="What this channel is for.")
    enabled: bool = Field(default=True, description="A disabled channel is validated, not run.")
    source: SourceSpec | None = Field(
        default=None,
        discriminator="type",
        description="Where messages come from: an MLLP listener (`type: mllp`, the type may be "
        "left out) or FHIR Subscription notifications (`type: fhir_subscription`); none for a "
        "channel fed only over HTTP (`http_ingest`).",
    )
    http_ingest: HttpIngest = Field(
        default_factory=HttpIngest,
        description="Also (or only) accept messages posted over the HTTP API.",
    )
    ordering_key: OrderingKey = Field(default_factory=OrderingKey, description="Order per entity.")
    entity_version: str | None = Field(
        default=None,
        description="Optional path of a monotonic entity version (digits of the value are used, "
        "e.g. `MSH-13` or `EVN-2` timestamps); a lower or equal version than already delivered is "
        "recorded as superseded.",
    )
    timezone: str = Field(default="UTC", description="Zone of HL7 times that carry no offset.")
    filter: list[Condition] = Field(
        default_factory=list, description="Accept only messages for which all hold."
    )
    lanes: Lanes = Field(default_factory=Lanes, description="Lane rules.")
    transform: str | None = Field(
        default=None,
        description="Optional pure function `module:function(event, message)` returning the "
        "events to deliver (zero or more), each made with `thumpflow.transform.derive`; the "
        "module is looked for in `transforms_path`. A transform that raises rejects the message "
        "with its reason (see README, *Transforms*).",
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
    )
    destinations: list[DestinationSpec] = Field(min_length=1, description="Where events go.")
    latency_budget: Duration = Field(
        default=60.0,
        gt=0,
        description="Seconds from receipt to delivery this channel promises; the dashboard "
        "shows a destination as delayed, and an alert fires, when its oldest undelivered "
        "event is older than this.",
    )
    ledger: Ledger | None = Field(
        default=None,
        description="Optional: record each delivered message's business key and content hash "
        "in the delivery ledger, so the job that `reconciles` this channel skips records flow "
        "already delivered (see *Delivery ledger*).",
    )

    @field_validator("entity_version")
    @classmethod
    def _version_path(cls, value: str | None) -> str | None:
        return None if value is None else _check_path(value)

    @field_validator("source", mode="before")
    @classmethod
    def _mllp_by_default(cls, value: Any) -> Any:
        """A source without `type` is an MLLP listener (configurations before HTTP ingest)."""
        if isinstance(value, dict) and "type" not in value:
            return {"type": "mllp", **value}
        return value

    @model_validator(mode="after")
    def _fed_somehow(self) -> Self:
        if self.source is None and not self.http_ingest.enabled:
            raise ValueError(
                "a channel needs a `source` or `http_ingest: {enabled: true}` (or both)"
            )
        return self


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
    cannot be part of a cluster (their journal is on one host's disk).
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


class OidcSpec(_Model):
    """OpenID Connect: accept the issuer's signed access tokens (JWT, RS256 or ES256).

    A token is accepted when its signature verifies with a key of the issuer's
    JWKS (fetched, cached, and fetched again for an unknown `kid`, at most
    once every `jwks_refresh_interval`), `iss` equals `issuer`, `aud` holds `audience`, and `exp`
    / `nbf` hold within `leeway`. Its role is the highest of `role_map`'s
    roles for the values of the `role_claim` claim; a token with none is
    refused (401).
    """

    issuer: str = Field(pattern=r"^https?://", description="The issuer (`iss`) URL.")
    audience: str = Field(min_length=1, description="Required in the token's `aud`.")
    jwks_url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="Where the signing keys are; default: `jwks_uri` of the issuer's "
        "`/.well-known/openid-configuration`.",
    )
    role_claim: str = Field(
        default="roles",
        min_length=1,
        description="Claim holding the caller's IdP roles or groups (a string or a list); "
        "a dotted path reaches into objects (`realm_access.roles`).",
    )
    role_map: dict[str, Role] = Field(
        min_length=1,
        description="IdP value -> thumpflow role (viewer, operator, admin, sender).",
    )
    leeway: Duration = Field(
        default=60.0, ge=0, le=600, description="Seconds of clock skew allowed on exp/nbf."
    )
    name_claim: str = Field(
        default="preferred_username",
        description="Claim naming the caller in the audit trail (`sub` when absent).",
    )
    ca_file: LocalPath | None = Field(
        default=None, description="PEM CAs to verify the issuer's HTTPS certificate."
    )
    jwks_refresh_interval: Duration = Field(
        default=30.0,
        ge=0,
        description="Least seconds between two fetches of the keys; a token with an unknown "
        "`kid` (key rotation) fetches them again no sooner.",
    )

    example: ClassVar[dict[str, Any]] = {
        "issuer": "https://login.example.org/realms/hospital",
        "audience": "thumpflow",
        "role_claim": "realm_access.roles",
        "role_map": {"integration-admins": "admin", "integration-oncall": "operator"},
    }


class ApiSpec(_Model):
    """The HTTP API and dashboard. Every call but `/api/health` needs a bearer token."""

    enabled: bool = Field(default=True, description="Serve the HTTP API.")
    host: str = Field(default="127.0.0.1", description="Address to listen on.")
    port: int = Field(default=8080, ge=0, le=65535, description="TCP port.")
    tls: ServerTls | None = Field(
        default=None,
        description="Serve HTTPS; with `ca_file` and `require_client_cert`, mutual TLS.",
    )
    allow_plaintext: bool = Field(
        default=False,
        description="Serve plain HTTP on a non-loopback address. " + PLAINTEXT_WARNING,
    )
    oidc: OidcSpec | None = Field(
        default=None, description="Also accept OpenID Connect bearer tokens from this issuer."
    )
    admin_token_file: LocalPath | None = Field(
        default=None,
        description="Where the first admin API token is written at first start (mode 0600); "
        "default: `admin-token` beside the store file.",
    )

    @model_validator(mode="after")
    def _no_plaintext_beyond_loopback(self) -> Self:
        problem = plaintext_problem(self.host, self.tls, self.allow_plaintext)
        if problem is not None and self.enabled:
            raise ValueError(problem)
        return self


class DeadLetterGrowth(_Model):
    """Alert when a destination's dead-letter count rises this fast."""

    count: int = Field(default=10, ge=1, description="Deliveries gone dead ...")
    window: Duration = Field(
        default=300.0, gt=0, description="... within this many seconds (or `5m`)."
    )


class AlertsSpec(_Model):
    """Alerts: evaluated on a timer, recorded, logged and sent to webhooks.

    Raised once while a condition holds and cleared when it stops: latency
    budget breached, dead-letter growth, circuit open, zero-record batch, disk
    nearly full, heartbeat missing, MLLP connection limit reached. Each
    transition is POSTed as JSON to every webhook, retried with backoff when
    the webhook fails.
    """

    interval: Duration = Field(
        default=15.0, gt=0, description="Seconds between evaluations (or `30s`)."
    )
    webhooks: list[WebhookSpec] = Field(
        default_factory=list, description="Where alert notices are POSTed."
    )
    webhook_attempts: int = Field(
        default=8, ge=1, le=100, description="Tries per notice and webhook before giving up."
    )
    webhook_backoff: Duration = Field(
        default=1.0, gt=0, description="First retry delay (doubles, full jitter, capped at 5m)."
    )
    disk_free_min_percent: float = Field(
        default=10.0,
        ge=0,
        le=100,
        description="Alert when the store's file system has less free space than this.",
    )
    dead_letter_growth: DeadLetterGrowth = Field(
        default_factory=DeadLetterGrowth, description="Dead-letter growth threshold."
    )
    connection_limit_window: Duration = Field(
        default=300.0,
        gt=0,
        description="The `connection_limit` alert of a channel holds while its MLLP listener "
        "is full and for this long after it last reached a connection limit (or `5m`).",
    )


class Config(_Model):
    """A thumpflow configuration file."""

    version: Literal[1] = Field(default=1, description="Configuration format version.")
    store: StoreSpec = Field(default_factory=StoreSpec, description="Durable store.")
    cluster: ClusterSpec = Field(
        default_factory=ClusterSpec,
        description="Several engine nodes on one PostgreSQL store: node id, partitions, leases.",
    )
    api: ApiSpec = Field(default_factory=ApiSpec, description="HTTP API and dashboard.")
    alerts: AlertsSpec = Field(default_factory=AlertsSpec, description="Alerts and webhooks.")
    channels: list[Channel] = Field(min_length=1, description="The channels.")
    jobs: list[Job] = Field(default_factory=list, description="Scheduled batch jobs.")
    transforms_path: list[LocalPath] = Field(
        default_factory=list,
        description="Folders where the modules named by `transform:` are looked for (before "
        "the installed packages); relative to this file's folder, e.g. `[transforms]`.",
    )
    views: ViewsSpec | None = Field(
        default=None, description="Operational read models (bed board, census) and ownership."
    )

    @model_validator(mode="after")
    def _reconciled_channels_exist(self) -> Self:
        channels = {channel.id for channel in self.channels}
        for job in self.jobs:
            if job.reconciles is not None and job.reconciles not in channels:
                raise ValueError(
                    f"job {job.id!r} reconciles channel {job.reconciles!r}, which is not defined"
                )
        by_id = {channel.id: channel for channel in self.channels}
        for job in self.jobs:
            if job.kind != "reconcile":
                continue
            channel = by_id[job.reconciles or ""]
            if job.destination not in {spec.id for spec in channel.destinations}:
                raise ValueError(
                    f"job {job.id!r}: channel {channel.id!r} has no destination "
                    f"{job.destination!r} to reconcile"
                )
            if channel.ledger is None:
                raise ValueError(
                    f"job {job.id!r}: channel {channel.id!r} has no `ledger`, so nothing records "
                    "what it delivered; a reconcile job compares with that record"
                )
        for channel in self.channels:
            if channel.ledger is not None:
                _check_ledger(channel.id, channel.ledger, self.jobs)
        if self.views is not None:
            check_view_channels(self.views, channels)
        return self

    def admin_token_path(self) -> Path:
        """Where the first admin token is written: `api.admin_token_file` or beside the store."""
        if self.api.admin_token_file:
            return Path(self.api.admin_token_file)
        return Path(self.store.path).parent / "admin-token"

    def partner(self, channel_id: str) -> Job | None:
        """The job that `reconciles` a channel, if any (at most one for a channel with a ledger)."""
        for job in self.jobs:
            if job.reconciles == channel_id:
                return job
        return None


def _check_ledger(channel_id: str, ledger: Ledger, jobs: list[Job]) -> None:
    """A ledger must project exactly the record its partner job keys and hashes.

    Otherwise no hash ever matches and the job silently skips nothing; the
    fields are not checked for a `load` job with a transform (its record is
    the transform's output, which only running it could tell); a `reconcile`
    job hashes the record as validated, so its fields are always checked.
    """
    partners = [job.id for job in jobs if job.reconciles == channel_id]
    if len(partners) > 1:
        raise ValueError(
            f"channel {channel_id!r} has a `ledger` and is reconciled by several jobs "
            f"({', '.join(partners)}); a ledger serves one partner job"
        )
    if not partners:
        return
    job = next(job for job in jobs if job.id == partners[0])
    where = f"channel {channel_id!r} > ledger"
    if ledger.business_key != job.business_key:
        raise ValueError(
            f"{where}: business_key must equal job {job.id!r}'s business_key "
            f"({', '.join(job.business_key)}), in the same order"
        )
    if job.transform is not None and job.kind == "load":
        return
    declared = [spec.name for spec in job.schema_]
    missing = [name for name in declared if name not in ledger.record]
    if missing:
        raise ValueError(
            f"{where}: `record` lacks field(s) {', '.join(missing)} declared in job "
            f"{job.id!r}'s schema; the job hashes every declared field"
        )
    extra = [name for name in ledger.record if name not in declared]
    if extra and job.unknown_fields != "keep":
        raise ValueError(
            f"{where}: `record` has field(s) {', '.join(extra)} that job {job.id!r} does not "
            f"keep (unknown_fields: {job.unknown_fields})"
        )


from thumpflow.config.jobs import Job  # noqa: E402  (jobs.py builds on the models above)
from thumpflow.config.views import ViewsSpec, check_view_channels  # noqa: E402

Config.model_rebuild()
