"""Scheduled batch jobs ("thump"): schedule, source, schema, rules, transform, destinations.

A job is declared beside the channels in the same file. Connector fields come
from each batch connector's own spec; `id` on a destination and everything
else here (schedule, missed-run policy, validation, business key, batch size)
is the thump core's and the same for every connector.

The cron grammar and its time-zone rule are `thumpflow.thump.schedule`'s (a
pure module, imported here so a bad expression is a located config error).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import Field, ValidationInfo, field_validator, model_validator

from thumpflow.config._base import ID_PATTERN, _Model, check_regex
from thumpflow.config._census import census_job_problem
from thumpflow.connectors.batchfile.spec import BatchFileDestinationSpec, FileDropSourceSpec
from thumpflow.connectors.drop import name_fields
from thumpflow.connectors.fhir.spec import FhirBatchDestinationSpec
from thumpflow.connectors.fhir_bulk.spec import FhirBulkSourceSpec
from thumpflow.connectors.fields import Duration, LocalPath
from thumpflow.connectors.sftp.spec import SftpDestinationSpec, SftpDropSourceSpec
from thumpflow.connectors.sql.spec import SqlSourceSpec, SqlUpsertDestinationSpec
from thumpflow.core.records import VERSION_TYPES
from thumpflow.thump.schedule import CronSchedule

FIELD_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.\-]{0,127}$"
_DAY = 86400.0
_SAMPLE_FROM = 1_767_225_600.0  # 2026-01-01T00:00:00Z
_SAMPLED_DUE_TIMES = 400
FieldType = Literal["string", "integer", "decimal", "date", "datetime", "boolean", "code"]


class JobSchedule(_Model):
    """When a job runs: a cron expression in a time zone, or a fixed interval.

    Cron: five fields `minute hour day-of-month month day-of-week` with
    ranges, lists, steps and names (`JAN`, `MON`), or `@hourly`, `@daily`,
    `@weekly`, `@monthly`, `@yearly`. Day of month and day of week combine
    as in Vixie cron (either matches when both are restricted). Evaluated in
    `timezone`: a local time skipped by a daylight-saving gap fires when the
    gap ends; a repeated local time fires once, at its first occurrence (jobs
    whose hour field is `*` fire in both passes). Intervals fire on multiples
    of the interval since the Unix epoch.
    """

    cron: str | None = Field(
        default=None, description="Cron expression, e.g. `0 2 * * *` (02:00 every day)."
    )
    timezone: str = Field(
        default="UTC", description="IANA time zone the cron expression is read in."
    )
    interval: Duration | None = Field(
        default=None, gt=0, description="Run every this long instead (`15m`, `1h`, seconds)."
    )

    example: ClassVar[dict[str, Any]] = {"cron": "0 2 * * *", "timezone": "America/New_York"}

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        if (self.cron is None) == (self.interval is None):
            raise ValueError("a schedule needs exactly one of `cron` and `interval`")
        if self.cron is not None:
            CronSchedule.parse(self.cron, self.timezone)
        elif self.timezone != "UTC":
            raise ValueError("`timezone` goes with `cron`; an interval is zone-free")
        return self

    def more_than_once_a_day(self) -> bool:
        """Whether two runs can fall due on one UTC date (which `{date}` in a file name
        cannot tell apart): an interval under a day, or a cron expression that fires twice on
        one date in a year of due times from 2026-01-01 (both daylight-saving changes)."""
        if self.interval is not None:
            return self.interval < _DAY
        assert self.cron is not None
        schedule = CronSchedule.parse(self.cron, self.timezone)
        due = schedule.next_after(_SAMPLE_FROM)
        for _ in range(_SAMPLED_DUE_TIMES):
            following = schedule.next_after(due)
            if following - _SAMPLE_FROM > _DAY * 366:
                return False
            if int(following // _DAY) == int(due // _DAY):
                return True
            due = following
        return False


class FieldSpec(_Model):
    """One declared field of a record: its type and constraints.

    Empty text counts as missing. Values are converted to their type
    (`integer` to int, `decimal` to an exact decimal, `date` from
    `YYYY-MM-DD`, `datetime` from ISO 8601, `boolean` from true/false/1/0/yes/no);
    a value that cannot be converted or breaks a constraint rejects the record.
    """

    name: str = Field(pattern=FIELD_NAME_PATTERN, description="Field name as the source names it.")
    type: FieldType = Field(
        default="string",
        description="string, integer, decimal, date, datetime, boolean, or code (text from "
        "`allowed`).",
    )
    required: bool = Field(default=False, description="A record without a value is rejected.")
    max_length: int | None = Field(
        default=None, ge=1, description="Longest text allowed (string and code)."
    )
    pattern: str | None = Field(
        default=None, description="Regular expression the whole text must match."
    )
    allowed: list[str] | None = Field(
        default=None, min_length=1, description="The values allowed (required for `code`)."
    )

    example: ClassVar[dict[str, Any]] = {
        "name": "mrn",
        "type": "string",
        "required": True,
        "max_length": 20,
        "pattern": "[A-Z0-9]+",
    }

    @field_validator("pattern")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        return check_regex(value)

    @model_validator(mode="after")
    def _code_values(self) -> Self:
        if self.type == "code" and self.allowed is None:
            raise ValueError("a `code` field needs `allowed` values")
        if self.type not in ("string", "code") and (
            self.max_length is not None or self.pattern is not None
        ):
            raise ValueError("`max_length` and `pattern` apply to string and code fields")
        return self


class RuleSpec(_Model):
    """A cross-field rule: compare two fields, or require fields when another is given.

    A comparison (`field`, `op`, `other`) holds when either value is missing.
    """

    id: str = Field(pattern=ID_PATTERN, description="Rule id, named in rejects.")
    field: str = Field(pattern=FIELD_NAME_PATTERN, description="The field the rule is about.")
    op: Literal["lt", "le", "gt", "ge", "eq", "ne"] | None = Field(
        default=None, description="Compare `field` with `other`: lt, le, gt, ge, eq or ne."
    )
    other: str | None = Field(
        default=None, pattern=FIELD_NAME_PATTERN, description="The field compared with."
    )
    requires: list[str] | None = Field(
        default=None, min_length=1, description="Fields required whenever `field` is given."
    )
    remedy: str | None = Field(
        default=None, description="How to fix a record that breaks the rule (shown in rejects)."
    )

    example: ClassVar[dict[str, Any]] = {
        "id": "discharge-after-admit",
        "field": "discharged_at",
        "op": "ge",
        "other": "admitted_at",
    }

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        compare = self.op is not None or self.other is not None
        if compare == (self.requires is not None):
            raise ValueError("a rule needs either `op` with `other`, or `requires`")
        if compare and (self.op is None or self.other is None):
            raise ValueError("a comparison needs both `op` and `other`")
        return self


class BatchDestinationOptions(_Model):
    """What the thump core needs of every batch destination."""

    id: str = Field(
        pattern=ID_PATTERN,
        description="Stable destination id (unique in the file, except that one job may give "
        "it the id of a destination of the channel it `reconciles`: the same receiving system, "
        "whose delivery ledger the job then reads).",
    )


class BatchFileDestination(BatchDestinationOptions, BatchFileDestinationSpec):
    """Write each run's records to one file, atomically, with a manifest beside it."""


class SqlUpsertDestination(BatchDestinationOptions, SqlUpsertDestinationSpec):
    """Upsert each item into a SQL table by business key (SQLite or PostgreSQL)."""


class SftpDestination(BatchDestinationOptions, SftpDestinationSpec):
    """Upload each run's file to an SFTP server, atomically, with a manifest beside it."""


class ChunkRetry(_Model):
    """How a chunk that failed transiently (429, 5xx, timeout, dropped connection) is retried.

    Exponential backoff with full jitter, never shorter than the server's
    `Retry-After` (capped by `max_retry_after`). After `max_attempts` sends the
    run fails; its watermark does not move, and re-running it is safe.
    """

    base: Duration = Field(default=0.5, gt=0, description="First backoff ceiling, seconds.")
    cap: Duration = Field(default=30.0, gt=0, description="Largest backoff ceiling, seconds.")
    max_attempts: int = Field(
        default=8, ge=1, le=100, description="Sends of one chunk before the run fails."
    )
    max_retry_after: Duration = Field(
        default=300.0, ge=0, description="Largest `Retry-After` honoured, seconds."
    )

    example: ClassVar[dict[str, Any]] = {"base": "1s", "cap": "1m", "max_attempts": 8}


class FhirBatchDestination(BatchDestinationOptions, FhirBatchDestinationSpec):
    """Write each run's records (FHIR resources) to a FHIR R4 server in transaction Bundles.

    Each Bundle holds `chunk_size` idempotent `PUT`s: `Type/id` by the resource's id, else a
    conditional update by its first identifier, else an id derived from the business key, so a
    re-run of a window updates the same resources and creates none twice. A chunk failing
    transiently is retried (`retry`); a chunk the server refuses (4xx, OperationOutcome) is
    split until the refused records stand alone: each becomes a row reject with the server's
    diagnostics as its remedy, and the rest are written.
    """

    retry: ChunkRetry = Field(
        default_factory=ChunkRetry, description="Retries of a chunk that failed transiently."
    )


BatchSourceSpec = Annotated[
    FileDropSourceSpec | SftpDropSourceSpec | SqlSourceSpec | FhirBulkSourceSpec,
    Field(discriminator="type"),
]
BatchDestinationSpec = Annotated[
    BatchFileDestination | SftpDestination | SqlUpsertDestination | FhirBatchDestination,
    Field(discriminator="type"),
]


class Job(_Model):
    """A scheduled batch job: read a window from a source, validate, load idempotently.

    Each run reads what changed since the last successful run (the watermark),
    validates every record (a failing record becomes a reject, the rest go
    on), computes its business key and content hash, and upserts into every
    destination in batches, so re-running a window never duplicates anything.

    `kind: reconcile` loads nothing: it takes the window as the truth, compares
    each record's key, hash and version with the delivery ledger of the flow
    `destination` of the channel it `reconciles` (missing, stale, differing,
    ahead, unexpected extra), writes a report to `report_dir`, and with
    `repair: true` sends a repair message for every record missing there,
    stale or different into that channel.

    `kind: census_reconcile` loads nothing either: it takes the newest census
    snapshot dropped by the EHR (columns `unit`, `bed`, `patient`; its time is
    its manifest's window end, else its `created_at`), compares it with the
    bed board of the `views`, records the beds compared, drifted and repaired
    in the run, and with `repair: true` admits the repair of the drift, as
    `thumpflow views reconcile --repair` does.
    """

    id: str = Field(
        pattern=ID_PATTERN, description="Stable job id (unique among channels and jobs)."
    )
    description: str = Field(default="", description="What this job is for.")
    enabled: bool = Field(default=True, description="A disabled job is validated, not scheduled.")
    schedule: JobSchedule = Field(description="When the job runs.")
    missed_runs: Literal["run_once", "skip"] = Field(
        default="run_once",
        description="Runs due while the engine was down: `run_once` runs once at start "
        "(trigger `missed`), `skip` records a skipped run; either way it is recorded.",
    )
    expect_records: bool = Field(
        default=True,
        description="A run that reads zero records raises an alert (a batch that succeeds "
        "with nothing is often a broken upstream).",
    )
    kind: Literal["load", "reconcile", "census_reconcile"] = Field(
        default="load",
        description="`load` writes the records to `destinations`; `reconcile` compares them "
        "with the delivery ledger of the flow `destination`, reports the differences and can "
        "repair them through the channel it `reconciles`; `census_reconcile` compares the "
        "EHR's census snapshot with the bed board of the `views` and can repair the drift "
        "(see docs/capacity.md).",
    )
    reconciles: str | None = Field(
        default=None,
        pattern=ID_PATTERN,
        description="Id of the flow channel this job backs up (hybrid): records the ledger "
        "shows already delivered to a destination with the same content are skipped "
        "(`load`), or it is the channel compared and repaired (`reconcile`).",
    )
    destination: str | None = Field(
        default=None,
        pattern=ID_PATTERN,
        description="`reconcile` only: id of the destination of the reconciled channel whose "
        "delivery ledger is compared with the source.",
    )
    report_dir: LocalPath | None = Field(
        default=None,
        description="`reconcile` only: directory each run writes its report to "
        "(`<job>-run-<run id>.json` and `.txt`).",
    )
    version_field: str | None = Field(
        default=None,
        pattern=FIELD_NAME_PATTERN,
        description="With `reconciles`: a declared `integer`, `date` or `datetime` field holding "
        "the record's entity version (a sequence, or the time the source last changed it). It "
        "is kept in the delivery ledger beside the hash (flow takes it from the channel's "
        "`ledger` record), so reconciliation tells `stale_version` (the destination holds an "
        "older version) and `destination_ahead` from `content_mismatch`.",
    )
    extras: Literal["all", "window_keys"] = Field(
        default="all",
        description="`reconcile` only: which ledger keys are compared. `all`: every key of the "
        "destination's ledger, so a key the source window lacks is an `unexpected_extra` (the "
        "source is a full snapshot, e.g. a census). `window_keys`: only the window's keys (the "
        "source holds changes only); no extra can then be found.",
    )
    repair: bool = Field(
        default=False,
        description="`reconcile`: send each missing, stale or differing record into the "
        "reconciled channel as the HL7 v2 message the `transform` builds. `census_reconcile`: "
        "admit the repair of the drift found (one audited `views.drift_repaired` event, as a "
        "person's `thumpflow views reconcile --repair`); otherwise the run only reports it.",
    )
    drift_alert: int | None = Field(
        default=1,
        ge=1,
        description="`census_reconcile` only: the `census_drift` alert holds while the last "
        "snapshot compared had at least this many drifted beds (repaired or not); null: never.",
    )
    source: BatchSourceSpec = Field(description="Where records come from.")
    schema_: list[FieldSpec] = Field(
        default_factory=list, alias="schema", description="Declared fields of a record."
    )
    unknown_fields: Literal["keep", "drop", "reject"] = Field(
        default="keep",
        description="Fields not in `schema`: keep them as read, drop them, or reject the record.",
    )
    rules: list[RuleSpec] = Field(default_factory=list, description="Cross-field rules.")
    business_key: list[str] = Field(
        default_factory=list,
        description="Fields that identify a record at the destination (upsert key); they must "
        "be declared in `schema` and are required. Needed by `load` and `reconcile` (a "
        "`census_reconcile` job keys beds by unit and bed).",
    )
    transform: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
        description="Optional pure function `package.module:function(record: dict) -> dict | "
        "None`; None drops the record (counted as skipped). For `kind: reconcile`, "
        "`function(record: dict) -> bytes` builds the HL7 v2 repair message of a record "
        "(required with `repair: true`).",
    )
    destinations: list[BatchDestinationSpec] = Field(
        default_factory=list,
        description="Where the records go (at least one for `load`, none for `reconcile`).",
    )
    batch_size: int = Field(
        default=1000, ge=1, le=100_000, description="Records per write to a destination."
    )
    read_processes: int = Field(
        default=0,
        ge=0,
        le=64,
        description="Worker processes that read, validate, key and hash a `file_drop` source's "
        "CSV files beside the engine (which then only writes), for large files; 0: the engine "
        "does it all. Records, counts, rejects and origins are the same either way; a record a "
        "destination refuses is kept as its canonical JSON rather than as read. For a `load` "
        "job without a `transform` reading CSV from `file_drop`.",
    )

    @field_validator("destinations")
    @classmethod
    def _names_tell_windows_apart(
        cls, destinations: list[BatchDestinationSpec], info: ValidationInfo
    ) -> list[BatchDestinationSpec]:
        schedule = info.data.get("schedule")
        for spec in destinations:
            if not isinstance(spec, BatchFileDestination | SftpDestination):
                continue
            fields = name_fields(spec.template)
            if not {"run", "date"} & fields:
                raise ValueError(
                    f"destination {spec.id!r}: every run would write the same file (`name` has "
                    "neither `{run}` nor `{date}`, and `{window_end}` is `unbounded` for all "
                    "runs but re-runs), replacing another window's output: put `{run}` or "
                    "`{date}` in `name`"
                )
            if "run" not in fields and schedule is not None and schedule.more_than_once_a_day():
                raise ValueError(
                    f"destination {spec.id!r}: `name` tells runs apart by `{{date}}` only, and "
                    "the schedule has more than one run a day, so a run would replace another "
                    "window's output: put `{run}` in `name`"
                )
        return destinations

    @model_validator(mode="after")
    def _fields_declared(self) -> Self:
        if self.kind == "census_reconcile":
            return self._census_fields()
        declared: set[str] = set()
        for spec in self.schema_:
            if spec.name in declared:
                raise ValueError(f"schema declares field {spec.name!r} twice")
            declared.add(spec.name)
        for name in self.business_key:
            if name not in declared:
                raise ValueError(f"business_key field {name!r} is not declared in `schema`")
        types = {spec.name: spec.type for spec in self.schema_}
        for rule in self.rules:
            for name in (rule.field, rule.other, *(rule.requires or ())):
                if name is not None and name not in declared:
                    raise ValueError(
                        f"rule {rule.id!r}: field {name!r} is not declared in `schema`"
                    )
            if rule.other is not None and _comparable(types[rule.field]) != _comparable(
                types[rule.other]
            ):
                raise ValueError(f"rule {rule.id!r}: fields of different types cannot be compared")
        if self.version_field is not None:
            if types.get(self.version_field) not in VERSION_TYPES:
                raise ValueError(
                    f"version_field {self.version_field!r} must be a field declared in `schema` "
                    "as integer, date or datetime"
                )
            if self.reconciles is None:
                raise ValueError(
                    "`version_field` goes with `reconciles` (it is kept in the delivery ledger)"
                )
        ids = [destination.id for destination in self.destinations]
        if len(set(ids)) != len(ids):
            raise ValueError("destination ids of a job must differ")
        if self.read_processes and (
            self.kind != "load"
            or self.transform is not None
            or not isinstance(self.source, FileDropSourceSpec)
            or self.source.format != "csv"
        ):
            raise ValueError(
                "`read_processes` is for a `load` job without a `transform` whose source is a "
                "`file_drop` of `format: csv`"
            )
        return self._kind_fields()

    def _kind_fields(self) -> Self:
        if not self.business_key:
            raise ValueError(f"a `{self.kind}` job needs a `business_key`")
        if "drift_alert" in self.model_fields_set:
            raise ValueError("`drift_alert` is for `kind: census_reconcile`")
        if self.kind == "load":
            if not self.destinations:
                raise ValueError("a `load` job needs at least one destination")
            if (
                self.destination is not None
                or self.report_dir is not None
                or self.repair
                or "extras" in self.model_fields_set
            ):
                raise ValueError(
                    "`destination`, `report_dir`, `repair` and `extras` are for `kind: reconcile`"
                )
            return self
        if self.destinations:
            raise ValueError(
                "a `reconcile` job loads nothing: it has no `destinations`, only the flow "
                "`destination` it compares with"
            )
        if self.reconciles is None or self.destination is None or self.report_dir is None:
            raise ValueError("a `reconcile` job needs `reconciles`, `destination` and `report_dir`")
        if self.repair and self.transform is None:
            raise ValueError(
                "`repair: true` needs a `transform` that builds the HL7 v2 repair message"
            )
        return self

    def _census_fields(self) -> Self:
        problem = census_job_problem(self.model_fields_set, self.source)
        if problem is not None:
            raise ValueError(problem)
        return self


def _comparable(kind: str) -> str:
    return {"integer": "number", "decimal": "number", "code": "string"}.get(kind, kind)
