"""The composition root: builds a running engine from a `Config`.

It starts what `runtime/build.py` builds (the store, the flow
destinations, the jobs' runners) and names the rest of the concrete parts
itself: the MLLP source, the FHIR Subscription client, the alert webhooks.
A channel may have no
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
import logging
import random
import ssl
from collections.abc import Callable
from pathlib import Path

from thumpflow.alerts import (
    AlertMonitor,
    AlertSettings,
    Reading,
)
from thumpflow.config.jobs import Job
from thumpflow.config.loader import load_located
from thumpflow.config.model import (
    Config,
)
from thumpflow.config.secrets import missing_in_environment
from thumpflow.connectors.webhook import WebhookSink
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
    StateStore,
)
from thumpflow.core.search import PauseKind
from thumpflow.flow.outbox import Outbox
from thumpflow.runtime import upkeep
from thumpflow.runtime.build import (
    job_runner,
    open_store,
    retention_policy,
)
from thumpflow.runtime.channels import RunningChannels, cannot_start
from thumpflow.runtime.cluster import Action, Cluster, loop_duty
from thumpflow.runtime.config_audit import record_config
from thumpflow.runtime.conversion import configure_conversion
from thumpflow.runtime.metrics import RUN_WINDOW, EngineMetrics
from thumpflow.runtime.publish import BedPublisher
from thumpflow.runtime.readings import alert_reading
from thumpflow.runtime.reload import (
    ReloadPlan,
    enabled_channels,
    plan_reload,
    restart_only_changes,
    transform_modules,
)
from thumpflow.runtime.settlements import census_board
from thumpflow.runtime.surge import ModeController
from thumpflow.runtime.transform_modules import (
    add_transforms_path,
    channel_transforms,
    refresh_changed,
)
from thumpflow.runtime.workers import (
    close_read_processes,
    reap_leftovers,
    start_read_processes,
)
from thumpflow.thump.reconcile_job import RepairSink
from thumpflow.thump.scheduler import Scheduler, UnknownJobError
from thumpflow.views.live import LiveViews

log = logging.getLogger("thumpflow.runtime")


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
        configure_conversion(config.naming_systems)
        self.clock = clock or SystemClock()
        self.store = store or open_store(config, clock=self.clock)
        self.cluster = (
            Cluster(config, self.store, self.clock)
            if config.store.type == "postgresql" and config.cluster.enabled
            else None
        )
        self._rng = rng or random.Random()
        self.scheduler: Scheduler | None = None
        self.views = (
            LiveViews(config.views, self.store, self.clock) if config.views is not None else None
        )
        self.metrics = EngineMetrics()
        self._upkeep: list[asyncio.Task[None]] = []
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
        self.running = RunningChannels(
            self.store,
            self.clock,
            metrics=self.metrics,
            alerts=self.alerts,
            rng=self._rng,
            on_commit=self._views_notice,
            make_outbox=self.cluster.outbox if self.cluster is not None else Outbox,
            on_outbox=self._attach_mode,
        )
        self.channels = self.running.channels
        self.outboxes = self.running.outboxes
        self.modes = ModeController(
            config.modes,
            self.store,
            self.clock,
            self.outboxes,
            self.views,
            registry=self.metrics.registry,
        )
        self.subscriptions = self.running.subscriptions

    async def start(self) -> None:
        await self.store.open()
        try:
            await record_config(self.store, self.config, self.clock)
            if self.cluster is not None:
                self.cluster.follow_pauses(self.running.apply_pauses)
                await self.cluster.start()
            await upkeep.log_anchor(self.store)
            interval = self.config.store.audit_anchor_interval
            self._upkeep_loop(
                "audit_anchor", lambda: upkeep.anchor_loop(self.store, self.clock, interval)
            )
            self._upkeep_loop(
                "subscriptions", lambda: upkeep.heartbeat_loop(self.subscriptions, self.clock)
            )
            if retention_policy(self.config).purges:
                self._upkeep_loop(
                    "retention", lambda: upkeep.purge_loop(self.store, self.config, self.clock)
                )
            paused = await self._paused()
            await self.modes.load()
            for channel in self.config.channels:
                if channel.enabled:
                    await self.running.open(self.config, channel, paused)
            if self.cluster is not None:
                self.cluster.mark_ready()
            jobs = [job for job in self.config.jobs if job.enabled]
            processes = max((job.read_processes for job in jobs), default=0)
            await asyncio.to_thread(reap_leftovers)
            if processes:
                await asyncio.to_thread(start_read_processes, processes)
            if jobs:
                runners = {
                    job.id: job_runner(
                        job, self.store, self.clock, self._repairs(job), census_board(self)
                    )
                    for job in jobs
                }
                self.scheduler = Scheduler(runners, self.store, self.clock)
                await self._singleton("scheduler", self.scheduler.start, self.scheduler.stop)
                log.info("scheduler started with %d job(s)", len(jobs))
            if self.views is not None:
                self.views.publisher = self._bed_publisher()
                await self.views.start()
            await self.modes.start()
            for channel_id in self.channels:
                await self.running.listen(channel_id)
            for webhook in self._webhooks:
                try:
                    await webhook.start()
                except (OSError, ssl.SSLError, ValueError) as err:
                    raise cannot_start(f"alerts > webhook {webhook.name}", err) from None
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

    def _attach_mode(self, outbox: Outbox) -> None:
        """Give a new outbox the lane policy of the operating mode in force."""
        self.modes.attach(outbox)

    async def _paused(self) -> set[tuple[PauseKind, str]]:
        return {(pause.kind, pause.target_id) for pause in await self.store.pauses()}

    async def reload(self, new: Config) -> ReloadPlan:
        """Apply a new configuration channel by channel (see `runtime.reload`); audited.

        Refused whole, with `ConfigError`, when it changes what only a
        restart changes or names a transform that cannot be loaded; the
        running configuration then stays as it was. Unchanged channels keep
        their connections; changed ones are drained (`RunningChannels.close`) and
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
                channel_transforms(channels[channel_id])
            for channel_id in (*plan.removed, *plan.changed):
                await self.running.close(channel_id)
            for channel_id in plan.removed:
                del self.channels[channel_id]
            self.config = new
            paused = await self._paused()
            failed = []
            for channel_id in (*plan.changed, *plan.added):
                try:
                    await self.running.open(new, channels[channel_id], paused)
                    await self.running.listen(channel_id)
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
        await self.modes.stop()
        if self.views is not None:
            await self.views.stop()
        await asyncio.to_thread(close_read_processes)
        await self.running.stop_all()
        if self.cluster is not None:
            await self.cluster.stop()
        try:
            await upkeep.log_anchor(self.store)
        finally:
            await self.store.close()

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
        """What the alert conditions are evaluated on (see `runtime.readings`)."""
        return await alert_reading(
            self.config, self.store, self.clock, self.running, self.metrics.flow
        )

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
