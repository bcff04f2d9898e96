"""FHIR Subscription notifications into one channel: handshake, heartbeats, gaps, read-after-notify.

A server's topic-based Subscription (R4 Backport IG or R5) posts
notification Bundles by rest-hook; `SubscriptionReceiver.notify` handles one.

Guarantees:

- Same admission as every other input: each notified event becomes one FHIR
  event through the channel's `ChannelIngress.submit_fhir` (validated
  against R4, committed with its deliveries), keyed
  `fhir-subscription:<channel>|<subscription id>|<event number>`. A
  repeated notification (same subscription and event number) is a
  duplicate and creates nothing, whatever its body.
- Content: `full-resource` takes the resource from the Bundle; `id-only`
  reads the focus reference back from the server (read-after-notify, the
  current version); `empty` (or any event without its resource or focus)
  asks `$events` for that event when the server supports it, then reads
  its focus back.
- The answer is `ok` once every event is committed (or was already), or is
  kept as a reject because the server's resource is not valid R4. When a
  resource cannot be read or the store fails the answer is `retry`: what
  was committed stays, a repeat of the notification commits the rest and
  nothing twice; until then the unread numbers are open gaps.
- Gaps: event numbers run 1, 2, 3, ... from the subscription's start;
  `events-since-subscription-start` (R4) / `eventsSinceSubscriptionStart`
  (R5) says how many there are so far, also on heartbeats. Numbers at or
  below it that never arrived are missed: with `events_operation` they are
  fetched with `$events` and admitted; whatever stays missing raises a
  `subscription_gap` alert (the engine's alerts: stored, audited, logged,
  sent to webhooks), is counted in
  `thumpflow_subscription_missed_events_total` and listed in the state. A
  missed event that arrives later closes its gap; when no gap is left open
  the alert clears.
- Heartbeats: any notification, handled by any node, is a sign of life
  (the saved state's time); when none arrives for more than twice
  `heartbeat_period` (`heartbeat_overdue`), a `heartbeat_missing` alert is
  raised once per silence and the state shows `heartbeat_overdue`; the next
  notification clears it. `check_heartbeat` is run by the engine's
  `subscriptions` duty (one node of a cluster), every `watch_interval`.
- Shared, durable tracking: every notification is folded into the saved
  state (`SubscriptionStateStore.advance_subscription`, the rule in
  `core.subscription`) in one commit on the subscription's locked row,
  after that notification's events were admitted; the receiver adopts the
  answer. Nodes handling notifications at the same time therefore never
  overwrite each other: a number any of them saw is not left open. A gap
  alert raised while another node closed the last gap is cleared again at
  once. A restart loses nothing: events the server sent while the engine
  was down are missed numbers at the next notification (recovered with
  `$events` or alerted), and a gap open before the restart is still listed
  and closes when its event arrives. A failed fold is logged by its error
  type; the admitted events stay committed and the notification is folded
  into the state in memory. On a crash between admitting and folding, the
  saved state is one notification behind: the next notification's
  `events-since-subscription-start` finds the unfolded numbers again
  (recovered with `$events` as duplicates that create nothing, or listed
  as missed until resent, never silently lost), and repeated events are
  duplicates by the store's keys. At most 1000 open gaps are kept (the
  newest); older ones stay counted and alerted. Handshakes reset the
  baseline to the count they carry and close open gaps, clearing their
  alert.
- Audit details and logs name the channel, subscription and event numbers,
  never resource content.
"""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any, Protocol

from thumpflow.connectors.fhir_subscription.spec import FhirSubscriptionSourceSpec
from thumpflow.core.alerts import AlertKind
from thumpflow.core.clock import Clock
from thumpflow.core.errors import SourceReadError, StoreError
from thumpflow.core.ports import NotificationSource, SubscriptionStateStore
from thumpflow.core.subscription import Advance, SubscriptionState, advance
from thumpflow.fhir import Notification, NotificationError, NotificationEvent, parse_notification
from thumpflow.flow.ingress import ChannelIngress
from thumpflow.flow.reading import decode_fhir
from thumpflow.flow.subscription_status import (
    NotifyResult,
    SubscriptionMetrics,
    SubscriptionView,
    heartbeat_overdue,
)

log = logging.getLogger("thumpflow.flow.subscription")

_RECOVER_AT_ONCE = 100


class AlertRaiser(Protocol):
    """Raises and clears alerts (the engine's alert monitor)."""

    async def raise_alert(self, kind: AlertKind, subject: str, message: str) -> object: ...

    async def clear_alert(self, kind: AlertKind, subject: str) -> object: ...


class SubscriptionReceiver:
    """Handles one channel's notifications; see the module docstring."""

    def __init__(
        self,
        channel_id: str,
        spec: FhirSubscriptionSourceSpec,
        ingress: ChannelIngress,
        source: NotificationSource,
        *,
        alerts: AlertRaiser,
        state: SubscriptionStateStore,
        clock: Clock,
        metrics: SubscriptionMetrics,
    ) -> None:
        self.channel_id = channel_id
        self.spec = spec
        self._ingress = ingress
        self._source = source
        self._alerts = alerts
        self._state = state
        self._clock = clock
        self._metrics = metrics
        self._started_at = clock.now()
        self._status: str | None = None
        self._handshake_at: float | None = None
        self._last_heartbeat_at: float | None = None
        self._last_notification_at: float | None = None
        self._last_number: int | None = None
        self._missed: set[int] = set()
        self._silence_alerted = False
        self._saved: SubscriptionState | None = None
        self._peer = f"fhir-subscription:{spec.subscription_id}"

    async def start(self) -> None:
        """Load the saved tracking state.

        When the state cannot be read (the error is logged by type) tracking
        starts from what the next notification's fold in the store answers.
        """
        try:
            saved = await self._state.subscription_state(self.channel_id, self.spec.subscription_id)
        except StoreError as err:
            log.error(
                "channel %s: could not load the subscription state (%s); tracking starts afresh",
                self.channel_id,
                type(err).__name__,
                extra={"channel": self.channel_id},
            )
            saved = None
        self._adopt(saved)

    def _adopt(self, state: SubscriptionState | None) -> None:
        """Take the store's state as this receiver's (another node may have folded in more)."""
        self._saved = state
        if state is not None:
            self._last_number = state.last
            self._missed = set(state.missed)

    def view(self) -> SubscriptionView:
        now = self._clock.now()
        return SubscriptionView(
            channel_id=self.channel_id,
            subscription_id=self.spec.subscription_id,
            status=self._status,
            handshake_at=self._handshake_at,
            last_heartbeat_at=self._last_heartbeat_at,
            last_notification_at=self._last_notification_at,
            heartbeat_period=self.spec.heartbeat_period,
            heartbeat_overdue=heartbeat_overdue(
                self._sign_of_life(), self.spec.heartbeat_period, now
            ),
            last_event_number=self._last_number,
            missed_events=tuple(sorted(self._missed)),
        )

    def sample(self) -> None:
        """Set this channel's gauges (at scrape time)."""
        view = self.view()
        if view.last_heartbeat_at is not None:
            self._metrics.last_heartbeat.labels(self.channel_id).set(view.last_heartbeat_at)
        self._metrics.overdue.labels(self.channel_id).set(1 if view.heartbeat_overdue else 0)

    async def check_heartbeat(self) -> bool:
        """Record one alert when heartbeats stopped (once per silence); whether they are overdue.

        A notification handled by any node is a sign of life: the saved state's time is
        read first (when the store cannot answer, this node's own view decides).
        """
        with contextlib.suppress(StoreError):
            self._adopt(
                await self._state.subscription_state(self.channel_id, self.spec.subscription_id)
            )
        now = self._clock.now()
        period = self.spec.heartbeat_period
        overdue = heartbeat_overdue(self._sign_of_life(), period, now)
        if overdue and not self._silence_alerted:
            self._silence_alerted = True
            silent = now - self._sign_of_life()
            await self._alert(
                AlertKind.HEARTBEAT_MISSING,
                f"heartbeat missing: no notification for {silent:.0f} s "
                f"(heartbeat period {period:g} s)",
            )
        elif not overdue and self._silence_alerted:
            self._silence_alerted = False
            await self._clear(AlertKind.HEARTBEAT_MISSING)
        return overdue

    async def notify(self, raw: bytes) -> NotifyResult:
        """Handle one posted notification Bundle (raw JSON bytes)."""
        try:
            note = parse_notification(decode_fhir(raw))
            self._check_addressed(note)
        except NotificationError as err:
            reason = f"unusable notification: {err}"
            reject_id = await self._ingress.keep(
                raw, self._peer, reason, self._clock.now(), "notification"
            )
            return NotifyResult("invalid", reason=str(err), reject_id=reject_id)
        now = self._clock.now()
        self._metrics.notifications.labels(self.channel_id, note.type).inc()
        self._last_notification_at = now
        self._status = note.status
        if note.type == "handshake":
            self._handshake_at = now
            step = await self._fold(frozenset(), None, reset=note.events_since_start or 0)
            if step.before is not None and step.before.missed:
                await self._clear(AlertKind.SUBSCRIPTION_GAP)
            log.info(
                "channel %s: handshake from subscription %s",
                self.channel_id,
                self.spec.subscription_id,
                extra={"channel": self.channel_id},
            )
            return NotifyResult("ok", type=note.type)
        if note.type in ("heartbeat", "query-status"):
            self._last_heartbeat_at = now
            missed = await self._track(set(), note.events_since_start)
            return NotifyResult("ok", type=note.type, missed=missed)
        return await self._events(note)

    def _check_addressed(self, note: Notification) -> None:
        subscription = note.subscription.split("/_history", 1)[0]
        if not subscription.endswith(f"Subscription/{self.spec.subscription_id}"):
            raise NotificationError(
                "subscription",
                f"is not Subscription/{self.spec.subscription_id}, which this channel receives",
            )
        if self.spec.topic is not None and note.topic not in (None, self.spec.topic):
            raise NotificationError("topic", "is not the topic this channel receives")

    async def _events(self, note: Notification) -> NotifyResult:
        accepted: list[str] = []
        duplicates: list[str] = []
        seen: set[int] = set()
        failures: list[str] = []
        for event in sorted(note.events, key=lambda e: -1 if e.number is None else e.number):
            outcome = await self._admit(event)
            if isinstance(outcome, str):
                failures.append(outcome)
                continue
            status, event_id = outcome
            if event.number is not None:
                seen.add(event.number)
            if status == "accepted" and event_id is not None:
                accepted.append(event_id)
            elif status == "duplicate" and event_id is not None:
                duplicates.append(event_id)
        missed = await self._track(seen, note.events_since_start)
        if failures:
            return NotifyResult(
                "retry",
                type=note.type,
                accepted=tuple(accepted),
                duplicates=tuple(duplicates),
                missed=missed,
                reason="; ".join(failures[:5]),
            )
        return NotifyResult(
            "ok",
            type=note.type,
            accepted=tuple(accepted),
            duplicates=tuple(duplicates),
            missed=missed,
        )

    async def _admit(self, event: NotificationEvent) -> tuple[str, str | None] | str:
        """(submission status, event id) for one event, or why it cannot be admitted now."""
        label = "an event" if event.number is None else f"event {event.number}"
        try:
            resource = await self._content(event)
        except SourceReadError as err:
            return f"{label}: {err}"
        if resource is None:
            return f"{label}: the notification has no resource or focus, and no $events to ask"
        key = None
        if event.number is not None:
            key = f"fhir-subscription:{self.channel_id}|{self.spec.subscription_id}|{event.number}"
        submission = await self._ingress.submit_fhir(
            resource,
            json.dumps(resource, ensure_ascii=False, separators=(",", ":")).encode(),
            self._peer,
            scoped_key=key,
            source_system=self._peer,
            via=f"subscription {self.spec.subscription_id} {label}",
        )
        if submission.status == "unavailable":
            return f"{label}: the store could not commit it"
        return submission.status, submission.event_id

    async def _content(self, event: NotificationEvent) -> dict[str, Any] | None:
        if event.resource is not None:
            return event.resource
        focus = event.focus
        if focus is None and self.spec.events_operation and event.number is not None:
            found = await self._query(event.number, event.number)
            focus = next((e.focus for e in found if e.number == event.number), None)
        if focus is None:
            return None
        return await self._source.read(focus)

    async def _query(self, since: int, until: int) -> tuple[NotificationEvent, ...]:
        bundle = await self._source.events(since, until)
        try:
            return parse_notification(bundle).events
        except NotificationError as err:
            raise SourceReadError(f"$events answered an unusable Bundle: {err}") from None

    async def _fold(
        self, seen: frozenset[int], since: int | None, *, reset: int | None = None
    ) -> Advance:
        """Fold a notification into the saved state, shared by every node (one commit).

        When the store fails (logged by type) it is folded into this receiver's own state,
        which goes on in memory; the events admitted stay committed.
        """
        now = self._clock.now()
        try:
            step = await self._state.advance_subscription(
                self.channel_id, self.spec.subscription_id, seen, since, now, reset=reset
            )
        except StoreError as err:
            log.error(
                "channel %s: could not save the subscription state (%s)",
                self.channel_id,
                type(err).__name__,
                extra={"channel": self.channel_id},
            )
            mine = SubscriptionState(self._last_number, tuple(sorted(self._missed)), now)
            step = advance(mine, seen, since, now, reset=reset)
        self._adopt(step.after)
        return step

    async def _track(self, seen: set[int], since: int | None) -> tuple[int, ...]:
        """Fold in the numbers seen; recover or report the newly missing ones; those still open."""
        step = await self._fold(frozenset(seen), since)
        had_gap = step.before is not None and bool(step.before.missed)
        if not step.gap:
            if had_gap and not step.after.missed:
                await self._clear(AlertKind.SUBSCRIPTION_GAP)
            return ()
        self._metrics.missed.labels(self.channel_id).inc(step.count)
        gap = list(step.gap)
        missing = await self._recover(gap) if self.spec.events_operation else gap
        recovered = frozenset(gap) - frozenset(missing)
        if recovered:
            closed = await self._fold(recovered, None)
            if not missing and not closed.after.missed and had_gap:
                await self._clear(AlertKind.SUBSCRIPTION_GAP)
        if missing:
            more = " and more" if step.count > len(gap) else ""
            await self._alert(
                AlertKind.SUBSCRIPTION_GAP,
                f"subscription {self.spec.subscription_id}: {step.count} event(s) missed "
                f"({_ranges(gap)}{more}); not recovered: {_ranges(missing)}",
            )
            await self._clear_if_closed()
        return tuple(missing)

    async def _clear_if_closed(self) -> None:
        """Clear the gap alert just raised when another node's fold closed every gap
        meanwhile (that node found no alert to clear yet)."""
        with contextlib.suppress(StoreError):
            self._adopt(
                await self._state.subscription_state(self.channel_id, self.spec.subscription_id)
            )
        if not self._missed:
            await self._clear(AlertKind.SUBSCRIPTION_GAP)

    async def _recover(self, missing: list[int]) -> list[int]:
        """Fetch missed events with `$events` and admit them; the numbers still missing."""
        left = set(missing)
        batch = missing[:_RECOVER_AT_ONCE]
        if not batch:
            return missing
        try:
            found = await self._query(batch[0], batch[-1])
        except SourceReadError as err:
            log.warning(
                "channel %s: $events failed: %s",
                self.channel_id,
                err,
                extra={"channel": self.channel_id},
            )
            return missing
        for event in found:
            if event.number in left and not isinstance(await self._admit(event), str):
                left.discard(event.number)
        return [n for n in missing if n in left]

    def _sign_of_life(self) -> float:
        shared = self._saved.updated_at if self._saved is not None else 0.0
        return max(self._started_at, self._last_notification_at or 0.0, shared)

    @property
    def watch_interval(self) -> float | None:
        """How often `check_heartbeat` should run (None without a heartbeat period)."""
        period = self.spec.heartbeat_period
        return None if period is None else min(max(period / 4, 0.05), 60.0)

    async def _alert(self, kind: AlertKind, detail: str) -> None:
        """Raise an alert for this channel (once while it holds); a store failure is logged."""
        try:
            await self._alerts.raise_alert(kind, self.channel_id, detail)
        except StoreError:
            log.exception(
                "channel %s: could not record an alert",
                self.channel_id,
                extra={"channel": self.channel_id},
            )

    async def _clear(self, kind: AlertKind) -> None:
        """Clear this channel's alert of `kind`, if one is active."""
        try:
            await self._alerts.clear_alert(kind, self.channel_id)
        except StoreError:
            log.exception(
                "channel %s: could not clear an alert",
                self.channel_id,
                extra={"channel": self.channel_id},
            )


def _ranges(numbers: list[int]) -> str:
    """`3-5, 9` for [3, 4, 5, 9]."""
    parts: list[str] = []
    start = previous = numbers[0]
    for number in [*numbers[1:], None]:
        if number is not None and number == previous + 1:
            previous = number
            continue
        parts.append(f"{start}" if start == previous else f"{start}-{previous}")
        if number is not None:
            start = previous = number
    return ", ".join(parts)
