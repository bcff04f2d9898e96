"""The channels an engine runs: for each, its outboxes, its ingress, its MLLP listener and
its FHIR Subscription tracking, started and stopped in the order that loses nothing.

`open` starts a channel's outboxes (each loads its durable backlog) and its
ingress, and its Subscription tracking when its source is one; `listen`
then starts its MLLP listener, so nothing is accepted before it can be
delivered. `close` stops one channel after its in-flight messages (used by
a reload); `stop_all` stops every channel at shutdown: listeners first,
then Subscription tracking, then outboxes, which record every outcome they
know. Queued deliveries stay in the store either way.
"""

from __future__ import annotations

import logging
import random
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from thumpflow.alerts import AlertMonitor
from thumpflow.config.model import Channel, Config
from thumpflow.connectors.fhir_subscription import (
    FhirSubscriptionClient,
    FhirSubscriptionSourceSpec,
)
from thumpflow.connectors.mllp.source import MllpSource
from thumpflow.connectors.mllp.spec import MllpSourceSpec
from thumpflow.core.clock import Clock
from thumpflow.core.errors import ThumpflowError
from thumpflow.core.ports import Destination, StateStore
from thumpflow.core.search import PauseKind
from thumpflow.flow.ingress import ChannelIngress
from thumpflow.flow.metrics import OutboxMetrics
from thumpflow.flow.outbox import Outbox, OutboxSettings
from thumpflow.flow.pipeline import ChannelPipeline
from thumpflow.flow.subscription import SubscriptionReceiver
from thumpflow.flow.subscription_status import SubscriptionMetrics
from thumpflow.runtime.build import build_destination, outbox_settings
from thumpflow.runtime.metrics import EngineMetrics
from thumpflow.runtime.transform_modules import channel_transforms

log = logging.getLogger("thumpflow.runtime")

Paused = set[tuple[PauseKind, str]]


class OutboxFactory(Protocol):
    """How a destination's outbox is made: `Outbox`, or a cluster's partitioned one."""

    def __call__(
        self,
        destination: Destination,
        store: StateStore,
        clock: Clock,
        settings: OutboxSettings,
        *,
        metrics: OutboxMetrics,
        rng: random.Random | None = None,
    ) -> Outbox: ...


def _word(paused: bool) -> str:
    return "paused (by another node)" if paused else "resumed (by another node)"


def cannot_start(where: str, err: Exception) -> ThumpflowError:
    """The start-up error naming the connector that failed and the OS's reason."""
    return ThumpflowError(f"{where}: cannot start: {getattr(err, 'strerror', None) or err}")


@dataclass(slots=True)
class RunningChannel:
    """A started channel: its ingress and its MLLP listener, if it has one."""

    channel: Channel
    ingress: ChannelIngress
    source: MllpSource | None


class RunningChannels:
    """The running channels, their outboxes and Subscription receivers, by id.

    `channels`, `outboxes` and `subscriptions` are the live maps the API and
    the engine read; they are changed in place, never replaced.
    """

    def __init__(
        self,
        store: StateStore,
        clock: Clock,
        *,
        metrics: EngineMetrics,
        alerts: AlertMonitor,
        rng: random.Random,
        on_commit: Callable[[str], Callable[[], None] | None],
        make_outbox: OutboxFactory = Outbox,
        on_outbox: Callable[[Outbox], None] | None = None,
    ) -> None:
        self._make_outbox = make_outbox
        self._store = store
        self._clock = clock
        self._metrics = metrics
        self._alerts = alerts
        self._rng = rng
        self._on_commit = on_commit
        self._on_outbox = on_outbox
        self._subscription_metrics = SubscriptionMetrics(metrics.registry)
        self._clients: dict[str, FhirSubscriptionClient] = {}
        self.channels: dict[str, RunningChannel] = {}
        self.outboxes: dict[str, Outbox] = {}
        self.subscriptions: dict[str, SubscriptionReceiver] = {}

    async def open(self, config: Config, channel: Channel, paused: Paused) -> None:
        """Start a channel's outboxes and ingress (and subscription); it listens at `listen`.

        Each outbox is handed to `on_outbox` first (the operating mode's
        lane policy, `runtime.surge`). Recorded pauses apply before anything
        is sent or accepted. A
        destination that cannot start raises `ThumpflowError` naming it.
        """
        transforms = channel_transforms(channel, self._metrics.conversion.listener(channel.id))
        outboxes = []
        for spec in channel.destinations:
            outbox = self._make_outbox(
                transforms.wrap(build_destination(spec), spec),
                self._store,
                self._clock,
                outbox_settings(spec),
                metrics=self._metrics.flow.outbox(channel.id, spec.id),
                rng=self._rng,
            )
            if self._on_outbox is not None:
                self._on_outbox(outbox)
            if (PauseKind.DESTINATION, spec.id) in paused:
                outbox.pause()
                log.warning("destination %s starts paused", spec.id)
            try:
                await outbox.start()
            except (OSError, ssl.SSLError, ValueError) as err:
                raise cannot_start(
                    f"channel {channel.id!r} > destination {spec.id!r}", err
                ) from None
            self.outboxes[spec.id] = outbox
            outboxes.append(outbox)
        pipeline = ChannelPipeline(channel, transforms.transform, config.partner(channel.id))
        ingress = ChannelIngress(
            pipeline,
            self._store,
            outboxes,
            self._clock,
            metrics=self._metrics.flow.ingress(channel.id),
            on_commit=self._on_commit(channel.id),
        )
        if (PauseKind.CHANNEL, channel.id) in paused:
            ingress.pause()
            log.warning("channel %s starts paused", channel.id)
        source = (
            MllpSource(
                channel.id,
                channel.source,
                ingress,
                clock=self._clock,
                metrics=self._metrics.mllp.listener(channel.id),
            )
            if isinstance(channel.source, MllpSourceSpec)
            else None
        )
        self.channels[channel.id] = RunningChannel(channel, ingress, source)
        if isinstance(channel.source, FhirSubscriptionSourceSpec):
            await self._subscribe(channel.id, channel.source, ingress)

    async def listen(self, channel_id: str) -> None:
        """Start a channel's MLLP listener (nothing for a channel without one)."""
        running = self.channels[channel_id]
        source = running.source
        if source is None:
            return
        listen = source.spec
        try:
            await source.start()
        except (OSError, ssl.SSLError) as err:
            raise ThumpflowError(
                f"channel {channel_id!r}: cannot listen on "
                f"{listen.host}:{listen.port}: {err.strerror or err}"
            ) from None
        log.info(
            "channel %s listening for MLLP on %s:%d",
            channel_id,
            listen.host,
            source.port,
            extra={"channel": channel_id},
        )

    async def close(self, channel_id: str) -> None:
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
        self.subscriptions.pop(channel_id, None)
        client = self._clients.pop(channel_id, None)
        if client is not None:
            await client.close()
        for spec in running.channel.destinations:
            outbox = self.outboxes.pop(spec.id, None)
            if outbox is not None:
                await outbox.stop()

    def apply_pauses(self, paused: Paused) -> None:
        """Pause or resume each running destination and channel to match `paused` (the
        store's pauses, which another node of a cluster may have changed)."""
        for destination_id, outbox in self.outboxes.items():
            wanted = (PauseKind.DESTINATION, destination_id) in paused
            if wanted != outbox.paused:
                (outbox.pause if wanted else outbox.resume)()
                log.warning("destination %s %s", destination_id, _word(wanted))
        for channel_id, running in self.channels.items():
            wanted = (PauseKind.CHANNEL, channel_id) in paused
            if wanted != running.ingress.paused:
                (running.ingress.pause if wanted else running.ingress.resume)()
                log.warning("channel %s %s", channel_id, _word(wanted))

    async def stop_all(self) -> None:
        """Stop every channel: listeners, then Subscription receivers' clients, then outboxes."""
        for running in self.channels.values():
            if running.source is not None:
                await running.source.close()
        self.subscriptions.clear()
        for client in self._clients.values():
            await client.close()
        for outbox in self.outboxes.values():
            await outbox.stop()

    async def _subscribe(
        self, channel_id: str, spec: FhirSubscriptionSourceSpec, ingress: ChannelIngress
    ) -> None:
        """Receive a channel's Subscription notifications (they arrive through the API)."""
        client = FhirSubscriptionClient(spec, self._clock)
        try:
            await client.start()
        except (OSError, ssl.SSLError, ValueError) as err:
            raise cannot_start(f"channel {channel_id!r} > source", err) from None
        self._clients[channel_id] = client
        receiver = SubscriptionReceiver(
            channel_id,
            spec,
            ingress,
            client,
            alerts=self._alerts,
            state=self._store,
            clock=self._clock,
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
