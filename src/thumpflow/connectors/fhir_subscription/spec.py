"""Configuration of the FHIR Subscriptions source (rest-hook receiver). Pure data: no I/O."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from thumpflow.connectors.auth import AuthSpec, NoAuth
from thumpflow.connectors.fields import Duration
from thumpflow.connectors.tls import ClientTls


class FhirSubscriptionSourceSpec(BaseModel):
    """Receive FHIR topic-based Subscription notifications (R4 Backport IG or R5) by rest-hook.

    The source FHIR server's Subscription posts its notification Bundles to
    `POST /api/subscriptions/<channel>` with a thumpflow `sender` token in its
    channel headers. `base_url` and `auth` are used to read focus resources
    back (id-only and empty notifications) and to ask `$events` for missed ones.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["fhir_subscription"] = Field(description="Source type.")
    base_url: str = Field(
        pattern=r"^https?://",
        description="FHIR base URL of the notifying server (e.g. `https://ehr.example.org/fhir`).",
    )
    subscription_id: str = Field(
        pattern=r"^[A-Za-z0-9\-.]{1,64}$",
        description="Id of the Subscription on that server; notifications for another "
        "subscription are refused.",
    )
    topic: str | None = Field(
        default=None,
        description="Canonical URL of the SubscriptionTopic; when set, notifications for "
        "another topic are refused.",
    )
    content: Literal["full-resource", "id-only", "empty"] = Field(
        default="id-only",
        description="Payload the Subscription was created with: `full-resource` (resources in "
        "the notification), `id-only` (focus references, read back from the server) or "
        "`empty` (nothing: each event is asked for with `$events`, then read back).",
    )
    heartbeat_period: Duration | None = Field(
        default=None,
        gt=0,
        description="The Subscription's `heartbeatPeriod` in seconds; when no "
        "notification arrives for twice this long, an alert is recorded. None: no "
        "heartbeat expected.",
    )
    events_operation: bool = Field(
        default=False,
        description="The server supports `Subscription/<id>/$events`: missed events (a gap in "
        "event numbers, or an empty notification) are fetched with it; otherwise a gap is "
        "recorded as an alert.",
    )
    timeout_seconds: Duration = Field(
        default=30.0, gt=0, description="Time limit of each request to the server."
    )
    auth: AuthSpec = Field(
        default_factory=lambda: NoAuth(type="none"),
        description="How requests to the server are authorised: `none`, `bearer` or "
        "`smart_backend`.",
    )
    tls: ClientTls | None = Field(default=None, description="HTTPS settings (incl. mutual TLS).")

    example: ClassVar[dict[str, Any]] = {
        "type": "fhir_subscription",
        "base_url": "https://ehr.example.org/fhir",
        "subscription_id": "thumpflow-encounters",
        "topic": "http://example.org/SubscriptionTopic/encounter-start",
        "content": "id-only",
        "heartbeat_period": 300,
        "events_operation": True,
        "auth": {
            "type": "smart_backend",
            "client_id": "thumpflow",
            "private_key_file": "/etc/thumpflow/ehr-key.pem",
            "key_id": "thumpflow-2024",
            "algorithm": "ES384",
        },
    }
