"""Builders and helpers shared by the store tests (synthetic data only)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from thumpflow.core.event import HL7V2_CONTENT_TYPE, Admission, Event, NewDelivery
from thumpflow.core.lanes import Lane
from thumpflow.core.ports import Store

T = TypeVar("T")
S = TypeVar("S", bound=Store)

_counter = itertools.count(1)


class StepClock:
    """A clock that stands still until told to move."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.value = start

    def now(self) -> float:
        return self.value

    def monotonic(self) -> float:
        return self.value

    async def sleep(self, seconds: float) -> None:
        self.value += seconds


def run(factory_make: Callable[[], S], body: Callable[[S], Awaitable[T]]) -> T:
    """Open a store, run `body` with it, close it; all inside a fresh event loop."""

    async def main() -> T:
        store = factory_make()
        await store.open()
        try:
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(main())


def event(
    *,
    channel: str = "adt-in",
    key: str | None = None,
    event_type: str = "adt.admit",
    entity: str = "MRN001",
    body: bytes | None = None,
    at: float = 1_700_000_000.0,
    sequence: int | None = None,
    content_type: str = HL7V2_CONTENT_TYPE,
    causation_id: str | None = None,
) -> Event:
    n = next(_counter)
    return Event(
        event_id=f"EVT{n:023d}",
        idempotency_key=key if key is not None else f"SIM|GEN|CTRL{n}",
        source_system="SIM",
        channel_id=channel,
        event_type=event_type,
        entity_type="Patient",
        entity_id=entity,
        occurred_at=at - 1,
        received_at=at,
        body=body if body is not None else f"MSH|^~\\&|SIM|GEN|||{n}\r".encode(),
        content_type=content_type,
        sequence=sequence,
        causation_id=causation_id,
    )


def admission(
    *destinations: str,
    received: Event | None = None,
    ack_code: str = "AA",
    lane: Lane = Lane.ROUTINE,
    **event_fields: Any,
) -> Admission:
    """An admission of one received event with one delivery per destination."""
    ev = received if received is not None else event(**event_fields)
    return Admission(
        received=ev,
        deliveries=tuple(
            NewDelivery(ev.event_id, d, ev.ordering_key, lane, ev.sequence) for d in destinations
        ),
        ack_code=ack_code,
    )
