"""Bed status changes from the views, admitted as events of the `views.publish` channel.

Each change is one admission (event and its deliveries to the channel's
destinations without a `when`, committed together), handed to the
destinations' outboxes, which deliver in order per bed with retries like any
delivery. The idempotency key `views|<bed>|<position>` makes a change
published twice (after a restart) a duplicate: sent once. A store failure
raises `StoreError` to the views' follower, which logs it and goes on; the
change not admitted is published at the next start (every bed's state is).
"""

from __future__ import annotations

from collections.abc import Sequence

from thumpflow.config.model import Channel
from thumpflow.config.views import PublishSpec
from thumpflow.core.clock import Clock
from thumpflow.core.event import Admission, Admitted, Delivery
from thumpflow.core.ports import Store
from thumpflow.flow.fhir_events import FhirRouting
from thumpflow.flow.outbox import Outbox
from thumpflow.views.publish import publication
from thumpflow.views.state import Bed, bed_status


class BedPublisher:
    """A `views.live.Publisher` that admits each change into the publish channel."""

    def __init__(
        self,
        spec: PublishSpec,
        channel: Channel,
        store: Store,
        outboxes: dict[str, Outbox],
        clock: Clock,
    ) -> None:
        self._spec = spec
        self._routing = FhirRouting(channel)
        self._store = store
        self._outboxes = outboxes
        self._clock = clock

    async def __call__(self, beds: Sequence[tuple[str, Bed]]) -> None:
        for name, bed in beds:
            _, deciding = bed_status(bed)
            now = self._clock.now()
            as_of = deciding.stamp.as_of if deciding.stamp else now
            event = publication(
                name,
                bed.status,
                bed.changed_at,
                as_of,
                fmt=self._spec.format,
                channel=self._spec.channel,
                now=now,
            )
            outcome = await self._store.admit(
                Admission(received=event, deliveries=self._routing.deliveries(event))
            )
            if isinstance(outcome, Admitted):
                self._offer(outcome.deliveries)

    def _offer(self, deliveries: Sequence[Delivery]) -> None:
        for delivery in deliveries:
            outbox = self._outboxes.get(delivery.destination_id)
            if outbox is not None:
                outbox.offer([delivery])
