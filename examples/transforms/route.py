"""Route: critical lab results go to every destination, the rest to the archive only.

The channel's `when` conditions choose destinations from the message as
received; a transform may narrow that choice per output with `route`.
Here a result with an abnormal flag of HH, LL or AA (OBX-8) keeps every
destination; any other message goes only to `archive`.
"""

from __future__ import annotations

from collections.abc import Iterator

from thumpflow.transform import Event, Message, Routed, derive, route

CRITICAL_FLAGS = frozenset({"HH", "LL", "AA"})


def critical_everywhere(event: Event, message: Message) -> Iterator[Event | Routed]:
    output = derive(event, event.body, purpose="routed")
    if CRITICAL_FLAGS.intersection(message.get_all("OBX-8")):
        yield output
    else:
        yield route(output, "archive")
