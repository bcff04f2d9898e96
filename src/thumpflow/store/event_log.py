"""The event log read in commit order, for the views (`core.ports.EventLog`); every backend.

`event_seq` is the commit position. SQLite has one writer; on PostgreSQL
every write transaction takes the `audit_head` row lock before it hands out
an `event_seq` and keeps it until COMMIT, so on both a higher `event_seq` is
committed after a lower one and a reader never sees a gap filled later.

A page is read along the primary key from the position on: the channel test
is written `(channel_id || '') IN (...)` so that neither planner picks the
`events_channel` index (channel, time, seq), which would read every event of
the channels and sort them for each page, making a rebuild quadratic
(measured on SQLite: 32 µs of a million-event rebuild's 53 µs per event).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from thumpflow.core.event import Event
from thumpflow.store.crypt import Codec
from thumpflow.store.ops import Db
from thumpflow.store.rows import SELECT_EVENT, event_from_row

_T = TypeVar("_T")
_SELECT = SELECT_EVENT.replace("SELECT ", "SELECT event_seq, ", 1)


def events_after(
    db: Db, codec: Codec, position: int, channels: Sequence[str], limit: int
) -> list[tuple[int, Event]]:
    """Up to `limit` events of `channels` committed after `position`, in commit order."""
    if not channels:
        return []
    marks = ",".join("?" * len(channels))
    rows = db.execute(
        f"{_SELECT} WHERE event_seq > ? AND (channel_id || '') IN ({marks})"
        " ORDER BY event_seq LIMIT ?",
        (position, *channels, limit),
    )
    return [(int(row[0]), event_from_row(row[1:], codec)) for row in rows]


def last_position(db: Db) -> int:
    """The commit position of the newest event (0 when there is none)."""
    row = db.execute("SELECT MAX(event_seq) FROM events").fetchone()
    return int(row[0] or 0)


class EventLogReads:
    """`core.ports.EventLog` for a store with a `_read` (one read transaction) and a codec."""

    _codec: Codec

    def _read(self, query: Callable[[Db], _T]) -> Awaitable[_T]:
        """Run `query` in one read transaction of the backend's reader connection."""
        raise NotImplementedError

    async def events_after(
        self, position: int, channels: Sequence[str], limit: int = 1000
    ) -> list[tuple[int, Event]]:
        """`core.ports.EventLog.events_after`."""
        return await self._read(lambda db: events_after(db, self._codec, position, channels, limit))

    async def last_position(self) -> int:
        """`core.ports.EventLog.last_position`."""
        return await self._read(last_position)
