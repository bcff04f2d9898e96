"""The event log read in commit order, for the views (`core.ports.EventLog`).

`event_seq` is the commit position: the store has one writer, so a higher
`event_seq` is always committed after a lower one and a reader never sees a
gap filled later.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from thumpflow.core.event import Event
from thumpflow.store.sqlite._crypt import Codec
from thumpflow.store.sqlite._rows import SELECT_EVENT, event_from_row

_SELECT = SELECT_EVENT.replace("SELECT ", "SELECT event_seq, ", 1)


def events_after(
    conn: sqlite3.Connection,
    codec: Codec,
    position: int,
    channels: Sequence[str],
    limit: int,
) -> list[tuple[int, Event]]:
    """Up to `limit` events of `channels` committed after `position`, in commit order."""
    if not channels:
        return []
    marks = ",".join("?" * len(channels))
    rows = conn.execute(
        f"{_SELECT} WHERE event_seq > ? AND channel_id IN ({marks}) ORDER BY event_seq LIMIT ?",
        (position, *channels, limit),
    )
    return [(row[0], event_from_row(row[1:], codec)) for row in rows]


def last_position(conn: sqlite3.Connection) -> int:
    """The commit position of the newest event (0 when there is none)."""
    row = conn.execute("SELECT MAX(event_seq) FROM events").fetchone()
    return int(row[0] or 0)
