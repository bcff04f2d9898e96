"""What every backend's store does the same way: write dispatch to the group writer, shared reads.

A backend (`SqliteStore`, `PostgresStore`) subclasses `GroupStore` and
provides `open`/`close`, its group writer (`self._writer`), `_read` (one read
transaction on its reader connection), its `Dialect` and dead-letter filter,
and what it does differently (searches, freshness, vacuum). Writes go through
the writer (group commit, see `thumpflow.store.group`): each write coroutine
returns only after its transaction committed; reads see the last committed
state, except `load_pending`, which the writer executes in call order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from thumpflow.core.access import ApiToken, Role
from thumpflow.core.alerts import Alert, AlertKind, Severity
from thumpflow.core.audit import Anchor, AuditVerdict
from thumpflow.core.clock import Clock
from thumpflow.core.errors import StoreError
from thumpflow.core.event import (
    Admission,
    Admitted,
    AuditEntry,
    ChannelStats,
    DeadLetter,
    DeadLetterFilter,
    Delivery,
    Duplicate,
    Event,
    Reject,
    ReplayResult,
)
from thumpflow.core.modes import ModeState
from thumpflow.core.outcome import Outcome
from thumpflow.core.retention import PurgeCounts, RekeyCounts, RetentionPolicy
from thumpflow.core.search import Pause, PauseKind, Timeline
from thumpflow.core.subscription import Advance, SubscriptionState
from thumpflow.store import reads
from thumpflow.store.cluster_store import ClusterMethods
from thumpflow.store.crypt import Codec
from thumpflow.store.event_log import EventLogReads
from thumpflow.store.group import GroupWriter, Kind, LoadPending, Op, Replay, WriterStats
from thumpflow.store.ops import Db, Dialect
from thumpflow.store.ops import access as _access
from thumpflow.store.ops import alerts as _alerts
from thumpflow.store.ops import modes as _modes
from thumpflow.store.ops import pauses as _pauses
from thumpflow.store.ops import subscriptions as _subscriptions
from thumpflow.store.ops import upkeep as _upkeep
from thumpflow.store.ops.flow import DeadFilter
from thumpflow.store.rows import DEAD_LETTER_COLUMNS, dead_letter_from_row, reason_matches
from thumpflow.store.run_methods import RunMethods


class GroupStore(EventLogReads, ClusterMethods, RunMethods):
    """The shared part of every backend's store; see the module docstring."""

    _codec: Codec
    _clock: Clock
    _read_only: bool
    _writer: GroupWriter | None
    _dialect: Dialect
    _dead_filter: DeadFilter

    _closed: bool

    async def close(self) -> None:
        """Finish every write already called, then release the connections; idempotent."""
        if self._closed:
            return
        self._closed = True
        writer, self._writer = self._writer, None
        if writer is not None:
            await asyncio.to_thread(writer.stop)
        await asyncio.to_thread(self._release)

    def _release(self) -> None:
        """Close the backend's connections (after the writer stopped)."""
        raise NotImplementedError

    async def _write(self, kind: Kind, arg: Any) -> Any:
        writer = self._writer
        if writer is None:
            if self._read_only:
                raise StoreError("the store is open read-only")
            raise StoreError("the store is not open")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        writer.submit(Op(kind, arg, future, loop))
        return await future

    async def admit(self, admission: Admission) -> Admitted | Duplicate:
        """Commit a received event, its derived events and deliveries, atomically.

        A received idempotency key committed before (also earlier in the same
        group commit) yields `Duplicate` and only a `duplicate` audit entry.
        Deliveries get ids in call order and `created_at` = the received
        event's `received_at`. Raises `StoreError` (nothing written) if the
        admission is inconsistent or the commit fails.
        """
        result: Admitted | Duplicate = await self._write(Kind.ADMIT, admission)
        return result

    async def reject(self, reject: Reject) -> int:
        """Keep the raw input with its reason, audited; return its reject id."""
        reject_id: int = await self._write(Kind.REJECT, reject)
        return reject_id

    async def record(self, outcomes: Sequence[Outcome]) -> None:
        """Commit outcomes and their audit entries atomically.

        Outcomes apply only to pending deliveries: an outcome for a delivery
        that is already delivered, dead or superseded (or unknown) changes
        nothing, so recording the same outcomes twice is harmless.
        """
        await self._write(Kind.RECORD, tuple(outcomes))

    async def load_pending(
        self, destination_id: str, after_delivery_id: int, limit: int
    ) -> list[Delivery]:
        """Pending deliveries of one destination with id > `after_delivery_id`, by id.

        Ordered with writes: sees every write called before it, none called after.
        """
        deliveries: list[Delivery] = await self._write(
            Kind.LOAD_PENDING, LoadPending(destination_id, after_delivery_id, limit)
        )
        return deliveries

    async def replay(
        self, flt: DeadLetterFilter, actor: str, reason: str, *, out_of_order: bool = False
    ) -> ReplayResult:
        """Return every dead delivery matching `flt` to pending, attempts reset, audited.

        A delivery whose ordering key has had a newer delivery delivered to its
        destination stays dead (refused) unless `out_of_order`; see
        `Store.replay`. Audit entries are stamped with the store's clock.
        """
        result: ReplayResult = await self._write(
            Kind.REPLAY, Replay(flt, actor, reason, out_of_order)
        )
        return result

    async def pending_count(self, destination_id: str) -> int:
        """Pending deliveries of a destination, from counters (constant time)."""
        return await self._read(lambda conn: reads.pending_count(conn, destination_id))

    async def applied_version(self, destination_id: str, ordering_key: str) -> int | None:
        """The highest entity version delivered to a destination for a key, if any."""
        return await self._read(
            lambda conn: reads.applied_version(conn, destination_id, ordering_key)
        )

    async def dead_letters(self, flt: DeadLetterFilter, limit: int = 100) -> list[DeadLetter]:
        """Dead deliveries matching `flt`, oldest death first (ties by delivery id)."""
        where, params = self._dead_filter(flt, self._codec)
        sql = (
            f"SELECT {DEAD_LETTER_COLUMNS} FROM deliveries d"
            f" JOIN events e ON e.event_seq = d.event_seq WHERE {where}"
            " ORDER BY d.died_at, d.delivery_id"
        )

        codec = self._codec
        if flt.reason_contains is not None and codec.encrypts:
            # Sealed reasons: filter the opened ones here, so the limit applies after.

            def sealed(conn: Db) -> list[DeadLetter]:
                letters = (dead_letter_from_row(row, codec) for row in conn.execute(sql, params))
                return [letter for letter in letters if reason_matches(flt, letter.reason)][:limit]

            return await self._read(sealed)

        def query(conn: Db) -> list[DeadLetter]:
            return [
                dead_letter_from_row(row, codec)
                for row in conn.execute(f"{sql} LIMIT ?", (*params, limit))
            ]

        return await self._read(query)

    async def event(self, event_id: str) -> Event | None:
        """One stored event with its body, byte for byte as admitted."""
        return await self._read(lambda conn: reads.event(conn, event_id, self._codec))

    async def rejects(self, channel_id: str | None, limit: int = 100) -> list[tuple[int, Reject]]:
        """Kept rejected input with its reject id, newest first, optionally for one channel."""
        return await self._read(lambda conn: reads.rejects(conn, channel_id, limit, self._codec))

    async def reject_by_id(self, reject_id: int) -> Reject | None:
        """One kept rejected input by its id, with its raw bytes; None when unknown."""
        return await self._read(lambda conn: reads.reject_by_id(conn, reject_id, self._codec))

    async def audit(
        self, subject: str | None = None, limit: int = 100, action: str | None = None
    ) -> list[AuditEntry]:
        """Audit entries, newest first, optionally for one subject and/or one action."""
        return await self._read(lambda conn: reads.audit(conn, subject, limit, action))

    async def add_token(
        self, name: str, role: Role, token_hash: str, actor: str, at: float, *, reason: str = ""
    ) -> int:
        """Store a token's hash and audit `token.issued` (with `reason`); the new token id."""
        token_id: int = await self._write(
            Kind.ADD_TOKEN, _access.AddToken(name, role, token_hash, actor, at, reason)
        )
        return token_id

    async def revoke_token(self, token_id: int, actor: str, reason: str, at: float) -> bool:
        """Revoke an active token (audited); False when it was unknown or already revoked."""
        revoked: bool = await self._write(
            Kind.REVOKE_TOKEN, _access.RevokeToken(token_id, actor, reason, at)
        )
        return revoked

    async def token_by_hash(self, token_hash: str) -> ApiToken | None:
        """The active (not revoked) token with this hash."""
        return await self._read(lambda conn: reads.token_by_hash(conn, token_hash))

    async def tokens(self) -> list[ApiToken]:
        """Every token ever issued, oldest first, revoked ones included."""
        return await self._read(reads.tokens)

    async def append_audit(self, entry: AuditEntry) -> int:
        """Append one audit entry (an act through the API: login, pause, payload view)."""
        entry_id: int = await self._write(Kind.AUDIT, entry)
        return entry_id

    async def timeline(self, event_id: str) -> Timeline | None:
        """One event, its derived events, their deliveries and attempts, and their audit."""
        return await self._read(
            lambda conn: reads.timeline(conn, self._dialect, event_id, self._codec)
        )

    async def audit_page(
        self, before: int | None, limit: int, action: str | None = None
    ) -> list[AuditEntry]:
        """Audit entries newest first, entry id below `before` and of `action` when given."""
        return await self._read(lambda conn: reads.audit_page(conn, before, limit, action))

    async def pauses(self) -> list[Pause]:
        """The destinations and channels paused now."""
        return await self._read(reads.pauses)

    async def set_paused(
        self, kind: PauseKind, target_id: str, paused: bool, *, actor: str, reason: str, at: float
    ) -> bool:
        """Record a pause or resume with its audit entry in one commit; False if no change."""
        changed: bool = await self._write(
            Kind.SET_PAUSED, _pauses.SetPaused(kind, target_id, paused, actor, reason, at)
        )
        return changed

    async def operating_mode(self) -> ModeState | None:
        """The operating mode last recorded; None when none was."""
        return await self._read(_modes.operating_mode)

    async def set_operating_mode(self, state: ModeState) -> bool:
        """Record the mode in force with its `mode.changed` audit entry; False if unchanged."""
        changed: bool = await self._write(Kind.SET_MODE, state)
        return changed

    async def raise_alert(
        self, kind: AlertKind, subject: str, severity: Severity, message: str, at: float
    ) -> tuple[Alert, bool]:
        """Record a raised alert (audited) unless one is active: (alert, newly raised)."""
        answer: tuple[Alert, bool] = await self._write(
            Kind.RAISE_ALERT, _alerts.RaiseAlert(kind, subject, severity, message, at)
        )
        return answer

    async def clear_alert(self, alert_id: int, at: float) -> Alert | None:
        """Clear an active alert (audited); None when it was not active."""
        cleared: Alert | None = await self._write(
            Kind.CLEAR_ALERT, _alerts.ClearAlert(alert_id, at)
        )
        return cleared

    async def acknowledge_alert(
        self, alert_id: int, actor: str, reason: str, at: float
    ) -> Alert | None:
        """Stamp an alert acknowledged (audited); None when there is no such alert."""
        acknowledged: Alert | None = await self._write(
            Kind.ACK_ALERT, _alerts.AcknowledgeAlert(alert_id, actor, reason, at)
        )
        return acknowledged

    async def alerts(self, *, active_only: bool = False, limit: int = 100) -> list[Alert]:
        """Active alerts, then cleared ones; newest first within each."""
        return await self._read(lambda conn: reads.alerts(conn, active_only, limit))

    async def subscription_state(
        self, channel_id: str, subscription_id: str
    ) -> SubscriptionState | None:
        """The state saved for a subscription; None when never saved."""
        return await self._read(
            lambda conn: _subscriptions.load_state(conn, channel_id, subscription_id)
        )

    async def advance_subscription(
        self,
        channel_id: str,
        subscription_id: str,
        seen: frozenset[int],
        since: int | None,
        at: float,
        *,
        reset: int | None = None,
    ) -> Advance:
        """`SubscriptionStateStore.advance_subscription` (one commit)."""
        answer: Advance = await self._write(
            Kind.ADVANCE_SUBSCRIPTION,
            _subscriptions.AdvanceSubscription(channel_id, subscription_id, seen, since, at, reset),
        )
        return answer

    async def stats(self) -> list[ChannelStats]:
        """Per channel and outbox counts from one consistent snapshot, by channel id.

        Cost is independent of the number of events: counters plus one index
        probe per outbox with pending deliveries (the "oldest pending" plan in
        `tests/store/test_sqlite.py::test_queries_are_served_by_indexes`).
        """
        return await self._read(reads.stats)

    async def audit_head(self) -> Anchor | None:
        """The newest audit entry's id and hash (an anchor to keep outside), None if empty."""
        return await self._read(reads.audit_head)

    async def verify_audit(self, expect: Anchor | None = None) -> AuditVerdict:
        """Check the whole audit chain in one snapshot; see `thumpflow.core.audit.check_chain`."""
        return await self._read(lambda conn: reads.verify_audit(conn, expect))

    async def purge(self, policy: RetentionPolicy, batch: int = 500) -> PurgeCounts:
        """Delete what `policy` lets go, measured from the store's clock; return the counts.

        Works in writer operations of at most `batch` rows per table (other
        writes interleave between them); ends with one `purged` audit entry
        (counts only) and, once that committed, an incremental vacuum and a
        WAL checkpoint so the file shrinks (databases created before schema
        4 need one `vacuum` first). Pending and dead deliveries and their
        events are never purged; the audit trail never is.
        """
        totals = PurgeCounts()
        if not policy.purges:
            return totals
        now = self._clock.now()
        after = 0
        while True:
            step: _upkeep.PurgeStep = await self._write(
                Kind.PURGE, _upkeep.PurgeBatch(policy, now, after, batch)
            )
            totals.add(step.counts)
            after = step.after_event_seq
            if step.done:
                break
        await self._write(Kind.PURGE_DONE, totals)
        return totals

    async def rekey(self, batch: int = 500) -> RekeyCounts:
        """Re-seal every value not under the current key, in operations of `batch` rows.

        Plain values (written before encryption) are sealed too. Afterwards
        keys no value uses any more are retired from the store (they may then
        be removed from the configuration); one `rekeyed` audit entry records
        the counts. Raises `StoreError` without encryption configured.
        """
        totals = RekeyCounts()
        column, after = 0, 0
        while True:
            counts, column, after = await self._write(
                Kind.REKEY, _upkeep.RekeyBatch(column, after, batch)
            )
            if column >= _upkeep.SEALED_COLUMN_COUNT and counts.total == 0:
                break
            totals.add(counts)
        totals.retired = await self._write(Kind.REKEY_DONE, totals)
        return totals

    def writer_stats(self) -> WriterStats:
        """Group commits, operations and failed commits since `open` (zero when read-only)."""
        return self._writer.stats if self._writer else WriterStats(0, 0, 0)
