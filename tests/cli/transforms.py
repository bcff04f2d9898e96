"""A transform for tests: one event per OBX segment (pure)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from thumpflow.core.event import Event
from thumpflow.hl7v2 import Message


def split_obx(event: Event, message: Message) -> Iterator[Event]:
    for number, segment in enumerate(message.segments_named("OBX"), 1):
        yield replace(
            event,
            event_id=f"{event.event_id}{number:02d}",
            body=segment.text.encode(),
            causation_id=event.event_id,
        )
