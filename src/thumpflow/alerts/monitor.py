"""The alert monitor: evaluates conditions on the injected clock, raises and clears alerts.

Guarantees:

- An alert is raised once while its condition holds and cleared once when
  it stops; the store keeps at most one active alert per (kind, subject), so
  a restart picks up the active alerts and neither raises them again nor
  forgets to clear them.
- Every transition is first committed to the store (with its audit entry),
  then logged (WARNING, ids and figures only) and counted in
  `thumpflow_alerts_active{kind}`, then handed to each webhook. A webhook is
  served by a background task: a failure is logged and retried with full
  jitter exponential backoff up to `notify_attempts` times, then given up
  (logged); it never blocks evaluation or the flow, and the alert record is
  already durable. Notices still being retried when the engine stops are
  not kept (the alert is; `GET /api/alerts` lists it).
- A failed evaluation (the store busy or failing) is logged and tried again
  at the next interval; alerts already active stay active.
- Kinds the engine does not evaluate (`heartbeat_missing`) are raised and
  cleared only by their callers, through `raise_alert` and `clear_alert`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from thumpflow.alerts.conditions import AlertSettings, CountTrend, Reading, conditions
from thumpflow.core.alerts import EVALUATED_KINDS, Alert, AlertKind, Condition, Severity, notice
from thumpflow.core.clock import Clock
from thumpflow.core.metrics import Registry
from thumpflow.core.ports import AlertSink, AlertStore

log = logging.getLogger("thumpflow.alerts")


class AlertMonitor:
    """Raises, clears and acknowledges alerts; see the module docstring."""

    def __init__(
        self,
        store: AlertStore,
        clock: Clock,
        settings: AlertSettings,
        read: Callable[[], Awaitable[Reading]],
        *,
        sinks: Sequence[AlertSink] = (),
        registry: Registry | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._settings = settings
        self._read = read
        self._sinks = list(sinks)
        self._rng = rng or random.Random()
        self._trend = CountTrend(settings.growth_window)
        self._active: dict[tuple[AlertKind, str], Alert] = {}
        self._lock = asyncio.Lock()
        self._loop_task: asyncio.Task[None] | None = None
        self._notices: set[asyncio.Task[None]] = set()
        self.evaluations = 0
        self._gauge = (registry or Registry()).gauge(
            "thumpflow_alerts_active", "Active (uncleared) alerts, by kind.", ("kind",)
        )

    @property
    def active(self) -> list[Alert]:
        return list(self._active.values())

    @property
    def notices_in_flight(self) -> int:
        return len(self._notices)

    async def start(self) -> None:
        """Load the active alerts from the store, then evaluate every `interval` seconds."""
        self._active = {alert.key: alert for alert in await self._store.alerts(active_only=True)}
        self._count()
        self._loop_task = asyncio.create_task(self._run(), name="thumpflow-alerts")

    async def stop(self) -> None:
        """Stop evaluating; notices still being retried are abandoned (logged)."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
            self._loop_task = None
        if self._notices:
            log.warning("alerts: %d webhook notice(s) not delivered at stop", len(self._notices))
            for task in list(self._notices):
                task.cancel()
            await asyncio.gather(*self._notices, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                await self.evaluate()
            except Exception as err:
                log.error("alerts: evaluation failed (%s); trying again", type(err).__name__)
            await self._clock.sleep(self._settings.interval)

    async def evaluate(self) -> None:
        """Read the engine once; raise what newly holds, clear what stopped holding.

        `evaluations` counts the evaluations completed.
        """
        reading = await self._read()
        holding = {c.key: c for c in conditions(reading, self._settings, self._trend)}
        async with self._lock:
            for key, condition in holding.items():
                if key not in self._active:
                    await self._raise(condition)
            for key in [k for k in self._active if k[0] in EVALUATED_KINDS]:
                if key not in holding:
                    await self._clear(key)
        self.evaluations += 1

    async def raise_alert(
        self, kind: AlertKind, subject: str, message: str, severity: Severity = Severity.WARNING
    ) -> Alert:
        """Raise an alert (for instance `heartbeat_missing`); the active one if already raised."""
        async with self._lock:
            existing = self._active.get((kind, subject))
            if existing is not None:
                return existing
            return await self._raise(Condition(kind, subject, severity, message))

    async def clear_alert(self, kind: AlertKind, subject: str) -> Alert | None:
        """Clear the active alert of this kind and subject; None when none is active.

        One this monitor did not raise (another node of a cluster did) is found in the
        store and cleared all the same.
        """
        async with self._lock:
            if (kind, subject) not in self._active:
                stored = await self._store.alerts(active_only=True, limit=1000)
                found = next((a for a in stored if a.active and a.key == (kind, subject)), None)
                if found is None:
                    return None
                self._active[found.key] = found
            return await self._clear((kind, subject))

    async def acknowledge(self, alert_id: int, actor: str, reason: str) -> Alert | None:
        """Record an acknowledgement (audited); None when there is no such alert."""
        async with self._lock:
            alert = await self._store.acknowledge_alert(alert_id, actor, reason, self._clock.now())
            if alert is not None and alert.key in self._active and alert.active:
                self._active[alert.key] = alert
            return alert

    async def _raise(self, condition: Condition) -> Alert:
        alert, raised = await self._store.raise_alert(
            condition.kind,
            condition.subject,
            condition.severity,
            condition.message,
            self._clock.now(),
        )
        self._active[alert.key] = alert
        self._count()
        if raised:
            log.warning(
                "ALERT raised %d %s %s: %s",
                alert.alert_id,
                alert.kind.value,
                alert.subject,
                alert.message,
                extra={"alert": alert.alert_id},
            )
            self._notify(alert, "raised")
        return alert

    async def _clear(self, key: tuple[AlertKind, str]) -> Alert | None:
        alert = self._active[key]
        cleared = await self._store.clear_alert(alert.alert_id, self._clock.now())
        del self._active[key]
        self._count()
        if cleared is not None:
            log.warning(
                "ALERT cleared %d %s %s",
                cleared.alert_id,
                cleared.kind.value,
                cleared.subject,
                extra={"alert": cleared.alert_id},
            )
            self._notify(cleared, "cleared")
        return cleared

    def _count(self) -> None:
        for kind in AlertKind:
            active = sum(1 for alert in self._active.values() if alert.kind is kind)
            self._gauge.labels(kind.value).set(active)

    def _notify(self, alert: Alert, transition: str) -> None:
        body = notice(alert, transition)
        for sink in self._sinks:
            task = asyncio.create_task(self._deliver(sink, body), name="thumpflow-alert-notice")
            self._notices.add(task)
            task.add_done_callback(self._notices.discard)

    async def _deliver(self, sink: AlertSink, body: dict[str, Any]) -> None:
        settings = self._settings
        for attempt in range(1, settings.notify_attempts + 1):
            try:
                await sink.send(body)
            except (OSError, TimeoutError) as err:
                if attempt == settings.notify_attempts:
                    log.error(
                        "alerts: gave up sending alert %s (%s) to %s after %d attempts: %s",
                        body["alert_id"],
                        body["transition"],
                        sink.name,
                        attempt,
                        err,
                    )
                    return
                ceiling = settings.notify_backoff * 2 ** (attempt - 1)
                delay = self._rng.uniform(0, min(settings.notify_backoff_cap, ceiling))
                log.warning(
                    "alerts: sending alert %s (%s) to %s failed (%s); retry %d in %.1fs",
                    body["alert_id"],
                    body["transition"],
                    sink.name,
                    err,
                    attempt,
                    delay,
                )
                await self._clock.sleep(delay)
            else:
                return
