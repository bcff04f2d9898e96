"""A channel's configuration: its source or HTTP ingest, filter, lanes, ordering key,
ledger, and destinations with the flow core's delivery options (retry, rate limit, circuit
breaker, concurrency, high-water mark, routing condition), the same for every destination
type; the connector fields come from each connector's own spec. Validation only: a
problem is a ValueError the loader locates (file, line, channel, field)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Self

from pydantic import Field, field_validator, model_validator

from thumpflow.config._base import ID_PATTERN, _Model, check_path, check_regex, check_zone
from thumpflow.config.naming import NamingSystems
from thumpflow.connectors.fhir.spec import FhirDestinationSpec
from thumpflow.connectors.fhir_subscription.spec import FhirSubscriptionSourceSpec
from thumpflow.connectors.fields import Duration
from thumpflow.connectors.file.spec import FileDestinationSpec
from thumpflow.connectors.http.spec import HttpDestinationSpec
from thumpflow.connectors.mllp.spec import MllpDestinationSpec, MllpSourceSpec
from thumpflow.core.lanes import Lane


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
        return None if value is None else check_path(value)

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
        return None if value is None else check_path(value)


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
            check_path(path)
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
    """At most `per_second` sends per second on average, bursts of `burst`.

    In a cluster the limit is the whole cluster's: each node sends at most its
    share, the fraction of the destination's partitions it holds.
    """

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
    timezone: str = Field(
        default="UTC",
        description="IANA zone (e.g. `America/New_York`) of HL7 times that carry no offset, "
        "when MSH-7 states none either: for the event's time and in FHIR conversion, where each "
        "time gets its own date's offset (daylight saving).",
    )
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
    naming_systems: NamingSystems | None = Field(
        default=None,
        description="Identifier systems for assigning authorities in this channel's FHIR "
        "conversion (its transforms'), before the engine's `naming_systems`: for a sender "
        "whose namespaces mean other authorities than another sender's (two labs both "
        "saying `LAB`).",
    )
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

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return check_zone(value)

    @field_validator("entity_version")
    @classmethod
    def _version_path(cls, value: str | None) -> str | None:
        return None if value is None else check_path(value)

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
