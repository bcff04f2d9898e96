"""The composition root: builds a running engine from a `Config`.

This is the only module that names concrete implementations (the SQLite
store, the MLLP source, the FHIR Subscription client, the file/HTTP/MLLP/FHIR
destinations, the batch sources and destinations). A channel may have no
MLLP source (fed over the HTTP API only); a `fhir_subscription` source gets
a `SubscriptionReceiver` in `subscriptions`, fed by the API's rest-hook
route. Start order: store, outboxes (each loads its durable backlog), the
scheduler of jobs (when the configuration has any), then sources, so
nothing is accepted before it can be delivered. Stop order
is the reverse: the scheduler stops first (runs in progress get a grace
period, then are cancelled and recorded failed), sources stop accepting and
finish in-flight admissions, outboxes record every outcome they know, then
the store drains its writes and closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import random
import shutil
import ssl
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from thumpflow.alerts import (
    AlertMonitor,
    AlertSettings,
    ChannelReading,
    JobReading,
    ListenerReading,
    OutboxReading,
    Reading,
)
from thumpflow.config.jobs import BatchDestinationSpec, BatchSourceSpec, Job
from thumpflow.config.jobs import BatchFileDestination as JobFileDestination
from thumpflow.config.jobs import FhirBatchDestination as JobFhirDestination
from thumpflow.config.jobs import SftpDestination as JobSftpDestination
from thumpflow.config.jobs import SqlUpsertDestination as JobSqlDestination
from thumpflow.config.loader import load_located
from thumpflow.config.model import (
    Channel,
    Config,
    DeliveryOptions,
    FhirDestination,
    FileDestination,
    HttpDestination,
    MllpDestination,
)
from thumpflow.config.secrets import missing_in_environment
from thumpflow.connectors.batchfile import BatchFileDestination, FileDropSource, FileDropSourceSpec
from thumpflow.connectors.fhir.batch import FhirBundleWriter
from thumpflow.connectors.fhir.destination import FhirDestination as FhirConnector
from thumpflow.connectors.fhir_bulk import FhirBulkSource, FhirBulkSourceSpec
from thumpflow.connectors.fhir_subscription import (
    FhirSubscriptionClient,
    FhirSubscriptionSourceSpec,
)
from thumpflow.connectors.file.destination import FileDestination as FileConnector
from thumpflow.connectors.http.destination import HttpDestination as HttpConnector
from thumpflow.connectors.mllp.destination import MllpDestination as MllpConnector
from thumpflow.connectors.mllp.source import MllpSource
from thumpflow.connectors.mllp.spec import MllpSourceSpec
from thumpflow.connectors.sftp import SftpDestination, SftpDropSource, SftpDropSourceSpec
from thumpflow.connectors.sql import SqlSource, SqlSourceSpec, SqlUpsertDestination
from thumpflow.connectors.webhook import WebhookSink
from thumpflow.core.batch import RunStatus
from thumpflow.core.clock import Clock, SystemClock
from thumpflow.core.errors import ConfigError, ThumpflowError
from thumpflow.core.event import (
    AuditEntry,
    ChannelStats,
    DeadLetter,
    DeadLetterFilter,
    Delivery,
    OutboxStats,
    ReplayResult,
)
from thumpflow.core.ports import (
    BatchDestination,
    BatchSource,
    DataFileReader,
    Destination,
    RunStore,
    StateStore,
)
from thumpflow.core.retention import RetentionPolicy
from thumpflow.core.search import PauseKind
from thumpflow.flow.destination_transform import DestinationTransform, TransformingDestination
from thumpflow.flow.ingress import ChannelIngress
from thumpflow.flow.limits import BreakerState
from thumpflow.flow.outbox import Outbox, OutboxSettings
from thumpflow.flow.pipeline import ChannelPipeline, Transform
from thumpflow.flow.retry import RetryPolicy
from thumpflow.flow.subscription import SubscriptionMetrics, SubscriptionReceiver
from thumpflow.runtime.cluster import Action, Cluster, loop_duty
from thumpflow.runtime.config_audit import record_config
from thumpflow.runtime.keys import load_cipher, store_password
from thumpflow.runtime.metrics import RUN_WINDOW, EngineMetrics
from thumpflow.runtime.publish import BedPublisher
from thumpflow.runtime.reload import (
    ReloadPlan,
    enabled_channels,
    plan_reload,
    restart_only_changes,
    transform_modules,
)
from thumpflow.runtime.transform_modules import refresh_changed, remember
from thumpflow.runtime.workers import (
    close_read_processes,
    read_executor,
    reap_leftovers,
    start_read_processes,
)
from thumpflow.store.postgresql import PostgresStore
from thumpflow.store.sqlite import SqliteStore
from thumpflow.thump.chunked import ChunkedDestination
from thumpflow.thump.parallel import ParallelCsvReader
from thumpflow.thump.reconcile_job import ReconcileRunner, RepairSink, RepairTransform
from thumpflow.thump.runner import ConnectorFactory, Connectors, JobRunner, RecordTransform
from thumpflow.thump.scheduler import Scheduler, UnknownJobError
from thumpflow.views.live import LiveViews

log = logging.getLogger("thumpflow.runtime")


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


def add_transforms_path(folders: Sequence[str]) -> None:
    """Look for transform modules in these folders first (`transforms_path`), then as usual."""
    for folder in reversed(folders):
        if folder not in sys.path:
            sys.path.insert(0, folder)


def _import_callable(reference: str, where: str) -> Any:
    """Import `package.module:function`; a missing one is a located config error."""
    module_name, _, function_name = reference.partition(":")
    try:
        module = importlib.import_module(module_name)
        remember(module)
        function = getattr(module, function_name)
    except (ImportError, AttributeError) as err:
        raise ConfigError([f"{where} > transform: cannot load {reference!r}: {err}"]) from None
    if not callable(function):
        raise ConfigError([f"{where} > transform: {reference!r} is not callable"])
    return function


def with_transform(destination: Destination, spec: DeliveryOptions, channel_id: str) -> Destination:
    """`destination`, running its spec's `transform` on each delivery when it has one."""
    if spec.transform is None:
        return destination
    return TransformingDestination(destination, load_destination_transform(spec, channel_id))


def load_destination_transform(spec: DeliveryOptions, channel_id: str) -> DestinationTransform:
    """A destination's transform function (see `_import_callable`)."""
    where = f"channel {channel_id!r} > destination {spec.id!r}"
    return cast(DestinationTransform, _import_callable(spec.transform or "", where))


def load_transform(reference: str, channel_id: str) -> Transform:
    """A channel's transform function (see `_import_callable`)."""
    return cast(Transform, _import_callable(reference, f"channel {channel_id!r}"))


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


def load_record_transform(reference: str, job_id: str) -> RecordTransform:
    """A job's record transform function (see `_import_callable`)."""
    return cast(RecordTransform, _import_callable(reference, f"job {job_id!r}"))


def job_runner(
    job: Job, runs: RunStore, clock: Clock, repairs: RepairSink | None = None
) -> JobRunner:
    """A runner for one job with its configured connectors and transform.

    `repairs` admits a `reconcile` job's repair messages into the channel it
    reconciles (that channel's ingress); a job with `repair: true` without it
    is a `ConfigError`, so such a job runs only inside the engine.
    """
    if job.kind == "reconcile":
        if job.repair and repairs is None:
            raise ConfigError(
                [
                    f"job {job.id!r}: `repair: true` sends repairs into channel "
                    f"{job.reconciles!r}, so it runs only in the engine running that channel"
                ]
            )
        repair = (
            cast(RepairTransform, _import_callable(job.transform, f"job {job.id!r}"))
            if job.transform
            else None
        )
        return ReconcileRunner(
            job, runs, clock, batch_connectors(clock), transform=repair, repairs=repairs
        )
    transform = load_record_transform(job.transform, job.id) if job.transform else None
    return JobRunner(job, runs, clock, batch_connectors(clock), transform)


def _cannot_start(where: str, err: Exception) -> ThumpflowError:
    """The start-up error naming the connector that failed and the OS's reason."""
    return ThumpflowError(f"{where}: cannot start: {getattr(err, 'strerror', None) or err}")


@dataclass(slots=True)
class _RunningChannel:
    """A started channel: its ingress and its MLLP listener, if it has one."""

    channel: Channel
    ingress: ChannelIngress
    source: MllpSource | None


class UnknownTargetError(ThumpflowError):
    """No running destination or channel has this id."""


class Engine:
    """A running thumpflow engine: channels, their outboxes and the store.

    Pauses are durable: `pause_destination` / `pause_channel` record the pause
    (audited) before it takes effect, and `start` applies the recorded pauses
    before any source listens or outbox sends.
    """

    def __init__(
        self,
        config: Config,
        *,
        store: StateStore | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.config_path: Path | None = None
        add_transforms_path(config.transforms_path)
        self.clock = clock or SystemClock()
        self.store = store or open_store(config, clock=self.clock)
        self.cluster = (
            Cluster(config, self.store, self.clock)
            if config.store.type == "postgresql" and config.cluster.enabled
            else None
        )
        self._rng = rng or random.Random()
        self.outboxes: dict[str, Outbox] = {}
        self.channels: dict[str, _RunningChannel] = {}
        self.scheduler: Scheduler | None = None
        self.views = (
            LiveViews(config.views, self.store, self.clock) if config.views is not None else None
        )
        self.metrics = EngineMetrics()
        self._upkeep: list[asyncio.Task[None]] = []
        self.subscriptions: dict[str, SubscriptionReceiver] = {}
        self._subscription_metrics = SubscriptionMetrics(self.metrics.registry)
        self._clients: dict[str, FhirSubscriptionClient] = {}
        self._reloading = asyncio.Lock()
        alerts = config.alerts
        self._webhooks = [WebhookSink(spec) for spec in alerts.webhooks]
        self.alerts = AlertMonitor(
            self.store,
            self.clock,
            AlertSettings(
                interval=alerts.interval,
                disk_free_min_percent=alerts.disk_free_min_percent,
                growth_count=alerts.dead_letter_growth.count,
                growth_window=alerts.dead_letter_growth.window,
                notify_attempts=alerts.webhook_attempts,
                notify_backoff=alerts.webhook_backoff,
                connection_limit_window=alerts.connection_limit_window,
            ),
            self._alert_reading,
            sinks=self._webhooks,
            registry=self.metrics.registry,
            rng=self._rng,
        )

    async def start(self) -> None:
        await self.store.open()
        try:
            await record_config(self.store, self.config, self.clock)
            if self.cluster is not None:
                await self.cluster.start()
            await self.log_anchor()
            self._upkeep_loop("audit_anchor", self._anchor_loop)
            if retention_policy(self.config).purges:
                self._upkeep_loop("retention", self._purge_loop)
            paused = await self._paused()
            for channel in self.config.channels:
                if channel.enabled:
                    await self._open_channel(channel, paused)
            jobs = [job for job in self.config.jobs if job.enabled]
            processes = max((job.read_processes for job in jobs), default=0)
            await asyncio.to_thread(reap_leftovers)
            if processes:
                await asyncio.to_thread(start_read_processes, processes)
            if jobs:
                runners = {
                    job.id: job_runner(job, self.store, self.clock, self._repairs(job))
                    for job in jobs
                }
                self.scheduler = Scheduler(runners, self.store, self.clock)
                await self._singleton("scheduler", self.scheduler.start, self.scheduler.stop)
                log.info("scheduler started with %d job(s)", len(jobs))
            if self.views is not None:
                self.views.publisher = self._bed_publisher()
                await self.views.start()
            for running in self.channels.values():
                await self._listen(running)
            for webhook in self._webhooks:
                try:
                    await webhook.start()
                except (OSError, ssl.SSLError, ValueError) as err:
                    raise _cannot_start(f"alerts > webhook {webhook.name}", err) from None
            await self._singleton("alerts", self.alerts.start, self.alerts.stop)
        except BaseException:
            await self.stop()
            raise

    async def _singleton(self, name: str, start: Action, stop: Action) -> None:
        """Start a singleton duty here, or, in a cluster, on the node holding its lease."""
        if self.cluster is None:
            await start()
        else:
            self.cluster.duty(name, start, stop)

    def _upkeep_loop(self, name: str, body: Action) -> None:
        """Run an upkeep loop here, or, in a cluster, on the node holding its lease."""
        if self.cluster is None:
            self._upkeep.append(asyncio.create_task(body()))
        else:
            self.cluster.duty(name, *loop_duty(body))

    async def _paused(self) -> set[tuple[PauseKind, str]]:
        return {(pause.kind, pause.target_id) for pause in await self.store.pauses()}

    async def _open_channel(self, channel: Channel, paused: set[tuple[PauseKind, str]]) -> None:
        """Start a channel's outboxes and ingress (and subscription); its source listens later."""
        transform = load_transform(channel.transform, channel.id) if channel.transform else None
        outboxes = []
        make_outbox = self.cluster.outbox if self.cluster is not None else Outbox
        for spec in channel.destinations:
            outbox = make_outbox(
                with_transform(build_destination(spec), spec, channel.id),
                self.store,
                self.clock,
                outbox_settings(spec),
                metrics=self.metrics.flow.outbox(channel.id, spec.id),
                rng=self._rng,
            )
            if (PauseKind.DESTINATION, spec.id) in paused:
                outbox.pause()
                log.warning("destination %s starts paused", spec.id)
            try:
                await outbox.start()
            except (OSError, ssl.SSLError, ValueError) as err:
                raise _cannot_start(
                    f"channel {channel.id!r} > destination {spec.id!r}", err
                ) from None
            self.outboxes[spec.id] = outbox
            outboxes.append(outbox)
        pipeline = ChannelPipeline(channel, transform, self.config.partner(channel.id))
        ingress = ChannelIngress(
            pipeline,
            self.store,
            outboxes,
            self.clock,
            metrics=self.metrics.flow.ingress(channel.id),
            on_commit=self._views_notice(channel.id),
        )
        if (PauseKind.CHANNEL, channel.id) in paused:
            ingress.pause()
            log.warning("channel %s starts paused", channel.id)
        source = (
            MllpSource(
                channel.id,
                channel.source,
                ingress,
                clock=self.clock,
                metrics=self.metrics.mllp.listener(channel.id),
            )
            if isinstance(channel.source, MllpSourceSpec)
            else None
        )
        self.channels[channel.id] = _RunningChannel(channel, ingress, source)
        if isinstance(channel.source, FhirSubscriptionSourceSpec):
            await self._subscribe(channel.id, channel.source, ingress)

    async def _close_channel(self, channel_id: str) -> None:
        """Stop a channel after its in-flight messages; its queued deliveries stay in the store.

        The ingress is paused first (HTTP senders are answered as under
        backpressure, never refused), the MLLP listener stops accepting and
        answers what it is handling before closing its connections, then the
        outboxes stop sending and record every outcome they know. The
        channel's entry stays in `channels` (paused) until it is replaced
        or removed.
        """
        running = self.channels[channel_id]
        running.ingress.pause()
        if running.source is not None:
            await running.source.close()
        receiver = self.subscriptions.pop(channel_id, None)
        if receiver is not None:
            await receiver.stop()
        client = self._clients.pop(channel_id, None)
        if client is not None:
            await client.close()
        for spec in running.channel.destinations:
            outbox = self.outboxes.pop(spec.id, None)
            if outbox is not None:
                await outbox.stop()

    async def reload(self, new: Config) -> ReloadPlan:
        """Apply a new configuration channel by channel (see `runtime.reload`); audited.

        Refused whole, with `ConfigError`, when it changes what only a
        restart changes or names a transform that cannot be loaded; the
        running configuration then stays as it was. Unchanged channels keep
        their connections; changed ones are drained (`_close_channel`) and
        started again; removed ones stop; added ones start. The change is
        recorded as `config.changed` naming the parts.
        """
        async with self._reloading:
            parts = restart_only_changes(self.config, new)
            if parts:
                raise ConfigError(
                    [f"{', '.join(parts)} change only with a restart; nothing was reloaded"]
                )
            add_transforms_path(new.transforms_path)
            modules = transform_modules(enabled_channels(new))
            fresh = refresh_changed(modules)
            code_changed = {channel for name in fresh for channel in modules[name]}
            plan = plan_reload(self.config, new, code_changed)
            channels = enabled_channels(new)
            for channel_id in (*plan.changed, *plan.added):
                channel = channels[channel_id]
                if channel.transform:
                    load_transform(channel.transform, channel.id)
                for spec in channel.destinations:
                    if spec.transform:
                        load_destination_transform(spec, channel.id)
            for channel_id in (*plan.removed, *plan.changed):
                await self._close_channel(channel_id)
            for channel_id in plan.removed:
                del self.channels[channel_id]
            self.config = new
            paused = await self._paused()
            failed = []
            for channel_id in (*plan.changed, *plan.added):
                try:
                    await self._open_channel(channels[channel_id], paused)
                    await self._listen(self.channels[channel_id])
                except ThumpflowError as err:
                    log.error("reload: %s", err, extra={"channel": channel_id})
                    failed.append(str(err))
            await record_config(self.store, new, self.clock)
            log.info("configuration reloaded: %s", plan.summary())
            if failed:
                raise ThumpflowError("; ".join(failed) + " (the other channels were reloaded)")
            return plan

    async def reload_file(self, actor: str = "thumpflow") -> ReloadPlan:
        """Read `config_path` again, validate it with its secrets, and `reload` it.

        A file that does not validate, names a missing secret or changes
        what needs a restart raises `ConfigError` with every located problem,
        audited as `config.reload_refused` (by `actor`); the running
        configuration stays.
        """
        if self.config_path is None:
            raise ThumpflowError("the engine was not started from a configuration file")
        try:
            located = await asyncio.to_thread(load_located, self.config_path)
            missing = missing_in_environment(located.config, located.where)
            if missing:
                raise ConfigError(missing)
            return await self.reload(located.config)
        except ConfigError as err:
            detail = f"{len(err.problems)} problem(s): " + " | ".join(err.problems)
            await self.store.append_audit(
                AuditEntry(self.clock.now(), actor, "config.reload_refused", "config", detail)
            )
            raise

    async def _subscribe(
        self, channel_id: str, spec: FhirSubscriptionSourceSpec, ingress: ChannelIngress
    ) -> None:
        """Receive a channel's Subscription notifications (they arrive through the API)."""
        client = FhirSubscriptionClient(spec, self.clock)
        try:
            await client.start()
        except (OSError, ssl.SSLError, ValueError) as err:
            raise _cannot_start(f"channel {channel_id!r} > source", err) from None
        self._clients[channel_id] = client
        receiver = SubscriptionReceiver(
            channel_id,
            spec,
            ingress,
            client,
            alerts=self.alerts,
            state=self.store,
            clock=self.clock,
            metrics=self._subscription_metrics,
        )
        await receiver.start()
        self.subscriptions[channel_id] = receiver
        log.info(
            "channel %s receiving notifications of subscription %s",
            channel_id,
            spec.subscription_id,
            extra={"channel": channel_id},
        )

    async def _listen(self, running: _RunningChannel) -> None:
        source = running.source
        if source is None:
            return
        listen = source.spec
        try:
            await source.start()
        except (OSError, ssl.SSLError) as err:
            raise ThumpflowError(
                f"channel {running.channel.id!r}: cannot listen on "
                f"{listen.host}:{listen.port}: {err.strerror or err}"
            ) from None
        log.info(
            "channel %s listening for MLLP on %s:%d",
            running.channel.id,
            listen.host,
            source.port,
            extra={"channel": running.channel.id},
        )

    async def set_paused(
        self, kind: PauseKind, target_id: str, paused: bool, *, actor: str, reason: str
    ) -> bool:
        """Pause or resume a running destination or channel, durably and audited.

        The store records the change first; then the outbox stops or starts
        sending, or the channel's ingress closes or opens. Returns False when
        it was already in that state (nothing recorded). Raises
        `UnknownTargetError` when no running target has that id.
        """
        if kind is PauseKind.DESTINATION:
            outbox = self.outboxes.get(target_id)
            if outbox is None:
                raise UnknownTargetError(f"no running destination {target_id!r}")
            apply = outbox.pause if paused else outbox.resume
        else:
            running = self.channels.get(target_id)
            if running is None:
                raise UnknownTargetError(f"no running channel {target_id!r}")
            apply = running.ingress.pause if paused else running.ingress.resume
        changed = await self.store.set_paused(
            kind, target_id, paused, actor=actor, reason=reason, at=self.clock.now()
        )
        apply()
        return changed

    def _bed_publisher(self) -> BedPublisher | None:
        """The publisher of bed status changes, when `views.publish` names an enabled channel."""
        spec = self.config.views.publish if self.config.views is not None else None
        running = self.channels.get(spec.channel) if spec is not None else None
        if spec is None or running is None:
            return None
        return BedPublisher(spec, running.channel, self.store, self.outboxes, self.clock)

    def _views_notice(self, channel_id: str) -> Callable[[], None] | None:
        """What a channel's ingress calls after a commit: wake the views if they read it."""
        if self.views is None or channel_id not in self.views.channels:
            return None
        return self.views.notify

    def _repairs(self, job: Job) -> RepairSink | None:
        """The ingress of the channel a reconcile job repairs, when that channel runs here.

        Looked up at each repair, so a channel restarted by a reload gets the
        repairs, never its stopped predecessor.
        """
        channel_id = job.reconciles or ""
        if job.kind != "reconcile" or channel_id not in self.channels:
            return None

        async def repair(raw: bytes, peer: str) -> bytes | None:
            running = self.channels.get(channel_id)
            if running is None:
                raise ThumpflowError(f"channel {channel_id!r} is not running")
            return await running.ingress.receive(raw, peer)

        return repair

    async def stop(self) -> None:
        if self.cluster is not None:
            await self.cluster.stop_duties()
        await self.alerts.stop()
        for webhook in self._webhooks:
            await webhook.close()
        for task in self._upkeep:
            task.cancel()
        for task in self._upkeep:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._upkeep.clear()
        if self.scheduler is not None:
            await self.scheduler.stop()
        if self.views is not None:
            await self.views.stop()
        await asyncio.to_thread(close_read_processes)
        for running in self.channels.values():
            if running.source is not None:
                await running.source.close()
        for receiver in self.subscriptions.values():
            await receiver.stop()
        for client in self._clients.values():
            await client.close()
        for outbox in self.outboxes.values():
            await outbox.stop()
        if self.cluster is not None:
            await self.cluster.stop()
        try:
            await self.log_anchor()
        finally:
            await self.store.close()

    async def log_anchor(self) -> None:
        """Log the audit trail's head as an `audit.anchor` line (entry id and hash only).

        Kept outside the machine (log shipping), these lines let `thumpflow
        audit verify --expect ID:HASH` prove that no entry up to that one was
        deleted or rewritten since.
        """
        try:
            head = await self.store.audit_head()
        except ThumpflowError as err:
            log.warning("audit.anchor unavailable: %s", type(err).__name__)
            return
        if head is not None:
            log.info(
                "audit.anchor %s",
                head,
                extra={"audit_anchor": str(head), "audit_entry": head.entry_id},
            )

    async def _anchor_loop(self) -> None:
        while True:
            await self.clock.sleep(self.config.store.audit_anchor_interval)
            await self.log_anchor()

    async def purge(self) -> None:
        """Purge what the configured retention lets go, now (see `StoreUpkeep.purge`)."""
        counts = await self.store.purge(retention_policy(self.config))
        log.info("retention purge: %s", counts.summary())

    async def _purge_loop(self) -> None:
        spec = self.config.store.retention
        assert spec is not None
        while True:
            try:
                await self.purge()
            except ThumpflowError as err:
                log.warning("retention purge failed: %s", err)
            await self.clock.sleep(spec.interval)

    async def start_run(self, job_id: str) -> int | None:
        """Start a manual run of an enabled job; its run id, or None while one is running.

        Raises `UnknownJobError` when no enabled job has that id.
        """
        if self.scheduler is None:
            raise UnknownJobError(f"no enabled job {job_id!r}")
        return await self.scheduler.trigger(job_id)

    def source_port(self, channel_id: str) -> int:
        """The bound port of a channel's MLLP listener; LookupError when it has none."""
        source = self.channels[channel_id].source
        if source is None:
            raise LookupError(f"channel {channel_id!r} has no MLLP source")
        return source.port

    async def stats(self) -> list[ChannelStats]:
        return await self.store.stats()

    async def outbox_stats(self) -> dict[str, OutboxStats]:
        """The store's figures of every outbox, by destination id."""
        return {
            outbox.destination_id: outbox
            for channel in await self.store.stats()
            for outbox in channel.outboxes
        }

    async def render_metrics(self) -> str:
        """Every metric in Prometheus text format 0.0.4, state gauges read now.

        Queue depths, lanes, circuits and backpressure come from the outboxes,
        the oldest pending age from the store's stats, job figures from the
        store's recorded runs; counters are this process's since it started.
        """
        stats = await self.outbox_stats()
        for destination_id, running in self.outboxes.items():
            found = stats.get(destination_id)
            running.sample_metrics(found.oldest_pending_at if found else None)
        for receiver in self.subscriptions.values():
            receiver.sample()
        if self.scheduler is not None:
            for job_id in self.scheduler.job_ids:
                self.metrics.jobs.sample(job_id, await self.store.runs(job_id, RUN_WINDOW))
        return self.metrics.registry.render()

    async def _alert_reading(self) -> Reading:
        """What the alert conditions are evaluated on (see `thumpflow.alerts.conditions`)."""
        stats = await self.outbox_stats()
        outboxes = []
        for running in self.channels.values():
            for spec in running.channel.destinations:
                found = stats.get(spec.id)
                outboxes.append(
                    OutboxReading(
                        channel_id=running.channel.id,
                        destination_id=spec.id,
                        latency_budget=running.channel.latency_budget,
                        oldest_pending_at=found.oldest_pending_at if found else None,
                        dead=found.dead if found else 0,
                        circuit_open=self.outboxes[spec.id].breaker.state
                        is not BreakerState.CLOSED,
                    )
                )
        jobs = []
        for job in self.config.jobs:
            if not (job.enabled and job.expect_records):
                continue
            finished = [
                run
                for run in await self.store.runs(job.id, 5)
                if run.status in (RunStatus.SUCCEEDED, RunStatus.PARTIAL)
            ]
            if finished:
                jobs.append(JobReading(job.id, finished[0].run_id, finished[0].counts.read))
        reused = self.metrics.flow.control_ids_reused
        return Reading(
            at=self.clock.now(),
            outboxes=outboxes,
            jobs=jobs,
            disk_free_percent=await asyncio.to_thread(self._disk_free_percent),
            listeners=[
                ListenerReading(
                    channel_id=channel_id,
                    connections=source.connection_count,
                    max_connections=source.spec.max_connections,
                    limit=source.limit_reached,
                    limit_reached_at=source.limit_reached_at,
                    refused=source.refused,
                    evicted=source.evicted,
                )
                for channel_id, running in self.channels.items()
                if (source := running.source) is not None
            ],
            channels=[
                ChannelReading(channel_id, int(reused.labels(channel_id).value))
                for channel_id in self.channels
            ],
        )

    def _disk_free_percent(self) -> float | None:
        """Free space on the store's file system, in percent of its size."""
        try:
            usage = shutil.disk_usage(Path(self.config.store.path).resolve().parent)
        except OSError:
            return None
        return 100.0 * usage.free / usage.total if usage.total else None

    async def dead_letters(self, flt: DeadLetterFilter, limit: int = 100) -> list[DeadLetter]:
        return await self.store.dead_letters(flt, limit)

    async def replay(
        self, flt: DeadLetterFilter, actor: str, reason: str, *, out_of_order: bool = False
    ) -> ReplayResult:
        """Return matching dead deliveries to their outboxes (audited in the store).

        A dead delivery whose ordering key has had a newer delivery delivered
        to the same destination is refused (stays dead, listed in `refused`)
        unless `out_of_order`; see `Store.replay`. A replayed delivery goes
        into its key's queue by delivery id, so it is sent before any later
        delivery of the key still pending.
        """
        result = await self.store.replay(flt, actor, reason, out_of_order=out_of_order)
        by_destination: dict[str, list[Delivery]] = {}
        for delivery in result.replayed:
            by_destination.setdefault(delivery.destination_id, []).append(delivery)
        for destination_id, batch in by_destination.items():
            outbox = self.outboxes.get(destination_id)
            if outbox is not None:
                outbox.readmit(batch)
        return result
