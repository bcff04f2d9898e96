"""Views kept current as events commit, and rebuilt from the event log on demand.

Guarantees:
- One source: the live projection reads the same log a rebuild reads
  (`core.ports.EventLog`, in commit order, by commit position), so the live
  state is exactly what `rebuild` gives for the same position
  (`tests/views/test_projection_properties.py` proves the projection side,
  `tests/views/test_live.py` the following).
- Prompt: `notify()` (called by the ingress of a views channel once an
  admission is committed) wakes the follower at once; without a
  notification (events committed by another process or node) it looks
  every `poll` seconds.
- Crash and restart: nothing of the views is stored; `start` rebuilds from
  the log, so a restart can neither lose nor double an update. A store
  failure while following is logged (no content) and retried at the next
  wake-up; the views keep the last state and say how old it is. Any other
  failure is logged by its type only (its text may name a patient) and
  retried the same way.
- Publishing (with a `publisher`): after each catch-up the beds whose
  status changed are handed on (a bed changed twice in one catch-up once, in
  its latest state); after a rebuild, every bed that ever changed, so what a
  crash cut off is sent at the next start. The publisher's idempotency keys
  (`views.publish`) make what was sent before a duplicate.
- Readers see whole events: the projection is changed only between awaits,
  one event at a time, and a rebuild swaps the new projection in whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

from thumpflow.config.views import SETTLEMENTS_CHANNEL, ViewsSpec
from thumpflow.core.clock import Clock
from thumpflow.core.errors import StoreError
from thumpflow.core.ports import EventLog
from thumpflow.views.state import Bed, Projection

Publisher = Callable[[Sequence[tuple[str, Bed]]], Awaitable[None]]
"""Sends bed status changes on (`runtime.publish`); given (bed name, bed) in change order."""

log = logging.getLogger("thumpflow.views")


class LiveViews:
    """A projection that follows the event log (see the module docstring)."""

    def __init__(
        self,
        spec: ViewsSpec,
        events: EventLog,
        clock: Clock,
        *,
        poll: float = 1.0,
        batch: int = 1000,
        publisher: Publisher | None = None,
    ) -> None:
        self.spec = spec
        self.projection = Projection(spec)
        self.channels = sorted(
            {SETTLEMENTS_CHANNEL, *(c for system in spec.systems for c in system.channels)}
        )
        self._log = events
        self._clock = clock
        self._poll = poll
        self._batch = batch
        self.publisher = publisher
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.delays: deque[float] = deque(maxlen=10_000)
        """Seconds from each event's receipt to its application (recent ones)."""

    async def start(self) -> None:
        """Rebuild from the log, then follow it."""
        await self.rebuild()
        self._task = asyncio.create_task(self._follow(), name="views")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def notify(self) -> None:
        """An event of a views channel was committed: catch up now."""
        self._wake.set()

    async def rebuild(self) -> int:
        """Project the whole log into a new projection and swap it in; its event count."""
        async with self._lock:
            fresh = Projection(self.spec)
            applied = await _catch_up(fresh, self._log, self.channels, self._batch)
            self.projection = fresh
            fresh.changed.clear()
            await self._publish([(name, bed) for name, bed in fresh.beds.items() if bed.changed_at])
            return applied

    async def catch_up(self) -> int:
        """Apply every event committed since the last one applied; how many were applied."""
        async with self._lock:
            now = self._clock.now
            projection = self.projection
            applied = await _catch_up(
                projection, self._log, self.channels, self._batch, delays=self.delays, now=now
            )
            changed = [(name, projection.beds[name]) for name in projection.changed]
            projection.changed.clear()
            await self._publish(changed)
            return applied

    async def _publish(self, beds: list[tuple[str, Bed]]) -> None:
        if self.publisher is not None and beds:
            await self.publisher(beds)

    async def _follow(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll)
            self._wake.clear()
            try:
                await self.catch_up()
            except StoreError as err:
                log.warning(
                    "views: could not read the event log (%s); will retry", type(err).__name__
                )
            except Exception as err:  # a bug must not stop the views for good; retried
                # the type only: an exception's text may hold a patient identifier
                log.error("views: catching up failed (%s); will retry", type(err).__name__)


async def _catch_up(
    projection: Projection,
    events: EventLog,
    channels: list[str],
    batch: int,
    *,
    delays: deque[float] | None = None,
    now: Callable[[], float] | None = None,
) -> int:
    """Apply every page of the log after the projection's position; how many events.

    The next page is read while this one is applied (its position is the
    last one of this page), so the store's reading and the projection
    overlap; a failure cancels the read ahead.
    """
    applied = 0
    page = await events.events_after(projection.position, channels, batch)
    while True:
        ahead = None
        if len(page) >= batch:
            ahead = asyncio.ensure_future(events.events_after(page[-1][0], channels, batch))
        try:
            for position, event in page:
                projection.apply(event, position)
                if delays is not None and now is not None:
                    delays.append(max(0.0, now() - event.received_at))
        except BaseException:
            if ahead is not None:
                ahead.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await ahead
            raise
        applied += len(page)
        if ahead is None:
            return applied
        page = await ahead
