"""The store and connectors a configuration names, built from their specs.

With `runtime/engine.py`, the place that names concrete implementations:
the SQLite and PostgreSQL stores, the flow destinations, the batch sources
and destinations, and each job's runner. Each builder returns a new,
unstarted instance; an unsupported spec is a `ConfigError` naming it.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

from thumpflow.config.jobs import BatchDestinationSpec, BatchSourceSpec, Job
from thumpflow.config.jobs import BatchFileDestination as JobFileDestination
from thumpflow.config.jobs import FhirBatchDestination as JobFhirDestination
from thumpflow.config.jobs import SftpDestination as JobSftpDestination
from thumpflow.config.jobs import SqlUpsertDestination as JobSqlDestination
from thumpflow.config.model import (
    Config,
    DeliveryOptions,
    FhirDestination,
    FileDestination,
    HttpDestination,
    MllpDestination,
)
from thumpflow.connectors.batchfile import BatchFileDestination, FileDropSource, FileDropSourceSpec
from thumpflow.connectors.fhir.batch import FhirBundleWriter
from thumpflow.connectors.fhir.destination import FhirDestination as FhirConnector
from thumpflow.connectors.fhir_bulk import FhirBulkSource, FhirBulkSourceSpec
from thumpflow.connectors.file.destination import FileDestination as FileConnector
from thumpflow.connectors.http.destination import HttpDestination as HttpConnector
from thumpflow.connectors.mllp.destination import MllpDestination as MllpConnector
from thumpflow.connectors.sftp import SftpDestination, SftpDropSource, SftpDropSourceSpec
from thumpflow.connectors.sql import SqlSource, SqlSourceSpec, SqlUpsertDestination
from thumpflow.core.clock import Clock
from thumpflow.core.errors import ConfigError
from thumpflow.core.ports import (
    BatchDestination,
    BatchSource,
    DataFileReader,
    Destination,
    RunStore,
    StateStore,
)
from thumpflow.core.retention import RetentionPolicy
from thumpflow.flow.outbox import OutboxSettings
from thumpflow.flow.retry import RetryPolicy
from thumpflow.runtime.keys import load_cipher, store_password
from thumpflow.runtime.transform_modules import import_callable, load_record_transform
from thumpflow.runtime.workers import read_executor
from thumpflow.store.postgresql import PostgresStore
from thumpflow.store.sqlite import SqliteStore
from thumpflow.thump.census_job import BoardCheck, CensusRunner
from thumpflow.thump.chunked import ChunkedDestination
from thumpflow.thump.parallel import ParallelCsvReader
from thumpflow.thump.reconcile_job import ReconcileRunner, RepairSink, RepairTransform
from thumpflow.thump.runner import ConnectorFactory, Connectors, JobRunner


def open_store(
    config: Config, *, read_only: bool = False, clock: Clock | None = None
) -> StateStore:
    """The configured store (not yet opened), with its encryption keys and password read.

    Raises `ConfigError` naming the key id, or the password's variable or
    file, when one cannot be read.
    """
    spec = config.store
    cipher = load_cipher(spec.encryption)
    if spec.type == "postgresql":
        assert spec.dsn is not None
        return PostgresStore(
            spec.dsn,
            password=store_password(spec),
            read_only=read_only,
            clock=clock,
            cipher=cipher,
        )
    return SqliteStore(Path(spec.path), read_only=read_only, clock=clock, cipher=cipher)


def retention_policy(config: Config) -> RetentionPolicy:
    """The configured retention (keep everything when `store.retention` is absent)."""
    spec = config.store.retention
    if spec is None:
        return RetentionPolicy()
    return RetentionPolicy(spec.events_days, spec.rejects_days, spec.runs_days)


def build_destination(spec: DeliveryOptions) -> Destination:
    """The connector for one destination spec."""
    if isinstance(spec, FileDestination):
        return FileConnector(spec.id, spec)
    if isinstance(spec, HttpDestination):
        return HttpConnector(spec.id, spec)
    if isinstance(spec, MllpDestination):
        return MllpConnector(spec.id, spec)
    if isinstance(spec, FhirDestination):
        return FhirConnector(spec.id, spec)
    raise ConfigError([f"destination {spec.id!r}: unsupported destination type"])


def outbox_settings(spec: DeliveryOptions) -> OutboxSettings:
    retry = spec.retry
    rate = spec.rate_limit
    return OutboxSettings(
        retry=RetryPolicy(
            base_seconds=retry.base,
            cap_seconds=retry.cap,
            max_attempts=retry.max_attempts,
            max_age_seconds=retry.max_age,
            max_retry_after_seconds=retry.max_retry_after,
        ),
        rate_per_second=rate.per_second if rate else None,
        burst=float(rate.burst) if rate else 1.0,
        failure_threshold=spec.circuit_breaker.failure_threshold,
        cooldown_seconds=spec.circuit_breaker.cooldown,
        concurrency=spec.concurrency,
        batch_linger_seconds=spec.batch_linger,
        memory_capacity=spec.memory_capacity,
        high_water=spec.high_water,
        low_water=max(1, spec.high_water * 8 // 10),
    )


def build_batch_source(
    spec: BatchSourceSpec, source_id: str, clock: Clock, reader: DataFileReader | None = None
) -> BatchSource:
    """The connector for one batch source spec (a fresh instance: one per run); a file drop
    source reads its CSV files through `reader` when given."""
    if isinstance(spec, FileDropSourceSpec):
        return FileDropSource(source_id, spec, clock=clock, reader=reader)
    if isinstance(spec, SftpDropSourceSpec):
        return SftpDropSource(source_id, spec, clock=clock)
    if isinstance(spec, SqlSourceSpec):
        return SqlSource(source_id, spec)
    if isinstance(spec, FhirBulkSourceSpec):
        return FhirBulkSource(source_id, spec, clock)
    raise ConfigError([f"job {source_id!r} > source: unsupported source type"])


def build_batch_destination(spec: BatchDestinationSpec, clock: Clock) -> BatchDestination:
    """The connector for one batch destination spec (a fresh instance: one per run)."""
    if isinstance(spec, JobFileDestination):
        return BatchFileDestination(spec.id, spec, clock=clock)
    if isinstance(spec, JobSqlDestination):
        return SqlUpsertDestination(spec.id, spec)
    if isinstance(spec, JobSftpDestination):
        return SftpDestination(spec.id, spec, clock=clock)
    if isinstance(spec, JobFhirDestination):
        retry = spec.retry
        backoff = RetryPolicy(
            base_seconds=retry.base,
            cap_seconds=retry.cap,
            max_attempts=retry.max_attempts,
            max_retry_after_seconds=retry.max_retry_after,
        )
        return ChunkedDestination(
            FhirBundleWriter(spec.id, spec, clock), spec.chunk_size, backoff, clock
        )
    raise ConfigError([f"destination {spec.id!r}: unsupported batch destination type"])


def batch_connectors(clock: Clock) -> ConnectorFactory:
    """Builds each run's source and destinations from its job's specs."""

    def connect(job: Job) -> Connectors:
        reader = None
        if job.read_processes and isinstance(job.source, FileDropSourceSpec):
            reader = ParallelCsvReader(
                read_executor(job.read_processes),
                job,
                job.source.csv.options(),
                processes=job.read_processes,
            )
        return Connectors(
            build_batch_source(job.source, job.id, clock, reader),
            [build_batch_destination(spec, clock) for spec in job.destinations],
        )

    return connect


def job_runner(
    job: Job,
    runs: RunStore,
    clock: Clock,
    repairs: RepairSink | None = None,
    board: BoardCheck | None = None,
) -> JobRunner:
    """A runner for one job with its configured connectors and transform.

    `repairs` admits a `reconcile` job's repair messages into the channel it
    reconciles (that channel's ingress); a job with `repair: true` without it
    is a `ConfigError`, so such a job runs only inside the engine. `board`
    compares a `census_reconcile` job's snapshot with the running engine's
    bed board; without it such a job is a `ConfigError` too.
    """
    if job.kind == "census_reconcile":
        if board is None:
            raise ConfigError(
                [
                    f"job {job.id!r} compares a census snapshot with the running engine's bed "
                    "board: start the engine, then run the job through it"
                ]
            )
        return CensusRunner(job, runs, clock, batch_connectors(clock), board)
    if job.kind == "reconcile":
        if job.repair and repairs is None:
            raise ConfigError(
                [
                    f"job {job.id!r}: `repair: true` sends repairs into channel "
                    f"{job.reconciles!r}, so it runs only in the engine running that channel"
                ]
            )
        repair = (
            cast(RepairTransform, import_callable(job.transform, f"job {job.id!r}"))
            if job.transform
            else None
        )
        return ReconcileRunner(
            job, runs, clock, batch_connectors(clock), transform=repair, repairs=repairs
        )
    transform = load_record_transform(job.transform, job.id) if job.transform else None
    return JobRunner(job, runs, clock, batch_connectors(clock), transform)
