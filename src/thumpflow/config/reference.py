"""The configuration reference, generated from the models that validate configuration.

`docs/configuration.md` is this module's output (`thumpflow config docs`); a
test fails when the committed file differs, so the reference cannot drift
from what the validator accepts.
"""

from __future__ import annotations

import enum
import inspect
import json
import types
from collections.abc import Sequence
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from thumpflow.config.jobs import (
    BatchFileDestination,
    ChunkRetry,
    FhirBatchDestination,
    FieldSpec,
    Job,
    JobSchedule,
    RuleSpec,
    SftpDestination,
    SqlUpsertDestination,
)
from thumpflow.config.model import (
    AlertsSpec,
    ApiSpec,
    Channel,
    CircuitBreakerSpec,
    ClusterSpec,
    Condition,
    Config,
    DeadLetterGrowth,
    Encryption,
    EncryptionKey,
    FhirDestination,
    FileDestination,
    HttpDestination,
    HttpIngest,
    LaneRule,
    Lanes,
    Ledger,
    MllpDestination,
    NamingSystems,
    OidcSpec,
    OrderingKey,
    RateLimit,
    Retention,
    Retry,
    StoreSpec,
)
from thumpflow.config.modes import LaneWeights, ModeRule, ModeSpec, ModesSpec, Pace
from thumpflow.config.views import (
    BedFields,
    FieldRule,
    Ownership,
    PatientFields,
    PublishSpec,
    SystemSpec,
    UnitSpec,
    ViewsSpec,
)
from thumpflow.connectors.auth import BearerAuth, NoAuth, SecretRef, SmartBackendAuth
from thumpflow.connectors.batchfile.spec import FileDropSourceSpec
from thumpflow.connectors.csv import CsvSpec
from thumpflow.connectors.fhir_bulk.spec import FhirBulkSourceSpec
from thumpflow.connectors.fhir_subscription.spec import FhirSubscriptionSourceSpec
from thumpflow.connectors.fields import DurationMark, PathMark
from thumpflow.connectors.mllp.spec import MllpClientTls, MllpSourceSpec
from thumpflow.connectors.sftp.spec import SftpDropSourceSpec
from thumpflow.connectors.sql.spec import SqlSourceSpec
from thumpflow.connectors.tls import ClientTls, ServerTls
from thumpflow.connectors.webhook.spec import HeaderSecret, WebhookSpec

SECTIONS: tuple[tuple[str, type[BaseModel]], ...] = (
    ("Top level", Config),
    ("store", StoreSpec),
    ("Encryption at rest (`store.encryption`)", Encryption),
    ("Encryption key (`store.encryption.keys[]`)", EncryptionKey),
    ("Retention (`store.retention`)", Retention),
    ("cluster", ClusterSpec),
    ("api", ApiSpec),
    ("OpenID Connect (`api.oidc`)", OidcSpec),
    ("Naming systems (`naming_systems`)", NamingSystems),
    ("alerts", AlertsSpec),
    ("Dead-letter growth (`alerts.dead_letter_growth`)", DeadLetterGrowth),
    ("Alert webhook (`alerts.webhooks[]`)", WebhookSpec),
    ("Webhook header secret (`alerts.webhooks[].headers[]`)", HeaderSecret),
    ("Channel (`channels[]`)", Channel),
    ("MLLP source (`source`, `type: mllp`)", MllpSourceSpec),
    ("FHIR Subscription source (`source`, `type: fhir_subscription`)", FhirSubscriptionSourceSpec),
    ("HTTP ingest (`http_ingest`)", HttpIngest),
    ("Ordering key (`ordering_key`)", OrderingKey),
    ("Condition (`filter[]`, `when[]`)", Condition),
    ("Lanes (`lanes`)", Lanes),
    ("Lane rule (`lanes.rules[]`)", LaneRule),
    ("Delivery ledger (`ledger`)", Ledger),
    ("File destination (`type: file`)", FileDestination),
    ("HTTP destination (`type: http`)", HttpDestination),
    ("Secret header (HTTP destination `secret_headers.<name>`)", SecretRef),
    ("MLLP destination (`type: mllp`)", MllpDestination),
    ("FHIR destination (`type: fhir`)", FhirDestination),
    ("FHIR and FHIR Bulk authentication: none (`auth.type: none`)", NoAuth),
    ("FHIR and FHIR Bulk authentication: bearer token (`auth.type: bearer`)", BearerAuth),
    (
        "FHIR and FHIR Bulk authentication: SMART Backend Services (`auth.type: smart_backend`)",
        SmartBackendAuth,
    ),
    ("Retry (`retry`)", Retry),
    ("Rate limit (`rate_limit`)", RateLimit),
    ("Circuit breaker (`circuit_breaker`)", CircuitBreakerSpec),
    ("Listener TLS (MLLP source `tls`)", ServerTls),
    ("Client TLS (HTTP and FHIR destination `tls`)", ClientTls),
    ("MLLP client TLS (MLLP destination `tls`)", MllpClientTls),
    ("Job (`jobs[]`)", Job),
    ("Schedule (`schedule`)", JobSchedule),
    ("Field (`schema[]`)", FieldSpec),
    ("Rule (`rules[]`)", RuleSpec),
    ("File drop source (`source`, `type: file_drop`)", FileDropSourceSpec),
    ("SFTP drop source (`source`, `type: sftp_drop`)", SftpDropSourceSpec),
    ("SQL source (`source`, `type: sql`)", SqlSourceSpec),
    ("FHIR Bulk Data source (`source`, `type: fhir_bulk`)", FhirBulkSourceSpec),
    ("CSV dialect (`csv`)", CsvSpec),
    ("Batch file destination (`type: batch_file`)", BatchFileDestination),
    ("SFTP destination (`type: sftp`)", SftpDestination),
    ("SQL upsert destination (`type: sql_upsert`)", SqlUpsertDestination),
    ("FHIR batch destination (`type: fhir`)", FhirBatchDestination),
    ("Chunk retry (FHIR batch destination `retry`)", ChunkRetry),
    ("Views (`views`)", ViewsSpec),
    ("View system (`views.systems[]`)", SystemSpec),
    ("Unit (`views.units[]`)", UnitSpec),
    ("Ownership matrix (`views.ownership`)", Ownership),
    ("Patient fields (`views.ownership.patient`)", PatientFields),
    ("Bed fields (`views.ownership.bed`)", BedFields),
    (
        "Field rule (`views.ownership.patient.<field>`, `views.ownership.bed.<field>`)",
        FieldRule,
    ),
    ("Publishing bed status (`views.publish`)", PublishSpec),
    ("Operating modes (`modes`)", ModesSpec),
    ("Mode (`modes.surge`, `modes.diversion`)", ModeSpec),
    ("Lane weights (`modes.<mode>.lane_weights`)", LaneWeights),
    ("Pace (`modes.<mode>.pace[]`)", Pace),
    ("Mode rule (`modes.rules[]`)", ModeRule),
)


def _type_name(field: FieldInfo) -> str:
    """A readable type: `duration`, `path`, `text`, `list of Condition`, `` `a` or `b` ``."""
    return _readable(field.annotation, field.metadata)


def _readable(annotation: Any, metadata: Sequence[Any] = ()) -> str:
    for mark in metadata:
        if isinstance(mark, DurationMark):
            return "duration"
        if isinstance(mark, PathMark):
            return "path"
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is Annotated:
        return _readable(args[0], args[1:])
    if origin in (Union, types.UnionType):
        return " or ".join(_readable(arg) for arg in args if arg is not type(None))
    if origin is Literal:
        return " or ".join(f"`{value}`" for value in args)
    if origin is list:
        return f"list of {_readable(args[0])}"
    if origin is dict:
        return f"map of {_readable(args[0])} to {_readable(args[1])}"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return " or ".join(f"`{getattr(m, 'label', m.value)}`" for m in annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"*{_TITLES.get(annotation, annotation.__name__)}*"
    return _PLAIN.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "**required**"
    if field.default_factory is not None:
        return "(see section)"
    if field.default is PydanticUndefined:
        return ""
    value = field.default
    if hasattr(value, "label"):
        return f"`{value.label}`"
    return f"`{json.dumps(value, default=str)}`"


_PLAIN: dict[Any, str] = {str: "text", int: "integer", float: "number", bool: "`true` or `false`"}
_TITLES = {model: title.split(" (")[0] for title, model in SECTIONS}


def reference_markdown() -> str:
    lines = [
        "# Configuration reference",
        "",
        "Generated by `thumpflow config docs` from the models that validate configuration;",
        "do not edit by hand. A *duration* is seconds or `500ms`, `30s`, `5m`, `2h`, `1d`.",
        "A *path* is a file or directory on this machine; a relative one is resolved against",
        "the folder of the configuration file (not the directory the engine starts in).",
        "",
    ]
    for title, model in SECTIONS:
        lines.append(f"## {title}")
        lines.append("")
        doc = inspect.cleandoc(model.__doc__ or "")
        if doc:
            lines.append(doc)
            lines.append("")
        lines.append("| field | type | default | meaning |")
        lines.append("|---|---|---|---|")
        for name, field in model.model_fields.items():
            key = field.alias or name
            meaning = (field.description or "").replace("|", "\\|").replace("\n", " ")
            kind = _type_name(field).replace("|", "\\|")
            lines.append(f"| `{key}` | {kind} | {_default(field)} | {meaning} |")
        example: Any = getattr(model, "example", None)
        if isinstance(example, dict):
            lines.append("")
            lines.append(f"Example: `{json.dumps(example)}`")
        lines.append("")
    return "\n".join(lines)


def json_schema() -> str:
    return json.dumps(Config.model_json_schema(by_alias=True), indent=2)
