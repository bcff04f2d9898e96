"""A transform for tests: one event per OBX segment (pure)."""

from __future__ import annotations

from collections.abc import Iterator

from thumpflow.transform import Event, Message, derive


def split_obx(event: Event, message: Message) -> Iterator[Event]:
    for number, segment in enumerate(message.segments_named("OBX"), 1):
        yield derive(event, segment.text, purpose=f"obx-{number}")
