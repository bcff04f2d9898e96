"""The configuration model: one definition drives validation, JSON Schema and the reference.

A configuration file is YAML that lives in git. It names the store, the
HTTP API, alerts, the channels (`config/channel.py`: each has one source, an
optional filter, lane rules, an optional transform and one or more
destinations), the jobs (`config/jobs.py`), the views (`config/views.py`)
and the store and cluster (`config/store.py`); this module holds the root
`Config` and what checks across them, and re-exports the channel and store
models under their usual names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal, Self

from pydantic import Field, model_validator

from thumpflow.config._base import ID_PATTERN, _Model, check_regex
from thumpflow.config.channel import (
    Channel,
    CircuitBreakerSpec,
    Condition,
    DeliveryOptions,
    DestinationSpec,
    FhirDestination,
    FileDestination,
    HttpDestination,
    HttpIngest,
    LaneRule,
    Lanes,
    Ledger,
    MllpDestination,
    OrderingKey,
    RateLimit,
    Retry,
    SourceSpec,
)
from thumpflow.config.modes import ModesSpec
from thumpflow.config.naming import NamingSystems
from thumpflow.config.store import ClusterSpec, Encryption, EncryptionKey, Retention, StoreSpec
from thumpflow.connectors.fields import Duration, LocalPath
from thumpflow.connectors.tls import PLAINTEXT_WARNING, ServerTls, plaintext_problem
from thumpflow.connectors.webhook.spec import WebhookSpec
from thumpflow.core.access import Role

__all__ = [
    "ID_PATTERN",
    "AlertsSpec",
    "ApiSpec",
    "Channel",
    "CircuitBreakerSpec",
    "ClusterSpec",
    "Condition",
    "Config",
    "DeadLetterGrowth",
    "DeliveryOptions",
    "DestinationSpec",
    "Encryption",
    "EncryptionKey",
    "FhirDestination",
    "FileDestination",
    "HttpDestination",
    "HttpIngest",
    "LaneRule",
    "Lanes",
    "Ledger",
    "MllpDestination",
    "NamingSystems",
    "OidcSpec",
    "OrderingKey",
    "RateLimit",
    "Retention",
    "Retry",
    "SourceSpec",
    "StoreSpec",
    "check_regex",
]


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
    nearly full, heartbeat missing, MLLP connection limit reached, a control
    id reused with other content. Each transition is POSTed as JSON to every
    webhook, retried with backoff when the webhook fails.
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
    naming_systems: NamingSystems = Field(
        default_factory=NamingSystems,
        description="Identifier systems for assigning authorities in FHIR conversion.",
    )
    transforms_path: list[LocalPath] = Field(
        default_factory=list,
        description="Folders where the modules named by `transform:` are looked for (before "
        "the installed packages); relative to this file's folder, e.g. `[transforms]`.",
    )
    views: ViewsSpec | None = Field(
        default=None, description="Operational read models (bed board, census) and ownership."
    )
    modes: ModesSpec = Field(
        default_factory=ModesSpec,
        description="Operating modes (normal, surge, diversion): what they do and their rules.",
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
            if job.kind == "census_reconcile" and self.views is None:
                raise ValueError(
                    f"job {job.id!r} compares a census snapshot with the bed board: add a "
                    "`views:` section"
                )
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
