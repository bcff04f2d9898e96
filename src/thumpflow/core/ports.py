"""The contracts the stores implement (SQLite and PostgreSQL, one contract suite), and
re-exported under their usual names, the connectors' (`core.connector_ports`).

`flow`, `thump` and `runtime` see storage and connectors only through these
protocols; only `runtime` names concrete implementations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from thumpflow.core.access import ApiToken, Role
from thumpflow.core.alerts import Alert, AlertKind, Severity
from thumpflow.core.audit import Anchor, AuditVerdict
from thumpflow.core.batch import (
    LedgerEntry,
    Manifest,
    RowReject,
    RunCounts,
    RunRecord,
    RunStatus,
    RunTrigger,
    Window,
)
from thumpflow.core.cluster import ClusterStore
from thumpflow.core.connector_ports import (
    AlertSink,
    BatchDestination,
    BatchSource,
    ChunkWriter,
    DataFileReader,
    Destination,
    Ingress,
    NotificationSource,
)
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
from thumpflow.core.health import DeliverySample
from thumpflow.core.modes import ModeState
from thumpflow.core.outcome import Outcome
from thumpflow.core.retention import PurgeCounts, RekeyCounts, RetentionPolicy
from thumpflow.core.search import (
    DeliveryQuery,
    DeliveryRecord,
    EventQuery,
    EventSummary,
    Pause,
    PauseKind,
    Timeline,
)
from thumpflow.core.subscription import Advance, SubscriptionState

__all__ = [
    "AccessStore",
    "AlertSink",
    "AlertStore",
    "BatchDestination",
    "BatchSource",
    "ChunkWriter",
    "DataFileReader",
    "Destination",
    "EventLog",
    "FreshnessStore",
    "Ingress",
    "NotificationSource",
    "OperationsStore",
    "RunStore",
    "StateStore",
    "Store",
    "StoreUpkeep",
    "SubscriptionStateStore",
]


class Store(Protocol):
    """The durable store.

    Write methods are coroutines that return only after the write is durably
    committed (fsync'd); concurrent callers share one commit (group commit).
    Should the commit fail, every caller of that commit gets `StoreError`
    and nothing of theirs is committed. Writes are applied in call order:
    an `Admission` that returns before another is called has a lower
    `delivery_id` for each of its deliveries.
    """

    async def open(self) -> None:
        """Create or migrate the schema; idempotent."""
        ...

    async def close(self) -> None:
        """Finish pending writes, then release the database."""
        ...

    async def admit(self, admission: Admission) -> Admitted | Duplicate:
        """Commit a received event, its derived events and deliveries, atomically.

        If the idempotency key of `admission.received` was committed before,
        nothing is written and `Duplicate` names the original event and ACK
        code; an audit entry records the duplicate.
        """
        ...

    async def reject(self, reject: Reject) -> int:
        """Keep input that could not become an event; return its reject id."""
        ...

    async def record(self, outcomes: Sequence[Outcome]) -> None:
        """Commit delivery outcomes with their audit entries, atomically.

        `Delivered` also raises the applied entity version of
        (destination, ordering key) to the delivery's sequence, never lowers it,
        and, for a delivery with a business key, sets the delivery ledger's
        (destination, business key) to its content hash (the latest wins) in
        the same transaction; `Died` and `Superseded` never touch the ledger.
        """
        ...

    async def load_pending(
        self, destination_id: str, after_delivery_id: int, limit: int
    ) -> list[Delivery]:
        """Pending deliveries of one destination with id > `after_delivery_id`, by id.

        Serialised with writes: every admission that returned before this call
        is visible, none that is called after it.
        """
        ...

    async def pending_count(self, destination_id: str) -> int:
        """How many deliveries of one destination are pending (durably queued)."""
        ...

    async def applied_version(self, destination_id: str, ordering_key: str) -> int | None:
        """The highest entity version delivered to a destination for a key, if any."""
        ...

    async def dead_letters(self, flt: DeadLetterFilter, limit: int = 100) -> list[DeadLetter]:
        """Dead deliveries matching `flt`, oldest first."""
        ...

    async def replay(
        self, flt: DeadLetterFilter, actor: str, reason: str, *, out_of_order: bool = False
    ) -> ReplayResult:
        """Return matching dead deliveries to pending (attempts reset), audited; respect order.

        Each matching dead delivery is checked, in the same transaction as its
        return to pending: if a later delivery (higher `delivery_id`) to the
        same destination with the same ordering key is already delivered, the
        dead one is an `OrderConflict` naming the latest such delivery. A
        delivery's ordering key is its event's `entity_type/entity_id`, so the
        check may look the newer deliveries up through that entity's events.
        Without `out_of_order` a conflicting delivery stays dead and is listed
        in `refused` (nothing is written for it). With `out_of_order` it is
        replayed too and listed in `out_of_order`. Each replayed delivery gets
        one audit entry under `actor`, subject `delivery:<id>`: `replayed`
        with `reason` as detail, or `replayed.out_of_order` with `reason` and
        the newer delivery's id. Deliveries purged by retention are not seen
        by the check. The replayed deliveries are pending again; the flow core
        schedules them.
        """
        ...

    async def event(self, event_id: str) -> Event | None:
        """One stored event, with its body."""
        ...

    async def rejects(self, channel_id: str | None, limit: int = 100) -> list[tuple[int, Reject]]:
        """Kept rejected input, newest first."""
        ...

    async def reject_by_id(self, reject_id: int) -> Reject | None:
        """One kept rejected input, with its raw bytes."""
        ...

    async def audit(
        self, subject: str | None = None, limit: int = 100, action: str | None = None
    ) -> list[AuditEntry]:
        """Audit entries, newest first, optionally for one subject and/or one action."""
        ...

    async def stats(self) -> list[ChannelStats]:
        """Per channel and destination counts for `status`."""
        ...


class StoreUpkeep(Protocol):
    """Keeping the store trustworthy and bounded: the audit chain, retention, keys.

    The audit trail is append-only and hash chained (`thumpflow.core.audit`);
    every audit entry is written in the transaction of the change it records.
    """

    async def audit_head(self) -> Anchor | None:
        """The newest audit entry's id and hash, to be kept outside the store."""
        ...

    async def verify_audit(self, expect: Anchor | None = None) -> AuditVerdict:
        """Check the whole chain, and that `expect` (an earlier anchor) is still in it."""
        ...

    async def purge(self, policy: RetentionPolicy, batch: int = 500) -> PurgeCounts:
        """Delete what the policy lets go (never pending or dead deliveries, never audit),
        audited with counts; the space is given back to the file system."""
        ...

    async def rekey(self, batch: int = 500) -> RekeyCounts:
        """Re-encrypt every stored payload under the current key; retire unused keys."""
        ...

    async def vacuum(self) -> tuple[int, int]:
        """Rebuild the database file; (bytes before, bytes after). Needs exclusive use."""
        ...


class RunStore(Protocol):
    """Durable state of scheduled runs, kept in the same store as flow (same commits, audit).

    `start_run` is the no-overlap guard: it returns None, writing nothing,
    while another run of the job is `running`. A run left `running` by a
    crash is closed as `failed` ("interrupted") by `recover_runs` at start-up,
    so it never blocks its job forever; in a cluster only runs whose node
    (incarnation, `ClusterStore.act_as`) is no longer alive are closed.
    Watermarks advance only with a run that finishes `succeeded` or `partial`.
    """

    async def start_run(
        self,
        job_id: str,
        trigger: RunTrigger,
        window: Window,
        scheduled_for: float | None,
        started_at: float,
    ) -> int | None: ...

    async def finish_run(
        self,
        run_id: int,
        status: RunStatus,
        counts: RunCounts,
        finished_at: float,
        *,
        manifests_checked: Sequence[Manifest] = (),
        manifests_written: Sequence[Manifest] = (),
        error: str | None = None,
        next_watermark: str | None = None,
        findings: Mapping[str, Any] | None = None,
        reconciled: str | None = None,
        alert: str | None = None,
    ) -> None:
        """Close a running run, audited. `reconciled` (counts only) and `alert` (read by
        people) add a `reconciled` and an `alert` audit entry, subject the job id, in the same
        commit; neither may carry a business key, a record value or other patient data."""
        ...

    async def recover_runs(self, at: float) -> list[int]: ...

    async def runs(self, job_id: str | None = None, limit: int = 50) -> list[RunRecord]: ...

    async def run(self, run_id: int) -> RunRecord | None: ...

    async def watermark(self, job_id: str) -> str | None:
        """The `next_watermark` of the job's last successful run."""
        ...

    async def last_scheduled(self, job_id: str) -> float | None:
        """The latest `scheduled_for` of the job's runs (including skipped ones)."""
        ...

    async def add_rejects(self, rejects: Sequence[RowReject]) -> list[int]: ...

    async def row_rejects(
        self, job_id: str | None = None, run_id: int | None = None, limit: int = 100
    ) -> list[RowReject]: ...

    async def row_reject(self, reject_id: int) -> RowReject | None: ...

    async def mark_replayed(self, reject_ids: Sequence[int], actor: str, at: float) -> None: ...

    async def record_ledger(self, entries: Sequence[LedgerEntry]) -> None:
        """Remember (destination, business key) -> content hash; the latest wins."""
        ...

    async def ledger(self, destination_id: str, business_keys: Sequence[str]) -> dict[str, str]:
        """Content hashes recorded for those keys at that destination."""
        ...

    async def ledger_entries(
        self, destination_id: str, business_keys: Sequence[str]
    ) -> list[LedgerEntry]:
        """The ledger entries (hash and version) of those keys at that destination, by key."""
        ...

    async def ledger_page(
        self, destination_id: str, after: str | None, limit: int
    ) -> list[LedgerEntry]:
        """Up to `limit` entries of the destination with a key greater than `after`, by key.

        Keys are ordered by code point (Python's string order), so paging with
        the last key returned visits every entry once, in the order a merge needs.
        """
        ...


class AccessStore(Protocol):
    """API tokens (hashes only) and the acts taken through the API, in the audit trail."""

    async def add_token(
        self, name: str, role: Role, token_hash: str, actor: str, at: float, *, reason: str = ""
    ) -> int:
        """Store a token's hash and audit `token.issued` (with `reason`) in one commit; its id."""
        ...

    async def revoke_token(self, token_id: int, actor: str, reason: str, at: float) -> bool:
        """Revoke an active token, audited; False when unknown or already revoked."""
        ...

    async def token_by_hash(self, token_hash: str) -> ApiToken | None:
        """The active token with this hash, or None."""
        ...

    async def tokens(self) -> list[ApiToken]:
        """Every token issued, revoked ones included, oldest first."""
        ...

    async def append_audit(self, entry: AuditEntry) -> int:
        """Durably append one audit entry; its entry id."""
        ...


class FreshnessStore(Protocol):
    """Recent deliveries for the dashboard's figures: bounded reads over indexes."""

    async def delivery_sample(
        self, destination_id: str, since: float, limit: int
    ) -> DeliverySample:
        """Deliveries of one destination delivered or dead-lettered at or after `since`.

        Lags are `delivered_at - created_at` (a delivery's `created_at` is its
        event's `received_at`). At most `limit` newest of each kind are read.
        """
        ...


class OperationsStore(Protocol):
    """What the operating API reads and records: searches, timelines, the audit, pauses.

    Searches are keyset-paged and served by indexes, so their cost does not
    grow with the number of stored events (see `core.search`).
    """

    async def search_events(self, query: EventQuery) -> list[EventSummary]: ...

    async def search_deliveries(self, query: DeliveryQuery) -> list[DeliveryRecord]: ...

    async def timeline(self, event_id: str) -> Timeline | None:
        """Everything known of one event; None when there is no such event."""
        ...

    async def audit_page(
        self, before: int | None, limit: int, action: str | None = None
    ) -> list[AuditEntry]:
        """Audit entries, newest first, entry id below `before` and of `action` when given."""
        ...

    async def pauses(self) -> list[Pause]:
        """The destinations and channels paused now (kept across restarts)."""
        ...

    async def set_paused(
        self, kind: PauseKind, target_id: str, paused: bool, *, actor: str, reason: str, at: float
    ) -> bool:
        """Durably pause or resume a target, audited in the same commit.

        Returns False, writing nothing, when it already was in that state.
        """
        ...

    async def operating_mode(self) -> ModeState | None:
        """The operating mode last recorded (kept across restarts); None if never recorded."""
        ...

    async def set_operating_mode(self, state: ModeState) -> bool:
        """Durably record the mode in force, audited (`mode.changed`) in the same commit.

        Returns False, writing nothing, when the recorded state already has the
        same mode, origin and rule.
        """
        ...


class EventLog(Protocol):
    """Committed events in commit order: what the views are projected from.

    A position is an event's place in commit order across the whole store:
    once a reader has seen position N, no event with a position at or below N
    becomes visible later (a backend with concurrent writers must hold
    positions back until every lower one is committed or abandoned). Events
    removed by retention are gone from the log; a view rebuilt after a purge
    starts from the oldest kept event.
    """

    async def events_after(
        self, position: int, channels: Sequence[str], limit: int = 1000
    ) -> list[tuple[int, Event]]:
        """Up to `limit` (position, event) of `channels` after `position`, in commit order."""
        ...

    async def last_position(self) -> int:
        """The position of the newest committed event (0 when there is none)."""
        ...


class AlertStore(Protocol):
    """Alerts: at most one active alert per (kind, subject); every transition audited."""

    async def raise_alert(
        self, kind: AlertKind, subject: str, severity: Severity, message: str, at: float
    ) -> tuple[Alert, bool]:
        """Record a raised alert with its `alert.raised` audit entry in one commit.

        When an alert of that kind and subject is already active, nothing is
        written: answers (that alert, False); else (the new alert, True).
        """
        ...

    async def clear_alert(self, alert_id: int, at: float) -> Alert | None:
        """Clear an active alert, audited `alert.cleared`; None when not active."""
        ...

    async def acknowledge_alert(
        self, alert_id: int, actor: str, reason: str, at: float
    ) -> Alert | None:
        """Stamp an alert acknowledged, audited `alert.acknowledged`; None when unknown."""
        ...

    async def alerts(self, *, active_only: bool = False, limit: int = 100) -> list[Alert]:
        """Active alerts first (newest first), then recently cleared ones (newest first)."""
        ...


class SubscriptionStateStore(Protocol):
    """A FHIR Subscription receiver's tracking state, kept across restarts and shared by nodes."""

    async def subscription_state(
        self, channel_id: str, subscription_id: str
    ) -> SubscriptionState | None:
        """The state as last advanced; None if never."""
        ...

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
        """Fold one notification into the saved state (`core.subscription.advance`) in one
        commit, on the latest state: concurrent callers (several nodes) serialise on the
        subscription's row, so none overwrites what another folded in."""
        ...


class StateStore(
    Store,
    RunStore,
    AccessStore,
    StoreUpkeep,
    FreshnessStore,
    OperationsStore,
    AlertStore,
    SubscriptionStateStore,
    EventLog,
    ClusterStore,
    Protocol,
):
    """The engine's store: every storage protocol on one database (same commits, one audit).

    Each backend (SQLite, PostgreSQL) implements all of them with the same
    semantics; `tests/store/contract` runs the same tests against each.
    """
