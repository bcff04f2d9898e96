"""Group commit for every backend: one writer thread, one connection, one transaction a batch.

Operations are queued by coroutines on any asyncio loop. The writer thread
takes the first waiting operation plus everything already queued behind it
(up to `max_batch`), executes them in queue order inside one transaction and
commits once, so all of them share one flush to disk. Each operation is
isolated by a savepoint: consecutive operations of the same kind first share
one savepoint and, should that fail, are executed again one savepoint each,
so a bad operation fails only its own caller. Callers are answered only
after COMMIT returned, in commit order; if COMMIT fails, every caller of the
batch gets `StoreError` and nothing of the batch is committed.

A caller that stops waiting (cancellation) does not withdraw its operation:
once queued it is executed and, if the commit succeeds, durable.

A backend may hold an operation's statements back past its savepoint and
send them with a later round trip (`_sync` is then not a round trip of its
own). A failure in what was held back cannot be told to one operation, so
the whole transaction is rolled back and the batch executed once more with
every operation's statements checked inside its savepoint (`_recheck`); the
first attempt committed nothing, and its callers are answered only once.

A backend subclasses `GroupWriter` with its transaction steps (`_begin`,
`_finish`, `_rollback`, `_statement`, optionally `_abandon`, `_sync` and
`_recheck`) and its handlers; the operations every backend runs the same way
(`thumpflow.store.ops`) are wired by `common_handlers`.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from thumpflow.core.errors import StoreError
from thumpflow.core.event import DeadLetterFilter
from thumpflow.store.chain import AuditChain
from thumpflow.store.ops import WriteContext
from thumpflow.store.ops import access as _access
from thumpflow.store.ops import alerts as _alerts
from thumpflow.store.ops import modes as _modes
from thumpflow.store.ops import pauses as _pauses
from thumpflow.store.ops import runs as _runs
from thumpflow.store.ops import subscriptions as _subscriptions

_log = logging.getLogger("thumpflow.store")

# Channel counter slots and outbox counter slots.
RECEIVED, DUPLICATES, REJECTED, LAST_RECEIVED = 0, 1, 2, 3
DELIVERED, PENDING, DEAD, SUPERSEDED, LAST_DELIVERED = 0, 1, 2, 3, 4


class Kind(Enum):
    ADMIT = "admit"
    REJECT = "reject"
    RECORD = "record"
    LOAD_PENDING = "load_pending"
    REPLAY = "replay"
    START_RUN = "start_run"
    FINISH_RUN = "finish_run"
    RECOVER_RUNS = "recover_runs"
    ADD_REJECTS = "add_rejects"
    MARK_REPLAYED = "mark_replayed"
    RECORD_LEDGER = "record_ledger"
    ADD_TOKEN = "add_token"
    REVOKE_TOKEN = "revoke_token"
    AUDIT = "audit"
    PURGE = "purge"
    PURGE_DONE = "purge_done"
    REKEY = "rekey"
    REKEY_DONE = "rekey_done"
    SET_PAUSED = "set_paused"
    SET_MODE = "set_mode"
    RAISE_ALERT = "raise_alert"
    CLEAR_ALERT = "clear_alert"
    ACK_ALERT = "ack_alert"
    ADVANCE_SUBSCRIPTION = "advance_subscription"
    JOIN_NODE = "join_node"
    HEARTBEAT = "heartbeat"
    LEAVE_NODE = "leave_node"
    ACQUIRE_LEASE = "acquire_lease"
    RENEW_LEASE = "renew_lease"
    RELEASE_LEASE = "release_lease"
    RECORD_FENCED = "record_fenced"
    LOAD_PARTITION = "load_partition"


BULK_KINDS = frozenset(
    {
        Kind.ADMIT,
        Kind.RECORD,
        Kind.RECORD_FENCED,
        Kind.ADD_REJECTS,
        Kind.RECORD_LEDGER,
    }
)


@dataclass(slots=True, frozen=True)
class LoadPending:
    destination_id: str
    after_delivery_id: int
    limit: int


@dataclass(slots=True, frozen=True)
class Replay:
    flt: DeadLetterFilter
    actor: str
    reason: str
    out_of_order: bool = False


@dataclass(slots=True)
class Op:
    kind: Kind
    arg: Any
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


@dataclass(slots=True, frozen=True)
class WriterStats:
    """Group commit counters since the store was opened."""

    commits: int
    operations: int
    failed_commits: int


def latest(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


class Deltas:
    """Counter changes of committed-to-be operations, applied once per transaction."""

    __slots__ = ("channels", "outboxes")

    def __init__(self) -> None:
        self.channels: dict[str, list[Any]] = {}
        self.outboxes: dict[tuple[str, str], list[Any]] = {}

    def channel(self, channel_id: str) -> list[Any]:
        slot = self.channels.get(channel_id)
        if slot is None:
            slot = self.channels[channel_id] = [0, 0, 0, None]
        return slot

    def outbox(self, destination_id: str, channel_id: str) -> list[Any]:
        key = (destination_id, channel_id)
        slot = self.outboxes.get(key)
        if slot is None:
            slot = self.outboxes[key] = [0, 0, 0, 0, None]
        return slot

    def merge(self, other: Deltas) -> None:
        for channel_id, theirs in other.channels.items():
            mine = self.channel(channel_id)
            for i in (RECEIVED, DUPLICATES, REJECTED):
                mine[i] += theirs[i]
            mine[LAST_RECEIVED] = latest(mine[LAST_RECEIVED], theirs[LAST_RECEIVED])
        for (destination_id, channel_id), theirs in other.outboxes.items():
            mine = self.outbox(destination_id, channel_id)
            for i in (DELIVERED, PENDING, DEAD, SUPERSEDED):
                mine[i] += theirs[i]
            mine[LAST_DELIVERED] = latest(mine[LAST_DELIVERED], theirs[LAST_DELIVERED])

    def channel_rows(self) -> list[tuple[Any, ...]]:
        """(channel_id, received, duplicates, rejected, last_received_at) per channel."""
        return [(key, *values) for key, values in self.channels.items()]

    def outbox_rows(self) -> list[tuple[Any, ...]]:
        """(destination_id, channel_id, delivered, pending, dead, superseded, last) per outbox."""
        return [(*key, *values) for key, values in self.outboxes.items()]


Handler = Callable[[list[Any], Deltas], list[Any]]


def common_handlers(context: WriteContext) -> dict[Kind, Handler]:
    """The handlers of the operations every backend runs the same way (no counters)."""

    def on(operation: Callable[[WriteContext, list[Any]], list[Any]]) -> Handler:
        return lambda args, deltas: operation(context, args)

    return {
        Kind.START_RUN: on(_runs.start_runs),
        Kind.FINISH_RUN: on(_runs.finish_runs),
        Kind.ADD_REJECTS: on(_runs.add_rejects),
        Kind.MARK_REPLAYED: on(_runs.mark_replayed),
        Kind.RECORD_LEDGER: on(_runs.record_ledger),
        Kind.ADD_TOKEN: on(_access.add_tokens),
        Kind.REVOKE_TOKEN: on(_access.revoke_tokens),
        Kind.AUDIT: on(_access.append_audits),
        Kind.SET_PAUSED: on(_pauses.set_paused),
        Kind.SET_MODE: on(_modes.set_modes),
        Kind.RAISE_ALERT: on(_alerts.raise_alerts),
        Kind.CLEAR_ALERT: on(_alerts.clear_alerts),
        Kind.ACK_ALERT: on(_alerts.acknowledge_alerts),
        Kind.ADVANCE_SUBSCRIPTION: on(_subscriptions.advance_states),
    }


class GroupWriter:
    """The queue, the thread and the transaction skeleton; see the module docstring.

    Subclasses fill `handlers` and implement the transaction steps.
    """

    def __init__(self, audit: AuditChain, max_batch: int, name: str) -> None:
        self._audit = audit
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Op | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name)
        self._commits = 0
        self._operations = 0
        self._failed_commits = 0
        self.handlers: dict[Kind, Handler] = {}

    @property
    def stats(self) -> WriterStats:
        return WriterStats(self._commits, self._operations, self._failed_commits)

    def start(self) -> None:
        self._thread.start()

    def submit(self, op: Op) -> None:
        self._queue.put(op)

    def stop(self) -> None:
        """Execute everything queued so far, then end the thread (blocking)."""
        self._queue.put(None)
        self._thread.join()
        self._disconnect()

    # --- what a backend provides ------------------------------------------------

    def _begin(self) -> None:
        """Open the transaction and take the audit chain's committed head."""
        raise NotImplementedError

    def _finish(self, deltas: Deltas) -> None:
        """Apply the counter changes and commit."""
        raise NotImplementedError

    def _rollback(self) -> None:
        """Abandon the open transaction, if any (never raises)."""
        raise NotImplementedError

    def _statement(self, sql: str) -> None:
        """Execute one statement without parameters (savepoints)."""
        raise NotImplementedError

    def _abandon(self, savepoint: str) -> None:
        """Undo everything since `savepoint` and release it."""
        self._statement(f"ROLLBACK TO SAVEPOINT {savepoint}")
        self._statement(f"RELEASE SAVEPOINT {savepoint}")

    def _disconnect(self) -> None:
        """Close what the writer opened itself, after its thread ended (default: nothing)."""

    def _sync(self) -> None:
        """Send what the backend holds back of an operation's statements, so that a
        failure among them is raised here, inside the operation's savepoint (default:
        nothing is held back)."""

    def _after_commit(self) -> None:
        """Work that must follow a commit (SQLite gives freed pages back)."""

    def _recheck(self, failure: BaseException) -> bool:
        """After the batch's transaction failed with `failure` and was rolled back:
        True to execute the batch again with every operation checked inside its
        savepoint, because the failure may belong to statements held back past it
        and is known to have committed nothing (default: nothing is held back)."""
        return False

    # --- the loop -----------------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    op = self._queue.get_nowait()
                except queue.Empty:
                    break
                if op is None:
                    stopping = True
                    break
                batch.append(op)
            answer(batch, self._execute(batch))

    def _execute(self, batch: list[Op]) -> list[Any]:
        results: list[Any] = []
        deltas = Deltas()
        try:
            self._begin()
            start = 0
            while start < len(batch):
                kind = batch[start].kind
                end = start + 1
                if kind in BULK_KINDS:
                    while end < len(batch) and batch[end].kind is kind:
                        end += 1
                results.extend(self._segment(kind, batch[start:end], deltas))
                start = end
            self._finish(deltas)
        except Exception as exc:
            self._rollback()
            if self._recheck(exc):
                return self._execute(batch)
            self._failed_commits += 1
            _log.error(
                "group commit of %d operations failed (%s); none was committed",
                len(batch),
                type(exc).__name__,
            )
            return [
                store_error("the group commit failed; nothing was committed", exc) for _ in batch
            ]
        self._commits += 1
        self._operations += len(batch)
        self._after_commit()
        return results

    def _segment(self, kind: Kind, ops: list[Op], deltas: Deltas) -> list[Any]:
        """Execute consecutive operations of one kind; return one answer per operation."""
        handler = self.handlers[kind]
        if len(ops) > 1:
            attempt = Deltas()
            head = self._audit.snapshot()
            self._statement("SAVEPOINT segment")
            try:
                answers = handler([op.arg for op in ops], attempt)
                self._sync()
            except Exception:
                self._audit.restore(head)
                self._abandon("segment")
            else:
                self._statement("RELEASE SAVEPOINT segment")
                deltas.merge(attempt)
                return answers
        answers = []
        for op in ops:
            attempt = Deltas()
            head = self._audit.snapshot()
            self._statement("SAVEPOINT op")
            try:
                answer_ = handler([op.arg], attempt)[0]
                self._sync()
            except Exception as exc:
                self._audit.restore(head)
                self._abandon("op")
                _log.warning("store %s failed (%s); rolled back", kind.value, type(exc).__name__)
                answer_ = store_error(f"store {kind.value} failed", exc)
            else:
                self._statement("RELEASE SAVEPOINT op")
                deltas.merge(attempt)
            answers.append(answer_)
        return answers


def store_error(message: str, cause: BaseException) -> StoreError:
    error = StoreError(f"{message} ({type(cause).__name__})")
    error.__cause__ = cause
    return error


def answer(batch: list[Op], results: list[Any]) -> None:
    """Hand each caller its result on its own loop, in commit order."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any]]] = {}
    for op, result in zip(batch, results, strict=True):
        by_loop.setdefault(op.loop, []).append((op.future, result))
    for loop, answers in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve, answers)
        except RuntimeError:
            _log.warning("%d store results had no loop left to receive them", len(answers))


def _resolve(answers: list[tuple[asyncio.Future[Any], Any]]) -> None:
    for future, result in answers:
        if future.done():
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)
